"""The MySQL connector against the real local MariaDB: credentials, discovery, reads."""

from __future__ import annotations

import datetime as dt
import struct
import time
from decimal import Decimal

import pyarrow as pa
import pytest

from tests.conftest import CANARY_PASSWORD, Database, free_port
from warehouse_mcp.embedded.connectors.base import ReadRequest, SourceError, TableInfo
from warehouse_mcp.embedded.connectors.mysql import MySQLConnector

pytestmark = pytest.mark.mysql

CONNECTOR = MySQLConnector()
UTC = dt.UTC

EVERYTHING_DDL = """
CREATE TABLE everything (
    id int unsigned NOT NULL AUTO_INCREMENT,
    tiny tinyint(1),
    small smallint,
    medium mediumint,
    num int,
    big bigint,
    ubig bigint unsigned,
    amount decimal(12, 2),
    huge decimal(50, 2),
    ratio float,
    score double,
    bits bit(5),
    yr year,
    day date,
    at_time time,
    local_ts datetime(6),
    zoned_ts timestamp(3) NULL,
    doc json,
    note text,
    code varchar(20),
    initials char(3),
    mood enum('sad', 'happy'),
    flags set('a', 'b'),
    raw blob,
    bin varbinary(8),
    PRIMARY KEY (id)
) COMMENT 'all the types'
"""

EVERYTHING_ROWS = """
INSERT INTO everything (tiny, small, medium, num, big, ubig, amount, huge, ratio, score, bits, yr, day, at_time,
    local_ts, zoned_ts, doc, note, code, initials, mood, flags, raw, bin) VALUES
    (1, -7, 8000000, 42, -9000000000, 18446744073709551615, 1234.56,
     123456789012345678901234567890123456789012345678.91, 1.5, 2.25, b'10101', 2024, '2024-01-02', '10:11:12',
     '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123', '{"a": [1, 2]}', 'hello', 'ünïcødé', 'ab',
     'happy', 'a,b', x'DEADBEEF', x'00FF'),
    (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL, NULL, NULL, NULL),
    (127, 0, 0, -1, 0, 0, -0.01, 0, 0, -0.5, b'0', 1999, '1999-12-31', '23:59:59', '1999-12-31 23:59:59',
     '1999-12-31 23:59:59', '[]', '', '', '', 'sad', '', x'', x'')
"""

EXPECTED_TYPES = {
    "id": ("int(10) unsigned", False, "BIGINT"),
    "tiny": ("tinyint(1)", True, "TINYINT"),
    "small": ("smallint(6)", True, "SMALLINT"),
    "medium": ("mediumint(9)", True, "INTEGER"),
    "num": ("int(11)", True, "INTEGER"),
    "big": ("bigint(20)", True, "BIGINT"),
    "ubig": ("bigint(20) unsigned", True, "UBIGINT"),
    "amount": ("decimal(12,2)", True, "DECIMAL(12,2)"),
    "huge": ("decimal(50,2)", True, "VARCHAR"),
    "ratio": ("float", True, "FLOAT"),
    "score": ("double", True, "DOUBLE"),
    "bits": ("bit(5)", True, "BIGINT"),
    "yr": ("year(4)", True, "SMALLINT"),
    "day": ("date", True, "DATE"),
    "at_time": ("time", True, "TIME"),
    "local_ts": ("datetime(6)", True, "TIMESTAMP"),
    "zoned_ts": ("timestamp(3)", True, "TIMESTAMPTZ"),
    "doc": ("longtext", True, "JSON"),  # MariaDB: JSON is LONGTEXT CHECK (json_valid(doc))
    "note": ("text", True, "VARCHAR"),
    "code": ("varchar(20)", True, "VARCHAR"),
    "initials": ("char(3)", True, "VARCHAR"),
    "mood": ("enum('sad','happy')", True, "VARCHAR"),
    "flags": ("set('a','b')", True, "VARCHAR"),
    "raw": ("blob", True, "BLOB"),
    "bin": ("varbinary(8)", True, "BLOB"),
}


@pytest.fixture
def everything(mysql_db: Database) -> Database:
    mysql_db.execute(EVERYTHING_DDL, EVERYTHING_ROWS)
    return mysql_db


def _table(config: dict, name: str) -> TableInfo:
    return next(table for table in CONNECTOR.discover(config) if table.name == name)


def _read_rows(config: dict, request: ReadRequest) -> list[dict]:
    return [row for batch in CONNECTOR.read(config, request) for row in batch.to_pylist()]


# --- validate -----------------------------------------------------------------------------------------


def test_validate_accepts_the_real_credentials(mysql_db: Database) -> None:
    CONNECTOR.validate(mysql_db.config)


def test_wrong_password_is_invalid_credentials_without_the_password(mysql_db: Database) -> None:
    wrong = "not-the-password-5521"
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({**mysql_db.config, "password": wrong})
    message = str(raised.value)
    assert message.startswith("Invalid credentials: Access denied for user 'wmcp_secure'")
    assert wrong not in message and CANARY_PASSWORD not in message


def test_unreachable_port(mysql_db: Database) -> None:
    port = free_port()
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({**mysql_db.config, "port": port})
    assert str(raised.value).startswith(f"Could not connect to 127.0.0.1:{port}: ")
    assert CANARY_PASSWORD not in str(raised.value)


def test_ssl_required_against_a_server_without_tls(mysql_db: Database) -> None:
    # Asking for TLS must fail clearly, never fall back to plain text (tests/embedded/test_database_tls.py
    # covers a server with TLS on, as tools/prepare_services.sh sets it up).
    variables = dict(mysql_db.fetch("SHOW VARIABLES LIKE 'have_ssl'"))
    if variables.get("have_ssl") == "YES":
        CONNECTOR.validate({**mysql_db.config, "using_ssl": "true"})
        return
    with pytest.raises(SourceError) as raised:
        CONNECTOR.validate({**mysql_db.config, "using_ssl": "true"})
    assert str(raised.value) == "The server does not support SSL; set using_ssl to false"


def test_missing_schema_and_ssh_tunnel_are_clear_errors(mysql_db: Database) -> None:
    with pytest.raises(SourceError, match="Schema 'nowhere' does not exist"):
        CONNECTOR.validate({**mysql_db.config, "schema": "nowhere"})
    with pytest.raises(SourceError, match="SSH tunnel: the SSH username is missing"):
        CONNECTOR.validate({**mysql_db.config, "ssh_tunnel": {"enabled": "true", "host": "bastion"}})


# --- discover ---------------------------------------------------------------------------------------------


def test_discovery_of_every_type(everything: Database) -> None:
    table = _table(everything.config, "everything")
    assert [column.name for column in table.columns] == list(EXPECTED_TYPES)
    assert {c.name: (c.data_type, c.is_nullable, c.warehouse_type) for c in table.columns} == EXPECTED_TYPES
    assert table.primary_keys == ["id"]
    assert table.description == "all the types"
    assert [(c.field, c.field_type, c.nullable) for c in table.incremental_fields] == [
        ("id", "integer", False),
        ("tiny", "integer", True),
        ("small", "integer", True),
        ("medium", "integer", True),
        ("num", "integer", True),
        ("big", "integer", True),
        ("ubig", "integer", True),
        ("amount", "numeric", True),
        ("day", "date", True),
        ("local_ts", "datetime", True),
        ("zoned_ts", "timestamp", True),
    ]
    assert table.supports_incremental and table.supports_append
    assert isinstance(table.row_estimate, int) and table.row_estimate >= 0


def test_discovery_lists_base_tables_sorted_with_composite_keys(mysql_db: Database) -> None:
    mysql_db.execute(
        "CREATE TABLE zeta (b int, a int, note text, PRIMARY KEY (b, a))",
        "CREATE TABLE alpha (x text)",
        "CREATE VIEW beta AS SELECT 1 AS one",
    )
    tables = CONNECTOR.discover(mysql_db.config)
    assert [table.name for table in tables] == ["alpha", "zeta"]
    assert tables[1].primary_keys == ["b", "a"]
    assert tables[0].primary_keys == [] and not tables[0].supports_incremental


# --- read ------------------------------------------------------------------------------------------------


def test_full_read_returns_exactly_the_rows(everything: Database) -> None:
    table = _table(everything.config, "everything")
    rows = _read_rows(everything.config, ReadRequest(table=table))
    assert len(rows) == 3
    first, empty, third = sorted(rows, key=lambda row: row["id"])
    assert first == {
        "id": 1,
        "tiny": 1,
        "small": -7,
        "medium": 8000000,
        "num": 42,
        "big": -9000000000,
        "ubig": 18446744073709551615,
        "amount": Decimal("1234.56"),
        "huge": "123456789012345678901234567890123456789012345678.91",
        "ratio": 1.5,
        "score": 2.25,
        "bits": 21,
        "yr": 2024,
        "day": dt.date(2024, 1, 2),
        "at_time": dt.time(10, 11, 12),
        "local_ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
        "zoned_ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
        "doc": '{"a": [1, 2]}',
        "note": "hello",
        "code": "ünïcødé",
        "initials": "ab",
        "mood": "happy",
        "flags": "a,b",
        "raw": b"\xde\xad\xbe\xef",
        "bin": b"\x00\xff",
    }
    assert empty == {"id": 2, **dict.fromkeys(list(EXPECTED_TYPES)[1:])}
    assert third["tiny"] == 127 and third["amount"] == Decimal("-0.01") and third["bits"] == 0
    assert third["at_time"] == dt.time(23, 59, 59) and third["raw"] == b"" and third["note"] == ""


def test_batches_land_in_duckdb_losslessly(everything: Database) -> None:
    duckdb = pytest.importorskip("duckdb")
    table = _table(everything.config, "everything")
    batches = list(CONNECTOR.read(everything.config, ReadRequest(table=table)))
    connection = duckdb.connect()
    connection.register("batch", pa.Table.from_batches(batches))
    projection = ", ".join(f'CAST("{c.name}" AS {c.warehouse_type}) AS "{c.name}"' for c in table.columns)
    connection.execute(f"CREATE TABLE landed AS SELECT {projection} FROM batch")
    row = connection.execute(
        "SELECT typeof(doc), doc->>'$.a[1]', ubig, amount, zoned_ts, tiny FROM landed WHERE id = 1"
    ).fetchone()
    assert row == (
        "JSON",
        "2",
        18446744073709551615,
        Decimal("1234.56"),
        dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
        1,
    )


def test_incremental_read_starts_at_the_cursor_and_takes_null_cursors(everything: Database) -> None:
    table = _table(everything.config, "everything")
    rows = _read_rows(
        everything.config, ReadRequest(table=table, columns=["id", "num"], incremental_field="id", cursor=2)
    )
    assert rows == [{"id": 2, "num": None}, {"id": 3, "num": -1}]  # at the cursor too: it may have company
    by_datetime = _read_rows(
        everything.config,
        ReadRequest(table=table, columns=["id"], incremental_field="local_ts", cursor="2000-01-01T00:00:00"),
    )
    assert by_datetime == [{"id": 2}, {"id": 1}]  # row 2's is NULL: always read (MySQL: NULLs first)
    by_timestamp = _read_rows(
        everything.config,
        ReadRequest(
            table=table, columns=["id"], incremental_field="zoned_ts", cursor="2024-01-02T05:04:05+02:00"
        ),
    )
    assert by_timestamp == [{"id": 2}, {"id": 1}]  # 03:04:05.123 UTC is after 03:04:05 UTC
    ordered = _read_rows(everything.config, ReadRequest(table=table, columns=["id"], incremental_field="day"))
    assert ordered == [
        {"id": 2},
        {"id": 3},
        {"id": 1},
    ]  # first run: everything in cursor order (MySQL: NULLs first)


def test_batches_are_bounded_by_batch_rows(mysql_db: Database) -> None:
    values = ", ".join(f"({n}, 'row {n}')" for n in range(1, 26))
    mysql_db.execute(
        "CREATE TABLE numbers (n int PRIMARY KEY, label text)", f"INSERT INTO numbers VALUES {values}"
    )
    table = _table(mysql_db.config, "numbers")
    batches = list(
        CONNECTOR.read(mysql_db.config, ReadRequest(table=table, batch_rows=10, incremental_field="n"))
    )
    sizes = [batch.num_rows for batch in batches]
    assert sum(sizes) == 25 and max(sizes) <= 10 and len(sizes) >= 3
    assert [n for batch in batches for n in batch.column("n").to_pylist()] == list(range(1, 26))


def test_stopping_a_read_early_releases_the_connection(mysql_db: Database) -> None:
    values = ", ".join(f"({n})" for n in range(1, 101))
    mysql_db.execute("CREATE TABLE numbers (n int)", f"INSERT INTO numbers VALUES {values}")
    table = _table(mysql_db.config, "numbers")
    reader = CONNECTOR.read(mysql_db.config, ReadRequest(table=table, batch_rows=10))
    assert 0 < next(reader).num_rows <= 10
    reader.close()
    query = f"SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = 'wmcp_secure' AND DB = '{mysql_db.name}'"
    deadline = time.monotonic() + 5
    while mysql_db.fetch(query) != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert mysql_db.fetch(query) == [(0,)]
    # The next read on a fresh connection sees the whole table.
    assert sum(batch.num_rows for batch in CONNECTOR.read(mysql_db.config, ReadRequest(table=table))) == 100


def test_a_connection_killed_mid_read_fails_the_read_clearly(mysql_db: Database) -> None:
    mysql_db.execute(
        "CREATE TABLE wide (n int PRIMARY KEY, label char(32))",
        "INSERT INTO wide SELECT seq, md5(seq) FROM seq_1_to_1000000",
    )
    table = _table(mysql_db.config, "wide")
    reader = CONNECTOR.read(mysql_db.config, ReadRequest(table=table, batch_rows=1000))
    assert 0 < next(reader).num_rows <= 1000
    readers = mysql_db.fetch(
        "SELECT ID FROM information_schema.PROCESSLIST "
        f"WHERE DB = '{mysql_db.name}' AND USER = 'wmcp_secure' AND INFO LIKE 'SELECT%wide%'"
    )
    assert len(readers) == 1
    mysql_db.execute(f"KILL {readers[0][0]}")
    with pytest.raises(SourceError, match=r"Reading '.*wide' failed: ") as raised:
        for _batch in reader:
            pass
    assert CANARY_PASSWORD not in str(raised.value)


def test_time_outside_a_day_fails_the_read_clearly(mysql_db: Database) -> None:
    mysql_db.execute(
        "CREATE TABLE spans (id int PRIMARY KEY, took time)", "INSERT INTO spans VALUES (1, '-01:00:00')"
    )
    table = _table(mysql_db.config, "spans")
    with pytest.raises(SourceError, match=r"Column 'took' of '.*spans' holds the duration"):
        list(CONNECTOR.read(mysql_db.config, ReadRequest(table=table)))


def test_zero_dates_geometry_and_fine_decimals_arrive_exactly(mysql_db: Database) -> None:
    mysql_db.execute(
        "SET SESSION sql_mode = ''",
        "CREATE TABLE odd (id int PRIMARY KEY, day date, at datetime(6), shape point, "
        "fine decimal(30,20), wide decimal(38,0))",
        "INSERT INTO odd VALUES "
        "(1, '0000-00-00', '2024-00-05 01:02:03', POINT(1, 2), 1234567890.12345678901234567890, "
        "99999999999999999999999999999999999999), (2, '2024-02-29', '2024-02-29 23:59:59.999999', NULL, "
        "-0.00000000000000000001, -1)",
    )
    table = _table(mysql_db.config, "odd")
    rows = sorted(_read_rows(mysql_db.config, ReadRequest(table=table)), key=lambda row: row["id"])
    point = b"\x00\x00\x00\x00\x01\x01\x00\x00\x00" + struct.pack("<dd", 1.0, 2.0)  # SRID 0 + WKB
    assert rows[0]["day"] is None and rows[0]["at"] is None  # zero dates have no date: NULL
    assert rows[0]["shape"] == point  # MySQL's own geometry bytes, as PyMySQL reads them
    assert rows[0]["fine"] == Decimal("1234567890.12345678901234567890")
    assert rows[0]["wide"] == Decimal("99999999999999999999999999999999999999")
    assert rows[1] == {
        "id": 2,
        "day": dt.date(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        "shape": None,
        "fine": Decimal("-0.00000000000000000001"),
        "wide": Decimal(-1),
    }


def test_unsigned_widths_charsets_and_fractions_arrive_exactly(mysql_db: Database) -> None:
    mysql_db.execute(
        "CREATE TABLE more (id int PRIMARY KEY, l varchar(10) CHARACTER SET latin1, e varchar(10) CHARACTER SET "
        "utf8mb4, tu tinyint unsigned, su smallint unsigned, mu mediumint unsigned, iu int unsigned, b4 binary(4), "
        "tm time(6), bt bit(64), dec0 decimal(5,0))",
        "INSERT INTO more VALUES (1, 'café', '😀x', 255, 65535, 16777215, 4294967295, 'ab', '12:34:56.789012', "
        "b'1111111111111111111111111111111111111111111111111111111111111111', -12345)",
    )
    table = _table(mysql_db.config, "more")
    assert _read_rows(mysql_db.config, ReadRequest(table=table)) == [
        {
            "id": 1,
            "l": "café",
            "e": "😀x",
            "tu": 255,
            "su": 65535,
            "mu": 16777215,
            "iu": 4294967295,
            "b4": b"ab\x00\x00",
            "tm": dt.time(12, 34, 56, 789012),
            "bt": 18446744073709551615,
            "dec0": Decimal(-12345),
        }
    ]


def test_tls_reads_return_the_same_rows(everything: Database) -> None:
    if dict(everything.fetch("SHOW VARIABLES LIKE 'have_ssl'")).get("have_ssl") != "YES":
        pytest.skip("the local MariaDB has no TLS")
    tls = {**everything.config, "using_ssl": "true"}
    table = _table(tls, "everything")
    assert _read_rows(tls, ReadRequest(table=table)) == _read_rows(
        everything.config, ReadRequest(table=table)
    )


def test_read_rejects_unknown_columns(everything: Database) -> None:
    table = _table(everything.config, "everything")
    with pytest.raises(SourceError, match=r"Unknown column\(s\) in table '.*everything': nope"):
        list(CONNECTOR.read(everything.config, ReadRequest(table=table, columns=["nope"])))
