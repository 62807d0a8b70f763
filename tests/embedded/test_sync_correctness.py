"""Issue 11: a sync never loses, mixes or silently changes a row. Real syncs against the real Postgres and
MariaDB, then the warehouse compared with the source row for row after real changes at the source."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import psycopg.sql
import pymysql
import pytest

from tests.conftest import Database, _my_args, _pg_args
from warehouse_mcp.embedded.connectors.mysql_cursor_floor import FLOOR_MARGIN
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync import cursor as sync_cursor
from warehouse_mcp.embedded.sync.warehouse import Warehouse, quote

from .sync_support import add_schema, add_source, run_sync, schema_row, update_schema


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def source_type(db: Database) -> str:
    return "Postgres" if db.kind == "postgres" else "MySQL"


def create_orders(db: Database, *, primary_key: bool = True, nullable_cursor: bool = False) -> None:
    """100 rows, ten sharing each `updated_at` (ids 1-10 at second 0, …, 91-100 at second 9)."""
    stamp = "timestamp" if db.kind == "postgres" else "datetime(6)"
    key = " PRIMARY KEY" if primary_key else ""
    null = "" if nullable_cursor else " NOT NULL"
    db.execute(f"CREATE TABLE orders (id int{key}, note varchar(40), updated_at {stamp}{null})")
    values = ", ".join(f"({n}, 'order {n}', '2024-01-01 00:00:{(n - 1) // 10:02d}')" for n in range(1, 101))
    db.execute(f"INSERT INTO orders VALUES {values}")


def landed(warehouse: Warehouse, table: str) -> list[tuple]:
    """The landed rows, TIMESTAMPTZ values as naive UTC (how a UTC session reads them at the source)."""
    rows = warehouse.cursor().execute(f"SELECT id, note, updated_at FROM {quote(table)}").fetchall()
    return [tuple(_naive_utc(value) for value in row) for row in rows]


def _naive_utc(value: object) -> object:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def source_rows(db: Database, table: str = "orders") -> list[tuple]:
    q = '"' if db.kind == "postgres" else "`"
    return db.fetch(f"SELECT id, note, updated_at FROM {q}{table}{q}")


def assert_same_rows(db: Database, warehouse: Warehouse, table: str, source_table: str = "orders") -> None:
    """The warehouse holds exactly the source's rows: each as often as the source has it."""
    assert Counter(landed(warehouse, table)) == Counter(source_rows(db, source_table))


# --- cursor boundary -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sync_type", ["incremental", "append"])
def test_a_row_at_the_saved_cursor_arrives_once(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    """Issue 11, observed: a row inserted with `updated_at` equal to the synced maximum never arrived."""
    create_orders(db)
    source_id = add_source(store, vault, source_type(db), db.config)
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type=sync_type,
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]
    assert len(landed(warehouse, table)) == 100

    db.execute("INSERT INTO orders VALUES (101, 'same second as the cursor', '2024-01-01 00:00:09')")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, table)  # 101 rows, none twice

    db.execute("INSERT INTO orders VALUES (102, 'later', '2024-01-01 00:00:10')")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"  # nothing new: nothing doubled
    assert_same_rows(db, warehouse, table)
    assert schema_row(store, schema_id)["table_row_count"] == 102


def test_append_without_a_key_keeps_identical_rows_at_the_cursor_apart(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    """Two rows equal in every column are two rows: the second one arriving later is not taken for the first."""
    create_orders(db, primary_key=False)
    source_id = add_source(store, vault, source_type(db), db.config)
    schema_id = add_schema(store, source_id, "orders", sync_type="append", incremental_field="updated_at")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    db.execute("INSERT INTO orders VALUES (100, 'order 100', '2024-01-01 00:00:09')")  # a twin of row 100
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, schema_row(store, schema_id)["table_name"])


# --- NULL cursors ------------------------------------------------------------------------------------------


def test_rows_with_a_null_cursor_arrive_and_follow_changes_incremental(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    create_orders(db, nullable_cursor=True)
    db.execute("INSERT INTO orders VALUES (200, 'no cursor yet', NULL)")
    source_id = add_source(store, vault, source_type(db), db.config)
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type="incremental",
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]

    db.execute(
        "INSERT INTO orders VALUES (201, 'null later', NULL)",
        "UPDATE orders SET note = 'changed while NULL' WHERE id = 200",
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, table)

    # Given a value: on Postgres any value (the row's transaction is newer than the last read); MySQL has
    # no transaction ids to read by, so there the value must be at or above the cursor (README).
    stamp = "2024-01-01 00:00:05" if db.kind == "postgres" else "2024-01-01 00:00:09"
    db.execute(f"UPDATE orders SET updated_at = '{stamp}' WHERE id = 201")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, table)


def test_rows_with_a_null_cursor_are_appended_once(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    create_orders(db, primary_key=False, nullable_cursor=True)
    db.execute("INSERT INTO orders VALUES (200, 'no cursor', NULL)")
    source_id = add_source(store, vault, source_type(db), db.config)
    schema_id = add_schema(store, source_id, "orders", sync_type="append", incremental_field="updated_at")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]

    db.execute("INSERT INTO orders VALUES (201, 'no cursor either', NULL), (200, 'no cursor', NULL)")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(db, warehouse, table)


# --- late commits (Postgres) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sync_type", ["incremental", "append"])
def test_a_row_committed_late_with_an_older_cursor_arrives(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    """A long transaction writes a row stamped early, a sync runs (and moves the cursor past that stamp),
    then the transaction commits: the next sync still brings the row."""
    create_orders(postgres_db)
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type=sync_type,
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]

    with psycopg.connect(**_pg_args(postgres_db.name)) as long_transaction:
        long_transaction.execute("INSERT INTO orders VALUES (300, 'committed late', '2024-01-01 00:00:03')")
        postgres_db.execute("INSERT INTO orders VALUES (301, 'newer', '2024-06-01 00:00:00')")
        assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
        assert 301 in {row[0] for row in landed(warehouse, table)}
        long_transaction.commit()

    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(postgres_db, warehouse, table)
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(postgres_db, warehouse, table)


# --- late commits (MySQL/MariaDB) -------------------------------------------------------------------------


def create_stamped_orders(db: Database, stamp: str) -> None:
    """Ten rows stamped a day ago; new and updated rows take the server's clock (as an application's would)."""
    clock = "CURRENT_TIMESTAMP(6)"
    db.execute(
        f"CREATE TABLE orders (id int PRIMARY KEY, note varchar(40), "
        f"updated_at {stamp} NOT NULL DEFAULT {clock} ON UPDATE {clock})",
        "INSERT INTO orders VALUES "
        + ", ".join(f"({n}, 'order {n}', NOW(6) - INTERVAL 1 DAY)" for n in range(1, 11)),
    )


@pytest.mark.parametrize("stamp", ["datetime(6)", "timestamp(6)"])
@pytest.mark.parametrize("sync_type", ["incremental", "append"])
def test_a_row_committed_late_with_an_older_cursor_arrives_mysql(
    mysql_db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str, stamp: str
) -> None:
    """A long transaction writes rows stamped by the server's clock, a newer row commits and a sync moves the
    cursor past those stamps (by more than the floor's margin), then the transaction commits: the next sync
    still brings its rows (MySQL/MariaDB have no row transaction ids: the floor of running transactions)."""
    create_stamped_orders(mysql_db, stamp)
    source_id = add_source(store, vault, "MySQL", mysql_db.config)
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type=sync_type,
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]

    long_transaction = pymysql.connect(**_my_args(mysql_db.name), autocommit=False)
    try:
        with long_transaction.cursor() as late:
            late.execute("INSERT INTO orders (id, note) VALUES (300, 'committed late')")
            if sync_type == "incremental":  # append lands an update as a new row: inserts only there
                late.execute("UPDATE orders SET note = 'changed late' WHERE id = 1")
        time.sleep(FLOOR_MARGIN.total_seconds() + 1)  # the late stamps are now older than the margin reaches
        mysql_db.execute("INSERT INTO orders (id, note) VALUES (301, 'newer')")
        assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
        assert {row[0] for row in landed(warehouse, table)} == {*range(1, 11), 301}
        long_transaction.commit()
    finally:
        long_transaction.close()

    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(mysql_db, warehouse, table)
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"  # re-read, never doubled
    assert_same_rows(mysql_db, warehouse, table)


@pytest.fixture
def mysql_user_without_process(mysql_db: Database) -> Iterator[dict]:
    """A source config for a user with every privilege on the test database, but not PROCESS."""
    user, password = f"wmcp_np_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    mysql_db.execute(
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
        f"GRANT ALL PRIVILEGES ON `{mysql_db.name}`.* TO '{user}'@'127.0.0.1'",
    )
    try:
        yield {**mysql_db.config, "user": user, "password": password}
    finally:
        mysql_db.execute(f"DROP USER '{user}'@'127.0.0.1'")


def test_without_the_process_privilege_a_sync_says_late_commits_are_not_detected(
    mysql_db: Database,
    mysql_user_without_process: dict,
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    caplog: pytest.LogCaptureFixture,
) -> None:
    create_stamped_orders(mysql_db, "datetime(6)")
    source_id = add_source(store, vault, "MySQL", mysql_user_without_process)
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type="append",
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    with caplog.at_level(logging.WARNING, logger="warehouse_mcp.embedded.connectors.mysql"):
        assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    warnings = [
        record.getMessage() for record in caplog.records if "late-commit floor" in record.getMessage()
    ]
    assert len(warnings) == 1 and "PROCESS privilege" in warnings[0], caplog.text
    saved = json.loads(schema_row(store, schema_id)["sync_cursor"])
    assert "floor" not in saved  # the next run reads from the cursor, as without the privilege it must

    mysql_db.execute("INSERT INTO orders (id, note) VALUES (301, 'newer')")
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(mysql_db, warehouse, schema_row(store, schema_id)["table_name"])


def test_the_next_read_starts_at_the_lower_of_cursor_and_floor() -> None:
    read_from = sync_cursor.read_from
    assert read_from(sync_cursor.SyncCursor("2024-05-01T10:00:00", floor="2024-05-01T09:00:00")) == (
        "2024-05-01T09:00:00"
    )
    assert read_from(sync_cursor.SyncCursor("2024-05-01T10:00:00", floor="2024-05-01T10:00:01.5")) == (
        "2024-05-01T10:00:00"
    )
    assert read_from(
        sync_cursor.SyncCursor("2024-05-01T10:00:00+00:00", floor="2024-05-01T11:30:00+02:00")
    ) == ("2024-05-01T11:30:00+02:00")
    assert read_from(sync_cursor.SyncCursor("2024-05-02", floor="2024-05-01")) == "2024-05-01"
    assert read_from(sync_cursor.SyncCursor(42)) == 42
    saved = sync_cursor.SyncCursor("2024-05-01T10:00:00", floor=datetime(2024, 5, 1, 9, 0, 0, 250000))
    assert sync_cursor.load(sync_cursor.dump(saved)) == sync_cursor.SyncCursor(
        "2024-05-01T10:00:00", floor="2024-05-01T09:00:00.250000"
    )


# --- identifiers ---------------------------------------------------------------------------------------------


def test_tables_differing_only_in_case_land_in_different_tables(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    """Issue 11, observed: `Orders` and `orders` both showed table `postgres_orders`, holding one table's rows."""
    postgres_db.execute(
        'CREATE TABLE "Orders" (id int PRIMARY KEY, note text, updated_at timestamp)',
        "CREATE TABLE orders (id int PRIMARY KEY, note text, updated_at timestamp)",
        """INSERT INTO "Orders" VALUES (1, 'upper', '2024-01-01'), (2, 'upper', '2024-01-02')""",
        "INSERT INTO orders VALUES (1, 'lower', '2024-01-01')",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    upper = add_schema(store, source_id, "Orders")
    lower = add_schema(store, source_id, "orders")
    assert run_sync(store, vault, warehouse, upper).status == "Completed"
    assert run_sync(store, vault, warehouse, lower).status == "Completed"

    upper_table, lower_table = schema_row(store, upper)["table_name"], schema_row(store, lower)["table_name"]
    assert lower_table == "postgres_orders"
    assert upper_table.startswith("postgres_orders_") and upper_table != lower_table
    assert_same_rows(postgres_db, warehouse, upper_table, "Orders")
    assert_same_rows(postgres_db, warehouse, lower_table, "orders")


def test_a_table_landed_under_the_old_naming_rule_is_loaded_whole_under_its_new_name(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    postgres_db.execute(
        'CREATE TABLE "Orders" (id int PRIMARY KEY, note text, updated_at timestamp)',
        """INSERT INTO "Orders" VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-02')""",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(
        store,
        source_id,
        "Orders",
        sync_type="incremental",
        incremental_field="updated_at",
        primary_key_columns=["id"],
    )
    # As the previous rule left it: landed as postgres_orders, cursor at the last row.
    update_schema(store, schema_id, table_name="postgres_orders", sync_cursor='"2024-01-02T00:00:00"')

    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    table = schema_row(store, schema_id)["table_name"]
    assert table.startswith("postgres_orders_")
    assert_same_rows(postgres_db, warehouse, table, "Orders")


# --- xmin -------------------------------------------------------------------------------------------------------


def test_xmin_sync_brings_inserts_and_updates_and_late_commits(
    postgres_db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    """Issue 11, observed: `sync_type: xmin` failed every run ("not supported by the embedded backend")."""
    create_orders(postgres_db)
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    schema_id = add_schema(store, source_id, "orders", sync_type="xmin", primary_key_columns=["id"])
    first = run_sync(store, vault, warehouse, schema_id)
    assert first.status == "Completed", first.error
    table = schema_row(store, schema_id)["table_name"]
    assert_same_rows(postgres_db, warehouse, table)

    with psycopg.connect(**_pg_args(postgres_db.name)) as long_transaction:
        long_transaction.execute("UPDATE orders SET note = 'changed late' WHERE id = 7")
        postgres_db.execute(
            "INSERT INTO orders VALUES (101, 'new', '2020-01-01')",  # no cursor column matters for xmin
            "UPDATE orders SET note = 'changed' WHERE id IN (3, 50)",
        )
        assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
        long_transaction.commit()
    assert run_sync(store, vault, warehouse, schema_id).status == "Completed"
    assert_same_rows(postgres_db, warehouse, table)


@pytest.mark.parametrize(
    ("reference", "xmin", "expected"),
    [
        (3 * 2**32 + 10, 5, 3 * 2**32 + 5),  # same epoch
        (3 * 2**32 + 10, 2**32 - 6, 2 * 2**32 + 2**32 - 6),  # written just before the counter wrapped
        (2**31, 2**31 + 7, 2**31 + 7 - 2**32),  # the first epoch: such ids do not exist (read as ancient)
    ],
)
def test_a_32_bit_xmin_maps_to_its_64_bit_id_across_wraparound(
    postgres_db: Database, reference: int, xmin: int, expected: int
) -> None:
    from warehouse_mcp.embedded.connectors.postgres import _row_xid

    with psycopg.connect(**_pg_args(postgres_db.name)) as connection:
        query = psycopg.sql.SQL("SELECT {} FROM (SELECT %s::text::xid AS xmin) AS row").format(
            _row_xid(reference)
        )
        row = connection.execute(query, (str(xmin),)).fetchone()
    assert row == (expected,)
