"""data-warehouse-sync-wait reports progress during a real multi-table sync and returns the finished jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import Database
from warehouse_mcp.harness import build_server, harness_settings

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_wait_reports_progress_and_returns_completed_jobs(
    postgres_db: Database, tmp_path: Path, mode: str
) -> None:
    for name in ("alpha", "beta", "gamma"):
        postgres_db.execute(
            f"CREATE TABLE {name} (id int PRIMARY KEY, body text)",
            f"INSERT INTO {name} SELECT g, repeat('x', 40) FROM generate_series(1, 120000) g",
        )
    server = build_server(harness_settings(home=tmp_path / "home"))
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(server, mode=mode) as client:
        stored = await client.call_tool(
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": postgres_db.config},
        )
        credential = stored.structured_content["credential_id"]
        made = await client.call_tool(
            "data-warehouse-source-setup",
            {"source_type": "Postgres", "payload": {"credential_id": credential}},
        )
        source_id = made.structured_content["id"]
        result = await client.call_tool(
            "data-warehouse-sync-wait",
            {"source_id": source_id, "timeout_seconds": 120},
            progress_callback=on_progress,
        )
    waited = result.structured_content
    assert waited["done"] is True and waited["tables_done"] == waited["tables_total"] == 3
    assert waited["rows_synced"] == 360000
    assert sorted(job["schema"]["name"] for job in waited["jobs"]) == ["alpha", "beta", "gamma"]
    assert {job["status"] for job in waited["jobs"]} == {"Completed"}
    assert len(updates) >= 2, updates
    progresses = [progress for progress, _, _ in updates]
    assert progresses == sorted(set(progresses))  # strictly increasing, as the protocol requires
    assert "rows synced" in (updates[-1][2] or "")


async def test_wait_times_out_with_what_is_still_running(postgres_db: Database, tmp_path: Path) -> None:
    postgres_db.execute("CREATE TABLE slow (id int PRIMARY KEY)")
    server = build_server(harness_settings(home=tmp_path / "home", run_scheduler=False))  # nothing will run
    async with Client(server) as client:
        stored = await client.call_tool(
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": postgres_db.config},
        )
        made = await client.call_tool(
            "data-warehouse-source-setup",
            {
                "source_type": "Postgres",
                "payload": {"credential_id": stored.structured_content["credential_id"]},
            },
        )
        result = await client.call_tool(
            "data-warehouse-sync-wait", {"source_id": made.structured_content["id"], "timeout_seconds": 1}
        )
        missing = await client.call_tool(
            "data-warehouse-sync-wait",
            {"source_id": made.structured_content["id"], "schema_id": "nope", "timeout_seconds": 1},
        )
    assert not result.is_error
    assert result.structured_content["done"] is False and result.structured_content["still_running"] == [
        "slow"
    ]
    assert missing.is_error and "is not a table of source" in missing.content[0].text


async def test_wait_right_after_a_reload_waits_for_that_sync(postgres_db: Database, tmp_path: Path) -> None:
    postgres_db.execute("CREATE TABLE items (id int PRIMARY KEY)", "INSERT INTO items VALUES (1)")
    server = build_server(harness_settings(home=tmp_path / "home"))
    async with Client(server) as client:
        stored = await client.call_tool(
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": postgres_db.config},
        )
        made = await client.call_tool(
            "data-warehouse-source-setup",
            {
                "source_type": "Postgres",
                "payload": {"credential_id": stored.structured_content["credential_id"]},
            },
        )
        source_id = made.structured_content["id"]
        first = await client.call_tool(
            "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}
        )
        assert first.structured_content["done"]
        postgres_db.execute("INSERT INTO items VALUES (2)")
        await client.call_tool("external-data-sources-reload-create", {"id": source_id})
        second = await client.call_tool(
            "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}
        )
        jobs = await client.call_tool("external-data-sources-jobs-retrieve", {"id": source_id})
    assert second.structured_content["done"]
    assert [job["status"] for job in jobs.structured_content["results"]] == ["Completed", "Completed"]
