"""Helpers for the CDC tests: CDC sources and schemas, one-shot runs, and slot clean-up.

Replication slots are shared by everything on the server (max_replication_slots) and an orphan slot keeps
WAL for the whole machine: `cdc_database` (like every `fresh_postgres` database) has its slots dropped
before the database, whatever the test did; the tests themselves check that the backend leaves none.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.conftest import Database, drop_replication_slots, fresh_postgres
from warehouse_mcp.embedded.store import Store, jobs
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import JobProgress, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse

from .sync_support import add_schema, add_source


def admin(database: str) -> psycopg.Connection:
    return psycopg.connect(host="127.0.0.1", user="postgres", dbname=database, autocommit=True)


def slots_of(database: str) -> list[str]:
    with admin("postgres") as connection:
        rows = connection.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = %s ORDER BY slot_name", (database,)
        ).fetchall()
    return [row[0] for row in rows]


def drop_slots(database: str) -> None:
    with admin("postgres") as connection:
        drop_replication_slots(connection, database)


@contextmanager
def cdc_database() -> Iterator[Database]:
    with fresh_postgres() as database:
        try:
            yield database
        finally:
            drop_slots(database.name)


def cdc_config(database: Database, **settings: Any) -> dict[str, Any]:
    return {
        **database.config,
        "cdc_enabled": True,
        "cdc_management_mode": "posthog",
        "cdc_auto_drop_slot": True,
        "cdc_lag_warning_threshold_mb": 1024,
        "cdc_lag_critical_threshold_mb": 10240,
        **settings,
    }


def add_cdc_source(store: Store, vault: Vault, database: Database, **settings: Any) -> str:
    return add_source(store, vault, "Postgres", cdc_config(database, **settings))


def add_cdc_schema(store: Store, source_id: str, name: str, mode: str = "consolidated") -> str:
    schema_id = add_schema(store, source_id, name, sync_type="cdc", frequency="1min")
    with store.transaction() as db:
        db.execute("UPDATE schemas SET cdc_table_mode = ? WHERE id = ?", (mode, schema_id))
    return schema_id


def run_cdc(
    store: Store, vault: Vault, warehouse: Warehouse, schema_id: str, *, batch_rows: int = 1000
) -> list[JobProgress]:
    """One CDC run of the schema's source, as the scheduler starts it; the outcome of every table's job."""
    clock = Clock()
    job = jobs.claim(store, schema_id, clock.now())
    assert job is not None, "a job of this schema is already running"
    siblings = jobs.claim_cdc_siblings(store, job, clock.now())
    seen: dict[str, JobProgress] = {}
    SyncEngine(store, vault, warehouse, clock, batch_rows=batch_rows).run(
        job, cdc_siblings=siblings, progress=lambda p: seen.__setitem__(p.job_id, p)
    )
    return [seen[member.job_id] for member in [job, *siblings]]


def rows(warehouse: Warehouse, table: str, columns: str = "*", order: str = "1") -> list[tuple]:
    return warehouse.cursor().execute(f'SELECT {columns} FROM "{table}" ORDER BY {order}').fetchall()


def cursor_of(store: Store, schema_id: str) -> Any:
    row = store.query_one("SELECT sync_cursor FROM schemas WHERE id = ?", (schema_id,))
    return json.loads(row["sync_cursor"]) if row and row["sync_cursor"] else None


def invalidate_slot(slot: str, *, deadline_seconds: float = 60) -> None:
    """Make PostgreSQL invalidate `slot` for real (wal_status 'lost'): WAL past it, then a checkpoint while
    max_slot_wal_keep_size is tiny. The setting is the shared server's: it is restored whatever happens, and
    the checkpoint waits until no other slot is behind the current WAL segment, or it would invalidate the
    slots of tests running alongside too."""
    with admin("postgres") as connection:
        for _ in range(3):  # a WAL switch needs WAL written since the last one
            connection.execute("SELECT pg_logical_emit_message(false, 'wmcp-test', 'filler')")
            connection.execute("SELECT pg_switch_wal()")
        _wait_until_no_other_slot_is_behind(connection, slot, deadline_seconds)
        with _max_slot_wal_keep_size(connection, "1MB"):
            deadline = time.monotonic() + deadline_seconds
            while _wal_status(connection, slot) != "lost":
                assert time.monotonic() < deadline, f"slot {slot} was not invalidated"
                connection.execute("CHECKPOINT")
                time.sleep(0.1)


def _wal_status(connection: psycopg.Connection, slot: str) -> str | None:
    row = connection.execute(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    return row[0] if row else None


def _wait_until_no_other_slot_is_behind(connection: psycopg.Connection, slot: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        behind = connection.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE slot_name != %s AND restart_lsn IS NOT NULL "
            "AND pg_walfile_name(restart_lsn) < pg_walfile_name(pg_current_wal_lsn())",
            (slot,),
        ).fetchall()
        if not behind:
            return
        if time.monotonic() > deadline:
            pytest.skip(f"other tests' slots {behind} would be invalidated too; the server is busy")
        time.sleep(0.5)


@contextmanager
def _max_slot_wal_keep_size(connection: psycopg.Connection, size: str) -> Iterator[None]:
    """The server's max_slot_wal_keep_size (reloaded, no restart) for the block; restored afterwards."""
    [(original,)] = connection.execute("SELECT current_setting('max_slot_wal_keep_size')").fetchall()
    [(set_by_alter_system,)] = connection.execute(
        "SELECT (SELECT setting FROM pg_file_settings WHERE name = 'max_slot_wal_keep_size' AND applied "
        "AND sourcefile LIKE '%postgresql.auto.conf')"
    ).fetchall()
    try:
        connection.execute(sql.SQL("ALTER SYSTEM SET max_slot_wal_keep_size = {}").format(sql.Literal(size)))
        _reload_until(connection, size)
        yield
    finally:
        if set_by_alter_system is None:
            connection.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        else:
            connection.execute(
                sql.SQL("ALTER SYSTEM SET max_slot_wal_keep_size = {}").format(
                    sql.Literal(set_by_alter_system)
                )
            )
        _reload_until(connection, original)


def _reload_until(connection: psycopg.Connection, value: str) -> None:
    """pg_reload_conf() is asynchronous: a new session shows the value once the server applied it."""
    connection.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:
        with admin("postgres") as fresh:
            [(now,)] = fresh.execute("SELECT current_setting('max_slot_wal_keep_size')").fetchall()
        if now == value:
            return
        assert time.monotonic() < deadline, f"max_slot_wal_keep_size stayed {now}, not {value}"
        time.sleep(0.05)
