"""The MySQL / MariaDB connector: check credentials, list tables (PyMySQL), stream a table as Arrow batches
(connectorx, Arrow-native, on plain connections; PyMySQL on TLS ones, which connectorx cannot open).

Types land in DuckDB without loss (see `_warehouse_type`). Choices worth knowing:
- `tinyint(1)` lands as TINYINT, not BOOLEAN: MySQL's BOOLEAN is only an alias and the column can hold
  any value from -128 to 127. Unsigned integers widen to the next signed type (`bigint unsigned` → UBIGINT).
- `decimal(p,s)` → DECIMAL(p,s) up to p = 38; wider decimals land as their exact text in VARCHAR.
- `datetime` → TIMESTAMP; `timestamp` → TIMESTAMPTZ (read in a UTC session); zero dates → NULL.
- `time` → TIME; a MySQL duration outside 00:00:00–23:59:59 fails the read rather than being altered.
- `bit(n)` → BIGINT (UBIGINT for bit(64)); `year` → SMALLINT; `enum`/`set` → VARCHAR;
  binary strings, blobs and spatial values → BLOB; `json` (and MariaDB's json_valid longtext) → JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import re
import socket
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pymysql
import pymysql.cursors

from warehouse_mcp.embedded.connectors import mysql_cursor_floor, ssh_tunnel, tls
from warehouse_mcp.embedded.connectors.base import (
    ColumnInfo,
    IncrementalCandidate,
    IncrementalFieldType,
    ReadRequest,
    SourceError,
    TableInfo,
    on_abort,
    pick_columns,
)
from warehouse_mcp.embedded.connectors.mysql_arrow import INVALID_PREFIX, read_query

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10
# Bounds each step (connect, TLS, send, answer) of the connection that stops an abandoned read.
KILL_TIMEOUT_SECONDS = 5
SSL_UNSUPPORTED = "The server does not support SSL; set using_ssl to false"

_ER_ACCESS_DENIED = 1045
_ER_DBACCESS_DENIED = 1044
_ER_NO_SUCH_THREAD = 1094
_CR_SSL_REQUIRED = 2026

_INTEGER_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_INCREMENTAL_TYPES: dict[str, IncrementalFieldType] = {
    **dict.fromkeys(_INTEGER_TYPES, "integer"),
    "decimal": "numeric",
    "numeric": "numeric",
    "datetime": "datetime",
    "timestamp": "timestamp",
    "date": "date",
}
_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_BINARY_TYPES = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
_SPATIAL_TYPES = {
    "geometry",
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
}


_IN_A_DAY = "{0} >= '00:00:00' AND {0} < '24:00:00'"


def _quote(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


# --- connection -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    database: str
    schema: str
    tls: tls.MysqlTls
    tunnel: ssh_tunnel.TunnelConfig | None = None

    @property
    def where(self) -> str:
        """The database as the error messages name it, with the hop it is reached through."""
        if self.tunnel is None:
            return f"{self.host}:{self.port}"
        return f"the database at {self.host}:{self.port} through SSH host {self.tunnel.where}"

    def scrub(self, text: str) -> str:
        secrets = [self.password, *(self.tunnel.secrets if self.tunnel else ())]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            text = text.replace(secret, "********")
        return text


def _target(config: Mapping[str, Any]) -> _Target:
    tunnel = ssh_tunnel.tunnel_config(config)
    port = str(config.get("port") or "3306").strip()
    if not port.isdigit():
        raise SourceError(f"Port must be a number, got '{port}'")
    database = str(config.get("database") or "").strip()
    return _Target(
        host=str(config.get("host") or "").strip() or "localhost",
        port=int(port),
        user=str(config.get("user") or "").strip(),
        password=str(config.get("password") or ""),
        database=database,
        schema=str(config.get("schema") or "").strip() or database,
        tls=tls.mysql_settings(config, require=tunnel is not None and tunnel.require_tls),
        tunnel=tunnel,
    )


def _connect_args(target: _Target) -> dict[str, Any]:
    return {
        "host": target.host,  # also the name TLS verifies the certificate against
        "port": target.port,
        "user": target.user,
        "password": target.password,
        "database": target.database or None,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "charset": "utf8mb4",
        "init_command": "SET time_zone = '+00:00'",
        "ssl": target.tls.context(),
        "ssl_disabled": target.tls.mode is None,  # PyMySQL would otherwise try TLS on its own
        "autocommit": True,
    }


@contextlib.contextmanager
def connection_args(config: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """PyMySQL keyword arguments that reach the source's database, TLS settings applied, with the
    address to open the TCP connection to (`address`: the database, or the local end of the source's SSH
    tunnel, which stays open while inside; one per `ssh_tunnel.tunnel_scope()`, e.g. per sync job).
    `host` stays the database's own name, which TLS verifies the certificate against. The arguments
    hold the password: never log them."""
    target = _target(config)
    with ssh_tunnel.open_forward(target.tunnel, target.host, target.port) as address:
        yield {**_connect_args(target), "address": address}


def _connect(
    target: _Target, address: tuple[str, int], *, timeout: float | None = None
) -> pymysql.connections.Connection[Any]:
    """A connection to the database, opened at `address` (see `connection_args`). `timeout` bounds every
    step of a short-lived connection: connecting, and each read and write after it."""
    limits: dict[str, float] = {}
    if timeout is not None:
        limits = {"connect_timeout": timeout, "read_timeout": timeout, "write_timeout": timeout}
    try:
        connection = pymysql.connect(**{**_connect_args(target), **limits}, defer_connect=True)
        if address == (target.host, target.port):
            connection.connect()
        else:
            sock = socket.create_connection(address, timeout or CONNECT_TIMEOUT_SECONDS)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection.connect(sock)
        return connection
    except pymysql.err.MySQLError as error:
        raise _connect_error(error, target) from None
    except OSError as error:
        raise SourceError(f"Could not connect to {target.where}: {target.scrub(str(error))}") from None


@contextlib.contextmanager
def _connection(target: _Target) -> Iterator[pymysql.connections.Connection[Any]]:
    with ssh_tunnel.open_forward(target.tunnel, target.host, target.port) as address:
        connection = _connect(target, address)
        try:
            yield connection
        finally:
            connection.close()


def _error_parts(error: pymysql.err.MySQLError) -> tuple[int | None, str]:
    if len(error.args) >= 2 and isinstance(error.args[0], int):
        return error.args[0], str(error.args[1])
    return None, str(error)


def _connect_error(error: pymysql.err.MySQLError, target: _Target) -> SourceError:
    code, message = _error_parts(error)
    message = target.scrub(message)
    if code == _CR_SSL_REQUIRED or "SSL is required" in message:
        return SourceError(SSL_UNSUPPORTED)
    if code in (_ER_ACCESS_DENIED, _ER_DBACCESS_DENIED):
        return SourceError(f"Invalid credentials: {message}")
    if "CERTIFICATE_VERIFY_FAILED" in message or "certificate verify failed" in message:
        return SourceError(
            f"Could not connect to {target.where}: the server's TLS certificate was not accepted ({message})"
        )
    return SourceError(f"Could not connect to {target.where}: {message}")


# --- types ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MyColumn:
    name: str
    data_type: str  # information_schema DATA_TYPE: "int", "decimal", "datetime", ...
    column_type: str  # information_schema COLUMN_TYPE: "int(10) unsigned", "decimal(12,2)", ...
    is_nullable: bool
    precision: int | None
    scale: int | None
    is_json: bool

    @property
    def warehouse_type(self) -> str:
        kind = self.data_type
        unsigned = "unsigned" in self.column_type
        if kind == "tinyint":
            return "SMALLINT" if unsigned else "TINYINT"
        if kind == "smallint":
            return "INTEGER" if unsigned else "SMALLINT"
        if kind in ("mediumint", "int", "integer"):
            return "BIGINT" if unsigned and kind != "mediumint" else "INTEGER"
        if kind == "bigint":
            return "UBIGINT" if unsigned else "BIGINT"
        if kind in ("decimal", "numeric"):
            precision, scale = self.precision or 10, self.scale or 0
            return f"DECIMAL({precision},{scale})" if precision <= 38 else "VARCHAR"
        if kind == "bit":
            return "UBIGINT" if (self.precision or 1) > 63 else "BIGINT"
        if kind in _TEXT_TYPES:
            return "JSON" if self.is_json else "VARCHAR"
        if kind in _BINARY_TYPES or kind in _SPATIAL_TYPES:
            return "BLOB"
        return {
            "float": "FLOAT",
            "double": "DOUBLE",
            "real": "DOUBLE",
            "year": "SMALLINT",
            "date": "DATE",
            "datetime": "TIMESTAMP",
            "timestamp": "TIMESTAMPTZ",
            "time": "TIME",
            "json": "JSON",
        }.get(kind, "VARCHAR")

    def select_expression(self) -> str:
        """The column as connectorx must read it to land exactly (it aborts on what it cannot represent)."""
        column = _quote(self.name)
        kind = self.data_type
        if kind in ("decimal", "numeric", "json"):
            expression = f"CAST({column} AS CHAR)"  # exact text; connectorx decimals hold 28 digits
        elif kind == "bit":
            expression = f"CAST({column} AS UNSIGNED)"
        elif kind in ("date", "datetime", "timestamp"):
            expression = f"IF(MONTH({column}) = 0 OR DAYOFMONTH({column}) = 0, NULL, {column})"  # zero dates
        elif kind == "time":
            expression = f"IF({_IN_A_DAY.format(column)}, {column}, NULL)"
        elif kind in _SPATIAL_TYPES:
            expression = f"CAST({column} AS BINARY)"
        else:
            return column
        return f"{expression} AS {column}"

    def invalid_value_expression(self) -> str | None:
        """A column holding the text of a value that cannot land (a TIME outside one day), else NULL."""
        if self.data_type != "time":
            return None
        column = _quote(self.name)
        return f"IF({_IN_A_DAY.format(column)}, NULL, CAST({column} AS CHAR)) AS {_quote(INVALID_PREFIX + self.name)}"

    @property
    def incremental_type(self) -> IncrementalFieldType | None:
        if self.data_type in ("decimal", "numeric") and not self.warehouse_type.startswith("DECIMAL"):
            return None
        return _INCREMENTAL_TYPES.get(self.data_type)


def _arrow_type(warehouse_type: str) -> pa.DataType:
    decimal = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", warehouse_type)
    if decimal:
        return pa.decimal128(int(decimal.group(1)), int(decimal.group(2)))
    return {
        "TINYINT": pa.int8(),
        "SMALLINT": pa.int16(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "UBIGINT": pa.uint64(),
        "FLOAT": pa.float32(),
        "DOUBLE": pa.float64(),
        "DATE": pa.date32(),
        "TIME": pa.time64("us"),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
        "BLOB": pa.binary(),
    }.get(warehouse_type, pa.string())


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def _date_or_null(value: Any) -> Any:
    return None if isinstance(value, str | bytes) else value  # zero dates ('0000-00-00') arrive as text


def _utc(value: Any) -> Any:
    value = _date_or_null(value)
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else value


def _bit(value: Any) -> Any:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else value


def _converter(column: _MyColumn, qualified: str) -> Callable[[Any], Any]:
    landing = column.warehouse_type

    def time_of_day(value: Any) -> Any:
        if not isinstance(value, dt.timedelta):
            return value
        if dt.timedelta(0) <= value < dt.timedelta(days=1):
            return (dt.datetime.min + value).time()
        raise SourceError(
            f"Column '{column.name}' of '{qualified}' holds the duration {value}, outside the 00:00:00–23:59:59 "
            "a TIME can store. Exclude the column from the sync (enabled_columns) or convert it at the source."
        )

    if column.data_type == "bit":
        return _bit
    if landing == "TIMESTAMPTZ":
        return _utc
    if landing in ("DATE", "TIMESTAMP"):
        return _date_or_null
    if landing == "TIME":
        return time_of_day
    if landing in ("VARCHAR", "JSON"):
        return _text
    return lambda value: value


def _record_batch(
    rows: list[tuple[Any, ...]], schema: pa.Schema, converters: list[Callable[[Any], Any]], qualified: str
) -> pa.RecordBatch:
    arrays = []
    for index, (field, convert) in enumerate(zip(schema, converters, strict=True)):
        try:
            arrays.append(pa.array([convert(row[index]) for row in rows], type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as error:
            landing = field.metadata[b"warehouse_type"].decode()
            raise SourceError(
                f"Column '{field.name}' of '{qualified}' has a value that does not fit {landing}: {error}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- the connector ----------------------------------------------------------------------------------------

_COLUMNS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE "
    "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND (%s IS NULL OR TABLE_NAME = %s) "
    "ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
_TABLES_SQL = (
    "SELECT TABLE_NAME, TABLE_ROWS, TABLE_COMMENT FROM information_schema.TABLES "
    "WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'"
)
# Columns that lead an index: a cursor on them is read without scanning the table.
_INDEXED_SQL = (
    "SELECT DISTINCT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
    "WHERE TABLE_SCHEMA = %s AND SEQ_IN_INDEX = 1"
)
_PRIMARY_KEYS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE "
    "WHERE TABLE_SCHEMA = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
# MariaDB's JSON is a LONGTEXT with a json_valid() check (MySQL 8 has a real JSON type and no TABLE_NAME here).
_JSON_CHECKS_SQL = (
    "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s"
)
_JSON_VALID = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


def _json_columns(cursor: Any, schema: str) -> set[tuple[str, str]]:
    try:
        cursor.execute(_JSON_CHECKS_SQL, (schema,))
    except pymysql.err.MySQLError:
        return set()
    found = set()
    for table, clause in cursor.fetchall():
        for match in _JSON_VALID.finditer(str(clause)):
            found.add((table, match.group(1).replace("``", "`")))
    return found


def _columns(cursor: Any, schema: str, table: str | None) -> dict[str, list[_MyColumn]]:
    json_columns = _json_columns(cursor, schema)
    cursor.execute(_COLUMNS_SQL, (schema, table, table))
    tables: dict[str, list[_MyColumn]] = {}
    for table_name, name, data_type, column_type, nullable, precision, scale in cursor.fetchall():
        tables.setdefault(table_name, []).append(
            _MyColumn(
                name=name,
                data_type=str(data_type).lower(),
                column_type=str(column_type).lower(),
                is_nullable=nullable == "YES",
                precision=int(precision) if precision is not None else None,
                scale=int(scale) if scale is not None else None,
                is_json=(table_name, name) in json_columns,
            )
        )
    return tables


def _cursor_value(column: _MyColumn, value: Any) -> Any:
    """The saved cursor (JSON: ISO text for dates and times) as the value MySQL compares against."""
    if not isinstance(value, str):
        return value
    kind = column.incremental_type
    if kind == "integer":
        return int(value)
    if kind == "numeric":
        return Decimal(value)
    if kind == "date":
        return dt.date.fromisoformat(value[:10])
    if kind in ("datetime", "timestamp"):
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is not None:  # the session is UTC
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        return parsed
    return value


class MySQLConnector:
    source_type = "MySQL"

    def validate(self, config: Mapping[str, Any]) -> None:
        target = _target(config)
        with _connection(target) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (target.schema,)
            )
            exists = cursor.fetchone() is not None
        if not exists:
            raise SourceError(
                f"Schema '{target.schema}' does not exist or is not visible to user '{target.user}'"
            )

    def discover(self, config: Mapping[str, Any]) -> list[TableInfo]:
        target = _target(config)
        try:
            with _connection(target) as connection, connection.cursor() as cursor:
                columns = _columns(cursor, target.schema, None)
                cursor.execute(_PRIMARY_KEYS_SQL, (target.schema,))
                keys: dict[str, list[str]] = {}
                for table, column in cursor.fetchall():
                    keys.setdefault(table, []).append(column)
                cursor.execute(_INDEXED_SQL, (target.schema,))
                indexed: dict[str, set[str]] = {}
                for table, column in cursor.fetchall():
                    indexed.setdefault(table, set()).add(column)
                cursor.execute(_TABLES_SQL, (target.schema,))
                tables = cursor.fetchall()
        except pymysql.err.MySQLError as error:
            raise SourceError(
                f"Could not list the tables of schema '{target.schema}': {target.scrub(_error_parts(error)[1])}"
            ) from None
        infos = []
        for name, rows, comment in tables:
            if name not in columns:
                continue
            table_columns = columns[name]
            candidates = [
                IncrementalCandidate(
                    field=c.name,
                    field_type=kind,
                    nullable=c.is_nullable,
                    is_indexed=c.name in indexed.get(name, set()),
                )
                for c in table_columns
                if (kind := c.incremental_type) is not None
            ]
            infos.append(
                TableInfo(
                    name=name,
                    columns=[
                        ColumnInfo(c.name, c.column_type, c.is_nullable, c.warehouse_type)
                        for c in table_columns
                    ],
                    primary_keys=keys.get(name, []),
                    incremental_fields=candidates,
                    row_estimate=int(rows) if rows is not None else None,
                    supports_incremental=bool(candidates),
                    supports_append=bool(candidates),
                    description=comment or None,
                )
            )
        return sorted(infos, key=lambda info: info.name)

    def read(self, config: Mapping[str, Any], request: ReadRequest) -> Generator[pa.RecordBatch, None, None]:
        target = _target(config)
        table = request.table.name
        qualified = f"{target.schema}.{table}"
        forward = ssh_tunnel.open_forward(target.tunnel, target.host, target.port)
        address = forward.__enter__()
        try:
            connection = _connect(target, address)
        except BaseException:
            forward.__exit__(None, None, None)
            raise
        stream: pymysql.cursors.SSCursor | None = None
        finished = False
        try:
            with connection.cursor() as cursor:
                columns = _columns(cursor, target.schema, table).get(table)
                selected = pick_columns(columns, request, qualified, target.user)
                # Before the read's own snapshot (the SELECT below, or connectorx's later connection).
                request.marks.cursor_floor = _cursor_floor(
                    cursor, _cursor_column(request, columns or []), qualified, target
                )
            # connectorx (Arrow-native, no Python per row) has no TLS for MySQL: TLS reads stay on PyMySQL.
            arrow_native = target.tls.mode is None
            query, params = _select(
                target.schema, table, selected, list(columns or []), request, arrow_native
            )
            schema = pa.schema(
                [
                    pa.field(
                        c.name, _arrow_type(c.warehouse_type), metadata={"warehouse_type": c.warehouse_type}
                    )
                    for c in selected
                ]
            )
            batch_rows = max(1, int(request.batch_rows))
            logger.debug(
                "Reading %s: %d columns, incremental field %s, after %r, %s",
                qualified,
                len(selected),
                request.incremental_field,
                request.cursor,
                "connectorx" if arrow_native else "PyMySQL",
            )
            if arrow_native:
                with connection.cursor() as cursor:
                    rendered = cursor.mogrify(query, params)
                connection.close()
                finished = True
                yield from read_query(
                    host=address[0],
                    port=address[1],
                    user=target.user,
                    password=target.password,
                    database=target.database or target.schema,
                    query=rendered,
                    schema=schema,
                    batch_rows=batch_rows,
                    qualified=qualified,
                    scrub=target.scrub,
                    invalid=lambda name, value: _outside_a_day(name, value, qualified),
                )
                return
            converters = [_converter(column, qualified) for column in selected]
            stream = connection.cursor(pymysql.cursors.SSCursor)
            kill = _QueryKill(target, address, connection.thread_id(), qualified)
            with on_abort(kill.start):
                stream.execute(query, params)
                while True:
                    rows = stream.fetchmany(batch_rows)
                    if not rows:
                        break
                    yield _record_batch(rows, schema, converters, qualified)
            stream.close()
            connection.close()
            finished = True
        except pymysql.err.MySQLError as error:
            raise SourceError(
                f"Reading '{qualified}' failed: {target.scrub(_error_parts(error)[1])}"
            ) from None
        finally:
            if not finished:
                _abandon(connection, stream)
            forward.__exit__(None, None, None)  # the tunnel (if any) after the last row


def _select(
    schema: str,
    table: str,
    selected: list[_MyColumn],
    columns: list[_MyColumn],
    request: ReadRequest,
    arrow_native: bool,
) -> tuple[str, tuple[Any, ...]]:
    if arrow_native:
        expressions = [c.select_expression() for c in selected]
        expressions += [check for c in selected if (check := c.invalid_value_expression()) is not None]
    else:
        expressions = [_quote(c.name) for c in selected]
    query = f"SELECT {', '.join(expressions)} FROM {_quote(schema)}.{_quote(table)}"
    params: tuple[Any, ...] = ()
    if request.incremental_field:
        field = _quote(request.incremental_field)
        if request.cursor is not None:
            # The table's column, not a select alias (WHERE cannot see aliases; ORDER BY would prefer them).
            qualified_field = f"{_quote(schema)}.{_quote(table)}.{field}"
            # At, not above, the cursor (rows sharing it may have arrived since); NULL cursors every time.
            query += f" WHERE {qualified_field} >= %s OR {qualified_field} IS NULL"
            cursor_column = _cursor_column(request, columns)
            assert cursor_column is not None  # pick_columns checked it
            params = (_cursor_value(cursor_column, request.cursor),)
        query += f" ORDER BY {_quote(schema)}.{_quote(table)}.{field}"
    return query, params


def _cursor_column(request: ReadRequest, columns: list[_MyColumn]) -> _MyColumn | None:
    return next((c for c in columns if c.name == request.incremental_field), None)


def _cursor_floor(cursor: Any, column: _MyColumn | None, qualified: str, target: _Target) -> Any:
    """See mysql_cursor_floor; None for a cursor that is not a date or time, or (with a warning: late
    commits then go undetected) when the server does not let this user read its running transactions."""
    if column is None or column.data_type not in mysql_cursor_floor.DATE_TIME_TYPES:
        return None
    try:
        return mysql_cursor_floor.cursor_floor(cursor, column.data_type)
    except pymysql.err.MySQLError as error:
        logger.warning(
            "Reading '%s' without its late-commit floor: a row a long transaction commits after this read with "
            "a '%s' value below the saved cursor will not be synced (docs/sync-guarantees.md, Late commits). "
            "Reading information_schema.INNODB_TRX failed: %s (it needs the PROCESS privilege for user '%s').",
            qualified,
            column.name,
            target.scrub(_error_parts(error)[1]),
            target.user,
        )
        return None


def _outside_a_day(name: str, value: str, qualified: str) -> SourceError:
    return SourceError(
        f"Column '{name}' of '{qualified}' holds the duration {value}, outside the 00:00:00–23:59:59 a TIME "
        "can store. Exclude the column from the sync (enabled_columns) or convert it at the source."
    )


class _QueryKill:
    """Stops the running query of a read its sync abandons (`base.on_abort`), so a query stuck at the
    source (a locked table, a long scan) does not run on there holding a connection and locks until the
    source answers: `KILL QUERY` from a second connection opened as the read's was (TLS, SSH tunnel). The
    read then fails unreported and drops its connection (`_abandon`).

    The kill runs on a thread of its own, each step bounded by KILL_TIMEOUT_SECONDS: whoever abandons the
    read must not wait on a source that does not answer."""

    def __init__(self, target: _Target, address: tuple[str, int], thread_id: int, qualified: str) -> None:
        self._target = target
        self._address = address
        self._thread_id = thread_id
        self._qualified = qualified

    def start(self) -> None:
        threading.Thread(target=self._kill, name="mysql-read-kill", daemon=True).start()

    def _kill(self) -> None:
        try:
            connection = _connect(self._target, self._address, timeout=KILL_TIMEOUT_SECONDS)
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"KILL QUERY {self._thread_id:d}")
            finally:
                connection.close()
        except pymysql.err.MySQLError as error:
            code, message = _error_parts(error)
            if code != _ER_NO_SUCH_THREAD:  # else the read ended on its own meanwhile
                self._failed(message)
            return
        except SourceError as error:
            self._failed(str(error))
            return
        logger.info("Stopped the abandoned read of '%s' at the source", self._qualified)

    def _failed(self, reason: str) -> None:
        logger.warning(
            "Could not stop the abandoned read of '%s' at the source: %s",
            self._qualified,
            self._target.scrub(reason),
        )


def _abandon(connection: Any, stream: Any) -> None:
    """Drop the connection of a read stopped early (cancelled, or failed on a value).

    Closing an unbuffered cursor politely would first read every remaining row of the table, so the
    pending result is marked finished and the socket closed instead.
    """
    result = getattr(stream, "_result", None)
    if result is not None:
        result.unbuffered_active = False
    with contextlib.suppress(Exception):
        connection._force_close()
