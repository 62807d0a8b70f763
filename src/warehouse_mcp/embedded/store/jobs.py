"""Sync jobs and a schema's sync state in the metadata store: every SQL statement the sync writes.

A job is claimed (row inserted as Running, schema marked Running) in the same transaction that checks
no other job of the schema is running, so two scanners never start the same schema twice. Its end is
recorded in one transaction with the schema's new state: on success the cursor is saved only then,
after the data is already committed to DuckDB.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from warehouse_mcp.embedded.store import Store, iso
from warehouse_mcp.models import JobStatus, SchemaStatus

INTERRUPTED_ERROR = "The sync was interrupted (the server stopped while it ran). It will be retried."
CANCELLED_ERROR = "Sync cancelled by user"  # PostHog's words for a cancelled run


class LandedColumn(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...


class LandedTable(Protocol):
    """A table a run landed in the warehouse, as the schema row records it (sync.warehouse.TableState)."""

    @property
    def name(self) -> str: ...

    @property
    def row_count(self) -> int: ...

    @property
    def columns(self) -> Sequence[LandedColumn]: ...


@dataclass(frozen=True)
class ClaimedJob:
    job_id: str
    schema_id: str
    previous_status: str | None  # the schema's status before this run


@dataclass(frozen=True)
class SyncTarget:
    """Everything one run needs to know about its schema and source."""

    schema_id: str
    schema_name: str
    source_id: str
    source_type: str
    prefix: str | None
    sync_type: str | None
    incremental_field: str | None
    primary_key_columns: list[str] | None
    enabled_columns: list[str] | None
    sync_cursor_json: str | None  # as stored: the run saves its new cursor only if this is unchanged
    table_id: str | None
    table_name: str | None
    job_inputs: dict[str, Any]
    job_inputs_secret: bytes | None
    deleted: bool
    cdc_table_mode: str = "consolidated"

    @property
    def sync_cursor(self) -> Any:
        return None if self.sync_cursor_json is None else json.loads(self.sync_cursor_json)


def claim(store: Store, schema_id: str, now: datetime) -> ClaimedJob | None:
    """Start a job for the schema, or None when one is already running or the schema is gone."""
    with store.transaction() as db:
        schema = db.execute(
            "SELECT s.team_id, s.source_id, s.status FROM schemas s JOIN sources src ON src.id = s.source_id "
            "WHERE s.id = ? AND s.deleted = 0 AND src.deleted = 0",
            (schema_id,),
        ).fetchone()
        if schema is None or _running_job_id(db, schema_id) is not None:
            return None
        job_id = str(uuid.uuid4())
        db.execute(
            "INSERT INTO jobs (id, team_id, source_id, schema_id, status, rows_synced, workflow_run_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
            (job_id, schema["team_id"], schema["source_id"], schema_id, JobStatus.Running, job_id, iso(now)),
        )
        db.execute(
            "UPDATE schemas SET status = ?, next_sync_at = NULL, updated_at = ? WHERE id = ?",
            (SchemaStatus.Running, iso(now), schema_id),
        )
    return ClaimedJob(job_id, schema_id, schema["status"])


def claim_cdc_siblings(store: Store, job: ClaimedJob, now: datetime) -> list[ClaimedJob]:
    """Jobs for the other enabled CDC tables of a CDC job's source: one run serves them all (they share a slot)."""
    rows = store.query(
        "SELECT s.id FROM schemas s JOIN schemas leader ON leader.source_id = s.source_id "
        "WHERE leader.id = ? AND leader.sync_type = 'cdc' AND s.id != leader.id AND s.deleted = 0 "
        "AND s.should_sync = 1 AND s.sync_type = 'cdc' ORDER BY s.name",
        (job.schema_id,),
    )
    claimed = (claim(store, row["id"], now) for row in rows)
    return [sibling for sibling in claimed if sibling is not None]


def cdc_schema_ids(store: Store, source_id: str) -> list[str]:
    """The source's CDC tables that sync (the ones its publication holds)."""
    rows = store.query(
        "SELECT id FROM schemas WHERE source_id = ? AND deleted = 0 AND should_sync = 1 AND sync_type = 'cdc' "
        "ORDER BY name",
        (source_id,),
    )
    return [row["id"] for row in rows]


def forget_cdc_snapshots(store: Store, source_id: str, *, paused_only: bool) -> None:
    """CDC tables that stopped syncing (or all, `paused_only=False`) miss changes from now on: they take a
    new snapshot when they next run."""
    paused = "AND (should_sync = 0 OR deleted = 1)" if paused_only else ""
    with store.transaction() as db:
        db.execute(
            f"UPDATE schemas SET sync_cursor = NULL WHERE source_id = ? AND sync_type = 'cdc' {paused}",
            (source_id,),
        )


def save_cursor(store: Store, schema_id: str, before: str | None, after: str) -> bool:
    """Compare-and-set the schema's cursor; False when it changed meanwhile (a resync)."""
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE schemas SET sync_cursor = ? WHERE id = ? AND sync_cursor IS ?", (after, schema_id, before)
        )
        return cursor.rowcount > 0


def load_target(store: Store, schema_id: str) -> SyncTarget | None:
    row = store.query_one(
        "SELECT s.id, s.name, s.source_id, s.sync_type, s.incremental_field, s.primary_key_columns, "
        "s.enabled_columns, s.sync_cursor, s.table_id, s.table_name, s.deleted AS schema_deleted, s.cdc_table_mode, "
        "src.source_type, src.prefix, src.job_inputs, src.job_inputs_secret, src.deleted AS source_deleted "
        "FROM schemas s JOIN sources src ON src.id = s.source_id WHERE s.id = ?",
        (schema_id,),
    )
    if row is None:
        return None
    return SyncTarget(
        schema_id=row["id"],
        schema_name=row["name"],
        source_id=row["source_id"],
        source_type=row["source_type"],
        prefix=row["prefix"],
        sync_type=row["sync_type"],
        incremental_field=row["incremental_field"],
        primary_key_columns=_json_list(row["primary_key_columns"]),
        enabled_columns=_json_list(row["enabled_columns"]),
        sync_cursor_json=row["sync_cursor"],
        table_id=row["table_id"],
        table_name=row["table_name"],
        job_inputs=json.loads(row["job_inputs"] or "{}"),
        job_inputs_secret=row["job_inputs_secret"],
        deleted=bool(row["schema_deleted"] or row["source_deleted"]),
        cdc_table_mode=row["cdc_table_mode"] or "consolidated",
    )


def record_progress(store: Store, job_id: str, rows_synced: int) -> None:
    with store.transaction() as db:
        db.execute("UPDATE jobs SET rows_synced = ? WHERE id = ?", (rows_synced, job_id))


def cancel_requested(store: Store, job_id: str) -> bool:
    row = store.query_one("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
    return bool(row and row["cancel_requested"])


def request_cancel(db: sqlite3.Connection, schema_id: str) -> bool:
    """Ask the running job of the schema (in whichever process runs it) to stop; False if none runs."""
    cursor = db.execute(
        "UPDATE jobs SET cancel_requested = 1 WHERE schema_id = ? AND status = ?",
        (schema_id, JobStatus.Running),
    )
    return cursor.rowcount > 0


def running_job_id(store: Store, schema_id: str) -> str | None:
    return _running_job_id(store.connection(), schema_id)


def record_success(
    store: Store,
    job: ClaimedJob,
    *,
    rows_synced: int,
    finished_at: datetime,
    cursor_before: str | None,
    cursor_after: str | None,
    table: LandedTable,
    table_id: str,
) -> None:
    with store.transaction() as db:
        _finish_job(db, job.job_id, JobStatus.Completed, rows_synced, None, finished_at)
        db.execute(
            "UPDATE schemas SET status = ?, latest_error = NULL, last_synced_at = ?, table_id = ?, table_name = ?, "
            "table_row_count = ?, table_columns = ?, updated_at = ? WHERE id = ?",
            (
                SchemaStatus.Completed,
                iso(finished_at),
                table_id,
                table.name,
                table.row_count,
                json.dumps([{"name": c.name, "type": c.type} for c in table.columns]),
                iso(finished_at),
                job.schema_id,
            ),
        )
        # Compare-and-set: a resync that cleared the cursor while this run committed must win.
        db.execute(
            "UPDATE schemas SET sync_cursor = ? WHERE id = ? AND sync_cursor IS ?",
            (cursor_after, job.schema_id, cursor_before),
        )


def record_failure(
    store: Store, job: ClaimedJob, *, rows_synced: int, error: str, finished_at: datetime
) -> None:
    with store.transaction() as db:
        _finish_job(db, job.job_id, JobStatus.Failed, rows_synced, error, finished_at)
        _fail_schema(db, job.schema_id, error, finished_at)


def record_cancelled(store: Store, job: ClaimedJob, *, rows_synced: int, finished_at: datetime) -> None:
    """A cancelled run fails, job and schema, with "Sync cancelled by user", as PostHog records it.

    Nothing of the run was committed: the warehouse keeps the previous table and the cursor is unchanged.
    """
    with store.transaction() as db:
        _finish_job(db, job.job_id, JobStatus.Failed, rows_synced, CANCELLED_ERROR, finished_at)
        _fail_schema(db, job.schema_id, CANCELLED_ERROR, finished_at)


def settle_stale_running(db: sqlite3.Connection, schema_id: str, now: datetime) -> bool:
    """A schema shown Running with no job running (a requested sync not started yet): cancel the request
    and show the latest job's outcome (Failed when there is none). False when the schema is not Running."""
    schema = db.execute("SELECT status FROM schemas WHERE id = ?", (schema_id,)).fetchone()
    if schema is None or schema["status"] != SchemaStatus.Running or _running_job_id(db, schema_id):
        return False
    latest = db.execute(
        "SELECT status, latest_error FROM jobs WHERE schema_id = ? ORDER BY created_at DESC LIMIT 1",
        (schema_id,),
    ).fetchone()
    status, error = (latest["status"], latest["latest_error"]) if latest else (SchemaStatus.Failed, None)
    db.execute(
        "UPDATE schemas SET status = ?, latest_error = ?, next_sync_at = NULL, updated_at = ? WHERE id = ?",
        (status, error, iso(now), schema_id),
    )
    return True


def record_interrupted(store: Store, job: ClaimedJob, *, rows_synced: int, finished_at: datetime) -> None:
    """The server stopped mid-run: the job fails with the reason and the schema is due again at once."""
    with store.transaction() as db:
        _finish_job(db, job.job_id, JobStatus.Failed, rows_synced, INTERRUPTED_ERROR, finished_at)
        _fail_schema(db, job.schema_id, INTERRUPTED_ERROR, finished_at)
        db.execute("UPDATE schemas SET next_sync_at = ? WHERE id = ?", (iso(finished_at), job.schema_id))


def recover_orphans(store: Store, now: datetime) -> list[str]:
    """Fail the jobs a dead lock holder left Running and reschedule their schemas; returns those schema ids.

    Only the warehouse lock holder runs jobs, so when a process takes the lock every Running job is an orphan.
    """
    with store.transaction() as db:
        orphans = db.execute(
            "SELECT id, schema_id FROM jobs WHERE status = ?", (JobStatus.Running,)
        ).fetchall()
        for orphan in orphans:
            _finish_job(db, orphan["id"], JobStatus.Failed, None, INTERRUPTED_ERROR, now)
            _fail_schema(db, orphan["schema_id"], INTERRUPTED_ERROR, now)
            db.execute("UPDATE schemas SET next_sync_at = ? WHERE id = ?", (iso(now), orphan["schema_id"]))
    return sorted({orphan["schema_id"] for orphan in orphans})


def reset_synced_data(db: sqlite3.Connection, schema_id: str, now: datetime) -> None:
    """What delete_data clears: the landed table, last sync time, status and cursor."""
    db.execute(
        "UPDATE schemas SET table_id = NULL, table_name = NULL, table_row_count = NULL, table_columns = NULL, "
        "last_synced_at = NULL, status = NULL, sync_cursor = NULL, updated_at = ? WHERE id = ?",
        (iso(now), schema_id),
    )


def _running_job_id(db: sqlite3.Connection, schema_id: str) -> str | None:
    row = db.execute(
        "SELECT id FROM jobs WHERE schema_id = ? AND status = ? LIMIT 1", (schema_id, JobStatus.Running)
    ).fetchone()
    return row["id"] if row else None


def _finish_job(
    db: sqlite3.Connection,
    job_id: str,
    status: JobStatus,
    rows_synced: int | None,
    error: str | None,
    finished_at: datetime,
) -> None:
    db.execute(
        "UPDATE jobs SET status = ?, rows_synced = COALESCE(?, rows_synced), latest_error = ?, finished_at = ? "
        "WHERE id = ?",
        (status, rows_synced, error, iso(finished_at), job_id),
    )


def _fail_schema(db: sqlite3.Connection, schema_id: str, error: str, now: datetime) -> None:
    db.execute(
        "UPDATE schemas SET status = ?, latest_error = ?, updated_at = ? WHERE id = ?",
        (SchemaStatus.Failed, error, iso(now), schema_id),
    )


def _json_list(text: str | None) -> list[str] | None:
    value = json.loads(text) if text else None
    return list(value) if value else None
