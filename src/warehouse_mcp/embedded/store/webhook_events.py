"""SQL for pushed webhook events: the sources and tables they feed, and the events already applied."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from warehouse_mcp.embedded.store import Store, iso


@dataclass(frozen=True)
class WebhookSource:
    id: str
    source_type: str
    prefix: str | None
    webhook_secret: bytes | None


@dataclass(frozen=True)
class WebhookSchema:
    id: str
    name: str
    enabled_columns: list[str] | None  # decoded from JSON; None: every column


@dataclass(frozen=True)
class LandedTable:
    """What a webhook write left in the warehouse table of one schema."""

    schema_id: str
    table_name: str
    row_count: int
    columns: list[dict[str, str]]


def live_source(store: Store, source_id: str) -> WebhookSource | None:
    row = store.query_one(
        "SELECT id, source_type, prefix, webhook_secret FROM sources WHERE id = ? AND deleted = 0",
        (source_id,),
    )
    return (
        None
        if row is None
        else WebhookSource(row["id"], row["source_type"], row["prefix"], row["webhook_secret"])
    )


def already_applied(store: Store, source_id: str, event_id: str) -> bool:
    row = store.query_one(
        "SELECT 1 FROM webhook_events WHERE source_id = ? AND event_id = ?", (source_id, event_id)
    )
    return row is not None


def newer_event_applied(store: Store, source_id: str, object_id: str, created: int) -> bool:
    """Whether an event created after `created` was already applied to the same object."""
    row = store.query_one(
        "SELECT 1 FROM webhook_events WHERE source_id = ? AND object_id = ? AND event_created > ? LIMIT 1",
        (source_id, object_id, created),
    )
    return row is not None


def webhook_schemas(store: Store, source_id: str, table: str) -> list[WebhookSchema]:
    """The source's enabled schemas of `table` that sync by webhook."""
    rows = store.query(
        "SELECT id, name, enabled_columns FROM schemas WHERE source_id = ? AND name = ? AND deleted = 0 "
        "AND should_sync = 1 AND sync_type = 'webhook'",
        (source_id, table),
    )
    return [WebhookSchema(row["id"], row["name"], _json_list(row["enabled_columns"])) for row in rows]


def record_event(
    store: Store,
    source_id: str,
    event_id: str,
    object_id: str | None,
    created: int | None,
    *,
    now: datetime,
    forget_before: datetime,
    landed: list[LandedTable],
) -> None:
    """Remember an applied event (forgetting those received before `forget_before`) and what it landed."""
    with store.transaction() as db:
        db.execute(
            "INSERT OR IGNORE INTO webhook_events (source_id, event_id, object_id, event_created, received_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (source_id, event_id, object_id, created, iso(now)),
        )
        db.execute("DELETE FROM webhook_events WHERE received_at < ?", (iso(forget_before),))
        for table in landed:
            _record_landed(db, table, now)


def _record_landed(db: sqlite3.Connection, table: LandedTable, now: datetime) -> None:
    db.execute(
        "UPDATE schemas SET table_id = COALESCE(table_id, ?), table_name = ?, table_row_count = ?, "
        "table_columns = ?, last_synced_at = ?, updated_at = ? WHERE id = ?",
        (
            str(uuid.uuid4()),
            table.table_name,
            table.row_count,
            json.dumps(table.columns),
            iso(now),
            iso(now),
            table.schema_id,
        ),
    )


def _json_list(raw: Any) -> list[str] | None:
    value = json.loads(raw) if isinstance(raw, str) and raw else None
    return list(value) if isinstance(value, list) else None
