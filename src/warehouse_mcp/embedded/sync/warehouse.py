"""The local warehouse that synced tables land in, readable by other processes at every moment.

Every sync streams its batches into private Parquet parts (`warehouse_data/staging/<job>/`) and only
touches the target table in one final commit: a full refresh publishes the parts as the table, an
incremental sync (and a CDC apply) merges them on the primary key merge-on-read: it adds the newest staged
row per key as a delta file and the staged keys as a key file (catalog.py), so it writes only the changed
rows; once the deltas pass COMPACT_FRACTION of the table's bytes (or MAX_DELTAS merges) the same commit
compacts the table into one clean file. An append sync adds the parts to the table's files. A commit is one
new catalog version (catalog.py): readers see the old table or the new one, never half a table or a mix of two syncs. A sync that fails, is cancelled, or dies with its process
therefore never leaves a half-written target; leftover parts and unreferenced files are deleted when the
warehouse is next opened.

Only the holder of the warehouse lock (scheduler.py) opens a Warehouse; commits within it are serialized.
Readers open `<home>/warehouse.duckdb` read-only (query.py does so for the query tool).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from warehouse_mcp.embedded.connectors.registry import FIXED_TABLE_NAMES
from warehouse_mcp.embedded.sync.catalog import (
    CATALOG_DIR,
    SEQ_COLUMN,
    TABLES_DIR,
    Catalog,
    Manifest,
    TableEntry,
    WarehouseColumn,
    fsync_file,
    latest_readable,
    literal,
    quote,
    table_select,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from warehouse_mcp.embedded.connectors.base import ColumnInfo

__all__ = [
    "WAREHOUSE_FILE",
    "SchemaDriftError",
    "Staging",
    "TableState",
    "Warehouse",
    "WarehouseColumn",
    "data_dir_for",
    "quote",
    "warehouse_table_name",
]

WAREHOUSE_FILE = "warehouse.duckdb"
STAGING_DIR = "staging"
CDC_POSITIONS = "cdc_positions"  # the manifest state's key
# Staged columns of an `apply` write (CDC): a row that only names a key to delete, the columns a row
# keeps from the target row (values the source did not resend), and that target row's key per key column.
DELETED_COLUMN = "_wmcp_deleted"
KEEP_COLUMN = "_wmcp_keep"
PRIOR_KEY_PREFIX = "_wmcp_prior_"
_META_PREFIXES = (DELETED_COLUMN, KEEP_COLUMN, PRIOR_KEY_PREFIX)
PARQUET = "(FORMAT parquet, COMPRESSION zstd)"
# An append adds files; past this many the table is rewritten as one file, so reads stay fast.
MAX_FILES_PER_TABLE = 64
# A merged table is compacted once its deltas and key files reach this share of its base files' bytes, or
# this many merges: reads then pay at most that much extra for merge-on-read.
COMPACT_FRACTION = 0.25
MAX_DELTAS = 32


def warehouse_table_name(prefix: str | None, source_type: str, schema_name: str) -> str:
    """`{prefix}_{source_type}_{name}` (or `{source_type}_{name}`) in lower-case ASCII letters, digits and `_`.

    A name that is already such a string keeps it (`orders` → `postgres_orders`). Any other name (capitals,
    punctuation, spaces, non-ASCII) is folded (accents dropped, the rest as `_`) and gets `_` plus the first
    8 hex digits of the SHA-256 of the exact source name (`Orders` → `postgres_orders_<8 hex>`), so two
    source tables never share a warehouse table, and a table keeps its name whatever others appear.
    Stripe's fixed resource names are only lower-cased, as PostHog does (`Charge` → `stripe_charge`).
    """
    raw = f"{prefix}_{source_type}_" if prefix else f"{source_type}_"
    name = _fold(raw) + _fold(schema_name)
    # A source with a fixed set of table names (Stripe's resources) cannot collide: PostHog's plain name.
    if _fold(schema_name) != schema_name and source_type not in FIXED_TABLE_NAMES:
        name += "_" + hashlib.sha256(schema_name.encode()).hexdigest()[:8]
    return name


def _fold(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9_]", "_", ascii_text.lower())


def data_dir_for(path: Path) -> Path:
    """Where the warehouse at `path` (`warehouse.duckdb`) keeps its files: `warehouse_data/` beside it."""
    return path.with_name(f"{path.stem}_data")


class SchemaDriftError(Exception):
    """A source change the warehouse table cannot take without changing values; worded for the user."""


@dataclass(frozen=True)
class TableState:
    """A landed table as the schema row records it."""

    name: str
    row_count: int
    columns: list[WarehouseColumn]


@dataclass(frozen=True)
class CdcPosition:
    """How far a CDC table is applied: every source transaction committed before `lsn` is in it."""

    lsn: int
    token: str  # which snapshot the table was loaded from (the schema's cursor names the same one)
    mode: str  # the cdc_table_mode it was loaded in
    columns: Mapping[str, str] = field(default_factory=dict)  # the source columns it holds: warehouse types
    error: str | None = None  # why it cannot stream on until a resync (a change the stream cannot carry)


@dataclass(frozen=True)
class TableWrite:
    """One table's part of `Warehouse.commit_changes`.

    `how`: "replace" publishes the staged rows as the table; "append" adds them; "apply" (CDC, on
    `primary_keys`) fills the `keep_columns` that staged rows list in KEEP_COLUMN from the target row with
    their prior key, empties the target if `truncate`, removes every staged key from the target, then adds
    the staged rows not marked DELETED_COLUMN.
    """

    staging: Staging
    how: str
    primary_keys: Sequence[str] = ()
    truncate: bool = False
    keep_columns: Sequence[str] = ()


class Warehouse:
    def __init__(self, path: Path, *, keep_seconds: float | None = None) -> None:
        self.path = path
        self.data_dir = data_dir_for(path)
        self.staging_dir = self.data_dir / STAGING_DIR
        shutil.rmtree(self.staging_dir, ignore_errors=True)  # parts of syncs that died with their process
        self.staging_dir.mkdir(parents=True)
        self._db = duckdb.connect()
        # Timestamps with time zone are written (and cast to dates) in UTC, whatever the host's zone.
        self._db.execute("SET TimeZone = 'UTC'")
        self._commits = threading.Lock()
        options = {} if keep_seconds is None else {"keep_seconds": keep_seconds}
        legacy = _set_legacy_aside(path, self.data_dir)
        self._catalog = Catalog(self.data_dir, path, **options)
        if legacy.exists():
            self._import_legacy(legacy)

    def close(self) -> None:
        self._db.close()
        self._catalog.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A read-only connection to the current version (what a reader opening warehouse.duckdb sees)."""
        readable = latest_readable(self.data_dir)
        assert readable is not None  # the Catalog publishes a version when it opens
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute(f"ATTACH {literal(str(readable[1]))} AS warehouse (READ_ONLY)")
        connection.execute("USE warehouse")
        return connection

    @property
    def manifest(self) -> Manifest:
        return self._catalog.current

    def start_staging(self, target: str, columns: Sequence[ColumnInfo], job_id: str) -> Staging:
        """An empty staging area for one sync of `target`, typed by the columns' `warehouse_type`."""
        if not columns:
            raise ValueError(f"Cannot stage '{target}' without columns")
        name = re.sub(r"[^a-z0-9]", "", job_id.lower()) or uuid.uuid4().hex
        directory = self.staging_dir / name
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        declared = {column.name: column.warehouse_type for column in columns}
        return Staging(self, directory, target, declared, self._duckdb_types(declared))

    def table_exists(self, name: str) -> bool:
        return name in self.manifest.tables

    def drop_table(self, name: str) -> bool:
        """Drop `name` if it exists; True when it did."""
        with self._commits:
            tables = dict(self.manifest.tables)
            if tables.pop(name, None) is None:
                return False
            self._catalog.publish(tables)
            return True

    def delete_rows(self, name: str, column: str, values: Iterable[Any]) -> TableState | None:
        """Delete the rows whose `column` is one of `values`; None when the table does not exist."""
        wanted = list(values)
        with self._commits:
            entry = self.manifest.tables.get(name)
            if entry is None:
                return None
            if wanted:
                keys = "(VALUES " + ", ".join("(?)" for _ in wanted) + f") AS gone({quote(column)})"
                if entry.key_files:  # merged-on-read: a key file names the deleted rows' keys
                    pk = ", ".join(f"old.{quote(k)}" for k in entry.primary_keys)
                    gone = (
                        f"SELECT {pk} FROM ({table_select(self.data_dir, entry)}) AS old "
                        f"SEMI JOIN {keys} ON old.{quote(column)} = gone.{quote(column)}"
                    )
                    cursor = self._db.cursor()
                    after = self._with_delta(
                        name, entry, entry.columns, None, gone, entry.primary_keys, cursor, wanted
                    )
                    if after.rows != entry.rows:
                        entry = self._publish_entry(name, after)
                    else:
                        for file in set(after.all_files) - set(entry.all_files):
                            (self.data_dir / file).unlink(missing_ok=True)
                    return _state(name, entry)
                match = f"{keys} ON old.{quote(column)} = gone.{quote(column)}"
                files, rows = self._without_matches(name, entry, list(entry.columns), match, wanted)
                if rows != entry.rows:
                    entry = self._publish_table(name, files, entry.columns, rows)
        return _state(name, entry)

    def cdc_positions(self, schema_ids: Sequence[str]) -> dict[str, CdcPosition]:
        stored = self.manifest.state.get(CDC_POSITIONS, {})
        return {
            s: CdcPosition(
                stored[s]["lsn"],
                stored[s]["token"],
                stored[s]["mode"],
                dict(stored[s].get("columns", {})),
                stored[s].get("error"),
            )
            for s in schema_ids
            if s in stored
        }

    def commit_changes(
        self, writes: Sequence[TableWrite], positions: dict[str, CdcPosition]
    ) -> dict[str, TableState]:
        """Every write and the new CDC positions in one version: all of it is published, or none."""
        with self._commits:
            tables = dict(self.manifest.tables)
            for write in writes:
                before = tables.get(write.staging.target)
                after = write.staging._written_entry(write, before)
                for name in set(after.all_files) - set(before.all_files if before else ()):
                    fsync_file(self.data_dir / name)
                tables[write.staging.target] = after
            state = dict(self.manifest.state)
            stored = dict(state.get(CDC_POSITIONS, {}))
            for schema_id, position in positions.items():
                stored[schema_id] = {
                    "lsn": position.lsn,
                    "token": position.token,
                    "mode": position.mode,
                    "columns": dict(position.columns),
                    "error": position.error,
                }
            state[CDC_POSITIONS] = stored
            self._catalog.publish(tables, state)
        for write in writes:
            write.staging.discard()
        return {w.staging.target: _state(w.staging.target, tables[w.staging.target]) for w in writes}

    def row_count(self, name: str) -> int:
        entry = self.manifest.tables.get(name)
        return entry.rows if entry else 0

    def columns(self, name: str) -> list[WarehouseColumn]:
        entry = self.manifest.tables.get(name)
        return list(entry.columns) if entry else []

    def describe(self, name: str) -> TableState | None:
        entry = self.manifest.tables.get(name)
        return None if entry is None else _state(name, entry)

    # Used by Staging, with the commit lock held.

    def _new_file(self, table: str) -> Path:
        safe = re.sub(r"[^a-z0-9_]", "_", table.lower())
        return self.data_dir / TABLES_DIR / f"{safe}.{uuid.uuid4().hex}.parquet"

    def _publish_table(
        self, name: str, files: Sequence[Path], columns: Sequence[WarehouseColumn], rows: int
    ) -> TableEntry:
        return self._publish_entry(name, TableEntry(_relative(files), tuple(columns), rows))

    def _publish_entry(self, name: str, entry: TableEntry) -> TableEntry:
        previous = self.manifest.tables.get(name)
        for file in set(entry.all_files) - set(previous.all_files if previous else ()):
            fsync_file(self.data_dir / file)  # new; the others were fsynced when first published
        self._catalog.publish({**self.manifest.tables, name: entry})
        return entry

    def _with_delta(
        self,
        table: str,
        entry: TableEntry,
        columns: Sequence[WarehouseColumn],
        rows_query: str | None,
        keys_query: str,
        primary_keys: Sequence[str],
        cursor: duckdb.DuckDBPyConnection,
        parameters: Sequence[Any] = (),
    ) -> TableEntry:
        """`entry` after one merge-on-read merge: the rows of `keys_query` (the primary key columns) are
        superseded by the rows of `rows_query` (typed as `columns`, at most one per key; None: a delete).
        Writes a key file and a delta file, not yet fsynced nor published; compacts when they grow."""
        if entry.key_files and tuple(entry.primary_keys) != tuple(primary_keys):
            entry = self._settled(table, entry)  # merged on other keys before: start clean
        seq = entry.next_seq
        keys = ", ".join(quote(k) for k in primary_keys)
        match = " AND ".join(f"old.{quote(k)} IS NOT DISTINCT FROM gone.{quote(k)}" for k in primary_keys)
        superseded = _count(
            cursor.execute(
                f"SELECT count(*) FROM ({table_select(self.data_dir, entry)}) AS old "
                f"SEMI JOIN ({keys_query}) AS gone ON {match}",
                list(parameters),
            ).fetchone()
        )
        key_file = self._new_file(table)
        cursor.execute(
            f"COPY (SELECT DISTINCT {keys}, CAST({seq} AS INTEGER) AS {quote(SEQ_COLUMN)} "
            f"FROM ({keys_query})) TO {literal(str(key_file))} {PARQUET}",
            list(parameters),
        )
        deltas, added = entry.deltas, 0
        if rows_query is not None:
            delta = self._new_file(table)
            added = _count(
                cursor.execute(
                    f"COPY (SELECT *, CAST({seq} AS INTEGER) AS {quote(SEQ_COLUMN)} FROM ({rows_query})) "
                    f"TO {literal(str(delta))} {PARQUET}"
                ).fetchone()
            )
            deltas += _relative([delta])
        merged = TableEntry(
            entry.files,
            tuple(columns),
            entry.rows - superseded + added,
            deltas,
            entry.key_files + _relative([key_file]),
            tuple(primary_keys),
        )
        if len(merged.key_files) <= MAX_DELTAS and self._bytes(
            merged.deltas + merged.key_files
        ) <= COMPACT_FRACTION * self._bytes(merged.files):
            return merged
        return self._settled(table, merged)

    def _settled(self, table: str, entry: TableEntry) -> TableEntry:
        """`entry` with its merges compacted into one clean base file (itself when it has none)."""
        if not entry.key_files:
            return entry
        file = self._new_file(table)
        self._db.cursor().execute(
            f"COPY ({table_select(self.data_dir, entry)}) TO {literal(str(file))} {PARQUET}"
        )
        return TableEntry(_relative([file]), entry.columns, entry.rows)

    def _bytes(self, files: Iterable[str]) -> int:
        return sum((self.data_dir / name).stat().st_size for name in files)

    def _without_matches(
        self,
        table: str,
        entry: TableEntry,
        columns: Sequence[WarehouseColumn],
        match: str,
        parameters: Sequence[Any] = (),
    ) -> tuple[list[Path], int]:
        """The table's files with the rows that `match` (a join target and condition on `old`) removed.

        Only the files holding such a row are rewritten (into one new file, typed as `columns`), so a
        small merge into a big table costs the size of the files it touches, not of the table.
        """
        cursor = self._db.cursor()
        files = [self.data_dir / name for name in entry.files]
        listing = f"read_parquet([{_literals(files)}], filename = true, union_by_name = true) AS old"
        hits = cursor.execute(
            f"SELECT DISTINCT old.filename FROM {listing} SEMI JOIN {match}", list(parameters)
        ).fetchall()
        touched = sorted(Path(name) for (name,) in hits)
        if not touched:
            return files, entry.rows
        source = f"read_parquet([{_literals(touched)}], union_by_name = true)"
        present = [
            WarehouseColumn(r[0], r[1]) for r in cursor.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
        ]
        before = _count(cursor.execute(f"SELECT count(*) FROM {source}").fetchone())
        rewritten = self._new_file(table)
        kept = cursor.execute(
            f"COPY (SELECT {_projection(columns, present, 'old')} FROM {source} AS old ANTI JOIN {match}) "
            f"TO {literal(str(rewritten))} {PARQUET}",
            list(parameters),
        ).fetchone()
        untouched = [file for file in files if file not in set(touched)]
        return [*untouched, rewritten], entry.rows - before + _count(kept)

    def _compacted(
        self, table: str, files: list[Path], columns: Sequence[WarehouseColumn], rows: int
    ) -> list[Path]:
        """`files`, or past MAX_FILES_PER_TABLE one file with all their rows, so reads stay fast."""
        if len(files) <= MAX_FILES_PER_TABLE:
            return files
        merged = TableEntry(_relative(files), tuple(columns), rows)
        file = self._new_file(table)
        self._db.cursor().execute(
            f"COPY ({table_select(self.data_dir, merged)}) TO {literal(str(file))} {PARQUET}"
        )
        return [file]

    def _duckdb_types(self, declared: dict[str, str]) -> list[WarehouseColumn]:
        projection = ", ".join(f"CAST(NULL AS {t}) AS {quote(n)}" for n, t in declared.items())
        described = self._db.cursor().execute(f"DESCRIBE SELECT {projection}").fetchall()
        return [WarehouseColumn(row[0], row[1]) for row in described]

    def _import_legacy(self, path: Path) -> None:
        """Carry the tables of a warehouse.duckdb written before the Parquet layout over into it."""
        with self._commits, duckdb.connect(str(path), read_only=True) as old:
            old.execute("SET TimeZone = 'UTC'")
            tables = dict(self.manifest.tables)
            names = old.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "AND table_type = 'BASE TABLE' AND NOT starts_with(table_name, '_wmcp_staging_')"
            ).fetchall()
            for (name,) in names:
                file = self._new_file(name)
                written = old.execute(f"COPY {quote(name)} TO {literal(str(file))} {PARQUET}").fetchone()
                fsync_file(file)
                columns = old.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                    [name],
                ).fetchall()
                tables[name] = TableEntry(
                    (f"{TABLES_DIR}/{file.name}",),
                    tuple(WarehouseColumn(n, t) for n, t in columns),
                    _count(written),
                )
        self._catalog.publish(tables)
        path.unlink()
        path.with_name(f"{path.name}.wal").unlink(missing_ok=True)


class Staging:
    """The batches of one sync, held aside until `replace_target` / `merge_into_target` / `append_to_target`."""

    def __init__(
        self,
        warehouse: Warehouse,
        directory: Path,
        target: str,
        declared: dict[str, str],
        columns: list[WarehouseColumn],
    ) -> None:
        self.name = directory.name
        self.target = target
        self.rows = 0
        self._warehouse = warehouse
        self._directory = directory
        self._declared = declared
        self._columns = columns
        self._cursor = warehouse._db.cursor()
        self._parts: list[Path] = []
        self._view = f"_wmcp_batch_{self.name}"

    def append(self, batch: pa.RecordBatch | pa.Table) -> int:
        """Write one batch as a Parquet part, cast to the declared types; columns it lacks land as NULL."""
        if batch.num_rows == 0:
            return 0
        present = set(batch.schema.names)
        if not present & self._declared.keys():
            raise ValueError(f"The batch for '{self.target}' has none of the expected columns")
        projection = ", ".join(
            f"CAST({quote(n) if n in present else 'NULL'} AS {t}) AS {quote(n)}"
            for n, t in self._declared.items()
        )
        part = self._directory / f"{len(self._parts):06d}.parquet"
        self._cursor.register(self._view, batch)
        try:
            self._cursor.execute(
                f"COPY (SELECT {projection} FROM {quote(self._view)}) TO {literal(str(part))} {PARQUET}"
            )
        finally:
            self._cursor.unregister(self._view)
        self._parts.append(part)
        self.rows += batch.num_rows
        return batch.num_rows

    def replace_target(self) -> TableState:
        """Publish the staged rows as the target: readers see the old table or the new one, never a mix."""
        with self._warehouse._commits:
            return self._replace()

    def merge_into_target(self, primary_keys: Sequence[str]) -> TableState:
        """Upsert on `primary_keys`: target rows with a staged key are replaced by the newest staged row."""
        if not primary_keys:
            return self.append_to_target()
        missing = [key for key in primary_keys if key not in self._declared]
        if missing:
            raise ValueError(
                f"Primary key columns {missing} are not among the synced columns of '{self.target}'"
            )
        warehouse = self._warehouse
        with warehouse._commits:
            entry = warehouse.manifest.tables.get(self.target)
            if entry is None:
                return self._replace()
            if not self._parts:
                return self._finish(entry)
            columns = self._combined_columns(entry)
            staged = self._staged_source(with_order=True)
            # A row may have changed twice during one read: keep the last one staged.
            keys = ", ".join(quote(k) for k in primary_keys)
            newest = (
                f"SELECT {_projection(columns, self._columns, 'new')} FROM {staged} AS new "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY filename DESC, file_row_number DESC) = 1"
            )
            merged = warehouse._with_delta(
                self.target,
                entry,
                columns,
                newest,
                f"SELECT {keys} FROM {staged}",
                primary_keys,
                self._cursor,
            )
            return self._finish(warehouse._publish_entry(self.target, merged))

    def append_to_target(self, skip_landed_by: str | None = None) -> TableState:
        """Add the staged rows; with `skip_landed_by` (the cursor field) only those not landed already.

        A staged row whose cursor is NULL or not above the table's highest may be one an earlier run landed
        (reads start at the saved cursor, not above it): it is added only as many times as it is staged more
        often than the table holds it among the rows of that cursor range (NULL included).
        """
        warehouse = self._warehouse
        with warehouse._commits:
            entry = warehouse.manifest.tables.get(self.target)
            if entry is None:
                return self._replace()
            entry = warehouse._settled(self.target, entry)  # appended rows take no part in merge-on-read
            columns = self._combined_columns(entry)
            landed = {column.name for column in entry.columns}
            if skip_landed_by in landed and skip_landed_by in self._declared and self._parts:
                added, added_rows = self._unlanded(entry, columns, skip_landed_by)
            else:
                added, added_rows = self._move_parts(), self.rows
            files = [warehouse.data_dir / name for name in entry.files] + added
            rows = entry.rows + added_rows
            files = warehouse._compacted(self.target, files, columns, rows)
            published = warehouse._publish_table(self.target, files, columns, rows)
            return self._finish(published)

    def discard(self) -> None:
        shutil.rmtree(self._directory, ignore_errors=True)

    def _written_entry(self, write: TableWrite, entry: TableEntry | None) -> TableEntry:
        """The target's entry after `write` (its new files written and fsynced, not yet published)."""
        warehouse = self._warehouse
        data = [c for c in self._columns if not c.name.startswith(_META_PREFIXES)]
        if write.how == "replace" or (entry is None and write.how == "append"):
            files = self._move_parts() or [self._empty_file(data)]
            return TableEntry(_relative(files), tuple(data), self.rows)
        if write.how == "append":
            assert entry is not None
            entry = warehouse._settled(self.target, entry)
            files = [warehouse.data_dir / name for name in entry.files] + self._move_parts()
            combined = self._combined_columns(entry)
            merged = TableEntry(_relative(files), tuple(combined), entry.rows + self.rows)
            if len(files) <= MAX_FILES_PER_TABLE:
                return merged
            file = warehouse._new_file(self.target)
            self._cursor.execute(
                f"COPY ({table_select(warehouse.data_dir, merged)}) TO {literal(str(file))} {PARQUET}"
            )
            return TableEntry(_relative([file]), tuple(combined), merged.rows)
        return self._applied_entry(write, entry, data)

    def _applied_entry(
        self, write: TableWrite, entry: TableEntry | None, data: list[WarehouseColumn]
    ) -> TableEntry:
        warehouse = self._warehouse
        columns = self._combined_columns(entry) if entry is not None else data
        columns = [c for c in columns if not c.name.startswith(_META_PREFIXES)]
        staged = f"{self._staged_source()} AS new" if self._parts else None
        old = f"({table_select(warehouse.data_dir, entry)}) AS old" if entry is not None else None
        merge_on_read = entry is not None and staged is not None and not write.truncate
        parts = []
        if entry is not None and old is not None and not write.truncate:
            if staged is None:
                parts.append(f"SELECT {_projection(columns, entry.columns, 'old')} FROM {old}")
            else:
                matches = " AND ".join(f"old.{quote(k)} = new.{quote(k)}" for k in write.primary_keys)
                parts.append(
                    f"SELECT {_projection(columns, entry.columns, 'old')} FROM {old} "
                    f"ANTI JOIN {staged} ON {matches}"
                )
        if staged is not None:
            values = _projection(columns, data, "new")
            join = ""
            if write.keep_columns and old is not None:
                kept = set(write.keep_columns)
                values = ", ".join(
                    f"CAST(CASE WHEN list_contains(new.{KEEP_COLUMN}, {literal(c.name)}) THEN old.{quote(c.name)} "
                    f"ELSE new.{quote(c.name)} END AS {c.type}) AS {quote(c.name)}"
                    if c.name in kept
                    else _projection([c], data, "new")
                    for c in columns
                )
                prior = " AND ".join(
                    f"old.{quote(k)} IS NOT DISTINCT FROM new.{quote(PRIOR_KEY_PREFIX + k)}"
                    for k in write.primary_keys
                )
                join = f" LEFT JOIN {old} ON {prior}"
            parts.append(f"SELECT {values} FROM {staged}{join} WHERE NOT new.{DELETED_COLUMN}")
        if merge_on_read:
            assert entry is not None and staged is not None
            keys = ", ".join(f"new.{quote(k)}" for k in write.primary_keys)
            merged = warehouse._with_delta(
                self.target,
                entry,
                columns,
                parts[-1],
                f"SELECT {keys} FROM {staged}",
                write.primary_keys,
                self._cursor,
            )
            self._parts = []
            return merged
        file = warehouse._new_file(self.target)
        query = " UNION ALL ".join(parts) if parts else f"SELECT {_projection(columns, [], 'new')} LIMIT 0"
        written = self._cursor.execute(f"COPY ({query}) TO {literal(str(file))} {PARQUET}").fetchone()
        self._parts = []
        return TableEntry(_relative([file]), tuple(columns), _count(written))

    def _empty_file(self, columns: Sequence[WarehouseColumn]) -> Path:
        file = self._warehouse._new_file(self.target)
        projection = ", ".join(f"CAST(NULL AS {c.type}) AS {quote(c.name)}" for c in columns)
        self._cursor.execute(f"COPY (SELECT {projection} LIMIT 0) TO {literal(str(file))} {PARQUET}")
        return file

    def _unlanded(
        self, entry: TableEntry, columns: list[WarehouseColumn], field: str
    ) -> tuple[list[Path], int]:
        """The staged rows the table does not hold yet, written as one new file (none when there are none)."""
        f = quote(field)
        old = f"({table_select(self._warehouse.data_dir, entry)}) AS old"
        # Compared on the columns this read has: a column dropped at the source is NULL in every staged row.
        shared = [column for column in columns if column.name in self._declared]
        query = (
            f"WITH landed AS (SELECT {_projection(shared, entry.columns, 'old')} FROM {old}), "
            f"staged AS (SELECT {_projection(shared, self._columns, 'new')} FROM {self._staged_source()} AS new), "
            f"bounds AS (SELECT (SELECT max({f}) FROM landed) AS hi, (SELECT min({f}) FROM staged) AS lo) "
            f"SELECT staged.* FROM staged, bounds "
            f"WHERE staged.{f} > bounds.hi OR (bounds.hi IS NULL AND staged.{f} IS NOT NULL) "
            "UNION ALL "
            f"(SELECT staged.* FROM staged, bounds WHERE staged.{f} <= bounds.hi OR staged.{f} IS NULL "
            "EXCEPT ALL "
            f"SELECT landed.* FROM landed, bounds "
            f"WHERE landed.{f} BETWEEN bounds.lo AND bounds.hi OR landed.{f} IS NULL)"
        )
        query = f"SELECT {_projection(columns, shared, 'added')} FROM ({query}) AS added"
        file = self._warehouse._new_file(self.target)
        rows = _count(self._cursor.execute(f"COPY ({query}) TO {literal(str(file))} {PARQUET}").fetchone())
        if rows == 0:
            file.unlink(missing_ok=True)
            return [], 0
        return [file], rows

    def _replace(self) -> TableState:
        files = self._move_parts()
        if not files:  # an empty table still has its columns
            file = self._warehouse._new_file(self.target)
            projection = ", ".join(f"CAST(NULL AS {c.type}) AS {quote(c.name)}" for c in self._columns)
            self._cursor.execute(f"COPY (SELECT {projection} LIMIT 0) TO {literal(str(file))} {PARQUET}")
            files = [file]
        published = self._warehouse._publish_table(self.target, files, self._columns, self.rows)
        return self._finish(published)

    def _finish(self, entry: TableEntry) -> TableState:
        self.discard()
        return _state(self.target, entry)

    def _move_parts(self) -> list[Path]:
        moved = []
        for part in self._parts:
            file = self._warehouse._new_file(self.target)
            part.rename(file)
            moved.append(file)
        self._parts = []
        return moved

    def _staged_source(self, *, with_order: bool = False) -> str:
        files = ", ".join(literal(str(part)) for part in self._parts)
        order = ", filename = true, file_row_number = true" if with_order else ""
        return f"read_parquet([{files}]{order})"

    def _combined_columns(self, entry: TableEntry) -> list[WarehouseColumn]:
        """Schema drift: the target keeps its columns (a column the source dropped fills with NULL) and gains
        the ones it lacks; a column whose type changed at the source gets a type that holds every value, old and
        new, unchanged (see `_retyped`)."""
        staged = {column.name: column.type for column in self._columns}
        kept = [
            column
            if staged.get(column.name, column.type) == column.type
            else self._retyped(entry, column, staged[column.name])
            for column in entry.columns
        ]
        existing = {column.name for column in entry.columns}
        return [*kept, *(c for c in self._columns if c.name not in existing)]

    def _retyped(self, entry: TableEntry, column: WarehouseColumn, new_type: str) -> WarehouseColumn:
        """The new type when every landed value converts to it and back unchanged (a widening: INTEGER →
        DECIMAL(10,2)); else the old type when every staged value does the same into it; else SchemaDriftError."""
        landed = f"({table_select(self._warehouse.data_dir, entry)})"
        if not self._changes_values(landed, column.name, column.type, new_type):
            return WarehouseColumn(column.name, new_type)
        if not self._parts or not self._changes_values(
            self._staged_source(), column.name, new_type, column.type
        ):
            return column
        raise SchemaDriftError(
            f"Column '{column.name}' of '{self.target}' changed type at the source ({column.type} → {new_type}), "
            "and neither type holds both the rows already synced and the new ones unchanged, so this table was "
            "not synced. Resync the table to reload it whole with the new type."
        )

    def _changes_values(self, source: str, name: str, from_type: str, to_type: str) -> bool:
        value = quote(name)
        converted = f"TRY_CAST({value} AS {to_type})"
        row = self._cursor.execute(
            f"SELECT count(*) FROM {source} WHERE {value} IS NOT NULL "
            f"AND ({converted} IS NULL OR CAST({converted} AS {from_type}) IS DISTINCT FROM {value})"
        ).fetchone()
        return bool(row and row[0])


def _projection(columns: Sequence[WarehouseColumn], available: Sequence[WarehouseColumn], alias: str) -> str:
    present = {column.name for column in available}
    return ", ".join(
        f"CAST({f'{alias}.{quote(c.name)}' if c.name in present else 'NULL'} AS {c.type}) AS {quote(c.name)}"
        for c in columns
    )


def _literals(files: Sequence[Path]) -> str:
    return ", ".join(literal(str(file)) for file in files)


def _relative(files: Sequence[Path]) -> tuple[str, ...]:
    return tuple(f"{TABLES_DIR}/{file.name}" for file in files)


def _state(name: str, entry: TableEntry) -> TableState:
    return TableState(name, entry.rows, list(entry.columns))


def _count(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row else 0


def _set_legacy_aside(path: Path, data_dir: Path) -> Path:
    """Where a warehouse.duckdb from before the Parquet layout (a real database) waits to be imported."""
    legacy = path.with_name(f"{path.name}.before-parquet")
    if path.exists() and not (data_dir / CATALOG_DIR).exists():
        path.rename(legacy)
        wal = path.with_name(f"{path.name}.wal")
        if wal.exists():
            wal.rename(legacy.with_name(f"{legacy.name}.wal"))
    return legacy
