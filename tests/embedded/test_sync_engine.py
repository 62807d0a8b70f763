"""One sync job end to end against the real Postgres and MariaDB: what lands in DuckDB, and how jobs end."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import pytest

from tests.conftest import CANARY_PASSWORD, Database
from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import ReadRequest
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.jobs import CANCELLED_ERROR
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import JobProgress
from warehouse_mcp.embedded.sync.warehouse import Warehouse

from .sync_support import (
    add_schema,
    add_source,
    comparable,
    duckdb_type,
    job_rows,
    run_sync,
    saved_cursor,
    schema_row,
    update_schema,
    warehouse_rows,
)

PG_TABLE = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    big bigint,
    small smallint,
    price numeric(12,2),
    ratio double precision,
    name text,
    code varchar(20),
    active boolean,
    seen_at timestamptz,
    local_at timestamp,
    day date,
    doc jsonb,
    ref uuid,
    tags integer[],
    updated_at timestamptz NOT NULL
)
"""
PG_ROWS = """
INSERT INTO items VALUES
 (1, 9007199254740993, -3, 1234567890.12, 0.5, 'plain', 'A-1', true, '2024-01-02 03:04:05.123456+00',
  '2024-01-02 03:04:05', '2024-01-02', '{"a": [1, 2, {"b": null}]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{1,2,3}', '2024-01-01 00:00:00+00'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-01 00:00:01+00'),
 (3, -1, 32767, -0.01, -1e300, 'ünïcødé ✓ ''quoted''', '', false, '1999-12-31 23:59:59+05',
  '1970-01-01 00:00:00', '1900-03-01', '[]', '00000000-0000-0000-0000-000000000000', '{}', '2024-01-01 00:00:02+00')
"""

MY_TABLE = """
CREATE TABLE items (
    id int PRIMARY KEY,
    big bigint,
    price decimal(12,2),
    ratio double,
    name varchar(100),
    body text,
    seen_at datetime(6),
    day date,
    doc json,
    updated_at datetime(6) NOT NULL
)
"""
MY_ROWS = """
INSERT INTO items VALUES
 (1, 9007199254740993, 1234567890.12, 0.5, 'plain', 'long text', '2024-01-02 03:04:05.123456', '2024-01-02',
  '{"a": [1, 2, {"b": null}]}', '2024-01-01 00:00:00'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2024-01-01 00:00:01'),
 (3, -1, -0.01, -1e300, 'ünïcødé ✓', '', '1970-01-01 00:00:00', '1900-03-01', '[]', '2024-01-01 00:00:02')
"""


def source_type_of(db: Database) -> str:
    return "Postgres" if db.kind == "postgres" else "MySQL"


def assert_table_equals_source(
    db: Database, warehouse: Warehouse, table: str, columns: list[str] | None = None
) -> None:
    """Row for row, value for value; and every DuckDB column has the type the connector declared."""
    info = next(
        t for t in registry.connector_for(source_type_of(db)).discover(db.config) if t.name == "items"
    )
    declared = {c.name: c.warehouse_type for c in info.columns}
    names = columns or [c.name for c in info.columns]
    landed = {c.name: c.type for c in warehouse.columns(table)}
    assert list(landed) == names
    for name in names:
        assert landed[name] == duckdb_type(declared[name]), name

    quote = '"' if db.kind == "postgres" else "`"
    source = db.fetch(f"SELECT {', '.join(quote + n + quote for n in names)} FROM items ORDER BY id")
    target = warehouse_rows(warehouse, table, names, "id")
    assert len(target) == len(source)
    for source_row, target_row in zip(source, target, strict=True):
        for name, expected, actual in zip(names, source_row, target_row, strict=True):
            assert comparable(actual, declared[name]) == comparable(expected, declared[name]), (
                name,
                source_row[0],
            )


@pytest.fixture(params=["postgres", "mysql"])
def source_db(request: pytest.FixtureRequest) -> Database:
    db: Database = request.getfixturevalue(f"{request.param}_db")
    db.execute(PG_TABLE if db.kind == "postgres" else MY_TABLE, PG_ROWS if db.kind == "postgres" else MY_ROWS)
    return db


def test_full_refresh_lands_the_table_row_for_row_and_type_for_type(
    source_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_type = source_type_of(source_db)
    source_id = add_source(store, vault, source_type, source_db.config, prefix="shop")
    schema_id = add_schema(store, source_id, "items")

    outcome = run_sync(store, vault, warehouse, schema_id)

    assert outcome.status == "Completed", outcome.error
    assert outcome.rows_synced == 3
    table = f"shop_{source_type.lower()}_items"
    assert_table_equals_source(source_db, warehouse, table)
    schema = schema_row(store, schema_id)
    assert schema["status"] == "Completed"
    assert schema["latest_error"] is None
    assert schema["table_name"] == table
    assert schema["table_row_count"] == 3
    assert schema["table_id"]
    assert schema["last_synced_at"]
    assert [c["name"] for c in json.loads(schema["table_columns"])][:2] == ["id", "big"]
    [job] = job_rows(store, schema_id)
    assert (job["status"], job["rows_synced"], job["latest_error"]) == ("Completed", 3, None)
    assert job["finished_at"]

    # A second full refresh replaces, not appends; deleted source rows disappear.
    source_db.execute("DELETE FROM items WHERE id = 2")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_table_equals_source(source_db, warehouse, table)
    table_id = schema["table_id"]
    assert schema_row(store, schema_id)["table_id"] == table_id


def test_incremental_reads_only_changed_rows_and_merges(
    source_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_source(store, vault, source_type_of(source_db), source_db.config)
    schema_id = add_schema(
        store,
        source_id,
        "items",
        sync_type="incremental",
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    first = run_sync(store, vault, warehouse, schema_id)
    assert (first.status, first.rows_synced) == ("Completed", 3), first.error
    assert saved_cursor(store, schema_id).startswith("2024-01-01T00:00:02")

    source_db.execute(
        "UPDATE items SET name = 'changed', updated_at = '2024-02-01 00:00:00' WHERE id = 2",
        "INSERT INTO items (id, name, updated_at) VALUES (4, 'new', '2024-02-02 00:00:00')",
        "INSERT INTO items (id, name, updated_at) VALUES (5, 'newer', '2024-02-03 00:00:00')",
    )
    second = run_sync(store, vault, warehouse, schema_id)

    # The 3 changed rows, and row 3 again: it sits at the saved cursor, where new rows may have arrived.
    # (Postgres may read more: rows written by transactions still running at the last read's snapshot,
    # which on a shared server include other sessions' — see README, "Sync guarantees".)
    assert second.status == "Completed", second.error
    assert second.rows_synced == 4 or (source_db.kind == "postgres" and second.rows_synced >= 4)
    table = schema_row(store, schema_id)["table_name"]
    assert_table_equals_source(source_db, warehouse, table)
    assert schema_row(store, schema_id)["table_row_count"] == 5
    assert saved_cursor(store, schema_id).startswith("2024-02-03T00:00:00")

    # Nothing changed: only the row at the cursor is read again, the cursor stays.
    third = run_sync(store, vault, warehouse, schema_id)
    assert third.status == "Completed"
    assert third.rows_synced == 1 or (source_db.kind == "postgres" and third.rows_synced >= 1)
    assert saved_cursor(store, schema_id).startswith("2024-02-03T00:00:00")
    assert_table_equals_source(source_db, warehouse, table)


def test_append_adds_only_new_rows(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    postgres_db.execute(
        "CREATE TABLE events (id bigint, kind text)",
        "INSERT INTO events SELECT g, 'k' || g FROM generate_series(1, 5) g",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "events", sync_type="append", incremental_field="id")
    assert run_sync(store, vault, warehouse, schema_id).rows_synced == 5
    assert saved_cursor(store, schema_id) == 5

    postgres_db.execute("INSERT INTO events SELECT g, 'k' || g FROM generate_series(6, 8) g")
    outcome = run_sync(store, vault, warehouse, schema_id)

    assert outcome.status == "Completed"
    assert outcome.rows_synced >= 4  # 6-8, and 5 again (it sits at the cursor), but not landed twice
    assert warehouse_rows(warehouse, "postgres_events", ["id"], "id") == [(i,) for i in range(1, 9)]


def test_enabled_columns_limit_what_lands(
    source_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_source(store, vault, source_type_of(source_db), source_db.config)
    schema_id = add_schema(store, source_id, "items", enabled_columns=["id", "name", "doc"])

    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"

    table = schema_row(store, schema_id)["table_name"]
    assert_table_equals_source(source_db, warehouse, table, ["id", "name", "doc"])


def test_cancel_between_batches_keeps_the_previous_table(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    postgres_db.execute(
        "CREATE TABLE big (id integer PRIMARY KEY, v text)",
        "INSERT INTO big SELECT g, 'v' || g FROM generate_series(1, 100) g",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "big")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    before = schema_row(store, schema_id)
    postgres_db.execute("INSERT INTO big SELECT g, 'v' || g FROM generate_series(101, 5000) g")

    seen: list[JobProgress] = []

    def cancel_after_two_batches(progress: JobProgress) -> None:
        seen.append(progress)
        if len(seen) == 2:
            with store.transaction() as db:
                db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (progress.job_id,))

    outcome = run_sync(store, vault, warehouse, schema_id, batch_rows=100, progress=cancel_after_two_batches)

    assert CANCELLED_ERROR == "Sync cancelled by user"
    assert (outcome.status, outcome.error, outcome.rows_synced) == ("Failed", CANCELLED_ERROR, 200)
    assert warehouse.row_count("postgres_big") == 100
    assert warehouse.cursor().execute("SELECT count(*) FROM information_schema.tables").fetchone() == (1,)
    after = schema_row(store, schema_id)
    assert (after["status"], after["latest_error"]) == ("Failed", CANCELLED_ERROR)  # as PostHog marks it
    assert (after["table_row_count"], after["last_synced_at"]) == (100, before["last_synced_at"])
    job = job_rows(store, schema_id)[-1]
    assert (job["status"], job["latest_error"], job["rows_synced"]) == ("Failed", CANCELLED_ERROR, 200)

    assert run_sync(store, vault, warehouse, schema_id).rows_synced == 5000
    assert warehouse.row_count("postgres_big") == 5000


def test_source_error_is_stored_without_secrets(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "missing_table")

    outcome = run_sync(store, vault, warehouse, schema_id)

    assert outcome.status == "Failed"
    assert "missing_table" in (outcome.error or "")
    schema = schema_row(store, schema_id)
    assert (schema["status"], schema["latest_error"]) == ("Failed", outcome.error)
    assert job_rows(store, schema_id)[-1]["latest_error"] == outcome.error


def test_unexpected_failure_is_generic_and_scrubbed(
    postgres_db: Database,
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_db.execute("CREATE TABLE t (id integer)", "INSERT INTO t SELECT generate_series(1, 10)")
    real = registry.connector_for("Postgres")

    class BuggyConnector:
        """The real connector, with a bug after the first batch whose message carries the password."""

        source_type = "Postgres"
        validate = real.validate
        discover = real.discover

        def read(self, config: Mapping[str, Any], request: ReadRequest) -> Iterator[pa.RecordBatch]:
            yield from itertools.islice(real.read(config, request), 1)
            raise RuntimeError(f"connection to {config['user']}:{config['password']}@db broke")

    monkeypatch.setattr(registry, "connector_for", lambda source_type: BuggyConnector())
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "t")

    outcome = run_sync(store, vault, warehouse, schema_id, batch_rows=4)

    assert outcome.status == "Failed"
    assert outcome.error == "Sync failed: RuntimeError: connection to wmcp_secure:***@db broke"
    assert CANARY_PASSWORD not in caplog.text
    assert "Traceback" in caplog.text and "***@db broke" in caplog.text
    assert schema_row(store, schema_id)["latest_error"] == outcome.error
    assert job_rows(store, schema_id)[-1]["rows_synced"] == 4
    assert not warehouse.table_exists("postgres_t")


def test_schema_switched_to_incremental_starts_with_a_full_load(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    postgres_db.execute(
        "CREATE TABLE t (id integer PRIMARY KEY, n integer)",
        "INSERT INTO t SELECT g, g FROM generate_series(1, 10) g",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "t")
    assert run_sync(store, vault, warehouse, schema_id).rows_synced == 10
    assert schema_row(store, schema_id)["sync_cursor"] is None

    postgres_db.execute("DELETE FROM t WHERE id > 5")
    update_schema(
        store, schema_id, sync_type="incremental", incremental_field="n", primary_key_columns='["id"]'
    )
    assert run_sync(store, vault, warehouse, schema_id).rows_synced == 5
    assert warehouse.row_count("postgres_t") == 5  # replaced, not merged into the old 10
