"""CDC as an agent uses it, through the MCP tools and the server's own scheduler, on the real Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import Database
from tests.e2e.flow_support import call, connect, embedded, set_up_and_sync
from tests.embedded.cdc_support import cdc_database, slots_of
from warehouse_mcp.server import build_server


@pytest.fixture
def db() -> Iterator[Database]:
    with cdc_database() as database:
        database.execute(
            "CREATE TABLE accounts (id integer PRIMARY KEY, plan text)",
            "CREATE TABLE visits (id integer PRIMARY KEY, account integer)",
            "INSERT INTO accounts SELECT g, 'free' FROM generate_series(1, 30) g",
            "INSERT INTO visits SELECT g, g % 30 + 1 FROM generate_series(1, 50) g",
        )
        yield database


async def rows_of(client: Client, table: str) -> list[list]:
    answer = await call(client, "data-warehouse-query", {"sql": f"SELECT * FROM {table} ORDER BY 1"})
    return answer["rows"]


@pytest.mark.anyio
async def test_setup_with_cdc_streams_every_table_and_deleting_cleans_up(home: Path, db: Database) -> None:
    async with Client(build_server(embedded(home))) as client:
        credential_id = await connect(client, "Postgres", db)
        created = await set_up_and_sync(
            client, "Postgres", {"credential_id": credential_id, "cdc_enabled": True}
        )
        source_id = created["id"]
        assert {s["sync_type"] for s in created["schemas"]} == {"cdc"}
        assert await rows_of(client, "postgres_accounts") == [[i, "free"] for i in range(1, 31)]

        db.execute(
            "UPDATE accounts SET plan = 'paid' WHERE id <= 3",
            "DELETE FROM visits WHERE id > 40",
            "UPDATE accounts SET id = 100 WHERE id = 30",
        )
        await call(client, "external-data-sources-reload-create", {"id": source_id})
        waited = await call(
            client, "data-warehouse-sync-wait", {"source_id": source_id, "timeout_seconds": 60}
        )
        assert waited["done"], waited
        expected = [list(row) for row in db.fetch("SELECT id, plan FROM accounts ORDER BY 1")]
        assert await rows_of(client, "postgres_accounts") == expected
        assert len(await rows_of(client, "postgres_visits")) == 40

        jobs = (await call(client, "external-data-sources-jobs-retrieve", {"id": source_id}))["results"]
        # Each run serves both tables (they share the slot) and leaves a job per table with the rows it
        # applied: the snapshot, then the changes (in however many runs the schedule made).
        applied: dict[str, int] = {}
        for job in jobs:
            assert job["status"] == "Completed", job
            applied[job["schema"]["name"]] = applied.get(job["schema"]["name"], 0) + job["rows_synced"]
        assert applied == {"accounts": 30 + 4, "visits": 50 + 10}
        status = await call(client, "external-data-sources-cdc-status-retrieve", {"id": source_id})
        assert status["slot_exists"] and status["published_tables"] == ["public.accounts", "public.visits"]

        await call(client, "external-data-sources-destroy", {"id": source_id})
        assert slots_of(db.name) == []
