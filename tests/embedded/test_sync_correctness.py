"""Issue 11: a sync never loses, mixes or silently changes a row. Real syncs against the real Postgres and
MariaDB, then the warehouse compared with the source row for row after real changes at the source."""

from __future__ import annotations

from collections import Counter

import psycopg
import psycopg.sql
import pytest

from tests.conftest import Database, _pg_args
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
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
    return warehouse.cursor().execute(f"SELECT id, note, updated_at FROM {quote(table)}").fetchall()


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
