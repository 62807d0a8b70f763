"""SQL for sources (and the reads of their jobs the API answers): one place that knows the columns.

A source's configuration is stored split: `job_inputs` holds the public half as JSON,
`job_inputs_secret` the sensitive half as a vault ciphertext. `source_config` joins them again for
a connector; nothing else ever sees the secret half.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.store import RowNotFound, Store, iso, record, utcnow
from warehouse_mcp.embedded.store.vault import Vault


@dataclass(frozen=True)
class SourceRecord:
    """A sources row, JSON decoded. The secret half of the job inputs stays out (see `source_config`);
    `webhook_secret` is the vault ciphertext."""

    id: str
    team_id: int
    source_type: str
    prefix: str | None
    description: str | None
    created_via: str
    access_method: str
    direct_query_enabled: bool
    status: str
    job_inputs: dict[str, Any]  # the non-sensitive keys only
    connection_metadata: dict[str, Any]
    revenue_enabled: bool
    revenue_include_invoiceless: bool
    webhook: dict[str, Any] | None  # {external_id, url, inputs}
    webhook_secret: bytes | None
    created_by: str | None
    created_at: str
    updated_at: str
    deleted: bool
    deleted_at: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SourceRecord:
        return record(cls, row, {"job_inputs": "{}", "connection_metadata": "{}", "webhook": "null"})


@dataclass(frozen=True)
class JobRecord:
    """A jobs row with the columns of its schema the job list shows."""

    id: str
    schema_id: str
    status: str
    rows_synced: int
    latest_error: str | None
    workflow_run_id: str | None
    created_by: str | None
    created_at: str
    finished_at: str | None
    schema_name: str
    schema_label: str | None
    schema_should_sync: bool
    schema_last_synced_at: str | None
    schema_sync_type: str | None


def find(store: Store, team_id: int, source_id: str) -> SourceRecord | None:
    row = store.query_one(
        "SELECT * FROM sources WHERE id = ? AND team_id = ? AND deleted = 0", (source_id, team_id)
    )
    return None if row is None else SourceRecord.from_row(row)


def get(store: Store, team_id: int, source_id: str) -> SourceRecord:
    """The team's live source; RowNotFound when there is none."""
    row = find(store, team_id, source_id)
    if row is None:
        raise RowNotFound("Not found.")
    return row


def page(
    store: Store, team_id: int, search: str | None, limit: int, offset: int
) -> tuple[int, list[SourceRecord]]:
    """Newest first; `search` matches prefix, source type or description (case-insensitive)."""
    where = "team_id = ? AND deleted = 0"
    params: list[Any] = [team_id]
    if search:
        where += " AND (prefix LIKE ? ESCAPE '\\' OR source_type LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\')"
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [pattern, pattern, pattern]
    count = store.query_one(f"SELECT COUNT(*) FROM sources WHERE {where}", tuple(params))[0]  # type: ignore[index]
    rows = store.query(
        f"SELECT * FROM sources WHERE {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return count, [SourceRecord.from_row(row) for row in rows]


def direct_connections(store: Store, team_id: int, source_types: tuple[str, ...]) -> list[SourceRecord]:
    """Sources queried in place: direct ones, and synced ones with `direct_query_enabled`, newest first."""
    rows = store.query(
        "SELECT * FROM sources WHERE team_id = ? AND deleted = 0 "
        "AND (access_method = 'direct' OR direct_query_enabled = 1) "
        f"AND source_type IN ({', '.join('?' for _ in source_types)}) ORDER BY created_at DESC",
        (team_id, *source_types),
    )
    return [SourceRecord.from_row(row) for row in rows]


def source_config(store: Store, vault: Vault, source_id: str) -> dict[str, Any]:
    """The full job inputs (secrets decrypted) a connector needs for this source."""
    row = store.query_one("SELECT job_inputs, job_inputs_secret FROM sources WHERE id = ?", (source_id,))
    if row is None:
        raise RowNotFound("Not found.")
    return forms.merge_secrets(
        json.loads(row["job_inputs"] or "{}"), vault.decrypt(row["job_inputs_secret"]) or {}
    )


def encode_config(vault: Vault, source_type: str, config: dict[str, Any]) -> tuple[str, bytes]:
    """`(job_inputs JSON, job_inputs_secret ciphertext)` for storing `config`."""
    public, secret = forms.split_secrets(source_type, config)
    return json.dumps(public), vault.encrypt(secret)


def prefix_conflict(store: Store, team_id: int, source_type: str, prefix: str | None) -> str | None:
    """The uniqueness message PostHog answers for this prefix, or None when it is free."""
    if not prefix:
        taken = store.query_one(
            "SELECT 1 FROM sources WHERE team_id = ? AND source_type = ? AND deleted = 0 "
            "AND (prefix IS NULL OR prefix = '')",
            (team_id, source_type),
        )
        return "Source type already exists. Prefix is required" if taken else None
    taken = store.query_one(
        "SELECT 1 FROM sources WHERE team_id = ? AND source_type = ? AND deleted = 0 AND prefix = ?",
        (team_id, source_type, prefix),
    )
    return "Prefix already exists" if taken else None


def insert(
    db: sqlite3.Connection,
    *,
    source_id: str,
    team_id: int,
    source_type: str,
    prefix: str | None,
    description: str | None,
    created_via: str,
    access_method: str,
    job_inputs: str,
    job_inputs_secret: bytes,
    connection_metadata: dict[str, Any],
    direct_query_enabled: bool = False,
) -> None:
    now = utcnow()
    db.execute(
        "INSERT INTO sources (id, team_id, source_type, prefix, description, created_via, access_method, "
        "direct_query_enabled, status, job_inputs, job_inputs_secret, connection_metadata, revenue_enabled, "
        "revenue_include_invoiceless, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Running', ?, ?, ?, ?, 1, ?, ?)",
        (
            source_id,
            team_id,
            source_type,
            prefix,
            description,
            created_via,
            access_method,
            int(direct_query_enabled),
            job_inputs,
            job_inputs_secret,
            json.dumps(connection_metadata),
            int(registry.capabilities(source_type).revenue_analytics),
            iso(now),
            iso(now),
        ),
    )


def update(db: sqlite3.Connection, source_id: str, changes: dict[str, Any]) -> None:
    """Set the given columns (names come from code, never from a request) and bump `updated_at`."""
    if not changes:
        return
    changes = {**changes, "updated_at": iso(utcnow())}
    assignments = ", ".join(f"{column} = ?" for column in changes)
    db.execute(f"UPDATE sources SET {assignments} WHERE id = ?", (*changes.values(), source_id))


def soft_delete(db: sqlite3.Connection, source_id: str) -> None:
    now = iso(utcnow())
    db.execute(
        "UPDATE schemas SET deleted = 1, deleted_at = ?, should_sync = 0, updated_at = ? "
        "WHERE source_id = ? AND deleted = 0",
        (now, now, source_id),
    )
    db.execute(
        "UPDATE sources SET deleted = 1, deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, source_id)
    )


def last_run_at(store: Store, source_id: str) -> str | None:
    """`created_at` of the newest completed job."""
    row = store.query_one(
        "SELECT created_at FROM jobs WHERE source_id = ? AND status = 'Completed' ORDER BY created_at DESC LIMIT 1",
        (source_id,),
    )
    return row["created_at"] if row else None


def recent_jobs(store: Store, source_id: str, schema_names: list[str]) -> Iterator[JobRecord]:
    """The source's jobs, newest first (read lazily), each with its schema's columns as `schema_*`."""
    sql = (
        "SELECT jobs.*, schemas.name AS schema_name, schemas.label AS schema_label, "
        "schemas.should_sync AS schema_should_sync, schemas.last_synced_at AS schema_last_synced_at, "
        "schemas.sync_type AS schema_sync_type FROM jobs JOIN schemas ON schemas.id = jobs.schema_id "
        "WHERE jobs.source_id = ?"
    )
    params: list[Any] = [source_id]
    if schema_names:
        sql += f" AND schemas.name IN ({', '.join('?' for _ in schema_names)})"
        params += schema_names
    for row in store.connection().execute(sql + " ORDER BY jobs.created_at DESC", tuple(params)):
        yield record(JobRecord, row)
