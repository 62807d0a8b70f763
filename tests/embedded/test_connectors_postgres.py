"""The Postgres connector against the real local server: credentials, discovery, reads, CDC readiness."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import CANARY_PASSWORD, Database, free_port
from warehouse_mcp.embedded.connectors.base import ReadRequest, SourceError, TableInfo
from warehouse_mcp.embedded.connectors.postgres import PostgresConnector, cdc_status, check_cdc_prerequisites

pytestmark = pytest.mark.postgres

CONNECTOR = PostgresConnector()

EVERYTHING_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'happy');
CREATE TABLE everything (
    id bigint PRIMARY KEY,
    small smallint,
    num integer,
    amount numeric(12, 2),
    exact numeric,
    ratio real,
    score double precision,
    note text,
    code varchar(20),
    initials char(3),
    flag boolean,
    day date,
    at_time time,
    local_ts timestamp,
    zoned_ts timestamptz,
    doc json,
    docb jsonb,
    uid uuid,
    raw bytea,
    tags integer[],
    words text[],
    feeling mood,
    span interval,
    address inet
);
INSERT INTO everything VALUES
    (1, 7, 42, 1234.56, 3.14159265358979323846264338327950288419716939937510, 1.5, 2.25, 'hello', 'var', 'abc',
     true, '2024-01-02', '10:11:12.5', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02',
     '{"b": 1, "a": [1, 2]}', '{"b": 1, "a": 2}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\xdeadbeef',
     '{1,2,NULL}', '{"x","y"}', 'happy', '1 year 2 mons 3 days 04:05:06.789', '10.0.0.1'),
    (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL),
    (3, -3, -1, -0.01, 'NaN', 'Infinity', -0.5, '', 'ünïcødé', 'x', false, '1999-12-31', '23:59:59.999999',
     '1999-12-31 23:59:59', '1999-12-31 23:59:59-05', '[]', '{}', '00000000-0000-0000-0000-000000000000', '\\x',
     '{}', '{NULL}', 'sad', '-1 mons +2 days -00:00:01', '::1');
"""

EXPECTED_TYPES = {
    "id": ("bigint", False, "BIGINT"),
    "small": ("smallint", True, "SMALLINT"),
    "num": ("integer", True, "INTEGER"),
    "amount": ("numeric", True, "DECIMAL(12,2)"),
    "exact": ("numeric", True, "VARCHAR"),
    "ratio": ("real", True, "FLOAT"),
    "score": ("double precision", True, "DOUBLE"),
    "note": ("text", True, "VARCHAR"),
    "code": ("character varying", True, "VARCHAR"),
    "initials": ("character", True, "VARCHAR"),
    "flag": ("boolean", True, "BOOLEAN"),
    "day": ("date", True, "DATE"),
    "at_time": ("time without time zone", True, "TIME"),
    "local_ts": ("timestamp without time zone", True, "TIMESTAMP"),
    "zoned_ts": ("timestamp with time zone", True, "TIMESTAMPTZ"),
    "doc": ("json", True, "JSON"),
    "docb": ("jsonb", True, "JSON"),
    "uid": ("uuid", True, "UUID"),
    "raw": ("bytea", True, "BLOB"),
    "tags": ("integer[]", True, "INTEGER[]"),
    "words": ("text[]", True, "VARCHAR[]"),
    "feeling": ("mood", True, "VARCHAR"),
    "span": ("interval", True, "INTERVAL"),
    "address": ("inet", True, "VARCHAR"),
}

UTC = dt.UTC


@pytest.fixture
def everything(postgres_db: Database) -> Database:
    postgres_db.execute(EVERYTHING_DDL)
    return postgres_db


def _table(config: dict, name: str) -> TableInfo:
    return next(table for table in CONNECTOR.discover(config) if table.name == name)


def _read_rows(config: dict, request: ReadRequest) -> list[dict]:
    return [row for batch in CONNECTOR.read(config, request) for row in batch.to_pylist()]


# --- validate -----------------------------------------------------------------------------------------


def test_validate_accepts_the_real_credentials(postgres_db: Database) -> None:
    CONNECTOR.validate(postgres_db.config)


def test_wrong_password_is_invalid_credentials_without_the_password(postgres_db: Database) -> None:
    wrong = "not-the-password-7731"
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({**postgres_db.config, "password": wrong})
    message = str(raised.value)
    assert message.startswith("Invalid credentials")
    assert "password authentication failed" in message
    assert wrong not in message and CANARY_PASSWORD not in message


def test_wrong_password_in_a_connection_string_is_not_repeated(postgres_db: Database) -> None:
    wrong = "conn-string-pw-0042"
    connection_string = f"postgresql://wmcp_secure:{wrong}@127.0.0.1:5432/{postgres_db.name}"
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({"connection_string": connection_string})
    assert str(raised.value).startswith("Invalid credentials")
    assert wrong not in str(raised.value) and connection_string not in str(raised.value)


def test_a_connection_string_alone_is_enough(postgres_db: Database) -> None:
    config = {
        "connection_string": f"postgresql://wmcp_secure:{CANARY_PASSWORD}@127.0.0.1:5432/{postgres_db.name}",
        "schema": "public",
    }
    CONNECTOR.validate(config)


def test_unreachable_port(postgres_db: Database) -> None:
    port = free_port()
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({**postgres_db.config, "port": port})
    message = str(raised.value)
    assert message.startswith(f"Could not connect to 127.0.0.1:{port}: ")
    assert "refused" in message.lower() and CANARY_PASSWORD not in message


def test_missing_schema_and_ssh_tunnel_are_clear_errors(postgres_db: Database) -> None:
    with pytest.raises(SourceError, match="Schema 'nowhere' does not exist in database"):
        CONNECTOR.validate({**postgres_db.config, "schema": "nowhere"})
    with pytest.raises(SourceError, match="SSH tunnel: the SSH username is missing"):
        CONNECTOR.validate(
            {**postgres_db.config, "ssh_tunnel": {"enabled": True, "host": "bastion", "port": 22}}
        )


# --- discover ---------------------------------------------------------------------------------------------


def test_discovery_of_every_type(everything: Database) -> None:
    table = _table(everything.config, "everything")
    assert [column.name for column in table.columns] == list(EXPECTED_TYPES)
    assert {c.name: (c.data_type, c.is_nullable, c.warehouse_type) for c in table.columns} == EXPECTED_TYPES
    assert table.primary_keys == ["id"]
    assert table.cdc_available and table.supports_incremental and table.supports_append
    assert [(c.field, c.field_type, c.nullable) for c in table.incremental_fields] == [
        ("id", "integer", False),
        ("small", "integer", True),
        ("num", "integer", True),
        ("amount", "numeric", True),
        ("day", "date", True),
        ("local_ts", "timestamp", True),
        ("zoned_ts", "timestamp", True),
    ]
    assert table.row_estimate == 3  # never analysed: counted


def test_discovery_lists_tables_and_partitioned_tables_sorted(postgres_db: Database) -> None:
    postgres_db.execute(
        "CREATE TABLE zeta (b int, a int, note text, PRIMARY KEY (b, a))",
        "CREATE TABLE alpha (x text)",
        "COMMENT ON TABLE alpha IS 'the first'",
        "CREATE VIEW beta AS SELECT 1 AS one",
        "CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)",
        "CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "INSERT INTO events VALUES (1, '2024-02-01'), (2, '2024-03-01')",
        "CREATE SCHEMA other",
        "CREATE TABLE other.hidden (id int)",
    )
    tables = CONNECTOR.discover(postgres_db.config)
    assert [table.name for table in tables] == ["alpha", "events", "zeta"]
    alpha, events, zeta = tables
    assert zeta.primary_keys == ["b", "a"]  # key order, not column order
    assert alpha.description == "the first" and alpha.row_estimate == 0
    assert not alpha.supports_incremental and not alpha.cdc_available
    assert events.row_estimate == 2
    other = CONNECTOR.discover({**postgres_db.config, "schema": "other"})
    assert [table.name for table in other] == ["hidden"]


# --- read ------------------------------------------------------------------------------------------------


def test_full_read_returns_exactly_the_rows(everything: Database) -> None:
    table = _table(everything.config, "everything")
    rows = _read_rows(everything.config, ReadRequest(table=table))
    assert len(rows) == 3
    first, empty, third = sorted(rows, key=lambda row: row["id"])
    assert first == {
        "id": 1,
        "small": 7,
        "num": 42,
        "amount": Decimal("1234.56"),
        "exact": "3.14159265358979323846264338327950288419716939937510",
        "ratio": 1.5,
        "score": 2.25,
        "note": "hello",
        "code": "var",
        "initials": "abc",
        "flag": True,
        "day": dt.date(2024, 1, 2),
        "at_time": dt.time(10, 11, 12, 500000),
        "local_ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "zoned_ts": dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
        "doc": '{"b": 1, "a": [1, 2]}',
        "docb": '{"a": 2, "b": 1}',
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "raw": b"\xde\xad\xbe\xef",
        "tags": [1, 2, None],
        "words": ["x", "y"],
        "feeling": "happy",
        "span": pa.MonthDayNano([14, 3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789 * 10**6]),
        "address": "10.0.0.1/32",
    }
    assert empty == {"id": 2, **dict.fromkeys(list(EXPECTED_TYPES)[1:])}
    assert third["exact"] == "NaN" and third["ratio"] == float("inf")
    assert third["amount"] == Decimal("-0.01") and third["code"] == "ünïcødé" and third["note"] == ""
    assert third["zoned_ts"] == dt.datetime(2000, 1, 1, 4, 59, 59, tzinfo=UTC)
    assert third["span"] == pa.MonthDayNano([-1, 2, -(10**9)])
    assert third["raw"] == b"" and third["tags"] == [] and third["words"] == [None]


def test_batches_land_in_duckdb_losslessly(everything: Database) -> None:
    duckdb = pytest.importorskip("duckdb")
    table = _table(everything.config, "everything")
    batches = list(CONNECTOR.read(everything.config, ReadRequest(table=table)))
    connection = duckdb.connect()
    connection.register("batch", pa.Table.from_batches(batches))
    projection = ", ".join(f'CAST("{c.name}" AS {c.warehouse_type}) AS "{c.name}"' for c in table.columns)
    connection.execute(f"CREATE TABLE landed AS SELECT {projection} FROM batch")
    types = connection.execute(
        "SELECT typeof(amount), typeof(docb), typeof(span), typeof(uid) FROM landed"
    ).fetchone()
    assert types == ("DECIMAL(12,2)", "JSON", "INTERVAL", "UUID")
    row = connection.execute(
        "SELECT amount, uid::VARCHAR, docb->>'$.a', tags, span, zoned_ts, raw FROM landed WHERE id = 1"
    ).fetchone()
    assert row == (
        Decimal("1234.56"),
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "2",
        [1, 2, None],
        dt.timedelta(days=14 * 30 + 3, seconds=4 * 3600 + 5 * 60 + 6, microseconds=789000),
        dt.datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC),
        b"\xde\xad\xbe\xef",
    )
    months = connection.execute(
        "SELECT datepart('month', span), datepart('year', span) FROM landed WHERE id = 1"
    ).fetchone()
    assert months == (2, 1)  # months survived as months, not as 30-day blocks


def test_incremental_read_starts_at_the_cursor_and_takes_null_cursors(everything: Database) -> None:
    table = _table(everything.config, "everything")
    rows = _read_rows(
        everything.config, ReadRequest(table=table, columns=["id", "num"], incremental_field="id", cursor=2)
    )
    assert rows == [{"id": 2, "num": None}, {"id": 3, "num": -1}]  # at the cursor too: it may have company
    by_time = _read_rows(
        everything.config,
        ReadRequest(
            table=table, columns=["id"], incremental_field="zoned_ts", cursor="2000-01-01T05:00:00+00:00"
        ),
    )
    # Row 3 is 1999-12-31 23:59:59-05, i.e. 04:59:59 UTC: before the cursor. Row 2's is NULL: always read.
    assert by_time == [{"id": 1}, {"id": 2}]
    ordered = _read_rows(
        everything.config, ReadRequest(table=table, columns=["id"], incremental_field="local_ts")
    )
    assert ordered == [{"id": 3}, {"id": 1}, {"id": 2}]  # first run: everything, in cursor order (NULLs last)
    by_day = _read_rows(
        everything.config,
        ReadRequest(table=table, columns=["day"], incremental_field="day", cursor="2000-01-01"),
    )
    assert by_day == [{"day": dt.date(2024, 1, 2)}, {"day": None}]


def test_batches_are_bounded_by_batch_rows(postgres_db: Database) -> None:
    postgres_db.execute(
        "CREATE TABLE numbers AS SELECT g AS n, md5(g::text) AS label FROM generate_series(1, 25) g"
    )
    table = _table(postgres_db.config, "numbers")
    batches = list(
        CONNECTOR.read(postgres_db.config, ReadRequest(table=table, batch_rows=10, incremental_field="n"))
    )
    assert [batch.num_rows for batch in batches] == [10, 10, 5]
    assert [n for batch in batches for n in batch.column("n").to_pylist()] == list(range(1, 26))
    assert batches[0].schema.field("n").metadata == {b"warehouse_type": b"INTEGER"}


def test_stopping_a_read_early_releases_the_connection(postgres_db: Database) -> None:
    postgres_db.execute("CREATE TABLE numbers AS SELECT g AS n FROM generate_series(1, 100) g")
    table = _table(postgres_db.config, "numbers")
    reader = CONNECTOR.read(postgres_db.config, ReadRequest(table=table, batch_rows=10))
    assert next(reader).num_rows == 10
    reader.close()
    sessions = postgres_db.fetch(
        f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{postgres_db.name}' AND usename = 'wmcp_secure'"
    )
    assert sessions == [(0,)]


def test_a_connection_killed_mid_read_fails_the_read_clearly(postgres_db: Database) -> None:
    postgres_db.execute(
        "CREATE TABLE wide AS SELECT g AS n, md5(g::text) AS label FROM generate_series(1, 1000000) g"
    )
    table = _table(postgres_db.config, "wide")
    reader = CONNECTOR.read(postgres_db.config, ReadRequest(table=table, batch_rows=1000))
    assert next(reader).num_rows == 1000
    killed = postgres_db.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{postgres_db.name}' AND query LIKE 'COPY%'"
    )
    assert killed == [(True,)]
    with pytest.raises(SourceError, match=r"Reading 'public\.wide' failed: ") as raised:
        for _batch in reader:
            pass
    assert CANARY_PASSWORD not in str(raised.value)


def test_read_rejects_unknown_columns_and_tables(everything: Database) -> None:
    table = _table(everything.config, "everything")
    with pytest.raises(SourceError, match=r"Unknown column\(s\) in table 'public.everything': nope"):
        list(CONNECTOR.read(everything.config, ReadRequest(table=table, columns=["id", "nope"])))
    gone = TableInfo(name="gone", columns=[])
    with pytest.raises(SourceError, match=r"Table 'public\.gone' does not exist"):
        list(CONNECTOR.read(everything.config, ReadRequest(table=gone)))


def test_a_value_that_does_not_fit_fails_the_read_clearly(postgres_db: Database) -> None:
    postgres_db.execute(
        "CREATE TABLE grid (id int PRIMARY KEY, cells int[])", "INSERT INTO grid VALUES (1, '{{1,2},{3,4}}')"
    )
    table = _table(postgres_db.config, "grid")
    with pytest.raises(
        SourceError, match=r"Column 'cells' of 'public\.grid' has a value that does not fit INTEGER\[\]"
    ):
        list(CONNECTOR.read(postgres_db.config, ReadRequest(table=table)))


def test_decimals_and_decimal_arrays_arrive_exactly_in_any_batch_size(postgres_db: Database) -> None:
    postgres_db.execute(
        "CREATE TABLE money (id int PRIMARY KEY, amount numeric(38,10), history numeric(5,2)[])",
        "INSERT INTO money VALUES (1, 1234567890123456789012345678.0123456789, '{1.50,NaN,NULL}'), "
        "(2, 'NaN', NULL), (3, -0.0000000001, '{}'), (4, NULL, '{-999.99}')",
    )
    table = _table(postgres_db.config, "money")
    batches = list(CONNECTOR.read(postgres_db.config, ReadRequest(table=table, batch_rows=1)))
    assert [batch.num_rows for batch in batches] == [1, 1, 1, 1]
    assert batches[0].schema.field("history").type == pa.list_(pa.decimal128(5, 2))
    rows = sorted((row for batch in batches for row in batch.to_pylist()), key=lambda row: row["id"])
    assert rows == [
        {
            "id": 1,
            "amount": Decimal("1234567890123456789012345678.0123456789"),
            "history": [Decimal("1.50"), None, None],
        },
        {"id": 2, "amount": None, "history": None},  # DECIMAL has no NaN: NULL
        {"id": 3, "amount": Decimal("-0.0000000001"), "history": []},
        {"id": 4, "amount": None, "history": [Decimal("-999.99")]},
    ]


# --- CDC ----------------------------------------------------------------------------------------------


def test_cdc_prerequisites_pass_for_a_table_with_a_primary_key(everything: Database) -> None:
    assert check_cdc_prerequisites(everything.config, ["everything"], "posthog", None, None) == []
    assert check_cdc_prerequisites(everything.config, ["public.everything"], "posthog", None, None) == []


def test_cdc_prerequisites_name_the_table_without_a_primary_key(postgres_db: Database) -> None:
    postgres_db.execute("CREATE TABLE keyless (a int)")
    errors = check_cdc_prerequisites(postgres_db.config, ["keyless", "missing"], "posthog", None, None)
    assert errors == [
        "Table 'public.keyless' has no primary key. CDC requires a primary key on each table.",
        "Table 'public.missing' does not exist.",
    ]


@pytest.fixture
def plain_role(postgres_db: Database) -> Iterator[str]:
    """A login role with neither REPLICATION nor SUPERUSER (trusted over TCP, like every role but wmcp_secure)."""
    role = f"wmcp_plain_{uuid.uuid4().hex[:8]}"
    postgres_db.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOREPLICATION")
    try:
        yield role
    finally:
        postgres_db.execute(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_cdc_prerequisites_need_replication_and_select(everything: Database, plain_role: str) -> None:
    config = {**everything.config, "user": plain_role, "password": "unused"}
    errors = check_cdc_prerequisites(config, ["everything"], "posthog", None, None)
    assert errors == [
        "No SELECT permission on table 'public.everything'.",
        "The database user must have the REPLICATION role for PostHog-managed CDC. "
        f'Run: ALTER USER "{plain_role}" WITH REPLICATION;',
    ]
    everything.execute(
        f"GRANT SELECT ON everything TO {plain_role}", f"ALTER ROLE {plain_role} WITH REPLICATION"
    )
    assert check_cdc_prerequisites(config, ["everything"], "posthog", None, None) == []


def test_self_managed_mode_needs_an_existing_slot_and_publication(everything: Database) -> None:
    config = everything.config
    assert check_cdc_prerequisites(config, ["everything"], "self_managed", None, None) == [
        "Replication slot name is required for self-managed mode.",
        "Publication name is required for self-managed mode.",
    ]
    slot, publication = f"wmcp_slot_{uuid.uuid4().hex[:8]}", f"wmcp_pub_{uuid.uuid4().hex[:8]}"
    errors = check_cdc_prerequisites(config, ["everything"], "self_managed", slot, publication)
    assert errors == [
        f"Replication slot '{slot}' does not exist. "
        f"Create it with: SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput');",
        f"Publication '{publication}' does not exist. "
        f'Create it with: CREATE PUBLICATION "{publication}" FOR TABLE "public"."everything";',
    ]
    status = cdc_status(config, slot, publication)
    assert status == {
        "slot_exists": False,
        "publication_exists": False,
        "lag_bytes": None,
        "published_tables": [],
    }

    everything.execute(f"CREATE PUBLICATION {publication} FOR TABLE everything")
    everything.execute(
        "SET statement_timeout = '20s'", f"SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    )
    try:
        assert check_cdc_prerequisites(config, ["everything"], "self_managed", slot, publication) == []
        status = cdc_status(config, slot, publication)
        assert status["slot_exists"] and status["publication_exists"]
        assert isinstance(status["lag_bytes"], int) and status["lag_bytes"] >= 0
        assert status["published_tables"] == ["public.everything"]
    finally:
        everything.execute(f"SELECT pg_drop_replication_slot('{slot}')")


def test_cdc_prerequisites_report_an_unreachable_server(postgres_db: Database) -> None:
    port = free_port()
    with pytest.raises(SourceError) as raised:
        check_cdc_prerequisites({**postgres_db.config, "port": port}, ["t"], "posthog", None, None)
    assert str(raised.value).startswith(
        f"Could not connect to Postgres to check prerequisites: Could not connect to 127.0.0.1:{port}"
    )


# --- a throwaway cluster with wal_level=replica ------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def replica_cluster() -> Iterator[dict]:
    """A private Postgres cluster on a free port with wal_level=replica, stopped and removed afterwards."""
    initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdbs:
        reason = "initdb not found under /usr/lib/postgresql/*/bin: cannot start a wal_level=replica cluster"
        if _in_ci():
            pytest.fail(f"CI: {reason}", pytrace=False)
        pytest.skip(reason)
    bindir = Path(initdbs[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="wmcp_pg_replica_"))
    data = root / "data"
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
        "-c wal_level=replica -c fsync=off -c max_connections=10"
    )
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run(
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [*pg_ctl, "-l", str(root / "server.log"), "-o", options, "-w", "-t", "60", "start"],
            check=True,
            capture_output=True,
            timeout=90,
        )
        yield {
            "host": "127.0.0.1",
            "port": port,
            "database": "postgres",
            "user": "postgres",
            "schema": "public",
        }
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_wal_level_replica_is_reported(replica_cluster: dict) -> None:
    from psycopg import connect

    with connect(
        host="127.0.0.1", port=replica_cluster["port"], user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS keyed (id int PRIMARY KEY)")
    errors = check_cdc_prerequisites(replica_cluster, ["keyed"], "posthog", None, None)
    assert errors == [
        "wal_level must be set to 'logical' (currently 'replica'). "
        "This requires a PostgreSQL server restart after changing the configuration."
    ]
