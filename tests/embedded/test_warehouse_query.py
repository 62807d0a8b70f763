"""The read-only query engine behind data-warehouse-query: answers, caps, timeout, and hostile SQL refused by DuckDB."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync.query import QueryError, run_query, tables
from warehouse_mcp.embedded.sync.warehouse import Warehouse

COLUMNS = [
    ColumnInfo("id", "integer", False, "INTEGER"),
    ColumnInfo("price", "numeric(12,2)", True, "DECIMAL(12,2)"),
    ColumnInfo("seen_at", "timestamptz", True, "TIMESTAMPTZ"),
    ColumnInfo("ref", "uuid", True, "UUID"),
    ColumnInfo("raw", "bytea", True, "BLOB"),
    ColumnInfo("tags", "integer[]", True, "INTEGER[]"),
]
ROWS = 500


@pytest.fixture
def warehouse(home: Path) -> Iterator[Path]:
    wh = Warehouse(home / "warehouse.duckdb")
    staging = wh.start_staging("postgres_items", COLUMNS, "job")
    staging.append(
        pa.record_batch(
            {
                "id": pa.array(range(1, ROWS + 1), pa.int32()),
                "price": pa.array([Decimal("12.50")] * ROWS, pa.decimal128(12, 2)),
                "seen_at": pa.array([datetime(2024, 5, 1, 12, tzinfo=UTC)] * ROWS, pa.timestamp("us", "UTC")),
                "ref": pa.array(["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"] * ROWS),
                "raw": pa.array([b"\x00\xff"] * ROWS),
                "tags": pa.array([[1, 2]] * ROWS, pa.list_(pa.int32())),
            }
        )
    )
    staging.replace_target()
    wh.close()
    (home / "metadata.sqlite3").write_bytes(b"not to be touched")
    return home / "warehouse.duckdb"


def test_tables_and_typed_json_answers(warehouse: Path) -> None:
    assert tables(warehouse) == [
        {
            "name": "postgres_items",
            "row_count": ROWS,
            "columns": [
                {"name": "id", "type": "INTEGER"},
                {"name": "price", "type": "DECIMAL(12,2)"},
                {"name": "seen_at", "type": "TIMESTAMP WITH TIME ZONE"},
                {"name": "ref", "type": "UUID"},
                {"name": "raw", "type": "BLOB"},
                {"name": "tags", "type": "INTEGER[]"},
            ],
        }
    ]
    answer = run_query(
        warehouse, "SELECT *, INTERVAL 1 DAY AS span, 'nan'::DOUBLE AS odd FROM postgres_items WHERE id = 1"
    )
    assert answer == {
        "columns": ["id", "price", "seen_at", "ref", "raw", "tags", "span", "odd"],
        "rows": [
            [
                1,
                "12.50",
                "2024-05-01T12:00:00+00:00",
                "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                "AP8=",
                [1, 2],
                "1 day, 0:00:00",
                "nan",
            ]
        ],
        "row_count": 1,
        "_truncated": False,
    }
    for sql in ("DESCRIBE postgres_items", "SHOW TABLES", "SUMMARIZE postgres_items", "EXPLAIN SELECT 1"):
        assert run_query(warehouse, sql)["row_count"] > 0


def test_row_and_byte_caps_say_truncated(warehouse: Path) -> None:
    exact = run_query(warehouse, "SELECT id FROM postgres_items ORDER BY id LIMIT 10", max_rows=10)
    assert (exact["row_count"], exact["_truncated"]) == (10, False)
    rows = run_query(warehouse, "SELECT id FROM postgres_items ORDER BY id", max_rows=10)
    assert rows["rows"] == [[i] for i in range(1, 11)] and rows["_truncated"] is True
    assert "at most 10 rows" in rows["_truncated_reason"]
    wide = run_query(warehouse, "SELECT repeat('x', 1000) AS pad FROM postgres_items", max_bytes=5_000)
    assert wide["_truncated"] is True and 1 <= wide["row_count"] < 5


def test_a_slow_query_is_interrupted(warehouse: Path) -> None:
    with pytest.raises(QueryError, match="stopped after 1s"):
        run_query(warehouse, "SELECT count(*) FROM range(1000000000000) a, range(10) b", timeout=1)
    assert run_query(warehouse, "SELECT count(*) FROM postgres_items")["rows"] == [[ROWS]]


HOSTILE = {
    "a write": "INSERT INTO postgres_items (id) VALUES (0)",
    "a delete": "DELETE FROM postgres_items",
    "a drop": "DROP VIEW postgres_items",
    "a table": "CREATE TABLE evil AS SELECT 1",
    "a temp table": "CREATE TEMP TABLE evil AS SELECT 1",
    "attach": "ATTACH '{home}/metadata.sqlite3' AS meta",
    "attach a new file": "ATTACH '{home}/evil.duckdb'",
    "copy out": "COPY postgres_items TO '/tmp/wmcp-evil.csv'",
    "copy over warehouse data": "COPY (SELECT 1 AS id) TO '{parquet}' (FORMAT parquet)",
    "export": "EXPORT DATABASE '{home}/export'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "unlock": "SET enable_external_access = true",
    "reset": "RESET lock_configuration",
    "pragma": "PRAGMA database_list",
    "checkpoint": "CHECKPOINT",
    "two statements": "SELECT 1; DROP VIEW postgres_items",
    "query() smuggling": "SELECT * FROM query('COPY postgres_items TO ''/tmp/wmcp-evil.csv''')",
    "a system file": "SELECT * FROM read_csv('/etc/passwd')",
    "a file beside the warehouse": "SELECT * FROM read_blob('{home}/metadata.sqlite3')",
    "a path walk": "SELECT * FROM read_text('{tables}/../../metadata.sqlite3')",
    "listing files": "SELECT * FROM glob('{home}/*')",
    "another parquet": "SELECT * FROM read_parquet('/tmp/*.parquet')",
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_sql_is_refused_and_changes_nothing(warehouse: Path, case: str) -> None:
    home = warehouse.parent
    tables_dir = home / "warehouse_data" / "tables"
    parquet = next(tables_dir.iterdir())
    before = _snapshot(home)
    sql = HOSTILE[case].format(home=home, parquet=parquet, tables=tables_dir)
    with pytest.raises(QueryError) as refused:
        run_query(warehouse, sql)
    assert str(refused.value)
    assert _snapshot(home) == before
    assert not Path("/tmp/wmcp-evil.csv").exists()
    assert run_query(warehouse, "SELECT count(*) FROM postgres_items")["rows"] == [[ROWS]]


def _snapshot(home: Path) -> dict[str, str]:
    return {
        str(path.relative_to(home)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(home.rglob("*"))
        if path.is_file()
    }
