"""SQLite metadata of the embedded backend: sources, schemas, jobs, stashed credentials.

One file (`metadata.sqlite3`) in WAL mode, so several processes may read while one writes, and a
`kill -9` never leaves a half-applied transaction. Migrations are numbered and applied in order;
`PRAGMA user_version` records how far a file has come. Rows are soft-deleted (`deleted = 1`).

Secrets never sit in plain columns: sensitive job inputs and stashed credentials are `Vault`
ciphertexts (BLOB columns named `*_secret`).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

Record = TypeVar("Record")

DB_FILE = "metadata.sqlite3"

MIGRATIONS_DIR = "migrations"  # numbered .sql files shipped with the package, applied in name order


def migrations() -> list[str]:
    """The migration scripts, in order: `migrations/NNNN_name.sql`."""
    scripts = sorted(
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in resources.files(__package__).joinpath(MIGRATIONS_DIR).iterdir()
        if entry.name.endswith(".sql")
    )
    return [script for _name, script in scripts]


def record(cls: type[Record], row: sqlite3.Row, json_columns: Mapping[str, str] | None = None) -> Record:
    """The frozen dataclass `cls` from a row whose columns are its field names: `bool` fields (stored 0/1)
    read as booleans, and each of `json_columns` is decoded (a NULL or empty one as the JSON given for it)."""
    decoded = json_columns or {}
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        value = row[field.name]
        if field.name in decoded:
            value = json.loads(value or decoded[field.name])
        elif field.type in (bool, "bool"):
            value = bool(value)
        values[field.name] = value
    return cls(**values)


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
    scripts = migrations()
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(scripts):
        raise RuntimeError(
            f"The data directory was written by a newer warehouse-mcp (schema {version}, this one knows "
            f"{len(scripts)}). Upgrade warehouse-mcp or point WAREHOUSE_MCP_HOME elsewhere."
        )
    for number, script in enumerate(scripts[version:], start=version + 1):
        for statement in re.sub(r"--[^\n]*", "", script).split(";"):  # comments may hold a ";"
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
