"""The local DuckDB warehouse (`<home>/warehouse.duckdb`) that synced tables land in.

Every sync writes its batches into a private staging table first and only touches the target table in
one final transaction: a full refresh swaps the staging table in, an incremental sync merges it on the
primary key, an append sync inserts it. A sync that fails, is cancelled, or dies with its process
therefore never leaves a half-written target; leftover staging tables are dropped when the warehouse
is next opened.

DuckDB lets one process write a database file, so only the holder of the warehouse lock
(scheduler.py) opens it, through one connection; each thread works on its own cursor of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    import pyarrow as pa

    from warehouse_mcp.embedded.connectors.base import ColumnInfo

WAREHOUSE_FILE = "warehouse.duckdb"
STAGING_PREFIX = "_wmcp_staging_"


def warehouse_table_name(prefix: str | None, source_type: str, schema_name: str) -> str:
    """`{prefix}_{source_type}_{name}` (or `{source_type}_{name}`), lower-case, other characters as `_`."""
    raw = f"{prefix}_{source_type}_{schema_name}" if prefix else f"{source_type}_{schema_name}"
    return re.sub(r"[^a-z0-9_]", "_", raw.lower())


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@dataclass(frozen=True)
class WarehouseColumn:
    name: str
    type: str  # as DuckDB reports it, e.g. "TIMESTAMP WITH TIME ZONE", "DECIMAL(12,2)"


@dataclass(frozen=True)
class TableState:
    """A landed table as the schema row records it."""

    name: str
    row_count: int
    columns: list[WarehouseColumn]


class Warehouse:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = duckdb.connect(str(path))
        # Timestamps with time zone come back (and cast to dates) in UTC, whatever the host's zone.
        self._connection.execute("SET GLOBAL TimeZone = 'UTC'")
        self._drop_leftover_staging()

    def close(self) -> None:
        self._connection.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection for the calling thread (DuckDB connections are not shared between threads)."""
        return self._connection.cursor()

    def start_staging(self, target: str, columns: Sequence[ColumnInfo], job_id: str) -> Staging:
        """An empty staging table for one sync of `target`, typed by the columns' `warehouse_type`."""
        if not columns:
            raise ValueError(f"Cannot stage '{target}' without columns")
        name = STAGING_PREFIX + re.sub(r"[^a-z0-9]", "", job_id.lower())
        cursor = self.cursor()
        definition = ", ".join(f"{quote(column.name)} {column.warehouse_type}" for column in columns)
        cursor.execute(f"DROP TABLE IF EXISTS {quote(name)}")
        cursor.execute(f"CREATE TABLE {quote(name)} ({definition})")
        return Staging(cursor, name, target, list(columns))

    def table_exists(self, name: str) -> bool:
        return _table_exists(self.cursor(), name)

    def drop_table(self, name: str) -> bool:
        """Drop `name` if it exists; True when it did."""
        existed = self.table_exists(name)
        self.cursor().execute(f"DROP TABLE IF EXISTS {quote(name)}")
        return existed

    def row_count(self, name: str) -> int:
        row = self.cursor().execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
        return int(row[0]) if row else 0

    def columns(self, name: str) -> list[WarehouseColumn]:
        return _columns(self.cursor(), name)

    def describe(self, name: str) -> TableState | None:
        if not self.table_exists(name):
            return None
        return TableState(name, self.row_count(name), self.columns(name))

    def _drop_leftover_staging(self) -> None:
        cursor = self.cursor()
        leftovers = cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND starts_with(table_name, ?)",
            [STAGING_PREFIX],
        ).fetchall()
        for (name,) in leftovers:
            cursor.execute(f"DROP TABLE IF EXISTS {quote(name)}")


class Staging:
    """The batches of one sync, held aside until `replace_target` / `merge_into_target` / `append_to_target`."""

    def __init__(
        self, cursor: duckdb.DuckDBPyConnection, name: str, target: str, columns: list[ColumnInfo]
    ) -> None:
        self.name = name
        self.target = target
        self._cursor = cursor
        self._types = {column.name: column.warehouse_type for column in columns}
        self._view = f"{name}_batch"
        self.rows = 0

    def append(self, batch: pa.RecordBatch | pa.Table) -> int:
        """Insert one batch, cast to the declared types; columns the batch lacks land as NULL."""
        if batch.num_rows == 0:
            return 0
        selected = [name for name in batch.schema.names if name in self._types]
        if not selected:
            raise ValueError(f"The batch for '{self.target}' has none of the expected columns")
        projection = ", ".join(f"CAST({quote(n)} AS {self._types[n]}) AS {quote(n)}" for n in selected)
        self._cursor.register(self._view, batch)
        try:
            self._cursor.execute(
                f"INSERT INTO {quote(self.name)} BY NAME SELECT {projection} FROM {quote(self._view)}"
            )
        finally:
            self._cursor.unregister(self._view)
        self.rows += batch.num_rows
        return batch.num_rows

    def replace_target(self) -> TableState:
        """Swap the staging table in as the target: readers see the old table or the new one, never a mix."""
        with self._transaction():
            self._cursor.execute(f"DROP TABLE IF EXISTS {quote(self.target)}")
            self._cursor.execute(f"ALTER TABLE {quote(self.name)} RENAME TO {quote(self.target)}")
        return self._target_state()

    def merge_into_target(self, primary_keys: Sequence[str]) -> TableState:
        """Upsert on `primary_keys`: target rows with a staged key are replaced by the newest staged row."""
        if not primary_keys:
            return self.append_to_target()
        missing = [key for key in primary_keys if key not in self._types]
        if missing:
            raise ValueError(
                f"Primary key columns {missing} are not among the synced columns of '{self.target}'"
            )
        if not self._target_exists():
            return self.replace_target()
        target, staging = quote(self.target), quote(self.name)
        matches = " AND ".join(
            f"{target}.{quote(k)} IS NOT DISTINCT FROM {staging}.{quote(k)}" for k in primary_keys
        )
        keys = ", ".join(quote(k) for k in primary_keys)
        with self._transaction():
            self._add_new_columns()
            self._cursor.execute(f"DELETE FROM {target} USING {staging} WHERE {matches}")
            # A row may have changed twice during one read: keep the last one staged.
            self._cursor.execute(
                f"INSERT INTO {target} BY NAME SELECT * FROM {staging} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY rowid DESC) = 1"
            )
            self._cursor.execute(f"DROP TABLE {staging}")
        return self._target_state()

    def append_to_target(self) -> TableState:
        if not self._target_exists():
            return self.replace_target()
        with self._transaction():
            self._add_new_columns()
            self._cursor.execute(f"INSERT INTO {quote(self.target)} BY NAME SELECT * FROM {quote(self.name)}")
            self._cursor.execute(f"DROP TABLE {quote(self.name)}")
        return self._target_state()

    def discard(self) -> None:
        self._cursor.execute(f"DROP TABLE IF EXISTS {quote(self.name)}")

    def _target_exists(self) -> bool:
        return _table_exists(self._cursor, self.target)

    def _add_new_columns(self) -> None:
        """Schema drift: a column the source gained (or that was newly enabled) is added to the target."""
        existing = {column.name for column in _columns(self._cursor, self.target)}
        for name, warehouse_type in self._types.items():
            if name not in existing:
                self._cursor.execute(
                    f"ALTER TABLE {quote(self.target)} ADD COLUMN {quote(name)} {warehouse_type}"
                )

    def _target_state(self) -> TableState:
        row = self._cursor.execute(f"SELECT count(*) FROM {quote(self.target)}").fetchone()
        return TableState(self.target, int(row[0]) if row else 0, _columns(self._cursor, self.target))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._cursor.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._cursor.execute("ROLLBACK")
            raise
        self._cursor.execute("COMMIT")


def _table_exists(cursor: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = cursor.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
        [name],
    ).fetchone()
    return bool(row and row[0])


def _columns(cursor: duckdb.DuckDBPyConnection, table: str) -> list[WarehouseColumn]:
    rows = cursor.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [WarehouseColumn(name, data_type) for name, data_type in rows]
