"""The DuckDB writer on its own: naming, staging, swap, merge, append, drift, leftovers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync.warehouse import STAGING_PREFIX, Warehouse, warehouse_table_name

COLUMNS = [
    ColumnInfo("id", "integer", False, "INTEGER"),
    ColumnInfo("price", "numeric(12,2)", True, "DECIMAL(12,2)"),
    ColumnInfo("seen_at", "timestamp with time zone", True, "TIMESTAMPTZ"),
    ColumnInfo("doc", "jsonb", True, "JSON"),
]


def batch(ids: list[int], price: str = "1.50") -> pa.RecordBatch:
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.int64()),  # wider than declared: the writer casts
            "price": pa.array([Decimal(price)] * len(ids), pa.decimal128(20, 4)),
            "seen_at": pa.array([datetime(2024, 5, 1, 12, tzinfo=UTC)] * len(ids), pa.timestamp("us", "UTC")),
            "doc": pa.array([f'{{"id": {i}}}' for i in ids], pa.string()),
        }
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[Warehouse]:
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    yield wh
    wh.close()


def rows(warehouse: Warehouse, table: str) -> list[tuple]:
    return warehouse.cursor().execute(f'SELECT * FROM "{table}" ORDER BY id').fetchall()


def test_table_name_is_lower_case_with_safe_characters() -> None:
    assert warehouse_table_name(None, "Postgres", "Orders") == "postgres_orders"
    assert warehouse_table_name("prod", "MySQL", "order-items v2") == "prod_mysql_order_items_v2"
    assert warehouse_table_name("", "Stripe", "Charge") == "stripe_charge"


def test_full_refresh_swaps_in_typed_table(warehouse: Warehouse) -> None:
    staging = warehouse.start_staging("t", COLUMNS, "job-1")
    staging.append(batch([1, 2]))
    state = staging.replace_target()
    assert state.row_count == 2
    assert [(c.name, c.type) for c in state.columns] == [
        ("id", "INTEGER"),
        ("price", "DECIMAL(12,2)"),
        ("seen_at", "TIMESTAMP WITH TIME ZONE"),
        ("doc", "JSON"),
    ]
    assert rows(warehouse, "t")[0] == (1, Decimal("1.50"), datetime(2024, 5, 1, 12, tzinfo=UTC), '{"id": 1}')

    replacement = warehouse.start_staging("t", COLUMNS, "job-2")
    replacement.append(batch([7]))
    # Until the swap, the old table is what everyone sees.
    assert [r[0] for r in rows(warehouse, "t")] == [1, 2]
    replacement.replace_target()
    assert [r[0] for r in rows(warehouse, "t")] == [7]
    assert not [n for n in _tables(warehouse) if n.startswith(STAGING_PREFIX)]


def test_merge_replaces_rows_by_key_and_keeps_the_last_staged(warehouse: Warehouse) -> None:
    first = warehouse.start_staging("t", COLUMNS, "a")
    first.append(batch([1, 2, 3]))
    first.replace_target()

    merge = warehouse.start_staging("t", COLUMNS, "b")
    merge.append(batch([2, 4], price="9.00"))
    merge.append(batch([4], price="10.00"))  # the same key twice in one run: the later one wins
    state = merge.merge_into_target(["id"])
    assert state.row_count == 4
    assert [(r[0], r[1]) for r in rows(warehouse, "t")] == [
        (1, Decimal("1.50")),
        (2, Decimal("9.00")),
        (3, Decimal("1.50")),
        (4, Decimal("10.00")),
    ]


def test_append_inserts_and_new_columns_are_added(warehouse: Warehouse) -> None:
    first = warehouse.start_staging("t", COLUMNS[:2], "a")
    first.append(batch([1]).select(["id", "price"]))
    first.replace_target()

    more = warehouse.start_staging("t", COLUMNS, "b")
    more.append(batch([1, 2]))
    state = more.append_to_target()
    assert [c.name for c in state.columns] == ["id", "price", "seen_at", "doc"]
    assert [(r[0], r[3]) for r in rows(warehouse, "t")] == [(1, None), (1, '{"id": 1}'), (2, '{"id": 2}')]


def test_merge_into_missing_target_creates_it(warehouse: Warehouse) -> None:
    staging = warehouse.start_staging("fresh", COLUMNS, "a")
    staging.append(batch([5]))
    assert staging.merge_into_target(["id"]).row_count == 1


def test_discard_leaves_target_untouched(warehouse: Warehouse) -> None:
    first = warehouse.start_staging("t", COLUMNS, "a")
    first.append(batch([1]))
    first.replace_target()
    abandoned = warehouse.start_staging("t", COLUMNS, "b")
    abandoned.append(batch([2, 3]))
    abandoned.discard()
    assert [r[0] for r in rows(warehouse, "t")] == [1]
    assert _tables(warehouse) == ["t"]


def test_leftover_staging_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    wh.start_staging("t", COLUMNS, "dead-job").append(batch([1]))
    wh.close()
    reopened = Warehouse(path)
    try:
        assert _tables(reopened) == []
    finally:
        reopened.close()


def test_drop_table_row_count_and_describe(warehouse: Warehouse) -> None:
    staging = warehouse.start_staging("t", COLUMNS, "a")
    staging.append(batch([1, 2, 3]))
    staging.replace_target()
    assert warehouse.row_count("t") == 3
    described = warehouse.describe("t")
    assert described is not None and described.row_count == 3
    assert warehouse.drop_table("t") is True
    assert warehouse.drop_table("t") is False
    assert warehouse.describe("t") is None


def _tables(warehouse: Warehouse) -> list[str]:
    result = (
        warehouse.cursor().execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    )
    return [name for (name,) in result]
