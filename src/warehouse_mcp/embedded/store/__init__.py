"""SQLite metadata of the embedded backend: sources, schemas, jobs, stashed credentials.

One file (`metadata.sqlite3`) in WAL mode, so several processes may read while one writes, and a
`kill -9` never leaves a half-applied transaction. Migrations are numbered and applied in order;
`PRAGMA user_version` records how far a file has come. Rows are soft-deleted (`deleted = 1`).

Secrets never sit in plain columns: sensitive job inputs and stashed credentials are `Vault`
ciphertexts (BLOB columns named `*_secret`).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

DB_FILE = "metadata.sqlite3"

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE sources (
        id TEXT PRIMARY KEY,
        team_id INTEGER NOT NULL,
        source_type TEXT NOT NULL,
        prefix TEXT,
        description TEXT,
        created_via TEXT NOT NULL DEFAULT 'api',
        access_method TEXT NOT NULL DEFAULT 'warehouse',
        direct_query_enabled INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'Running',
        job_inputs TEXT NOT NULL DEFAULT '{}',          -- JSON, non-sensitive keys only
        job_inputs_secret BLOB,                          -- Vault(JSON of the sensitive keys)
        connection_metadata TEXT NOT NULL DEFAULT '{}',  -- JSON, e.g. {"engine": "duckdb"}
        revenue_enabled INTEGER NOT NULL DEFAULT 0,
        revenue_include_invoiceless INTEGER NOT NULL DEFAULT 1,
        webhook TEXT,                                    -- JSON {external_id, url, inputs:{non-secret}}
        webhook_secret BLOB,                             -- Vault(JSON {signing_secret, ...})
        created_by TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        deleted_at TEXT
    );
    CREATE INDEX sources_team ON sources(team_id, deleted);

    CREATE TABLE schemas (
        id TEXT PRIMARY KEY,
        team_id INTEGER NOT NULL,
        source_id TEXT NOT NULL REFERENCES sources(id),
        name TEXT NOT NULL,
        label TEXT,
        description TEXT,
        should_sync INTEGER NOT NULL DEFAULT 0,
        sync_type TEXT,                                  -- full_refresh|incremental|append|webhook|cdc|xmin
        incremental_field TEXT,
        incremental_field_type TEXT,
        sync_frequency_interval INTEGER,                 -- seconds; NULL = never
        sync_time_of_day TEXT,                           -- HH:MM:SS UTC or NULL
        primary_key_columns TEXT,                        -- JSON list or NULL
        cdc_table_mode TEXT NOT NULL DEFAULT 'consolidated',
        enabled_columns TEXT,                            -- JSON list or NULL (= all)
        available_columns TEXT NOT NULL DEFAULT '[]',    -- JSON [{name, data_type, is_nullable}]
        status TEXT,                                     -- Running|Paused|Failed|Completed|NULL
        latest_error TEXT,
        last_synced_at TEXT,
        sync_cursor TEXT,                                -- JSON: last max of incremental_field
        table_id TEXT,                                   -- set once data has landed
        table_name TEXT,                                 -- DuckDB table name
        table_row_count INTEGER,
        table_columns TEXT,                              -- JSON [{name, type}] as landed
        next_sync_at TEXT,                               -- when the scheduler should run it next
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        deleted_at TEXT
    );
    CREATE INDEX schemas_source ON schemas(source_id, deleted);
    CREATE INDEX schemas_due ON schemas(deleted, should_sync, next_sync_at);

    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        team_id INTEGER NOT NULL,
        source_id TEXT NOT NULL REFERENCES sources(id),
        schema_id TEXT NOT NULL REFERENCES schemas(id),
        status TEXT NOT NULL,                            -- Running|Completed|Failed|Cancelled
        rows_synced INTEGER NOT NULL DEFAULT 0,
        latest_error TEXT,
        workflow_run_id TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_by TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX jobs_source ON jobs(source_id, created_at);
    CREATE INDEX jobs_schema_status ON jobs(schema_id, status);

    CREATE TABLE stored_credentials (
        id TEXT PRIMARY KEY,
        team_id INTEGER NOT NULL,
        source_type TEXT NOT NULL,
        payload_secret BLOB NOT NULL,                    -- Vault(JSON of the whole payload)
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    );

    CREATE TABLE connect_tokens (
        token_hash TEXT PRIMARY KEY,                     -- sha256 of the one-time token in the URL
        team_id INTEGER NOT NULL,
        source_type TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        credential_id TEXT
    );
    """,
    # 2: webhook events already applied (stripe_webhooks.py): replays are ignored, stale events skipped
    """
    CREATE TABLE webhook_events (
        source_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        object_id TEXT,
        event_created INTEGER,                           -- unix time the event was created
        received_at TEXT NOT NULL,
        PRIMARY KEY (source_id, event_id)
    );
    CREATE INDEX webhook_events_object ON webhook_events(source_id, object_id, event_created);
    CREATE INDEX webhook_events_received ON webhook_events(received_at);
    """,
]


class RowNotFound(LookupError):
    """The team has no live row with that id (the API answers DRF's 404)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """The one timestamp format stored and answered: ISO 8601, UTC, with a `Z`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Store:
    """A thread-safe handle on the metadata database.

    One connection per thread (sqlite3 connections are not shareable); `transaction()` is the only
    way to write, so every multi-row change is atomic.
    """

    def __init__(self, home: Path) -> None:
        self.path = home / DB_FILE
        self._local = threading.local()
        with self.transaction() as db:
            _migrate(db)

    def connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._local.db = db
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT: takes the write lock up front so concurrent writers queue, not fail."""
        db = self.connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.connection().execute(sql, params).fetchone()


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"The data directory was written by a newer warehouse-mcp (schema {version}, this one knows "
            f"{len(MIGRATIONS)}). Upgrade warehouse-mcp or point WAREHOUSE_MCP_HOME elsewhere."
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in re.sub(r"--[^\n]*", "", script).split(";"):  # comments may hold a ";"
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
