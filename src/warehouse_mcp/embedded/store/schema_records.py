"""SQL for schemas (one row per source table): one place that knows the columns."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from warehouse_mcp.embedded.connectors.base import TableInfo
from warehouse_mcp.embedded.store import RowNotFound, Store, iso, record, utcnow


@dataclass(frozen=True)
class SchemaRecord:
    """A schemas row, JSON decoded (`sync_cursor` stays the stored text: the sync compares and sets it)."""

    id: str
    team_id: int
    source_id: str
    name: str
    label: str | None
    description: str | None
    should_sync: bool
    sync_type: str | None
    incremental_field: str | None
    incremental_field_type: str | None
    sync_frequency_interval: int | None  # seconds; None = never
    sync_time_of_day: str | None
    primary_key_columns: list[str] | None
    cdc_table_mode: str
    enabled_columns: list[str] | None  # None = all
    available_columns: list[dict[str, Any]]  # [{name, data_type, is_nullable}]
    status: str | None
    latest_error: str | None
    last_synced_at: str | None
    sync_cursor: str | None
    table_id: str | None
    table_name: str | None
    table_row_count: int | None
    table_columns: list[dict[str, Any]] | None  # [{name, type}] as landed
    next_sync_at: str | None
    created_at: str
    updated_at: str
    deleted: bool
    deleted_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SchemaRecord:
        return record(cls, row, JSON_COLUMNS)


JSON_COLUMNS = {
    "primary_key_columns": "null",
    "enabled_columns": "null",
    "available_columns": "[]",
    "table_columns": "null",
}


@dataclass(frozen=True)
class SyncedTable:
    """A live schema that landed a warehouse table, and where it came from."""

    id: str
    name: str
    source_id: str
    table_name: str
    last_synced_at: str | None
    source_type: str


def _records(rows: list[sqlite3.Row]) -> list[SchemaRecord]:
    return [SchemaRecord.from_row(row) for row in rows]


def find(store: Store, team_id: int, schema_id: str) -> SchemaRecord | None:
    row = store.query_one(
        "SELECT * FROM schemas WHERE id = ? AND team_id = ? AND deleted = 0", (schema_id, team_id)
    )
    return None if row is None else SchemaRecord.from_row(row)


def get(store: Store, team_id: int, schema_id: str) -> SchemaRecord:
    row = find(store, team_id, schema_id)
    if row is None:
        raise RowNotFound("Not found.")
    return row


def of_source(store: Store, source_id: str) -> list[SchemaRecord]:
    """The source's live schemas, ordered by name."""
    return _records(
        store.query("SELECT * FROM schemas WHERE source_id = ? AND deleted = 0 ORDER BY name", (source_id,))
    )


def of_sources(store: Store, source_ids: list[str]) -> dict[str, list[SchemaRecord]]:
    """`of_source` for many sources in one query."""
    grouped: dict[str, list[SchemaRecord]] = {source_id: [] for source_id in source_ids}
    if not source_ids:
        return grouped
    rows = store.query(
        f"SELECT * FROM schemas WHERE deleted = 0 AND source_id IN ({', '.join('?' for _ in source_ids)}) "
        "ORDER BY name",
        tuple(source_ids),
    )
    for schema in _records(rows):
        grouped[schema.source_id].append(schema)
    return grouped


def page(
    store: Store, team_id: int, search: str | None, limit: int, offset: int
) -> tuple[int, list[SchemaRecord]]:
    """Newest first; `search` matches the name (case-insensitive)."""
    where = "schemas.team_id = ? AND schemas.deleted = 0 AND sources.deleted = 0"
    params: list[Any] = [team_id]
    if search:
        where += " AND schemas.name LIKE ? ESCAPE '\\'"
        params.append("%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    joined = "FROM schemas JOIN sources ON sources.id = schemas.source_id"
    count = store.query_one(f"SELECT COUNT(*) {joined} WHERE {where}", tuple(params))[0]  # type: ignore[index]
    rows = store.query(
        f"SELECT schemas.* {joined} WHERE {where} ORDER BY schemas.created_at DESC, schemas.name LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return count, _records(rows)


def synced_tables(store: Store, team_id: int) -> dict[str, SyncedTable]:
    """The project's live schemas that landed a warehouse table, by that table's name."""
    rows = store.query(
        "SELECT s.id, s.name, s.source_id, s.table_name, s.last_synced_at, src.source_type FROM schemas s "
        "JOIN sources src ON src.id = s.source_id WHERE s.deleted = 0 AND s.table_name IS NOT NULL "
        "AND src.team_id = ?",
        (team_id,),
    )
    return {row["table_name"]: SyncedTable(**dict(row)) for row in rows}


def available_columns(table: TableInfo) -> list[dict[str, Any]]:
    return [
        {"name": column.name, "data_type": column.data_type, "is_nullable": column.is_nullable}
        for column in table.columns
    ]


def insert(
    db: sqlite3.Connection,
    *,
    team_id: int,
    source_id: str,
    name: str,
    table: TableInfo | None,
    should_sync: bool = False,
    sync_type: str | None = None,
    incremental_field: str | None = None,
    incremental_field_type: str | None = None,
    primary_key_columns: list[str] | None = None,
    sync_frequency_interval: int | None = None,
    sync_time_of_day: str | None = None,
    enabled_columns: list[str] | None = None,
    cdc_table_mode: str = "consolidated",
) -> str:
    schema_id = str(uuid.uuid4())
    now = iso(utcnow())
    db.execute(
        "INSERT INTO schemas (id, team_id, source_id, name, label, description, should_sync, sync_type, "
        "incremental_field, incremental_field_type, sync_frequency_interval, sync_time_of_day, "
        "primary_key_columns, cdc_table_mode, enabled_columns, available_columns, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            schema_id,
            team_id,
            source_id,
            name,
            table.description if table else None,
            int(should_sync),
            sync_type,
            incremental_field,
            incremental_field_type,
            sync_frequency_interval,
            sync_time_of_day,
            json.dumps(primary_key_columns) if primary_key_columns is not None else None,
            cdc_table_mode,
            json.dumps(enabled_columns) if enabled_columns is not None else None,
            json.dumps(available_columns(table) if table else []),
            now,
            now,
        ),
    )
    return schema_id


def update(db: sqlite3.Connection, schema_id: str, changes: dict[str, Any]) -> None:
    """Set the given columns (names come from code, never from a request) and bump `updated_at`."""
    if not changes:
        return
    changes = {**changes, "updated_at": iso(utcnow())}
    assignments = ", ".join(f"{column} = ?" for column in changes)
    db.execute(f"UPDATE schemas SET {assignments} WHERE id = ?", (*changes.values(), schema_id))


def soft_delete(db: sqlite3.Connection, schema_id: str) -> None:
    now = iso(utcnow())
    db.execute(
        "UPDATE schemas SET deleted = 1, deleted_at = ?, should_sync = 0, updated_at = ? WHERE id = ?",
        (now, now, schema_id),
    )


def last_deleted(db: sqlite3.Connection, source_id: str, name: str) -> SchemaRecord | None:
    """The most recently soft-deleted schema of that name, the one a reappearing table brings back."""
    row: sqlite3.Row | None = db.execute(
        "SELECT * FROM schemas WHERE source_id = ? AND name = ? AND deleted = 1 "
        "ORDER BY updated_at DESC, created_at DESC LIMIT 1",
        (source_id, name),
    ).fetchone()
    return None if row is None else SchemaRecord.from_row(row)


def restore(db: sqlite3.Connection, schema_id: str, table: TableInfo) -> None:
    """Undelete with the settings it had (it stays disabled: soft_delete turned syncing off)."""
    update(
        db,
        schema_id,
        {
            "deleted": 0,
            "deleted_at": None,
            "description": table.description,
            "available_columns": json.dumps(available_columns(table)),
        },
    )


# A direct (queried in place) source's enabled schema exposes its live table, as PostHog's direct engines
# upsert a DataWarehouseTable; disabling or delete_data hides it again.
NO_TABLE: dict[str, Any] = {
    "table_id": None,
    "table_name": None,
    "table_columns": None,
    "table_row_count": None,
}


def live_table(schema_id: str, name: str, columns: list[dict[str, Any]]) -> dict[str, Any]:
    """The table columns (to write) of a direct source's schema with these `available_columns`."""
    return {
        "table_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"warehouse-mcp:direct:{schema_id}")),
        "table_name": name,
        "table_columns": json.dumps([{"name": c["name"], "type": c["data_type"]} for c in columns]),
        "table_row_count": None,
    }
