"""kill -9 at every step of a warehouse commit: readers keep a whole version, and the next start repairs the rest.

A child process commits `t = [1, 2]`, then commits `t = [3, 4, 5]` and is killed at one step of that
second commit. Before any restart a reader sees one whole version; after `Warehouse()` reopens, the table
is the committed one (the new rows once the manifest was written, the old ones before), warehouse.duckdb
shows it, and no file of the unfinished commit is left.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse_mcp.embedded.sync.warehouse import Warehouse

pytestmark = pytest.mark.reliability

CHILD = r"""
import os, signal, sys
from pathlib import Path
import pyarrow as pa
from warehouse_mcp.embedded.connectors.base import ColumnInfo
from warehouse_mcp.embedded.sync import catalog
from warehouse_mcp.embedded.sync.warehouse import Warehouse

path, step = Path(sys.argv[1]), sys.argv[2]
columns = [ColumnInfo("id", "integer", False, "INTEGER")]
warehouse = Warehouse(path, keep_seconds=0)

def load(ids, job):
    staging = warehouse.start_staging("t", columns, job)
    staging.append(pa.record_batch({"id": pa.array(ids, pa.int32())}))
    staging.replace_target()

load([1, 2], "first")

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

original = catalog._write_atomically
def die_after_manifest(target, text):
    original(target, text)
    die()

if step == "before the manifest":
    catalog.Catalog.publish = die
elif step == "after the manifest":
    catalog._write_atomically = die_after_manifest
elif step == "before the link":
    catalog.Catalog._link = die
elif step == "during clean-up":
    catalog.Catalog.collect_garbage = die
load([3, 4, 5], "second")
"""

STEPS = {
    # step: (what a reader sees before the restart, what the table is after it)
    "before the manifest": ([1, 2], [1, 2]),
    "after the manifest": ([1, 2], [3, 4, 5]),
    "before the link": ([1, 2], [3, 4, 5]),
    "during clean-up": ([3, 4, 5], [3, 4, 5]),
}


def read(path: Path) -> list[int]:
    with duckdb.connect(str(path), read_only=True) as db:
        return [row[0] for row in db.execute("SELECT id FROM t ORDER BY id").fetchall()]


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_of_a_commit(tmp_path: Path, step: str) -> None:
    path = tmp_path / "warehouse.duckdb"
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), step], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    before, after = STEPS[step]
    assert read(path) == before

    warehouse = Warehouse(path, keep_seconds=0)
    try:
        assert read(path) == after
        assert warehouse.row_count("t") == len(after)
        referenced = {f"tables/{name.split('/')[-1]}" for name in warehouse.manifest.tables["t"].files}
        on_disk = {f"tables/{p.name}" for p in (warehouse.data_dir / "tables").iterdir()}
        assert on_disk == referenced  # nothing of the killed commit (or the superseded version) is left
        assert not list(warehouse.staging_dir.iterdir())
    finally:
        warehouse.close()
