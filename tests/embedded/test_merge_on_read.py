"""Merge-on-read: merges land as delta and key files, compared row for row with a model of the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync.catalog import read_manifest
from warehouse_mcp.embedded.sync.warehouse import (
    DELETED_COLUMN,
    CdcPosition,
    TableWrite,
    Warehouse,
)

COLUMNS = [
    ColumnInfo("id", "integer", False, "INTEGER"),
    ColumnInfo("region", "text", True, "VARCHAR"),
    ColumnInfo("label", "text", True, "VARCHAR"),
]
MODULE = "warehouse_mcp.embedded.sync.warehouse"


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Warehouse]:
    monkeypatch.setattr(f"{MODULE}.COMPACT_FRACTION", 1000.0)  # tiny files: compaction only on MAX_DELTAS
    wh = Warehouse(tmp_path / "warehouse.duckdb")
    yield wh
    wh.close()


def batch(rows: list[tuple[int, str | None, str]]) -> pa.RecordBatch:
    ids, regions, labels = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.record_batch(
        {
            "id": pa.array(ids, pa.int32()),
            "region": pa.array(regions, pa.string()),
            "label": pa.array(labels, pa.string()),
        }
    )


def load(warehouse: Warehouse, rows: list[tuple[int, str | None, str]], job: str = "load") -> None:
    staging = warehouse.start_staging("t", COLUMNS, job)
    staging.append(batch(rows))
    staging.replace_target()


def merge(warehouse: Warehouse, keys: list[str], *batches: list[tuple[int, str | None, str]]) -> int:
    staging = warehouse.start_staging("t", COLUMNS, f"m{warehouse.manifest.version}")
    for rows in batches:
        staging.append(batch(rows))
    return staging.merge_into_target(keys).row_count


def table(warehouse: Warehouse) -> list[tuple]:
    return sorted(warehouse.cursor().execute("SELECT * FROM t").fetchall(), key=repr)


def expected(model: dict) -> list[tuple]:
    return sorted(model.values(), key=repr)


def test_a_merge_writes_only_the_changed_rows_and_keeps_the_base_files(warehouse: Warehouse) -> None:
    load(warehouse, [(i, "eu", f"v0-{i}") for i in range(1, 101)])
    base = warehouse.manifest.tables["t"].files
    assert merge(warehouse, ["id"], [(5, "eu", "v1-5"), (200, "us", "new")]) == 101
    entry = warehouse.manifest.tables["t"]
    assert entry.files == base and len(entry.deltas) == 1 and len(entry.key_files) == 1
    model = {i: (i, "eu", f"v0-{i}") for i in range(1, 101)} | {5: (5, "eu", "v1-5"), 200: (200, "us", "new")}
    assert table(warehouse) == expected(model)


def test_repeated_merges_of_one_key_and_deletes_across_deltas(warehouse: Warehouse) -> None:
    model = {i: (i, "eu", f"v0-{i}") for i in range(1, 21)}
    load(warehouse, list(model.values()))
    for round_ in range(1, 6):
        # Key 3 changes every round; within a read it changes twice (the last staged one wins).
        first = [(3, "eu", f"early-{round_}"), (round_ + 10, "eu", f"v{round_}")]
        second = [(3, "eu", f"v{round_}-3"), (100 + round_, "us", f"new-{round_}")]
        count = merge(warehouse, ["id"], first, second)
        model |= {r[0]: r for r in [first[1], *second]}
        assert count == len(model) and table(warehouse) == expected(model)
        if round_ % 2 == 0:
            gone = [round_ + 10, 100 + round_ - 1, 3]
            state = warehouse.delete_rows("t", "id", gone)
            for key in gone:
                model.pop(key, None)
            assert state is not None and state.row_count == len(model)
            assert table(warehouse) == expected(model)
    entry = warehouse.manifest.tables["t"]
    assert len(entry.key_files) == 7 and entry.rows == len(model)
    # A key deleted then merged again is back, once.
    warehouse.delete_rows("t", "id", [3])
    model.pop(3)
    assert merge(warehouse, ["id"], [(3, "eu", "back")]) == len(model) + 1
    model[3] = (3, "eu", "back")
    assert table(warehouse) == expected(model)


def test_composite_keys_with_a_null_part(warehouse: Warehouse) -> None:
    model = {(i, r): (i, r, "v0") for i in range(1, 6) for r in ("eu", "us", None)}
    load(warehouse, list(model.values()))
    changed = [(2, "eu", "v1"), (2, None, "v1"), (9, "us", "new")]
    assert merge(warehouse, ["id", "region"], changed) == len(model) + 1
    model |= {(r[0], r[1]): r for r in changed}
    assert table(warehouse) == expected(model)
    changed = [(2, None, "v2"), (3, "us", "v2")]
    merge(warehouse, ["id", "region"], changed)
    model |= {(r[0], r[1]): r for r in changed}
    assert table(warehouse) == expected(model)
    # The key changes: the deltas are compacted first, then the table merges on the new key.
    merge(warehouse, ["id"], [(4, "xx", "one row for id 4")])
    entry = warehouse.manifest.tables["t"]
    assert entry.primary_keys == ("id",) and len(entry.key_files) == 1
    model = {k: v for k, v in model.items() if k[0] != 4} | {(4, "xx"): (4, "xx", "one row for id 4")}
    assert table(warehouse) == expected(model)


def test_compaction_at_max_deltas_keeps_every_row(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{MODULE}.MAX_DELTAS", 3)
    model = {i: (i, "eu", "v0") for i in range(1, 11)}
    load(warehouse, list(model.values()))
    for round_ in range(1, 4):
        changed = [(round_, "eu", f"v{round_}"), (1, "eu", f"one-{round_}")]
        merge(warehouse, ["id"], changed)
        model |= {r[0]: r for r in changed}
        assert len(warehouse.manifest.tables["t"].key_files) == round_
    assert table(warehouse) == expected(model)
    merge(warehouse, ["id"], [(1, "eu", "last"), (11, "us", "new")])  # the fourth: compacted
    model |= {1: (1, "eu", "last"), 11: (11, "us", "new")}
    entry = warehouse.manifest.tables["t"]
    assert not entry.deltas and not entry.key_files and len(entry.files) == 1
    assert entry.rows == len(model) and table(warehouse) == expected(model)
    names = {c[0] for c in warehouse.cursor().execute("DESCRIBE t").fetchall()}
    assert names == {"id", "region", "label"}  # no sequence column in the view


def test_a_reader_keeps_its_version_through_a_compaction(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{MODULE}.MAX_DELTAS", 1)
    model = {i: (i, "eu", "v0") for i in range(1, 6)}
    load(warehouse, list(model.values()))
    merge(warehouse, ["id"], [(2, "eu", "v1")])
    model[2] = (2, "eu", "v1")
    before = dict(model)
    reader = warehouse.cursor()  # opened on the version with one delta
    assert warehouse.manifest.tables["t"].key_files
    merge(warehouse, ["id"], [(2, "eu", "v2"), (3, "eu", "v2")])  # compacts
    model |= {2: (2, "eu", "v2"), 3: (3, "eu", "v2")}
    assert not warehouse.manifest.tables["t"].key_files
    assert sorted(reader.execute("SELECT * FROM t").fetchall(), key=repr) == expected(before)
    assert table(warehouse) == expected(model)


def test_cdc_apply_lands_as_a_delta_with_deletes_in_the_same_commit(warehouse: Warehouse) -> None:
    model = {i: (i, "eu", "v0") for i in range(1, 11)}
    load(warehouse, list(model.values()))
    columns = [*COLUMNS, ColumnInfo(DELETED_COLUMN, "boolean", False, "BOOLEAN")]
    for round_, (changed, deleted) in enumerate(
        [([(2, "us", "v1"), (20, "eu", "new")], [5, 6]), ([(2, "eu", "v2")], [20])]
    ):
        staging = warehouse.start_staging("t", columns, f"cdc{round_}")
        rows = [*changed, *((key, None, "") for key in deleted)]
        staging.append(
            batch(rows).append_column(
                DELETED_COLUMN, pa.array([False] * len(changed) + [True] * len(deleted))
            )
        )
        position = CdcPosition(100 + round_, "token", "consolidated")
        states = warehouse.commit_changes([TableWrite(staging, "apply", ("id",))], {"schema": position})
        model |= {r[0]: r for r in changed}
        for key in deleted:
            model.pop(key)
        assert states["t"].row_count == len(model) and table(warehouse) == expected(model)
        assert warehouse.cdc_positions(["schema"])["schema"].lsn == 100 + round_
    entry = warehouse.manifest.tables["t"]
    assert len(entry.key_files) == 2
    committed = read_manifest(warehouse.data_dir, warehouse.manifest.version)
    assert committed.tables["t"] == entry  # the delta's files are in the manifest that holds the position


def test_a_reopened_warehouse_reads_the_deltas_and_drops_unpublished_files(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "warehouse.duckdb")
    load(warehouse, [(i, "eu", "v0") for i in range(1, 4)])
    merge(warehouse, ["id"], [(1, "eu", "v1")])
    stray = warehouse.data_dir / "tables" / "t.unpublished.parquet"  # a merge that died before its commit
    stray.write_bytes(b"PAR1")
    warehouse.close()
    reopened = Warehouse(tmp_path / "warehouse.duckdb")
    try:
        assert not stray.exists()
        assert table(reopened) == [(1, "eu", "v1"), (2, "eu", "v0"), (3, "eu", "v0")]
    finally:
        reopened.close()
