"""End to end through the MCP tools on the embedded backend, against the real PostgreSQL and MariaDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import CANARY_PASSWORD, Database
from tests.e2e.flow_support import call, connect, embedded, seed_shop, set_up_and_sync
from warehouse_mcp.server import build_server


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["postgres", "mysql"])
async def test_connect_setup_sync_and_manage(kind: str, request: pytest.FixtureRequest, home: Path) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    source_type = "Postgres" if kind == "postgres" else "MySQL"
    seed_shop(db)
    async with Client(build_server(embedded(home))) as client:
        credential_id = await connect(client, source_type, db)
        source_id = (await set_up_and_sync(client, source_type, {"credential_id": credential_id}))["id"]
        source = await call(client, "external-data-sources-retrieve", {"id": source_id})
        by_name = {schema["name"]: schema for schema in source["schemas"]}
        assert set(by_name) == {"customers", "events"}
        assert by_name["customers"]["sync_type"] == "incremental"
        assert by_name["customers"]["incremental_field"] == "updated_at"
        assert by_name["events"]["sync_type"] in ("append", "full_refresh")
        assert source["status"] == "Completed", source
        assert by_name["customers"]["table"]["row_count"] == 25
        # the credential was single use
        again = await client.call_tool(
            "data-warehouse-source-setup",
            {"source_type": source_type, "payload": {"credential_id": credential_id}},
        )
        assert again.is_error and "not found or expired" in again.content[0].text
        listed = await call(client, "external-data-sources-list", {})
        assert listed["count"] == 1
        events = by_name["events"]["id"]
        updated = await call(
            client, "external-data-schemas-partial-update", {"id": events, "sync_frequency": "1hour"}
        )
        assert updated["sync_frequency"] == "1hour"
        bulk = await call(
            client,
            "external-data-sources-bulk-update-schemas-partial-update",
            {"id": source_id, "schemas": [{"id": events, "should_sync": False}]},
        )
        assert bulk["results"][0]["should_sync"] is False
        db.execute("CREATE TABLE invoices (id int PRIMARY KEY, total int)")
        refreshed = await call(client, "external-data-sources-refresh-schemas-create", {"id": source_id})
        assert refreshed["added"] == 1
        jobs = await call(client, "external-data-sources-jobs-retrieve", {"id": source_id})
        assert {job["status"] for job in jobs["results"]} == {"Completed"}
        await call(client, "external-data-sources-destroy", {"id": source_id})
        gone = await client.call_tool("external-data-sources-retrieve", {"id": source_id})
        assert gone.is_error and "HTTP 404" in gone.content[0].text
    # nothing secret in plaintext on disk
    for path in home.rglob("*"):
        if path.is_file():
            assert CANARY_PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.anyio
async def test_source_survives_a_restart(postgres_db: Database, home: Path) -> None:
    seed_shop(postgres_db)
    async with Client(build_server(embedded(home, run_scheduler=False))) as client:
        credential_id = await connect(client, "Postgres", postgres_db)
        created = await call(
            client,
            "data-warehouse-source-setup",
            {
                "source_type": "Postgres",
                "payload": {"credential_id": credential_id},
                "description": "keep me",
            },
        )
        before = await call(client, "external-data-sources-retrieve", {"id": created["id"]})
    async with Client(build_server(embedded(home, run_scheduler=False))) as client:
        after = await call(client, "external-data-sources-retrieve", {"id": created["id"]})
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)
    assert after["description"] == "keep me"
