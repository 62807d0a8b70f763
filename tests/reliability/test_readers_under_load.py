"""Load: reader processes and concurrent query-tool calls while the scheduler syncs two tables over and over.

Four reader subprocesses open warehouse.duckdb afresh in a loop (two per table) and four threads call the
query tool's engine, while the real scheduler (two jobs at a time) runs full-refresh and incremental syncs
of tables that change between rounds. No read may fail, and every answer must be a state a sync committed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database
from tests.embedded.sync_support import add_schema, add_source
from tests.embedded.warehouse_readers import assert_only_committed_states, readers
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.query import run_query
from warehouse_mcp.embedded.sync.service import SyncService

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

ROWS = 5000
ROUNDS = 4
QUERY = 'SELECT count(*), count(DISTINCT id), min(gen), max(gen) FROM "{table}"'


def completed(store: Store, schema_id: str) -> int:
    row = store.query_one(
        "SELECT count(*) AS n FROM jobs WHERE schema_id = ? AND status = 'Completed'", (schema_id,)
    )
    return int(row["n"]) if row else 0


def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_readers_and_queries_during_repeated_syncs(postgres_db: Database, home: Path, tmp_path: Path) -> None:
    for table in ("whole", "incr"):
        postgres_db.execute(
            f"CREATE TABLE {table} (id integer PRIMARY KEY, gen integer NOT NULL, updated_at timestamptz NOT NULL)",
            f"INSERT INTO {table} SELECT g, 0, now() FROM generate_series(1, {ROWS}) g",
        )
    store, vault = Store(home), Vault(home)
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schemas = {
        "postgres_whole": add_schema(store, source_id, "whole"),
        "postgres_incr": add_schema(
            store,
            source_id,
            "incr",
            sync_type="incremental",
            incremental_field="updated_at",
            primary_key_columns=["id"],
        ),
    }
    committed: dict[str, set[tuple[int, int, int, int]]] = {name: {(ROWS, ROWS, 0, 0)} for name in schemas}
    service = SyncService(store, vault, home, poll_seconds=0.05, batch_rows=500)
    service.start()
    tool_answers: list[tuple[str, Any]] = []
    stop = threading.Event()

    def query_tool() -> None:
        while not stop.is_set():
            for table in schemas:
                try:
                    answer = run_query(home / "warehouse.duckdb", QUERY.format(table=table))
                    tool_answers.append((table, answer["rows"][0]))
                except Exception as exc:  # any failure is what this test looks for
                    tool_answers.append((table, {"error": repr(exc)}))

    try:
        for schema_id in schemas.values():
            service.request_sync(schema_id)
        wait_for(lambda: all(completed(store, s) == 1 for s in schemas.values()), "the first syncs")
        with (
            readers(home / "warehouse.duckdb", "postgres_whole", tmp_path / "whole", 2, QUERY) as full,
            readers(home / "warehouse.duckdb", "postgres_incr", tmp_path / "incr", 2, QUERY) as incr,
        ):
            threads = [threading.Thread(target=query_tool) for _ in range(4)]
            for thread in threads:
                thread.start()
            for gen in range(1, ROUNDS + 1):
                total = ROWS + 100 * gen
                for table in ("whole", "incr"):
                    postgres_db.execute(
                        f"BEGIN; UPDATE {table} SET gen = {gen}, updated_at = now(); "
                        f"INSERT INTO {table} SELECT g, {gen}, now() FROM generate_series({total - 99}, {total}) g; COMMIT"
                    )
                for name, schema_id in schemas.items():
                    committed[name].add((total, total, gen, gen))
                    service.request_sync(schema_id)
                wait_for(
                    lambda gen=gen: all(completed(store, s) == gen + 1 for s in schemas.values()),
                    f"round {gen}",
                )
            stop.set()
            for thread in threads:
                thread.join(60)
            answers = {"postgres_whole": full.stop(), "postgres_incr": incr.stop()}
    finally:
        stop.set()
        service.stop()

    for name, seen in answers.items():
        assert_only_committed_states(seen, committed[name])
        assert [ROWS + 100 * ROUNDS] * 2 + [ROUNDS] * 2 in seen
    failures = [answer for _, answer in tool_answers if isinstance(answer, dict)]
    assert not failures, failures[:3]
    for name in schemas:
        assert_only_committed_states([a for t, a in tool_answers if t == name], committed[name])
