"""Postgres change data capture at the source: slot and publication, consistent snapshots, decoded changes.

The client is psycopg 3 at the SQL level: `pg_logical_slot_peek_binary_changes` reads the `pgoutput` stream
without consuming it, and `pg_replication_slot_advance` moves the slot's confirmed position explicitly, which
the caller does only after the warehouse committed what it read. A crash at any point therefore re-reads
changes rather than losing them (the caller skips what it already applied). The streaming replication
protocol would push changes with less latency, but needs a long-lived connection that acknowledges
positions asynchronously; with runs of at most once a minute the SQL functions are simpler and as exact.

A consistent snapshot comes from a temporary slot created on a replication connection with
`EXPORT_SNAPSHOT`: reading the tables in that snapshot sees exactly the transactions that committed before
the slot's consistent point, and the stream holds exactly those that commit at or after it. The temporary
slot disappears with its connection, even if this process dies.

`pgoutput` messages (protocol version 1, values in text form) are decoded here: the maintained Python
decoders on PyPI were either tied to psycopg2 or too new to rely on, and the format is small and documented
(PostgreSQL docs, "Logical Replication Message Formats").
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.pq import ExecStatus, Format

from warehouse_mcp.embedded.connectors.base import ColumnInfo, ReadRequest, SourceError
from warehouse_mcp.embedded.connectors.postgres import (
    PostgresConnector,
    _arrow_type,
    _check_self_managed,
    _connect,
    _display_type,
    _PgColumn,
    _Target,
    _target,
)

_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
UNCHANGED = object()  # an unchanged TOASTed value: the update did not send it


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str | bytes) -> int:
    high, _, low = (text.decode() if isinstance(text, bytes) else text).partition("/")
    return (int(high, 16) << 32) + int(low, 16)


# --- pgoutput decoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationColumn:
    name: str
    is_key: bool
    type_oid: int
    typmod: int


@dataclass(frozen=True)
class Relation:
    oid: int
    schema: str
    name: str
    columns: list[RelationColumn]


@dataclass
class RawChange:
    """One change with its values as pgoutput sent them: text bytes, None (NULL) or UNCHANGED."""

    operation: str  # insert | update | delete | truncate
    relation: Relation
    new: list[Any] | None = None
    old: list[Any] | None = None  # the key ('K': other columns NULL) or the whole old row ('O')
    old_is_key: bool = False


@dataclass
class RawTransaction:
    xid: int
    commit_lsn: int  # where the commit record starts: the stream orders and filters by it
    end_lsn: int  # where it ends: the slot may be advanced to here once the transaction is applied
    commit_time: datetime
    changes: list[RawChange] = field(default_factory=list)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return values[0] if len(values) == 1 else values

    def string(self) -> str:
        end = self.data.index(b"\0", self.at)
        text = self.data[self.at : end].decode()
        self.at = end + 1
        return text

    def tuple(self) -> list[Any]:
        values: list[Any] = []
        for _ in range(self.unpack("!h")):
            kind = self.data[self.at : self.at + 1]
            self.at += 1
            if kind == b"n":
                values.append(None)
            elif kind == b"u":
                values.append(UNCHANGED)
            elif kind in (b"t", b"b"):
                length = self.unpack("!i")
                values.append(self.data[self.at : self.at + length])
                self.at += length
            else:
                raise ValueError(f"unknown pgoutput tuple value kind {kind!r}")
        return values


def _timestamp(microseconds: int) -> datetime:
    return _EPOCH_2000 + timedelta(microseconds=microseconds)


def decode_pgoutput(messages: list[bytes], relations: dict[int, Relation]) -> list[RawTransaction]:
    """Whole transactions, in commit order, from pgoutput protocol-1 messages; `relations` is updated."""
    transactions: list[RawTransaction] = []
    current: RawTransaction | None = None
    for message in messages:
        reader = _Reader(bytes(message))
        kind = reader.unpack("!c")
        if kind == b"B":
            _final_lsn, timestamp, xid = reader.unpack("!qqI")
            current = RawTransaction(xid, 0, 0, _timestamp(timestamp))
        elif kind == b"C":
            _flags, commit_lsn, end_lsn, timestamp = reader.unpack("!bqqq")
            if current is None:
                raise ValueError("pgoutput COMMIT without BEGIN")
            current.commit_lsn, current.end_lsn = commit_lsn, end_lsn
            current.commit_time = _timestamp(timestamp)
            transactions.append(current)
            current = None
        elif kind == b"R":
            oid = reader.unpack("!I")
            schema, name = reader.string(), reader.string()
            _identity, count = reader.unpack("!bh")
            columns = []
            for _ in range(count):
                flags = reader.unpack("!b")
                column_name = reader.string()
                type_oid, typmod = reader.unpack("!Ii")
                columns.append(RelationColumn(column_name, bool(flags & 1), type_oid, typmod))
            relations[oid] = Relation(oid, schema, name, columns)
        elif kind in (b"I", b"U", b"D"):
            if current is None:
                raise ValueError("pgoutput change outside a transaction")
            relation = relations[reader.unpack("!I")]
            change = RawChange({b"I": "insert", b"U": "update", b"D": "delete"}[kind], relation)
            marker = reader.unpack("!c")
            if marker in (b"K", b"O"):
                change.old, change.old_is_key = reader.tuple(), marker == b"K"
                if kind == b"U":
                    marker = reader.unpack("!c")
            if marker == b"N":
                change.new = reader.tuple()
            current.changes.append(change)
        elif kind == b"T":
            if current is None:
                raise ValueError("pgoutput TRUNCATE outside a transaction")
            count, _options = reader.unpack("!ib")
            for _ in range(count):
                current.changes.append(RawChange("truncate", relations[reader.unpack("!I")]))
        # 'Y' (type), 'O' (origin) and 'M' (message) carry nothing the warehouse needs.
    return transactions


# --- values ----------------------------------------------------------------------------------------------

_ISO_INTERVAL = re.compile(
    r"P(?:(?P<y>-?\d+)Y)?(?:(?P<mo>-?\d+)M)?(?:(?P<w>-?\d+)W)?(?:(?P<d>-?\d+)D)?"
    r"(?:T(?:(?P<h>-?\d+)H)?(?:(?P<mi>-?\d+)M)?(?:(?P<s>-?[\d.]+)S)?)?"
)


def _iso_interval(text: str) -> pa.MonthDayNano:
    match = _ISO_INTERVAL.fullmatch(text)
    if match is None:
        raise ValueError(f"unexpected interval text {text!r}")
    part = {key: value or "0" for key, value in match.groupdict().items()}
    months = int(part["y"]) * 12 + int(part["mo"])
    days = int(part["w"]) * 7 + int(part["d"])
    nanoseconds = (int(part["h"]) * 3600 + int(part["mi"]) * 60) * 10**9 + int(Decimal(part["s"]) * 10**9)
    return pa.MonthDayNano([months, days, nanoseconds])


_TYPES_SQL = """
SELECT t.oid, format_type(t.oid, NULL), bt.oid, bt.typname, et.typname,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE -1 END, bt.typtype = 'e', coalesce(et.typtype = 'e', false)
FROM pg_type t
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE t.oid = ANY(%s)
"""


@dataclass(frozen=True)
class TableChange:
    """A decoded change of one table: Python values as a snapshot read gives them."""

    operation: str  # insert | update | delete | truncate
    new: dict[str, Any] | None  # the row after (insert, update)
    old: dict[str, Any] | None  # the key (or whole row) before: delete, and updates that changed the key
    old_text: dict[str, str | None] | None  # `old` in Postgres text form
    unchanged: frozenset[str]  # columns of `new` the source did not send (unchanged TOASTed values)


@dataclass(frozen=True)
class ChangedTable:
    schema: str
    name: str
    columns: list[ColumnInfo]  # the table's columns as of these changes, typed for the warehouse
    keys: list[str]


@dataclass
class Transaction:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime
    changes: list[tuple[ChangedTable, TableChange]]


@dataclass(frozen=True)
class SlotHealth:
    exists: bool
    lost: bool = False  # invalidated: it fell further behind than max_slot_wal_keep_size allows
    confirmed_lsn: int | None = None
    problem: str | None = None  # a self-managed slot that cannot be used (other database, plugin)


# --- the CDC session ---------------------------------------------------------------------------------------


class PostgresCdc:
    """One source's slot and publication, used over one connection (a context manager)."""

    def __init__(self, config: Mapping[str, Any], *, slot: str, publication: str, managed: bool) -> None:
        self.config = config
        self.slot = slot
        self.publication = publication
        self.managed = managed  # posthog mode: this backend creates and changes them
        self._target: _Target = _target(config)
        self._connection: psycopg.Connection[Any] | None = None
        self._exit_stack = contextlib.ExitStack()
        self._relations: dict[int, Relation] = {}
        self._types: dict[int, tuple[str, int, str, str | None, int, bool, bool]] = {}
        # Per relation oid: the Relation message it was built from (a new one after a schema change) and
        # the table with its value loaders.
        self._tables: dict[int, tuple[Relation, ChangedTable, list[Callable[[bytes], Any]]]] = {}

    def __enter__(self) -> PostgresCdc:
        self._connection = self._exit_stack.enter_context(_connect(self._target))
        # Text forms the value loaders below read back.
        for setting in ("IntervalStyle = 'iso_8601'", "DateStyle = 'ISO'", "bytea_output = 'hex'"):
            self._connection.execute(sql.SQL("SET ") + sql.SQL(setting))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._connection = None
        self._exit_stack.close()  # the connection, then its SSH tunnel (if any, and not the job's)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        assert self._connection is not None, "use PostgresCdc as a context manager"
        return self._connection

    @property
    def schema(self) -> str:
        return self._target.schema

    def _run(self, action: str, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        try:
            cursor = self.connection.execute(query, params)
            return cursor.fetchall() if cursor.description else []
        except psycopg.Error as error:
            raise SourceError(f"{action} failed: {self._target.scrub(str(error)).strip()}") from None

    def slot_health(self) -> SlotHealth:
        rows = self._run(
            "Reading the replication slot",
            "SELECT confirmed_flush_lsn::text, wal_status, database = current_database(), plugin "
            "FROM pg_replication_slots WHERE slot_name = %s",
            (self.slot,),
        )
        if not rows:
            return SlotHealth(exists=False)
        confirmed, wal_status, same_database, plugin = rows[0]
        problem = None
        if not same_database:
            problem = (
                f"Replication slot '{self.slot}' belongs to another database; create one in this database."
            )
        elif plugin != "pgoutput":
            problem = f"Replication slot '{self.slot}' uses the {plugin} plugin; CDC needs a pgoutput slot."
        return SlotHealth(
            exists=True,
            lost=wal_status == "lost" or confirmed is None,
            confirmed_lsn=parse_lsn(confirmed) if confirmed else None,
            problem=problem,
        )

    def prepare(self, tables: list[str]) -> None:
        """posthog mode: the publication holds exactly `tables` and the slot exists (created after the
        publication, so decoding never starts before it). self_managed: both must exist, with the tables."""
        if not self.managed:
            self._check_self_managed(tables)
            return
        publication = sql.Identifier(self.publication)
        exists = self._run(
            "Reading the publication", "SELECT 1 FROM pg_publication WHERE pubname = %s", (self.publication,)
        )
        if not exists:
            self._run("Creating the publication", sql.SQL("CREATE PUBLICATION {}").format(publication))
        published = set(self.published_tables())
        wanted = set(tables)
        for table in sorted(wanted - published):
            self._run(
                f"Adding '{table}' to publication '{self.publication}'",
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}.{}").format(
                    publication, sql.Identifier(self.schema), sql.Identifier(table)
                ),
            )
        for table in sorted(published - wanted):
            self._run(
                f"Removing '{table}' from publication '{self.publication}'",
                sql.SQL("ALTER PUBLICATION {} DROP TABLE {}.{}").format(
                    publication, sql.Identifier(self.schema), sql.Identifier(table)
                ),
            )
        health = self.slot_health()
        if health.exists and health.lost:
            self.drop_slot()
        if not health.exists or health.lost:
            self._run(
                "Creating the replication slot",
                "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')",
                (self.slot,),
            )

    def published_tables(self) -> list[str]:
        rows = self._run(
            "Reading the publication",
            "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND schemaname = %s",
            (self.publication, self.schema),
        )
        return [row[0] for row in rows]

    def _check_self_managed(self, tables: list[str]) -> None:
        errors = _check_self_managed(
            self.connection, [(self.schema, table) for table in tables], self.slot, self.publication
        )
        if errors:
            raise SourceError(" ".join(errors))
        missing = sorted(set(tables) - set(self.published_tables()))
        if missing:
            listed = ", ".join(
                sql.Identifier(self.schema, table).as_string(self.connection) for table in missing
            )
            raise SourceError(
                f"Publication '{self.publication}' does not include {listed}. Add them with: "
                f"ALTER PUBLICATION {sql.Identifier(self.publication).as_string(self.connection)} "
                f"ADD TABLE {listed};"
            )

    def drop_slot(self) -> None:
        self._run(
            "Dropping the replication slot",
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
            (self.slot,),
        )

    def column_has_default(self, table: str, column: str) -> bool:
        rows = self._run(
            "Reading column defaults",
            "SELECT a.atthasdef OR a.atthasmissing FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attname = %s AND NOT a.attisdropped",
            (self.schema, table, column),
        )
        return bool(rows and rows[0][0])

    def current_lsn(self) -> int:
        """The flushed WAL position: every transaction that commits later commits after it."""
        return parse_lsn(
            self._run("Reading the WAL position", "SELECT pg_current_wal_flush_lsn()::text")[0][0]
        )

    @contextmanager
    def exported_snapshot(self) -> Iterator[tuple[int, str]]:
        """(consistent point, snapshot id) of a temporary slot, valid while the block runs."""
        params = {**self._target.params, "replication": "database"}
        # through the same SSH tunnel as the source's other connections, when it has one
        with _connect(dataclasses.replace(self._target, params=params)) as replication:
            name = f"wmcp_snapshot_{uuid.uuid4().hex[:16]}"
            result = replication.pgconn.exec_(
                f'CREATE_REPLICATION_SLOT "{name}" TEMPORARY LOGICAL pgoutput EXPORT_SNAPSHOT'.encode()
            )
            if result.status != ExecStatus.TUPLES_OK:
                message = (result.error_message or b"").decode(errors="replace").strip()
                raise SourceError(f"Taking a consistent snapshot failed: {self._target.scrub(message)}")
            consistent_point, snapshot = result.get_value(0, 1), result.get_value(0, 2)
            assert consistent_point is not None and snapshot is not None
            yield parse_lsn(consistent_point), snapshot.decode()
        # closing the replication connection drops the temporary slot

    def read_snapshot(self, request: ReadRequest, snapshot: str) -> Iterator[pa.RecordBatch]:
        return PostgresConnector().read(self.config, request, snapshot=snapshot)

    def peek(self, upto_lsn: int, max_changes: int) -> tuple[list[Transaction], int]:
        """Whole transactions committed before `upto_lsn` after the slot's confirmed position (at most about
        `max_changes` messages), and the number of messages read (> max_changes: more may follow)."""
        rows = self._run(
            "Reading changes from the replication slot",
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s, "
            "'proto_version', '1', 'publication_names', %s)",
            (
                self.slot,
                lsn_text(upto_lsn),
                max_changes,
                sql.Identifier(self.publication).as_string(self.connection),
            ),
        )
        raw = decode_pgoutput([row[0] for row in rows], self._relations)
        return [self._load(transaction) for transaction in raw], len(rows)

    def advance(self, lsn: int) -> None:
        """Confirm everything before `lsn` (after the warehouse committed it): the source may recycle that WAL."""
        self._run(
            "Confirming the replication position",
            "SELECT pg_replication_slot_advance(slot_name, %s::pg_lsn) FROM pg_replication_slots "
            "WHERE slot_name = %s AND confirmed_flush_lsn < %s::pg_lsn",
            (lsn_text(lsn), self.slot, lsn_text(lsn)),
        )

    def to_batch(
        self, columns: list[ColumnInfo], rows: list[tuple[Any, ...]], qualified: str
    ) -> pa.RecordBatch:
        """Rows of Python values (as `peek` gives them) as an Arrow batch typed like a snapshot's."""
        schema = pa.schema(
            [
                pa.field(c.name, _arrow_type(c.warehouse_type), metadata={"warehouse_type": c.warehouse_type})
                for c in columns
            ]
        )
        arrays = []
        for index, column in enumerate(schema):
            values = [row[index] for row in rows]
            if column.type == pa.string():  # a source type this backend keeps as text
                values = [
                    value if value is None or isinstance(value, str) else str(value) for value in values
                ]
            elif pa.types.is_decimal(column.type):
                values = [_nan_to_null(value) for value in values]
            try:
                arrays.append(pa.array(values, type=column.type))
            except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
                raise SourceError(
                    f"Column '{column.name}' of '{qualified}' has a value that does not fit "
                    f"{columns[index].warehouse_type}: {error}"
                ) from None
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    # Values.

    def _load(self, raw: RawTransaction) -> Transaction:
        loaded = Transaction(raw.commit_lsn, raw.end_lsn, raw.commit_time, [])
        for change in raw.changes:
            relation = change.relation
            cached = self._tables.get(relation.oid)
            if cached is None or cached[0] is not relation:
                cached = (relation, *self._table(relation))
                self._tables[relation.oid] = cached
            _, table, loaders = cached
            names = [column.name for column in relation.columns]
            new = old = old_text = None
            unchanged: set[str] = set()
            if change.new is not None:
                new = {}
                for name, load, value in zip(names, loaders, change.new, strict=True):
                    if value is UNCHANGED:
                        unchanged.add(name)
                    else:
                        new[name] = None if value is None else load(value)
            if change.old is not None:
                sent = [(n, ld, v) for n, ld, v in zip(names, loaders, change.old, strict=True)]
                old = {n: None if v is None or v is UNCHANGED else ld(v) for n, ld, v in sent}
                old_text = {n: None if v is None or v is UNCHANGED else bytes(v).decode() for n, _, v in sent}
                if change.old_is_key:
                    old = {n: v for n, v in old.items() if n in table.keys}
                    old_text = {n: v for n, v in old_text.items() if n in table.keys}
            loaded.changes.append(
                (table, TableChange(change.operation, new, old, old_text, frozenset(unchanged)))
            )
        return loaded

    def _table(self, relation: Relation) -> tuple[ChangedTable, list[Callable[[bytes], Any]]]:
        unknown = [c.type_oid for c in relation.columns if c.type_oid not in self._types]
        if unknown:
            for row in self._run("Reading column types", _TYPES_SQL, (unknown,)):
                self._types[row[0]] = row[1:]
        columns, loaders = [], []
        for column in relation.columns:
            info, load = self._loader(column)
            columns.append(info)
            loaders.append(load)
        keys = [c.name for c in relation.columns if c.is_key]
        return ChangedTable(relation.schema, relation.name, columns, keys), loaders

    def _loader(self, column: RelationColumn) -> tuple[ColumnInfo, Callable[[bytes], Any]]:
        formatted, base_oid, base, element, domain_typmod, is_enum, element_is_enum = self._types[
            column.type_oid
        ]
        pg = _PgColumn(
            name=column.name,
            data_type=_display_type(formatted),
            is_nullable=True,
            base_type=base,
            element_type=element,
            typmod=domain_typmod if domain_typmod != -1 else column.typmod,
            is_enum=bool(is_enum),
            element_is_enum=bool(element_is_enum),
        )
        info = ColumnInfo(column.name, pg.data_type, True, pg.warehouse_type)
        landing = pg.warehouse_type.removesuffix("[]")
        is_array = pg.warehouse_type.endswith("[]")
        adapters = self.connection.adapters
        text_array_class = adapters.get_loader(1009, Format.TEXT)  # text[]
        assert text_array_class is not None
        text_array = text_array_class(1009, self.connection)

        def decoded(value: bytes) -> str:
            return bytes(value).decode()

        load: Callable[[bytes], Any]
        if landing in ("VARCHAR", "JSON", "UUID"):
            load = text_array.load if is_array else decoded
        elif landing == "INTERVAL":
            if is_array:
                load = lambda value: [  # noqa: E731
                    None if item is None else _iso_interval(item) for item in text_array.load(value)
                ]
            else:
                load = lambda value: _iso_interval(bytes(value).decode())  # noqa: E731
        else:
            loader_class = adapters.get_loader(base_oid, Format.TEXT)
            load = decoded if loader_class is None else loader_class(base_oid, self.connection).load
        return info, load


def _nan_to_null(value: Any) -> Any:
    # DECIMAL has no NaN; Postgres numeric does. NULL is the closest faithful value (as a snapshot reads it).
    if isinstance(value, Decimal) and value.is_nan():
        return None
    return value


def drop_slot_and_publication(config: Mapping[str, Any], slot: str, publication: str) -> None:
    """Remove what posthog mode created at the source (CDC turned off, source deleted)."""
    with PostgresCdc(config, slot=slot, publication=publication, managed=True) as cdc:
        cdc.drop_slot()
        cdc._run(
            "Dropping the publication",
            sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)),
        )
