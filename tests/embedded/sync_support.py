"""Helpers for the sync tests: source and schema rows written straight into the Store, and one-shot runs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import duckdb

from warehouse_mcp.embedded.connectors import forms
from warehouse_mcp.embedded.store import Store, iso, utcnow
from warehouse_mcp.embedded.sync import jobs
from warehouse_mcp.embedded.sync.engine import JobProgress, ProgressCallback, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse
from warehouse_mcp.embedded.vault import Vault
from warehouse_mcp.models import FREQUENCY_SECONDS


def add_source(
    store: Store, vault: Vault, source_type: str, config: dict, *, prefix: str | None = None
) -> str:
    public, secret = forms.split_secrets(source_type, config)
    source_id = str(uuid.uuid4())
    now = iso(utcnow())
    with store.transaction() as db:
        db.execute(
            "INSERT INTO sources (id, team_id, source_type, prefix, job_inputs, job_inputs_secret, created_at, "
            "updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
            (source_id, source_type, prefix, json.dumps(public), vault.encrypt(secret), now, now),
        )
    return source_id


def add_schema(
    store: Store,
    source_id: str,
    name: str,
    *,
    sync_type: str = "full_refresh",
    incremental_field: str | None = None,
    incremental_field_type: str | None = None,
    primary_key_columns: list[str] | None = None,
    enabled_columns: list[str] | None = None,
    frequency: str = "6hour",
    sync_time_of_day: str | None = None,
    should_sync: bool = True,
    next_sync_at: datetime | None = None,
) -> str:
    schema_id = str(uuid.uuid4())
    now = iso(utcnow())
    with store.transaction() as db:
        db.execute(
            "INSERT INTO schemas (id, team_id, source_id, name, should_sync, sync_type, incremental_field, "
            "incremental_field_type, sync_frequency_interval, sync_time_of_day, primary_key_columns, "
            "enabled_columns, next_sync_at, created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                schema_id,
                source_id,
                name,
                int(should_sync),
                sync_type,
                incremental_field,
                incremental_field_type,
                FREQUENCY_SECONDS[frequency],
                sync_time_of_day,
                json.dumps(primary_key_columns) if primary_key_columns is not None else None,
                json.dumps(enabled_columns) if enabled_columns is not None else None,
                iso(next_sync_at),
                now,
                now,
            ),
        )
    return schema_id


def update_schema(store: Store, schema_id: str, **values: Any) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    with store.transaction() as db:
        db.execute(f"UPDATE schemas SET {assignments} WHERE id = ?", (*values.values(), schema_id))


def run_sync(
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    schema_id: str,
    *,
    batch_rows: int = 1000,
    progress: ProgressCallback | None = None,
) -> JobProgress:
    clock = Clock()
    job = jobs.claim(store, schema_id, clock.now())
    assert job is not None, "a job of this schema is already running"
    engine = SyncEngine(store, vault, warehouse, clock, batch_rows=batch_rows)
    return engine.run(job, progress=progress)


def schema_row(store: Store, schema_id: str) -> dict:
    row = store.query_one("SELECT * FROM schemas WHERE id = ?", (schema_id,))
    assert row is not None
    return dict(row)


def job_rows(store: Store, schema_id: str) -> list[dict]:
    return [
        dict(r)
        for r in store.query("SELECT * FROM jobs WHERE schema_id = ? ORDER BY created_at", (schema_id,))
    ]


def warehouse_rows(warehouse: Warehouse, table: str, columns: list[str], order_by: str) -> list[tuple]:
    projection = ", ".join(f'"{c}"' for c in columns)
    return warehouse.cursor().execute(f'SELECT {projection} FROM "{table}" ORDER BY "{order_by}"').fetchall()


def duckdb_type(declared: str) -> str:
    """How DuckDB names a declared type (TIMESTAMPTZ → TIMESTAMP WITH TIME ZONE, INT → INTEGER, …)."""
    with duckdb.connect() as db:
        db.execute(f"CREATE TABLE t (c {declared})")
        row = db.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 't'").fetchone()
    assert row is not None
    return str(row[0])


def comparable(value: Any, warehouse_type: str) -> Any:
    """One value from either side in a form both agree on: JSON parsed, datetimes as naive UTC."""
    if value is None:
        return None
    if warehouse_type.upper() == "JSON":
        return json.loads(value) if isinstance(value, str | bytes) else value
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
