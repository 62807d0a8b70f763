"""The Postgres connector: check credentials, list tables and check CDC readiness (psycopg 3), and stream
a table as Arrow batches (ADBC's binary COPY, postgres_arrow.py).

Types land in DuckDB faithfully (see `warehouse_type`); where DuckDB has no lossless equivalent the
value lands as its Postgres text form in VARCHAR. In particular an unconstrained `numeric` (or one
wider than DECIMAL(38)) lands as VARCHAR holding the exact decimal text rather than a lossy DOUBLE,
and is then not offered as an incremental field (its text does not sort numerically).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import conninfo, sql

from warehouse_mcp.embedded.connectors import ssh_tunnel, tls
from warehouse_mcp.embedded.connectors.base import (
    ColumnInfo,
    IncrementalCandidate,
    IncrementalFieldType,
    ReadRequest,
    SourceError,
    TableInfo,
    pick_columns,
)
from warehouse_mcp.embedded.connectors.connection_strings import connection_string_password
from warehouse_mcp.embedded.connectors.postgres_arrow import NESTED_PREFIX, read_query

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
COUNT_ROWS_UP_TO_BYTES = 64 * 1024 * 1024  # tables without statistics are counted when at most this big
CDC_MIN_SERVER_VERSION = 130000

_SIMPLE_TYPES = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "bool": "BOOLEAN",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
    "name": "VARCHAR",
    "date": "DATE",
    "time": "TIME",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMPTZ",
    "json": "JSON",
    "jsonb": "JSON",
    "uuid": "UUID",
    "bytea": "BLOB",
    "interval": "INTERVAL",
}
# Types psycopg already returns as str: no ::text cast needed when they land as VARCHAR.
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name"})
_INCREMENTAL_TYPES: dict[str, IncrementalFieldType] = {
    "int2": "integer",
    "int4": "integer",
    "int8": "integer",
    "numeric": "numeric",
    "timestamp": "timestamp",
    "timestamptz": "timestamp",
    "date": "date",
}

# --- connection -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Where and as whom to connect, plus the values that must never appear in a message."""

    params: dict[str, Any]
    host: str
    port: str
    database: str
    user: str
    schema: str
    secrets: tuple[str, ...]
    tunnel: ssh_tunnel.TunnelConfig | None = None

    @property
    def where(self) -> str:
        """The database as the error messages name it, with the hop it is reached through."""
        if self.tunnel is None:
            return f"{self.host}:{self.port}"
        return f"the database at {self.host}:{self.port} through SSH host {self.tunnel.where}"

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text


def _target(config: Mapping[str, Any]) -> _Target:
    tunnel = ssh_tunnel.tunnel_config(config)
    params: dict[str, Any] = {}
    connection_string = str(config.get("connection_string") or "").strip()
    if connection_string:
        try:
            params = conninfo.conninfo_to_dict(connection_string)
        except psycopg.ProgrammingError:
            raise SourceError(
                "The connection string is not a valid PostgreSQL connection string "
                "(expected postgresql://user:password@host:5432/database)"
            ) from None
    # The form's fields win; a connection string only fills what they leave out (PostHog parses the
    # string into the fields, so the fields are what a later edit changes).
    for key, libpq_key in (("host", "host"), ("port", "port"), ("database", "dbname"), ("user", "user")):
        value = config.get(key)
        if value is not None and str(value).strip():
            params[libpq_key] = str(value).strip()
    password = config.get("password")
    if password is not None and str(password) != "":
        params["password"] = str(password)
    port = str(params.get("port") or "5432")
    if not port.isdigit():
        raise SourceError(f"Port must be a number, got '{port}'")
    params["port"] = port
    params.update(tls.libpq_settings(config, params, require=tunnel is not None and tunnel.require_tls))
    params["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    secrets = [str(params.get("password") or ""), connection_string]
    secrets.append(connection_string_password(connection_string) or "")
    secrets.extend(tunnel.secrets if tunnel else ())
    schema = str(config.get("schema") or "").strip() or "public"
    return _Target(
        params=params,
        host=str(params.get("host") or "localhost"),
        port=port,
        database=str(params.get("dbname") or ""),
        user=str(params.get("user") or ""),
        schema=schema,
        secrets=tuple(sorted({s for s in secrets if s}, key=len, reverse=True)),
        tunnel=tunnel,
    )


@contextlib.contextmanager
def _effective_params(target: _Target) -> Iterator[dict[str, Any]]:
    destination = str(target.params.get("hostaddr") or target.host)
    with ssh_tunnel.open_forward(target.tunnel, destination, int(target.port)) as (address, port):
        params = dict(target.params)
        if target.tunnel is not None:
            # `host` stays the database's own name: TLS verifies the server certificate against it.
            params["hostaddr"] = address
            params["port"] = str(port)
        yield params


@contextlib.contextmanager
def connection_params(config: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The libpq keyword parameters that reach the source's database, for any libpq-based client
    (a replication connection adds `replication="database"`; a URI is
    `psycopg.conninfo.make_conninfo(**params)`): TLS settings applied, and through the source's SSH
    tunnel, which stays open while inside (one per `ssh_tunnel.tunnel_scope()`, e.g. per sync job).
    The parameters hold the password: never log them."""
    with _effective_params(_target(config)) as params:
        yield params


_AUTH_FAILURES = (
    "password authentication failed",
    "SCRAM exchange",
    "SASL authentication failed",
    "no password supplied",
    "no pg_hba.conf entry",
    "is not permitted to log in",
)
_ROLE_MISSING = re.compile(r'role ".*" does not exist')


def _driver_reason(message: str) -> str:
    """The useful part of a libpq error: 'FATAL:  password authentication failed ...' → after 'failed: '."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        index = line.rfind("failed: ")
        if index >= 0 and line[index + len("failed: ") :].strip():
            reason = line[index + len("failed: ") :].strip()
            return re.sub(r"^(FATAL|ERROR):\s+", "", reason)
    return lines[0] if lines else "unknown error"


def _connect_error(error: psycopg.Error, target: _Target) -> SourceError:
    reason = target.scrub(_driver_reason(str(error)))
    if any(marker in reason for marker in _AUTH_FAILURES) or _ROLE_MISSING.search(reason):
        return SourceError(f"Invalid credentials: {reason}")
    return SourceError(f"Could not connect to {target.where}: {reason}")


@contextlib.contextmanager
def _connect(
    target: _Target,
    *,
    params: dict[str, Any] | None = None,
    autocommit: bool = True,
    read_only: bool = False,
) -> Iterator[psycopg.Connection[Any]]:
    """A connection (closed on exit) at `params` (from `_effective_params`), or through a tunnel of its own."""
    with contextlib.ExitStack() as stack:
        if params is None:
            params = stack.enter_context(_effective_params(target))
        try:
            connection = psycopg.connect(**params, autocommit=autocommit)
        except psycopg.Error as error:
            raise _connect_error(error, target) from None
        with connection:
            connection.read_only = read_only
            connection.execute("SET TimeZone = 'UTC'")  # timestamptz values arrive in UTC
            if not autocommit:
                connection.commit()
            yield connection


# --- types ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PgColumn:
    name: str
    data_type: str  # PostHog-style display name
    is_nullable: bool
    base_type: str  # pg_type.typname after resolving a domain ("_int4" for int4[])
    element_type: str | None  # for arrays
    typmod: int
    is_enum: bool
    element_is_enum: bool

    @property
    def warehouse_type(self) -> str:
        if self.element_type is not None:
            return f"{_scalar_warehouse_type(self.element_type, self.typmod, self.element_is_enum)}[]"
        return _scalar_warehouse_type(self.base_type, self.typmod, self.is_enum)

    @property
    def incremental_type(self) -> IncrementalFieldType | None:
        if self.element_type is not None:
            return None
        if self.base_type == "numeric" and not self.warehouse_type.startswith("DECIMAL"):
            return None
        return _INCREMENTAL_TYPES.get(self.base_type)

    def select_expression(self) -> sql.Composable:
        """The column as selected: cast to text where it lands as text-like but psycopg would not give str."""
        column = sql.Identifier(self.name)
        scalar = self.element_type or self.base_type
        landing = self.warehouse_type.removesuffix("[]")
        if landing in ("VARCHAR", "JSON", "UUID") and scalar not in _TEXT_TYPES:
            cast = sql.SQL("text[]" if self.element_type else "text")
            return sql.SQL("{}::{} AS {}").format(column, cast, column)
        return column


def _numeric_precision_scale(typmod: int) -> tuple[int, int] | None:
    if typmod < 4:
        return None
    packed = typmod - 4
    precision = (packed >> 16) & 0xFFFF
    scale = ((packed & 0x7FF) ^ 1024) - 1024  # PG 15 allows a negative scale
    return precision, scale


def _scalar_warehouse_type(typname: str, typmod: int, is_enum: bool) -> str:
    if is_enum:
        return "VARCHAR"
    if typname == "numeric":
        bounds = _numeric_precision_scale(typmod)
        if bounds and 1 <= bounds[0] <= 38 and 0 <= bounds[1] <= bounds[0]:
            return f"DECIMAL({bounds[0]},{bounds[1]})"
        return "VARCHAR"
    return _SIMPLE_TYPES.get(typname, "VARCHAR")


def _display_type(formatted: str) -> str:
    """format_type without its modifier, with information_schema's names: 'numeric(12,2)' → 'numeric'."""
    name = re.sub(r"\(\d+(,\s*-?\d+)?\)", "", formatted)
    return {"bpchar": "character", "bpchar[]": "character[]"}.get(name, name)


_COLUMNS_SQL = """
SELECT c.relname,
       a.attname,
       format_type(a.atttypid, NULL),
       NOT a.attnotnull,
       bt.typname,
       et.typname,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       bt.typtype = 'e',
       coalesce(et.typtype = 'e', false)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE n.nspname = %(schema)s
  AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
  AND (%(table)s::text IS NULL OR c.relname = %(table)s::text)
ORDER BY c.relname, a.attnum
"""


def _columns(
    connection: psycopg.Connection[Any], schema: str, table: str | None
) -> dict[str, list[_PgColumn]]:
    tables: dict[str, list[_PgColumn]] = {}
    rows = connection.execute(_COLUMNS_SQL, {"schema": schema, "table": table}).fetchall()
    for relname, name, formatted, nullable, base, element, typmod, is_enum, element_is_enum in rows:
        tables.setdefault(relname, []).append(
            _PgColumn(
                name=name,
                data_type=_display_type(formatted),
                is_nullable=bool(nullable),
                base_type=base,
                element_type=element,
                typmod=int(typmod),
                is_enum=bool(is_enum),
                element_is_enum=bool(element_is_enum),
            )
        )
    return tables


# --- discovery ----------------------------------------------------------------------------------------

_PRIMARY_KEYS_SQL = """
SELECT c.relname, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = %s
ORDER BY c.relname, k.position
"""

# Columns that lead an index: a cursor on them is read without scanning the table.
_INDEXED_SQL = """
SELECT DISTINCT c.relname, a.attname
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
WHERE n.nspname = %s
"""

# Statistics of a table, or of a partitioned table's leaf partitions.
_SIZES_SQL = """
SELECT c.relname,
       sum(greatest(leaf.reltuples, 0))::float8,
       bool_or(leaf.reltuples < 0 OR (leaf.relpages = 0 AND pg_relation_size(leaf.oid) > 0)),
       sum(pg_relation_size(leaf.oid))::bigint,
       obj_description(c.oid, 'pg_class')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT tree.relid FROM pg_partition_tree(c.oid) tree WHERE tree.isleaf AND c.relkind = 'p'
    UNION ALL SELECT c.oid WHERE c.relkind = 'r'
) leaves
JOIN pg_class leaf ON leaf.oid = leaves.relid
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
GROUP BY c.oid, c.relname
"""


def _row_estimate(
    connection: psycopg.Connection[Any], schema: str, table: str, estimate: float, unknown: bool, size: int
) -> int | None:
    if not unknown:
        return int(estimate)
    if size > COUNT_ROWS_UP_TO_BYTES:
        return int(estimate) if estimate > 0 else None
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    try:
        row = connection.execute(query).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None
    return int(row[0]) if row else None


def _table_info(
    name: str,
    columns: list[_PgColumn],
    primary_keys: list[str],
    row_estimate: int | None,
    description: str | None,
    indexed: frozenset[str] = frozenset(),
) -> TableInfo:
    candidates = [
        IncrementalCandidate(
            field=column.name,
            field_type=field_type,
            nullable=column.is_nullable,
            is_indexed=column.name in indexed,
        )
        for column in columns
        if (field_type := column.incremental_type) is not None
    ]
    return TableInfo(
        name=name,
        columns=[ColumnInfo(c.name, c.data_type, c.is_nullable, c.warehouse_type) for c in columns],
        primary_keys=primary_keys,
        incremental_fields=candidates,
        row_estimate=row_estimate,
        supports_incremental=bool(candidates),
        supports_append=bool(candidates),
        cdc_available=bool(primary_keys),
        description=description,
    )


# --- reading -------------------------------------------------------------------------------------------


def _arrow_type(warehouse_type: str) -> pa.DataType:
    if warehouse_type.endswith("[]"):
        return pa.list_(_arrow_type(warehouse_type[:-2]))
    decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", warehouse_type)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    return {
        "SMALLINT": pa.int16(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "FLOAT": pa.float32(),
        "DOUBLE": pa.float64(),
        "BOOLEAN": pa.bool_(),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "BLOB": pa.binary(),
        "INTERVAL": pa.month_day_nano_interval(),
    }.get(warehouse_type, pa.string())


# --- what a read selects ----------------------------------------------------------------------------------

# A row's xmin is a 32-bit transaction id that wraps around; the cursor keeps 64-bit ids. A row's 64-bit id
# is the one congruent to its xmin in the 2^32 ids up to a reference just above the ids in use when the
# query runs (the snapshot's next id, plus room for the ids taken before the read's own snapshot).
# Postgres freezes rows long before their xmin is 2^31 old, so every row written since the saved id maps
# right as long as that id lies within the window; an older frozen row may map into it and is read again.
XID_SPAN = 1 << 32
XID_AHEAD = 1 << 30


def _snapshot(connection: psycopg.Connection[Any]) -> tuple[int, int]:
    """(xmin, xmax) of the current snapshot as 64-bit transaction ids."""
    version = int(_scalar(connection, "SHOW server_version_num"))
    if version >= 130000:
        query = "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint FROM pg_current_snapshot() s"
    else:
        query = "SELECT txid_snapshot_xmin(s), txid_snapshot_xmax(s) FROM txid_current_snapshot() s"
    row = connection.execute(query).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _row_xid(reference: int) -> sql.Composable:
    """The 64-bit id of the transaction that wrote each row: its xmin placed in the 2^32 ids up to `reference`."""
    return sql.SQL("({ref} - (({ref} - xmin::text::bigint) %% {span} + {span}) %% {span})").format(
        ref=sql.Literal(reference), span=sql.Literal(XID_SPAN)
    )


def select_query(
    schema: str, table: str, columns: list[_PgColumn], request: ReadRequest, *, next_xid: int
) -> tuple[sql.Composed, tuple[Any, ...]]:
    """The SELECT for `request` (see ReadRequest for which rows); `next_xid` is a snapshot's xmax taken
    before the query's own snapshot."""
    # Arrow lists have one dimension and Postgres does not enforce an array column's: read_query checks.
    dimensions = [
        sql.SQL("array_ndims({}) AS {}").format(
            sql.Identifier(column.name), sql.Identifier(NESTED_PREFIX + column.name)
        )
        for column in columns
        if column.element_type is not None
    ]
    query = sql.SQL("SELECT {} FROM {}.{}").format(
        sql.SQL(", ").join([*(column.select_expression() for column in columns), *dimensions]),
        sql.Identifier(schema),
        sql.Identifier(table),
    )
    params: list[Any] = []
    conditions: list[sql.Composable] = []
    field = sql.Identifier(request.incremental_field) if request.incremental_field else None
    if field is not None and request.cursor is not None:
        # A str cursor (ISO date/time) is sent untyped, so Postgres reads it as the column's type.
        conditions += [sql.SQL("{} >= %s").format(field), sql.SQL("{} IS NULL").format(field)]
        params.append(request.cursor)
    if request.since_xid is not None:
        reference = next_xid + XID_AHEAD
        if reference - request.since_xid >= XID_SPAN:
            conditions.append(sql.SQL("true"))  # 4 billion transactions since: read everything again
        else:
            conditions.append(sql.SQL("{} >= %s").format(_row_xid(reference)))
            params.append(request.since_xid)
    if conditions:
        query += sql.SQL(" WHERE ") + sql.SQL(" OR ").join(conditions)
    if field is not None:
        query += sql.SQL(" ORDER BY {}").format(field)
    return query, tuple(params)


# --- the connector ----------------------------------------------------------------------------------------


class PostgresConnector:
    source_type = "Postgres"

    def validate(self, config: Mapping[str, Any]) -> None:
        target = _target(config)
        with _connect(target) as connection:
            row = connection.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (target.schema,)
            ).fetchone()
        if row is None:
            raise SourceError(f"Schema '{target.schema}' does not exist in database '{target.database}'")

    def discover_every_schema(self, config: Mapping[str, Any]) -> list[TableInfo]:
        """Every user schema's tables, named `schema.table` (a direct source with a blank `schema`)."""
        target = _target(config)
        try:
            with _connect(target) as connection:
                names = [
                    row[0]
                    for row in connection.execute(
                        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                        "AND nspname <> 'information_schema' ORDER BY nspname"
                    )
                ]
        except psycopg.Error as error:
            raise SourceError(f"Could not list the schemas: {target.scrub(str(error))}") from None
        return [
            replace(table, name=f"{schema}.{table.name}")
            for schema in names
            for table in self.discover({**config, "schema": schema})
        ]

    def discover(self, config: Mapping[str, Any]) -> list[TableInfo]:
        target = _target(config)
        try:
            with _connect(target) as connection:
                tables = _columns(connection, target.schema, None)
                keys: dict[str, list[str]] = {}
                for table, column in connection.execute(_PRIMARY_KEYS_SQL, (target.schema,)):
                    keys.setdefault(table, []).append(column)
                indexed: dict[str, set[str]] = {}
                for table, column in connection.execute(_INDEXED_SQL, (target.schema,)):
                    indexed.setdefault(table, set()).add(column)
                infos = []
                for name, estimate, unknown, size, description in connection.execute(
                    _SIZES_SQL, (target.schema,)
                ):
                    if name not in tables:
                        continue
                    rows = _row_estimate(
                        connection, target.schema, name, estimate, bool(unknown), int(size or 0)
                    )
                    infos.append(
                        _table_info(
                            name,
                            tables[name],
                            keys.get(name, []),
                            rows,
                            description,
                            frozenset(indexed.get(name, ())),
                        )
                    )
        except psycopg.Error as error:
            raise SourceError(
                f"Could not list the tables of schema '{target.schema}': {target.scrub(str(error))}"
            ) from None
        return sorted(infos, key=lambda info: info.name)

    def read(
        self, config: Mapping[str, Any], request: ReadRequest, *, snapshot: str | None = None
    ) -> Generator[pa.RecordBatch, None, None]:
        """The table as Arrow batches; with `snapshot` (an exported snapshot id) as of that snapshot (CDC)."""
        target = _target(config)
        with _effective_params(target) as params:  # the tunnel (if any) stays open until the last row
            yield from self._read(target, params, request, snapshot)

    def _read(
        self, target: _Target, params: dict[str, Any], request: ReadRequest, snapshot: str | None
    ) -> Generator[pa.RecordBatch, None, None]:
        table = request.table.name
        qualified = f"{target.schema}.{table}"
        with _connect(target, params=params, autocommit=False, read_only=True) as connection:
            # Taken before the read's own snapshot (read_query opens its connection later), so every row
            # that read misses was written by a transaction at or above this xmin.
            request.marks.snapshot_xmin, next_xid = _snapshot(connection)
            columns = _columns(connection, target.schema, table).get(table)
            selected = pick_columns(columns, request, qualified, target.user)
            query, query_params = select_query(target.schema, table, selected, request, next_xid=next_xid)
            schema = pa.schema(
                [
                    pa.field(
                        c.name, _arrow_type(c.warehouse_type), metadata={"warehouse_type": c.warehouse_type}
                    )
                    for c in selected
                ]
            )
            logger.debug(
                "Reading %s: %d columns, incremental field %s, after %r",
                qualified,
                len(selected),
                request.incremental_field,
                request.cursor,
            )
            rendered = psycopg.ClientCursor(connection).mogrify(query, query_params)
        yield from read_query(
            params,
            rendered,
            schema,
            batch_rows=max(1, int(request.batch_rows)),
            qualified=qualified,
            scrub=target.scrub,
            snapshot=snapshot,
        )


# --- CDC readiness ------------------------------------------------------------------------------------------


def _split_table(name: str, default_schema: str) -> tuple[str, str]:
    schema, dot, table = name.partition(".")
    return (schema, table) if dot else (default_schema, name)


def _quoted(connection: psycopg.Connection[Any], *parts: str) -> str:
    return ".".join(sql.Identifier(part).as_string(connection) for part in parts)


def check_cdc_prerequisites(
    config: Mapping[str, Any],
    tables: list[str],
    management_mode: str = "posthog",
    slot_name: str | None = None,
    publication_name: str | None = None,
) -> list[str]:
    """Every reason the database is not ready for CDC (api-semantics §4); [] when it is."""
    target = _target(config)
    with _connect_for_cdc_check(target) as connection:
        qualified = [_split_table(name, target.schema) for name in tables]
        errors = [*_check_version(connection), *_check_wal_level(connection)]
        missing = _missing_tables(connection, qualified)
        errors += [
            f"Table '{schema}.{table}' has no primary key. CDC requires a primary key on each table."
            for schema, table in qualified
            if (schema, table) not in missing and not _has_primary_key(connection, schema, table)
        ]
        errors += _check_select(connection, qualified)
        if management_mode == "self_managed":
            errors += _check_self_managed(connection, qualified, slot_name, publication_name)
        else:
            errors += _check_replication_role(connection, target.user)
            errors += _check_slot_capacity(connection)
    return errors


@contextlib.contextmanager
def _connect_for_cdc_check(target: _Target) -> Iterator[psycopg.Connection[Any]]:
    with contextlib.ExitStack() as stack:
        try:
            connection = stack.enter_context(_connect(target))
        except SourceError as error:
            raise SourceError(f"Could not connect to Postgres to check prerequisites: {error}") from None
        yield connection


def _scalar(connection: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> Any:
    row = connection.execute(query, params).fetchone()
    return row[0] if row else None


def _check_version(connection: psycopg.Connection[Any]) -> list[str]:
    version = int(_scalar(connection, "SHOW server_version_num"))
    if version < CDC_MIN_SERVER_VERSION:
        return [
            f"PostgreSQL 13 or later is required for CDC. Your server is running version {version // 10000}."
        ]
    return []


def _check_wal_level(connection: psycopg.Connection[Any]) -> list[str]:
    level = _scalar(connection, "SHOW wal_level")
    if level != "logical":
        return [
            f"wal_level must be set to 'logical' (currently '{level}'). "
            "This requires a PostgreSQL server restart after changing the configuration."
        ]
    return []


def _missing_tables(
    connection: psycopg.Connection[Any], tables: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    return {
        (schema, table)
        for schema, table in tables
        if _scalar(connection, "SELECT to_regclass(%s) IS NULL", (_quoted(connection, schema, table),))
    }


def _has_primary_key(connection: psycopg.Connection[Any], schema: str, table: str) -> bool:
    # pg_catalog, not information_schema: the latter hides constraints from roles that do not own the table.
    return bool(
        _scalar(
            connection,
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s)",
            (schema, table),
        )
    )


def _check_select(connection: psycopg.Connection[Any], tables: list[tuple[str, str]]) -> list[str]:
    errors = []
    for schema, table in tables:
        query = sql.SQL("SELECT 1 FROM {}.{} LIMIT 0").format(sql.Identifier(schema), sql.Identifier(table))
        try:
            connection.execute(query)
        except psycopg.errors.InsufficientPrivilege:
            errors.append(f"No SELECT permission on table '{schema}.{table}'.")
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            errors.append(f"Table '{schema}.{table}' does not exist.")
    return errors


def _check_replication_role(connection: psycopg.Connection[Any], user: str) -> list[str]:
    allowed = _scalar(
        connection, "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    )
    if not allowed:
        name = _quoted(connection, user or str(_scalar(connection, "SELECT current_user")))
        return [
            "The database user must have the REPLICATION role for PostHog-managed CDC. "
            f"Run: ALTER USER {name} WITH REPLICATION;"
        ]
    return []


def _check_slot_capacity(connection: psycopg.Connection[Any]) -> list[str]:
    limit = int(_scalar(connection, "SHOW max_replication_slots"))
    used = int(_scalar(connection, "SELECT count(*) FROM pg_replication_slots"))
    if used >= limit:
        return [
            f"No replication slot capacity available ({used}/{limit} slots in use). "
            "Increase max_replication_slots in your PostgreSQL configuration."
        ]
    return []


def _check_self_managed(
    connection: psycopg.Connection[Any],
    tables: list[tuple[str, str]],
    slot_name: str | None,
    publication_name: str | None,
) -> list[str]:
    errors = []
    if not slot_name:
        errors.append("Replication slot name is required for self-managed mode.")
    elif not _slot_exists(connection, slot_name):
        literal = sql.Literal(slot_name).as_string(connection)
        errors.append(
            f"Replication slot '{slot_name}' does not exist. "
            f"Create it with: SELECT pg_create_logical_replication_slot({literal}, 'pgoutput');"
        )
    if not publication_name:
        errors.append("Publication name is required for self-managed mode.")
    elif not _publication_exists(connection, publication_name):
        listed = ", ".join(_quoted(connection, schema, table) for schema, table in tables) or "..."
        errors.append(
            f"Publication '{publication_name}' does not exist. "
            f"Create it with: CREATE PUBLICATION {_quoted(connection, publication_name)} FOR TABLE {listed};"
        )
    return errors


def _slot_exists(connection: psycopg.Connection[Any], slot_name: str) -> bool:
    return bool(
        _scalar(connection, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot_name,))
    )


def _publication_exists(connection: psycopg.Connection[Any], publication_name: str) -> bool:
    return bool(
        _scalar(connection, "SELECT count(*) FROM pg_publication WHERE pubname = %s", (publication_name,))
    )


def cdc_status(
    config: Mapping[str, Any], slot_name: str | None, publication_name: str | None
) -> dict[str, Any]:
    """{slot_exists, publication_exists, lag_bytes, published_tables} of a CDC source, read live."""
    target = _target(config)
    with _connect(target) as connection:
        slot_exists = bool(slot_name) and _slot_exists(connection, slot_name or "")
        publication_exists = bool(publication_name) and _publication_exists(
            connection, publication_name or ""
        )
        lag = None
        if slot_exists:
            lag = _scalar(
                connection,
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (slot_name,),
            )
        published: list[str] = []
        if publication_exists:
            rows = connection.execute(
                "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s "
                "ORDER BY schemaname, tablename",
                (publication_name,),
            ).fetchall()
            published = [f"{schema}.{table}" for schema, table in rows]
    return {
        "slot_exists": slot_exists,
        "publication_exists": publication_exists,
        "lag_bytes": int(lag) if lag is not None else None,
        "published_tables": published,
    }
