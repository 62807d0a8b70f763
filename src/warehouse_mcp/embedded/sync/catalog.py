"""What the warehouse holds, published so that any process can read it at any moment.

Table data lives in immutable Parquet files under `<home>/warehouse_data/tables/`. Which files make up
which table is a numbered manifest, `catalog/<n>.json`; writing the next one (to a temporary name,
fsynced, then renamed) is the commit point of every change. Beside it `catalog/<n>.duckdb` is a small
DuckDB file with one VIEW per table over that version's files, and `<home>/warehouse.duckdb` is a hard
link to the newest of those, replaced by an atomic rename. The writer never opens `warehouse.duckdb`, so
it holds no lock on it: a reader (DuckDB CLI, Python, a BI tool) can open it read-only at any moment and
keeps the version it opened, whole, for as long as it has it open.

A table merged on its primary key is read merged-on-read: besides its base `files` it may list `deltas`
(files of changed rows) and `key_files` (the keys those merges superseded or deleted), each row of both
carrying its merge's sequence number (SEQ_COLUMN, NULL in base files). A row is current unless a key file
names its key with a higher number, so a merge writes only the changed rows; the writer compacts the
deltas back into the base files once they grow (warehouse.py).

Old versions are deleted only when no reader can still need them: a reader's DuckDB holds a shared
`fcntl` lock on the catalog file it opened (the same inode as `catalog/<n>.duckdb`), readers in this
process register in `_in_use`, and a version stays at least `keep_seconds` after it was superseded
(a reader may be between finding the file and locking it).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

logger = logging.getLogger(__name__)

TABLES_DIR = "tables"
CATALOG_DIR = "catalog"
DEFAULT_KEEP_SECONDS = 60.0
SEQ_COLUMN = "_wmcp_seq"  # the merge that wrote a delta row or key (merge-on-read); NULL in base files
_VERSION_FILE = re.compile(r"^(\d+)\.json$")

_in_use: Counter[Path] = Counter()  # catalog files opened by readers in this process
_in_use_lock = threading.Lock()


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class WarehouseColumn:
    name: str
    type: str  # as DuckDB reports it, e.g. "TIMESTAMP WITH TIME ZONE", "DECIMAL(12,2)"


@dataclass(frozen=True)
class TableEntry:
    """One table of one version: its files (relative to the data directory), columns and row count.

    `deltas`, `key_files` and `primary_keys`: merges not yet compacted into `files` (see the module doc).
    """

    files: tuple[str, ...]
    columns: tuple[WarehouseColumn, ...]
    rows: int
    deltas: tuple[str, ...] = ()
    key_files: tuple[str, ...] = ()
    primary_keys: tuple[str, ...] = ()

    @property
    def all_files(self) -> tuple[str, ...]:
        return self.files + self.deltas + self.key_files

    @property
    def next_seq(self) -> int:
        """The sequence number of the next merge: one per key file since the last compaction."""
        return len(self.key_files) + 1


@dataclass(frozen=True)
class Manifest:
    version: int
    tables: Mapping[str, TableEntry] = field(default_factory=dict)
    # What a sync must commit together with its data, e.g. how far each CDC table is applied.
    state: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "state": self.state,
                "tables": {
                    name: {
                        "files": list(entry.files),
                        "columns": [{"name": c.name, "type": c.type} for c in entry.columns],
                        "rows": entry.rows,
                        **(
                            {
                                "deltas": list(entry.deltas),
                                "key_files": list(entry.key_files),
                                "primary_keys": list(entry.primary_keys),
                            }
                            if entry.key_files
                            else {}
                        ),
                    }
                    for name, entry in self.tables.items()
                },
            },
            indent=1,
        )

    @staticmethod
    def from_json(text: str) -> Manifest:
        data = json.loads(text)
        tables = {
            name: TableEntry(
                tuple(entry["files"]),
                tuple(WarehouseColumn(c["name"], c["type"]) for c in entry["columns"]),
                int(entry["rows"]),
                tuple(entry.get("deltas", ())),
                tuple(entry.get("key_files", ())),
                tuple(entry.get("primary_keys", ())),
            )
            for name, entry in data["tables"].items()
        }
        return Manifest(int(data["version"]), tables, data.get("state") or {})


def table_select(data_dir: Path, entry: TableEntry) -> str:
    """The SELECT that reads one table: its columns, in order and typed as recorded, from its files
    (merged-on-read: without the rows whose key a later merge superseded)."""
    files = ", ".join(literal(str(data_dir / name)) for name in entry.files + entry.deltas)
    source = f"read_parquet([{files}], union_by_name = true)"
    if not entry.key_files:
        columns = ", ".join(f"CAST({quote(c.name)} AS {c.type}) AS {quote(c.name)}" for c in entry.columns)
        return f"SELECT {columns} FROM {source}"
    columns = ", ".join(f"CAST(r.{quote(c.name)} AS {c.type}) AS {quote(c.name)}" for c in entry.columns)
    keys = ", ".join(quote(k) for k in entry.primary_keys)
    key_files = ", ".join(literal(str(data_dir / name)) for name in entry.key_files)
    seq = quote(SEQ_COLUMN)
    row_seq = f"coalesce(r.{seq}, 0)" if entry.deltas else "0"
    match = " AND ".join(f"r.{quote(k)} IS NOT DISTINCT FROM gone.{quote(k)}" for k in entry.primary_keys)
    return (
        f"SELECT {columns} FROM {source} AS r ANTI JOIN "
        f"(SELECT {keys}, max({seq}) AS {seq} FROM read_parquet([{key_files}]) GROUP BY {keys}) AS gone "
        f"ON {match} AND gone.{seq} > {row_seq}"
    )


def versions(data_dir: Path) -> list[int]:
    """The committed versions, oldest first."""
    try:
        names = os.listdir(data_dir / CATALOG_DIR)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)


def read_manifest(data_dir: Path, version: int) -> Manifest:
    return Manifest.from_json((data_dir / CATALOG_DIR / f"{version}.json").read_text())


def latest_readable(data_dir: Path) -> tuple[Manifest, Path] | None:
    """The newest version whose reader catalog is complete, for a reader in any process."""
    for version in reversed(versions(data_dir)):
        path = data_dir / CATALOG_DIR / f"{version}.duckdb"
        if path.exists():
            return read_manifest(data_dir, version), path
    return None


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Mark a catalog file as in use by this process, so the writer here keeps its version."""
    with _in_use_lock:
        _in_use[path] += 1
    try:
        yield
    finally:
        with _in_use_lock:
            _in_use[path] -= 1
            if _in_use[path] <= 0:
                del _in_use[path]


class Catalog:
    """The writer's side: commit manifests, publish the reader catalog, delete what no reader needs."""

    def __init__(self, data_dir: Path, link: Path, *, keep_seconds: float = DEFAULT_KEEP_SECONDS) -> None:
        self.data_dir = data_dir
        self.link = link
        self.keep_seconds = keep_seconds
        self._db = duckdb.connect()
        self.tables_dir = data_dir / TABLES_DIR
        self.catalog_dir = data_dir / CATALOG_DIR
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self.catalog_dir.mkdir(parents=True, exist_ok=True)
        for leftover in self.catalog_dir.glob(".*"):  # unfinished temporaries (and their DuckDB WAL)
            leftover.unlink(missing_ok=True)
        known = versions(data_dir)
        self.current = read_manifest(data_dir, known[-1]) if known else Manifest(0)
        if not known:
            _write_atomically(self.catalog_dir / "0.json", self.current.to_json())
        # Rebuilt at every start: the paths inside it are absolute and the data directory may have moved.
        self._write_reader_catalog(self.current)
        self._link(self.current.version)
        self.collect_garbage()

    def close(self) -> None:
        self._db.close()

    def publish(self, tables: Mapping[str, TableEntry], state: Mapping[str, Any] | None = None) -> Manifest:
        """Commit the next version (its data files must be written and fsynced) and show it to readers.

        `state` replaces the version's state; by default it carries over.
        """
        state = self.current.state if state is None else state
        manifest = Manifest(self.current.version + 1, dict(tables), dict(state))
        _write_atomically(self.catalog_dir / f"{manifest.version}.json", manifest.to_json())
        self.current = manifest  # committed: a failure below is repaired when the warehouse next opens
        self._write_reader_catalog(manifest)
        self._link(manifest.version)
        try:
            self.collect_garbage()
        except OSError:
            logger.exception("Could not delete old warehouse versions (retried after the next sync)")
        return manifest

    def collect_garbage(self) -> None:
        """Delete versions no reader can need, then data files no kept version refers to."""
        known = versions(self.data_dir)
        kept = {self.current.version}
        now = time.time()
        for older, newer in itertools.pairwise(known):
            if older >= self.current.version:
                break
            superseded_at = _mtime(self.catalog_dir / f"{newer}.json")
            path = self.catalog_dir / f"{older}.duckdb"
            if superseded_at is None or now - superseded_at < self.keep_seconds or _is_read(path):
                kept.add(older)
                continue
            path.unlink(missing_ok=True)
            (self.catalog_dir / f"{older}.json").unlink(missing_ok=True)
        referenced = {self.current.version: self.current} | {
            v: read_manifest(self.data_dir, v) for v in kept if v != self.current.version
        }
        needed = {f for m in referenced.values() for entry in m.tables.values() for f in entry.all_files}
        for path in self.tables_dir.iterdir():
            if f"{TABLES_DIR}/{path.name}" not in needed:
                path.unlink(missing_ok=True)

    def _write_reader_catalog(self, manifest: Manifest) -> None:
        temporary = self.catalog_dir / f".{manifest.version}.duckdb.tmp"
        temporary.unlink(missing_ok=True)
        # Attached to one long-lived in-memory DuckDB, in one transaction: half the cost of a new database.
        db = self._db.cursor()
        db.execute(f"ATTACH {literal(str(temporary))} AS reader_catalog")
        try:
            db.execute("BEGIN")
            for name, entry in sorted(manifest.tables.items()):
                db.execute(
                    f"CREATE VIEW reader_catalog.{quote(name)} AS {table_select(self.data_dir, entry)}"
                )
            db.execute("COMMIT")
        finally:
            db.execute("DETACH reader_catalog")
        fsync_file(temporary)
        os.replace(temporary, self.catalog_dir / f"{manifest.version}.duckdb")

    def _link(self, version: int) -> None:
        temporary = self.link.with_name(f".{self.link.name}.tmp")
        temporary.unlink(missing_ok=True)
        source = self.catalog_dir / f"{version}.duckdb"
        try:
            os.link(source, temporary)
        except OSError:  # a file system without hard links: a copy (old versions then rely on keep_seconds)
            shutil.copyfile(source, temporary)
        os.replace(temporary, self.link)
        _fsync_dir(self.link.parent)


def _is_read(path: Path) -> bool:
    """True while a reader here or in another process has this catalog file open."""
    with _in_use_lock:
        if _in_use.get(path):
            return True
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        # DuckDB readers hold a shared fcntl lock on the whole file; probing closes no lock of theirs.
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
