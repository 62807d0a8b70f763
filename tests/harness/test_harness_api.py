"""Written as a harness author would: only the public API (warehouse_mcp.harness) and the plugin's fixtures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from warehouse_mcp.harness import EmbeddedApi, build_server, complete_connect_page, harness_settings

pytestmark = pytest.mark.anyio


async def ok(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, (tool, result.content[0].text)
    return result.structured_content or {}


async def connect_setup_sync(client: Client, fields: dict[str, Any]) -> dict[str, Any]:
    link = await ok(client, "data-warehouse-source-connect-link", {"source_type": "Postgres"})
    credential = await anyio.to_thread.run_sync(lambda: complete_connect_page(link["connect_url"], fields))
    source = await ok(
        client,
        "data-warehouse-source-setup",
        {"source_type": "Postgres", "payload": {"credential_id": credential}},
    )
    waited = await ok(client, "data-warehouse-sync-wait", {"source_id": source["id"], "timeout_seconds": 60})
    jobs = await ok(client, "external-data-sources-jobs-retrieve", {"id": source["id"]})
    return {"source": source, "waited": waited, "jobs": jobs["results"]}


async def test_the_fixture_client_runs_the_whole_flow(
    warehouse_client: Client, warehouse_postgres: Any
) -> None:
    outcome = await connect_setup_sync(warehouse_client, warehouse_postgres.fields)
    assert outcome["waited"]["done"] and outcome["waited"]["rows_synced"] == 250  # 50 customers + 200 orders
    assert sorted(job["schema"]["name"] for job in outcome["jobs"]) == ["customers", "orders"]
    assert {job["status"] for job in outcome["jobs"]} == {"Completed"}


async def test_two_runs_in_parallel_are_isolated_and_leave_nothing(
    warehouse_postgres: Any, tmp_path: Path
) -> None:
    homes: list[Path] = []
    outcomes: list[dict[str, Any]] = []

    async def run() -> None:
        settings = harness_settings()  # ephemeral data dir
        server = build_server(settings)
        async with Client(server) as client:
            homes.append(server.runtime.home)
            outcomes.append(await connect_setup_sync(client, warehouse_postgres.fields))
            listed = await ok(client, "external-data-sources-list", {})
            assert listed["count"] == 1  # only its own source

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(run)
    assert len(homes) == 2 and homes[0] != homes[1]
    assert outcomes[0]["source"]["id"] != outcomes[1]["source"]["id"]
    assert all(outcome["waited"]["done"] for outcome in outcomes)
    assert not any(home.exists() for home in homes)


async def test_the_clock_fixture_drives_the_scheduler(
    warehouse_client: Client, warehouse_clock: Any, warehouse_postgres: Any
) -> None:
    outcome = await connect_setup_sync(warehouse_client, warehouse_postgres.fields)
    customers = next(
        s
        for s in (
            await ok(warehouse_client, "external-data-sources-retrieve", {"id": outcome["source"]["id"]})
        )["schemas"]
        if s["name"] == "customers"
    )
    await ok(
        warehouse_client,
        "external-data-schemas-partial-update",
        {"id": customers["id"], "sync_frequency": "5min"},
    )
    warehouse_clock.advance(6 * 60)
    for _ in range(100):
        jobs = await ok(
            warehouse_client,
            "external-data-sources-jobs-retrieve",
            {"id": outcome["source"]["id"], "schemas": ["customers"]},
        )
        if len([job for job in jobs["results"] if job["status"] == "Completed"]) >= 2:
            break
        await anyio.sleep(0.1)
    else:
        raise AssertionError(f"the 5min schema did not run again: {jobs}")


async def test_transcript_records_every_call_redacted(tmp_path: Path, warehouse_postgres: Any) -> None:
    transcript = tmp_path / "calls.jsonl"
    server = build_server(harness_settings(transcript_path=transcript))
    secret_payload = {**warehouse_postgres.fields, "password": "transcript-canary-99"}
    async with Client(server) as client:
        await client.call_tool("external-data-sources-wizard-retrieve", {"source_type": "Postgres"})
        await client.call_tool(
            "external-data-sources-store-credentials-create",
            {"source_type": "Postgres", "payload": secret_payload},
        )
    lines = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [line["tool"] for line in lines] == [
        "external-data-sources-wizard-retrieve",
        "external-data-sources-store-credentials-create",
    ]
    assert lines[1]["arguments"]["payload"]["password"] == "[REDACTED]"
    assert "transcript-canary-99" not in transcript.read_text()
    assert "Postgres" in json.dumps(lines[0]["result"])


async def test_embedded_api_on_a_port_serves_other_clients(warehouse_postgres: Any) -> None:
    with EmbeddedApi() as api:
        async with Client(build_server(api.settings())) as client:
            stored = await ok(
                client,
                "external-data-sources-store-credentials-create",
                {"source_type": "Postgres", "payload": warehouse_postgres.fields},
            )
            source = await ok(
                client,
                "data-warehouse-source-setup",
                {"source_type": "Postgres", "payload": {"credential_id": stored["credential_id"]}},
            )
        # a second, unrelated client (another process, another language) sees it through plain HTTP
        import httpx

        answer = httpx.get(
            f"{api.url}/api/projects/1/external_data_sources/",
            headers={"Authorization": f"Bearer {api.token}"},
        )
        refused = httpx.get(f"{api.url}/api/projects/1/external_data_sources/")
        home = api.home
    assert answer.status_code == 200 and answer.json()["results"][0]["id"] == source["id"]
    assert refused.status_code == 401
    assert not home.exists()


def test_reset_empties_a_data_directory(tmp_path: Path) -> None:
    from warehouse_mcp.embedded.backend import EmbeddedBackend

    home = tmp_path / "home"
    EmbeddedBackend(home).close()
    assert any(home.iterdir())
    bin_path = Path(sys.executable).with_name("warehouse-mcp")
    done = subprocess.run(
        [str(bin_path), "reset", "--home", str(home)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert list(home.iterdir()) == []
