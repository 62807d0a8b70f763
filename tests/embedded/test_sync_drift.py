"""Issue 11: schema drift between syncs, every sync type, Postgres and MariaDB. Real syncs, then the warehouse
compared with the source row for row after real changes at the source."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from tests.conftest import Database
from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.warehouse import Warehouse, quote

from .sync_support import add_schema, add_source, run_sync, schema_row, update_schema

SYNC_TYPES = ["full_refresh", "incremental", "append", "xmin"]


def on_each_database(sync_types: list[str]) -> pytest.MarkDecorator:
    """Parametrize `db` and `sync_type` over both databases; xmin sync exists for Postgres tables only."""
    cases = [
        (kind, t) for kind in ("postgres", "mysql") for t in sync_types if kind == "postgres" or t != "xmin"
    ]
    return pytest.mark.parametrize(("db", "sync_type"), cases, indirect=["db"])


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Database:
    database: Database = request.getfixturevalue(f"{request.param}_db")
    stamp = "timestamp" if database.kind == "postgres" else "datetime(6)"
    database.execute(
        f"CREATE TABLE orders (id int PRIMARY KEY, a int, note varchar(40), updated_at {stamp} NOT NULL)",
        "INSERT INTO orders VALUES (1, 10, 'one', '2024-01-01 00:00:01'), (2, 20, 'two', '2024-01-01 00:00:02')",
    )
    return database


def synced(db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str) -> tuple[str, str]:
    """A schema of `orders` with `sync_type`, synced once; (schema id, warehouse table)."""
    source_id = add_source(store, vault, "Postgres" if db.kind == "postgres" else "MySQL", db.config)
    cursor = "updated_at" if sync_type in ("incremental", "append") else None
    schema_id = add_schema(
        store, source_id, "orders", sync_type=sync_type, incremental_field=cursor, primary_key_columns=["id"]
    )
    outcome = run_sync(store, vault, warehouse, schema_id)
    assert outcome.status == "Completed", outcome.error
    return schema_id, schema_row(store, schema_id)["table_name"]


def sync(store: Store, vault: Vault, warehouse: Warehouse, schema_id: str) -> None:
    outcome = run_sync(store, vault, warehouse, schema_id)
    assert outcome.status == "Completed", outcome.error


def assert_same_rows(db: Database, warehouse: Warehouse, table: str, columns: list[str]) -> None:
    q = '"' if db.kind == "postgres" else "`"
    source = db.fetch(f"SELECT {', '.join(q + c + q for c in columns)} FROM orders")
    landed = warehouse.cursor().execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}")
    assert Counter(landed.fetchall()) == Counter(source)


@on_each_database(SYNC_TYPES)
def test_an_added_column_arrives(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    schema_id, table = synced(db, store, vault, warehouse, sync_type)
    db.execute(
        "ALTER TABLE orders ADD COLUMN extra varchar(20)",
        "INSERT INTO orders VALUES (3, 30, 'three', '2024-01-01 00:00:03', 'added')",
    )
    sync(store, vault, warehouse, schema_id)
    assert "extra" in {column.name for column in warehouse.columns(table)}
    if sync_type == "append":  # rows landed before the column existed keep NULL there, as appended
        assert_same_rows(db, warehouse, table, ["id", "a", "note", "updated_at"])
        extra = warehouse.cursor().execute(f"SELECT extra FROM {quote(table)} WHERE id = 3").fetchall()
        assert extra == [("added",)]
    else:
        assert_same_rows(db, warehouse, table, ["id", "a", "note", "updated_at", "extra"])


@on_each_database(SYNC_TYPES)
def test_a_dropped_column_does_not_fail_the_sync(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    schema_id, table = synced(db, store, vault, warehouse, sync_type)
    db.execute(
        "ALTER TABLE orders DROP COLUMN note",
        "INSERT INTO orders VALUES (3, 30, '2024-01-01 00:00:03')",
    )
    sync(store, vault, warehouse, schema_id)
    assert_same_rows(db, warehouse, table, ["id", "a", "updated_at"])
    if sync_type != "full_refresh":
        # Merged and appended tables keep the column; rows read since have no value there. An upsert may
        # read rows 1-2 again (row 2 sits at the cursor; xmin reads what transactions still running at the
        # last read could have written): then they land as the source has them now, without a note.
        notes = warehouse.cursor().execute(f"SELECT id, note FROM {quote(table)} ORDER BY id").fetchall()
        if sync_type == "append":
            assert notes == [(1, "one"), (2, "two"), (3, None)]
        else:
            assert [n[0] for n in notes] == [1, 2, 3] and notes[2] == (3, None)
            assert notes[0][1] in ("one", None) and notes[1][1] in ("two", None)


@on_each_database(SYNC_TYPES)
def test_a_retyped_column_is_widened_and_keeps_every_value(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    """Issue 11, observed: `a` retyped to numeric(10,2) at the source, a row with 12.5: the warehouse stored 13."""
    schema_id, table = synced(db, store, vault, warehouse, sync_type)
    retype = "ALTER COLUMN a TYPE numeric(10,2)" if db.kind == "postgres" else "MODIFY COLUMN a decimal(10,2)"
    db.execute(
        f"ALTER TABLE orders {retype}", "INSERT INTO orders VALUES (3, 12.5, 'three', '2024-01-01 00:00:03')"
    )
    sync(store, vault, warehouse, schema_id)
    assert dict((c.name, c.type) for c in warehouse.columns(table))["a"] == "DECIMAL(10,2)"
    assert_same_rows(db, warehouse, table, ["id", "a", "note", "updated_at"])
    value = warehouse.cursor().execute(f"SELECT a FROM {quote(table)} WHERE id = 3").fetchone()
    assert value == (Decimal("12.50"),)


@on_each_database(["incremental", "append", "xmin"])
def test_a_retype_no_warehouse_type_can_hold_fails_the_table_clearly_until_a_resync(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    schema_id, table = synced(db, store, vault, warehouse, sync_type)

    def retype(numeric: str) -> str:
        column = "ALTER COLUMN a TYPE" if db.kind == "postgres" else "MODIFY COLUMN a"
        return f"ALTER TABLE orders {column} {numeric}"

    db.execute(retype("numeric(4,2)"), "UPDATE orders SET a = 12.34, updated_at = '2024-01-01 00:00:03'")
    sync(store, vault, warehouse, schema_id)  # the warehouse column widens to DECIMAL(4,2) and holds 12.34
    db.execute(
        retype("numeric(12,0)"),  # 12.34 does not fit DECIMAL(12,0), nor 123456789 DECIMAL(4,2)
        "INSERT INTO orders VALUES (3, 123456789, 'three', '2024-01-01 00:00:04')",
    )
    before = warehouse.cursor().execute(f"SELECT * FROM {quote(table)} ORDER BY ALL").fetchall()

    outcome = run_sync(store, vault, warehouse, schema_id)

    assert outcome.status == "Failed"
    assert outcome.error is not None and "Column 'a'" in outcome.error and "Resync" in outcome.error
    assert warehouse.cursor().execute(f"SELECT * FROM {quote(table)} ORDER BY ALL").fetchall() == before
    update_schema(store, schema_id, sync_cursor=None)  # what a resync does
    sync(store, vault, warehouse, schema_id)
    assert_same_rows(db, warehouse, table, ["id", "a", "note", "updated_at"])


@on_each_database(["incremental", "xmin"])
def test_a_primary_key_change_at_the_source_is_detected(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, sync_type: str
) -> None:
    schema_id, table = synced(db, store, vault, warehouse, sync_type)
    sync(store, vault, warehouse, schema_id)  # the second run knows the key the first one saw
    change = (
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, note)"
        if db.kind == "postgres"
        else "ALTER TABLE orders DROP PRIMARY KEY, ADD PRIMARY KEY (id, note)"
    )
    db.execute(change, "INSERT INTO orders VALUES (1, 11, 'uno', '2024-01-01 00:00:05')")
    before = warehouse.cursor().execute(f"SELECT * FROM {quote(table)} ORDER BY ALL").fetchall()

    outcome = run_sync(store, vault, warehouse, schema_id)

    assert outcome.status == "Failed"
    assert outcome.error == (
        "The primary key of 'orders' changed at the source since the last sync (was (id), now (id, note)); "
        "rows merged on the old key could be mixed up, so this table was not synced. Delete the synced data "
        "(delete_data), set primary_key_columns to the key to merge on, and sync again."
    )
    assert warehouse.cursor().execute(f"SELECT * FROM {quote(table)} ORDER BY ALL").fetchall() == before
