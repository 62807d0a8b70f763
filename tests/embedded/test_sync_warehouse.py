"""The warehouse writer on its own: naming, staging, swap, merge, append, drift, leftovers, versions."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync.warehouse import Warehouse, warehouse_table_name

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
    assert warehouse_table_name(None, "Postgres", "orders") == "postgres_orders"
    assert warehouse_table_name("prod", "MySQL", "order_items_v2") == "prod_mysql_order_items_v2"
    assert warehouse_table_name("", "Stripe", "charge") == "stripe_charge"


def test_a_name_that_must_be_folded_gets_a_hash_of_the_exact_name() -> None:
    def tag(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()[:8]

    assert warehouse_table_name(None, "Postgres", "Orders") == f"postgres_orders_{tag('Orders')}"
    assert (
        warehouse_table_name("prod", "MySQL", "order-items v2")
        == f"prod_mysql_order_items_v2_{tag('order-items v2')}"
    )
    assert warehouse_table_name(None, "Postgres", "Café") == f"postgres_cafe_{tag('Café')}"
    assert warehouse_table_name(None, "Postgres", "注文") == f"postgres__{tag('注文')}"
    # Tables that differ only in case, punctuation or accents never share a warehouse table.
    variants = ["orders", "Orders", "ORDERS", "orders!", "orders?", "ordérs", "order s", "order_s"]
    assert len({warehouse_table_name(None, "Postgres", name) for name in variants}) == len(variants)


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
    assert _staged_files(warehouse) == []


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
    assert _staged_files(warehouse) == []


def test_leftover_staging_is_dropped_on_open(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    wh = Warehouse(path)
    wh.start_staging("t", COLUMNS, "dead-job").append(batch([1]))
    stray = wh.data_dir / "tables" / "t.half-written.parquet"  # a commit that died before its manifest
    stray.write_bytes(b"PAR1")
    wh.close()
    reopened = Warehouse(path)
    try:
        assert _tables(reopened) == []
        assert _staged_files(reopened) == []
        assert not stray.exists()
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


def _staged_files(warehouse: Warehouse) -> list[Path]:
    return sorted(p for p in warehouse.staging_dir.rglob("*") if p.is_file())


def test_a_warehouse_from_before_the_parquet_layout_is_imported(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as old:
        old.execute("CREATE TABLE postgres_t (id INTEGER, price DECIMAL(12,2))")
        old.execute("INSERT INTO postgres_t VALUES (1, 1.50), (2, 2.50)")
        old.execute("CREATE TABLE _wmcp_staging_deadjob (id INTEGER)")
    wh = Warehouse(path)
    try:
        assert _tables(wh) == ["postgres_t"]
        assert rows(wh, "postgres_t") == [(1, Decimal("1.50")), (2, Decimal("2.50"))]
        assert [(c.name, c.type) for c in wh.columns("postgres_t")] == [
            ("id", "INTEGER"),
            ("price", "DECIMAL(12,2)"),
        ]
    finally:
        wh.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb", "warehouse_data"]


READER = """
import sys, duckdb
with duckdb.connect(sys.argv[1], read_only=True) as db:
    for _ in range(2):
        print(db.execute("SELECT count(*), min(id), max(id) FROM t").fetchone(), flush=True)
        sys.stdin.readline()
"""


def test_a_reader_keeps_the_version_it_opened_while_newer_ones_are_published(tmp_path: Path) -> None:
    """Another process reads warehouse.duckdb while the writer replaces the table: whole, old, never gone."""
    path = tmp_path / "warehouse.duckdb"
    wh = Warehouse(path, keep_seconds=0)
    try:
        first = wh.start_staging("t", COLUMNS, "a")
        first.append(batch([1, 2, 3]))
        first.replace_target()
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert reader.stdin is not None and reader.stdout is not None
        try:
            assert reader.stdout.readline().strip() == "(3, 1, 3)"
            for job in range(
                3
            ):  # each replace supersedes the reader's version; garbage collection runs each time
                newer = wh.start_staging("t", COLUMNS, f"b{job}")
                newer.append(batch([10, 11]))
                newer.replace_target()
            with duckdb.connect(str(path), read_only=True) as fresh:  # a new reader sees the newest
                assert fresh.execute("SELECT count(*), min(id) FROM t").fetchone() == (2, 10)
            reader.stdin.write("\n")
            reader.stdin.flush()
            assert reader.stdout.readline().strip() == "(3, 1, 3)"  # its version's files are still there
            reader.stdin.write("\n")
            reader.stdin.flush()
            assert reader.wait(10) == 0
        finally:
            reader.kill()
        files_before = len(list((wh.data_dir / "tables").iterdir()))
        last = wh.start_staging("t", COLUMNS, "c")
        last.append(batch([20]))
        last.replace_target()
        # With the reader gone its version (and the unread ones between) are deleted: one file remains.
        assert files_before > 1
        assert len(list((wh.data_dir / "tables").iterdir())) == 1
    finally:
        wh.close()


def test_delete_rows_and_empty_tables(warehouse: Warehouse) -> None:
    staging = warehouse.start_staging("t", COLUMNS, "a")
    staging.append(batch([1, 2, 3]))
    staging.replace_target()
    state = warehouse.delete_rows("t", "id", [2, 99])
    assert state is not None and state.row_count == 2
    assert [r[0] for r in rows(warehouse, "t")] == [1, 3]
    assert warehouse.delete_rows("missing", "id", [1]) is None

    empty = warehouse.start_staging("e", COLUMNS, "b")
    assert empty.replace_target().row_count == 0
    assert rows(warehouse, "e") == []
    assert [c.name for c in warehouse.columns("e")] == ["id", "price", "seen_at", "doc"]


def test_a_small_merge_rewrites_no_file_of_the_table(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("warehouse_mcp.embedded.sync.warehouse.COMPACT_FRACTION", 1000.0)  # tiny files
    first = warehouse.start_staging("t", COLUMNS, "a")
    for ids in ([1, 2], [3, 4], [5, 6]):  # one Parquet file per batch
        first.append(batch(ids))
    first.replace_target()
    before = warehouse.manifest.tables["t"].files
    assert len(before) == 3

    merge = warehouse.start_staging("t", COLUMNS, "b")
    merge.append(batch([4, 7], price="9.00"))
    state = merge.merge_into_target(["id"])
    after = warehouse.manifest.tables["t"]
    # Merged on read: the staged rows as a delta, their keys as a key file; the table's files untouched.
    assert after.files == before and len(after.deltas) == 1 and len(after.key_files) == 1
    assert state.row_count == 7
    assert [(r[0], r[1]) for r in rows(warehouse, "t")] == [
        (i, Decimal("9.00") if i in (4, 7) else Decimal("1.50")) for i in range(1, 8)
    ]

    deleted = warehouse.delete_rows("t", "id", [1, 4])
    assert deleted is not None and deleted.row_count == 5
    assert warehouse.manifest.tables["t"].files == before
    assert [r[0] for r in rows(warehouse, "t")] == [2, 3, 5, 6, 7]


def test_many_small_changes_are_compacted(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("warehouse_mcp.embedded.sync.warehouse.MAX_FILES_PER_TABLE", 4)
    for job in range(6):
        staging = warehouse.start_staging("t", COLUMNS, f"job{job}")
        staging.append(batch([job]))
        if job == 0:
            staging.replace_target()
        else:
            staging.append_to_target()
        assert len(warehouse.manifest.tables["t"].files) <= 4
    assert [r[0] for r in rows(warehouse, "t")] == list(range(6))
    assert warehouse.row_count("t") == 6
