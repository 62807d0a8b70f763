"""Exactly once across a crash: `kill -9` a server applying CDC changes, restart, compare with a run never killed.

Two sources stream the same Postgres database through their own slots: A applies every change in one
uninterrupted run; B's server process is killed right after it published a page of changes to the warehouse
and before it confirmed them to its slot (the listener holds it there), the worst moment. After the restart B
must hold exactly what A holds: the same current rows and the same change log, nothing lost, nothing twice.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.embedded.cdc_support import add_cdc_schema, add_cdc_source, cdc_database, run_cdc
from tests.reliability.support import kill_hard
from warehouse_mcp.embedded.store import Store, jobs
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.warehouse import Warehouse

pytestmark = pytest.mark.reliability

SERVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from warehouse_mcp.embedded.store import Store
    from warehouse_mcp.embedded.store.vault import Vault
    from warehouse_mcp.embedded.sync.service import SyncService

    home, schema_id = Path(sys.argv[1]), sys.argv[2]
    service = SyncService(Store(home), Vault(home), home, batch_rows=50, poll_seconds=0.1)

    def hold(progress):  # called after each page is published, before the slot confirms it
        print(progress.status, progress.rows_synced, flush=True)
        time.sleep(0.5)

    service.add_listener(hold)
    service.start()
    service.request_sync(schema_id)
    time.sleep(120)
    """
)


@pytest.fixture
def db() -> Iterator[Database]:
    with cdc_database() as database:
        database.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, v integer, note text)",
            "INSERT INTO items SELECT g, g, 'seed' FROM generate_series(1, 200) g",
        )
        yield database


def make_changes(db: Database) -> None:
    for round_ in range(10):
        base = 1000 * (round_ + 1)
        db.execute(
            f"BEGIN; INSERT INTO items SELECT {base} + g, g, 'r{round_}' FROM generate_series(1, 20) g; "
            f"UPDATE items SET v = v + 1, note = 'u{round_}' WHERE id % 7 = {round_ % 7}; COMMIT",
            f"DELETE FROM items WHERE id IN (SELECT id FROM items WHERE id % 11 = {round_} LIMIT 3)",
            f"UPDATE items SET id = id + 100000 WHERE id = {base} + 1",
        )


def snapshot(home: Path, db: Database) -> str:
    store, vault = Store(home), Vault(home)
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items", "both")
    warehouse = Warehouse(home / "warehouse.duckdb")
    try:
        [outcome] = run_cdc(store, vault, warehouse, schema_id)
    finally:
        warehouse.close()
    assert outcome.status == "Completed", outcome.error
    return schema_id


def finish(home: Path, schema_id: str) -> tuple[list[tuple], list[tuple]]:
    store, vault = Store(home), Vault(home)
    jobs.recover_orphans(store, datetime.now(UTC))
    warehouse = Warehouse(home / "warehouse.duckdb")
    try:
        [outcome] = run_cdc(store, vault, warehouse, schema_id, batch_rows=50)
        assert outcome.status == "Completed", outcome.error
        cursor = warehouse.cursor()
        current = cursor.execute("SELECT id, v, note FROM postgres_items ORDER BY id").fetchall()
        changes = cursor.execute(
            # Each source took its own snapshot (at its own point); the stream after it is the same WAL.
            "SELECT _cdc_op, if(_cdc_op = 'snapshot', 0, _cdc_lsn) AS lsn, _cdc_seq, id, v, note, _cdc_before "
            "FROM postgres_items_cdc ORDER BY lsn, _cdc_seq, id"
        ).fetchall()
    finally:
        warehouse.close()
    return current, changes


def test_kill_9_mid_apply_gives_the_same_warehouse_as_an_uninterrupted_run(
    tmp_path: Path, db: Database
) -> None:
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    home_a.mkdir()
    home_b.mkdir()
    schema_a = snapshot(home_a, db)
    schema_b = snapshot(home_b, db)
    make_changes(db)

    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(home_b), schema_b], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            status, rows = line.split()
            if status == "Running" and int(rows) > 0:
                break  # a page is in the warehouse and not yet confirmed to the slot
        else:
            pytest.fail("the server ended without applying a page")
    finally:
        kill_hard(server)
    killed = Store(home_b).query_one("SELECT status, rows_synced FROM jobs ORDER BY created_at DESC LIMIT 1")
    assert killed is not None and killed["status"] == "Running"

    uninterrupted = finish(home_a, schema_a)
    recovered = finish(home_b, schema_b)
    source = [tuple(row) for row in db.fetch("SELECT id, v, note FROM items ORDER BY id")]
    assert uninterrupted[0] == source
    assert recovered[0] == source
    assert len(uninterrupted[1]) > 200 + 100
    assert recovered[1] == uninterrupted[1]
