"""A schema's schedule in the metadata store: when it next runs (`schemas.next_sync_at`) and what is due.

The rules (how often, at what time of day, which sync types run) live in sync/scheduler.py; these
functions only read and write the rows. Functions taking a connection run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from warehouse_mcp.embedded.store import Store, iso, record
from warehouse_mcp.models import JobStatus, SchemaStatus


@dataclass(frozen=True)
class ScheduleSettings:
    """What a schema's next run is computed from (ISO 8601 text for the moments, as stored)."""

    should_sync: bool
    sync_type: str | None
    sync_frequency_interval: int | None  # seconds
    sync_time_of_day: str | None
    last_synced_at: str | None
    next_sync_at: str | None


@dataclass(frozen=True)
class LandedNames:
    """What names a schema's warehouse table: the recorded name, and what the name derives from."""

    table_name: str | None
    name: str
    prefix: str | None
    source_type: str


def _scheduled(runnable_types: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """FROM … WHERE for schemas that are enabled, of a runnable sync type, scheduled, and not running."""
    placeholders = ", ".join("?" for _ in runnable_types)
    sql = (
        "FROM schemas s JOIN sources src ON src.id = s.source_id "
        "WHERE s.deleted = 0 AND src.deleted = 0 AND s.should_sync = 1 "
        f"AND s.sync_type IN ({placeholders}) AND s.next_sync_at IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.schema_id = s.id AND j.status = ?)"
    )
    return sql, (*(str(t) for t in runnable_types), JobStatus.Running)


def due_schema_ids(store: Store, now: datetime, limit: int, runnable_types: Sequence[str]) -> list[str]:
    """Schemas to run now, most overdue first."""
    scheduled, parameters = _scheduled(runnable_types)
    rows = store.query(
        f"SELECT s.id {scheduled} AND julianday(s.next_sync_at) <= julianday(?) "
        "ORDER BY julianday(s.next_sync_at) LIMIT ?",
        (*parameters, iso(now), limit),
    )
    return [row["id"] for row in rows]


def days_until_next_due(store: Store, now: datetime, runnable_types: Sequence[str]) -> float | None:
    """Days from `now` to the earliest scheduled run (negative when overdue); None when nothing is scheduled."""
    scheduled, parameters = _scheduled(runnable_types)
    row = store.query_one(
        f"SELECT min(julianday(s.next_sync_at)) - julianday(?) AS days {scheduled}", (iso(now), *parameters)
    )
    return None if row is None or row["days"] is None else float(row["days"])


def mark_requested(
    db: sqlite3.Connection, schema_id: str, now: datetime, runnable_types: Sequence[str]
) -> None:
    """Due now, and shown Running if the schema is enabled and of a runnable sync type."""
    placeholders = ", ".join("?" for _ in runnable_types)
    db.execute(
        "UPDATE schemas SET next_sync_at = ?, status = CASE WHEN should_sync = 1 AND sync_type IN "
        f"({placeholders}) THEN ? ELSE status END WHERE id = ?",
        (iso(now), *(str(t) for t in runnable_types), SchemaStatus.Running, schema_id),
    )


def forget_cursor(db: sqlite3.Connection, schema_id: str) -> None:
    db.execute("UPDATE schemas SET sync_cursor = NULL WHERE id = ?", (schema_id,))


def settings(db: sqlite3.Connection, schema_id: str, *, deleted_too: bool) -> ScheduleSettings | None:
    """The schema's schedule settings; None if there is no such schema (or it is deleted, unless `deleted_too`)."""
    row = db.execute(
        "SELECT should_sync, sync_type, sync_frequency_interval, sync_time_of_day, last_synced_at, next_sync_at "
        "FROM schemas WHERE id = ?" + ("" if deleted_too else " AND deleted = 0"),
        (schema_id,),
    ).fetchone()
    if row is None:
        return None
    return record(ScheduleSettings, row)


def has_running_job(db: sqlite3.Connection, schema_id: str) -> bool:
    return (
        db.execute(
            "SELECT 1 FROM jobs WHERE schema_id = ? AND status = ?", (schema_id, JobStatus.Running)
        ).fetchone()
        is not None
    )


def set_next_run(db: sqlite3.Connection, schema_id: str, moment: datetime | None) -> None:
    """Schedule the schema's next run at `moment`; None: no run until one is asked for."""
    db.execute("UPDATE schemas SET next_sync_at = ? WHERE id = ?", (iso(moment), schema_id))


def source_schema_ids(store: Store, source_id: str) -> list[str]:
    """Every schema of the source, deleted ones included."""
    return [row["id"] for row in store.query("SELECT id FROM schemas WHERE source_id = ?", (source_id,))]


def landed_names(store: Store, schema_ids: Sequence[str]) -> list[LandedNames]:
    placeholders = ", ".join("?" for _ in schema_ids)
    rows = store.query(
        "SELECT s.table_name, s.name, src.prefix, src.source_type FROM schemas s "
        f"JOIN sources src ON src.id = s.source_id WHERE s.id IN ({placeholders})",
        tuple(schema_ids),
    )
    return [LandedNames(row["table_name"], row["name"], row["prefix"], row["source_type"]) for row in rows]
