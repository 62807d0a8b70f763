"""Helpers for the sync tests: source and schema rows as the API stores them, and one-shot runs."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import duckdb

from warehouse_mcp.embedded.store import Store, iso, jobs, schema_records, source_records
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync import cursor
from warehouse_mcp.embedded.sync.engine import JobProgress, ProgressCallback, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse
from warehouse_mcp.models import FREQUENCY_SECONDS


def add_source(
    store: Store, vault: Vault, source_type: str, config: dict, *, prefix: str | None = None
) -> str:
    source_id = str(uuid.uuid4())
    job_inputs, job_inputs_secret = source_records.encode_config(vault, source_type, config)
    with store.transaction() as db:
        source_records.insert(
            db,
            source_id=source_id,
            team_id=1,
            source_type=source_type,
            prefix=prefix,
            description=None,
            created_via="api",
            access_method="warehouse",
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata={"engine": "duckdb"},
        )
    return source_id


def add_schema(
    store: Store,
    source_id: str,
    name: str,
    *,
    sync_type: str = "full_refresh",
    incremental_field: str | None = None,
    primary_key_columns: list[str] | None = None,
    enabled_columns: list[str] | None = None,
    frequency: str = "6hour",
    should_sync: bool = True,
    next_sync_at: datetime | None = None,
) -> str:
    with store.transaction() as db:
        schema_id = schema_records.insert(
            db,
            team_id=1,
            source_id=source_id,
            name=name,
            table=None,
            should_sync=should_sync,
            sync_type=sync_type,
            incremental_field=incremental_field,
            primary_key_columns=primary_key_columns,
            sync_frequency_interval=FREQUENCY_SECONDS[frequency],
            enabled_columns=enabled_columns,
        )
        db.execute("UPDATE schemas SET next_sync_at = ? WHERE id = ?", (iso(next_sync_at), schema_id))
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


def saved_cursor(store: Store, schema_id: str) -> Any:
    """The incremental field value the schema's next run starts at (None when it reads everything)."""
    saved = cursor.load(schema_row(store, schema_id)["sync_cursor"])
    return None if saved is None else saved.value


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
