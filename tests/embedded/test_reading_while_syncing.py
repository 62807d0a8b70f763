"""Another process reads warehouse.duckdb while syncs commit: it always gets an answer, and only whole syncs.

The readers are real subprocesses opening the file read-only again and again (warehouse_readers.py). The
writer pauses inside each sync, after some batches are staged, until the readers have answered: those
answers must still be the previous sync's state. Every answer must be a state some sync committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database
from tests.embedded.test_stripe_webhooks import Harness, customer
from tests.fakes.stripe_server import make_event
from warehouse_mcp.embedded.store import Store, jobs
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import JobProgress, SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.warehouse import Warehouse

from .cdc_support import add_cdc_schema, add_cdc_source, cdc_database, run_cdc
from .sync_support import add_schema, add_source, run_sync
from .warehouse_readers import assert_only_committed_states, readers

ROWS = 2000
ADDED = 100  # rows each change adds
BATCH = 250


def change_source(db: Database, gen: int) -> int:
    """Stamp every row with `gen` and add ADDED rows, in one source transaction; the new row count."""
    total = ROWS + ADDED * gen
    db.execute(
        f"""BEGIN;
        UPDATE items SET gen = {gen}, updated_at = now();
        INSERT INTO items SELECT g, {gen}, now(), repeat('x', 40) FROM generate_series({total - ADDED + 1}, {total}) g;
        COMMIT"""
    )
    return total


@pytest.mark.postgres
@pytest.mark.parametrize("sync_type", ["full_refresh", "incremental"])
def test_readers_see_the_old_table_during_a_sync_and_the_new_one_after(
    postgres_db: Database,
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    home: Path,
    tmp_path: Path,
    sync_type: str,
) -> None:
    postgres_db.execute(
        "CREATE TABLE items (id integer PRIMARY KEY, gen integer NOT NULL, updated_at timestamptz NOT NULL, pad text)",
        f"INSERT INTO items SELECT g, 0, now(), repeat('x', 40) FROM generate_series(1, {ROWS}) g",
    )
    source_id = add_source(store, vault, "Postgres", postgres_db.config)
    incremental = sync_type == "incremental"
    schema_id = add_schema(
        store,
        source_id,
        "items",
        sync_type=sync_type,
        incremental_field="updated_at" if incremental else None,
        primary_key_columns=["id"] if incremental else None,
    )
    assert run_sync(store, vault, warehouse, schema_id, batch_rows=BATCH).status == "Completed"
    committed = {(ROWS, ROWS, 0, 0)}
    mid_sync: list[list[Any]] = []

    with readers(home / "warehouse.duckdb", "postgres_items", tmp_path, count=2) as group:
        for gen in (1, 2, 3):
            previous = [ROWS + ADDED * (gen - 1)] * 2 + [gen - 1] * 2
            total = change_source(postgres_db, gen)

            def pause_mid_sync(progress: JobProgress, previous: list[int] = previous) -> None:
                if progress.status == "Running" and progress.rows_synced == 2 * BATCH:
                    group.wait_for_new_answers(2)  # the second answer was asked for during the pause
                    mid_sync.extend(group.latest())
                    assert group.latest() == [previous, previous]

            outcome = run_sync(store, vault, warehouse, schema_id, batch_rows=BATCH, progress=pause_mid_sync)
            assert (outcome.status, outcome.rows_synced) == ("Completed", total)
            committed.add((total, total, gen, gen))
            group.wait_for_new_answers(2)
            assert group.latest() == [[total, total, gen, gen]] * 2
        answers = group.stop()

    assert len(mid_sync) == 6  # the readers did answer while each of the three syncs was half staged
    assert_only_committed_states(answers, committed)


def test_readers_never_see_a_webhook_event_half_applied(home: Path, tmp_path: Path) -> None:
    harness = Harness(home)
    customers = [f"cus_{i:03d}" for i in range(10)]
    try:
        for i, object_id in enumerate(customers):
            harness.send(
                make_event("customer.created", customer(id=object_id, balance=0, created=1_700_000_000 + i))
            )
        query = 'SELECT count(*), count(DISTINCT id), sum(balance), max(balance) FROM "{table}"'
        with readers(home / "warehouse.duckdb", "stripe_customer", tmp_path, count=2, query=query) as group:
            for step in range(1, 16):
                object_id = customers[step % len(customers)]
                response = harness.send(make_event("customer.updated", customer(id=object_id, balance=step)))
                assert response.json()["applied"] is True
                if step % 5 == 0:
                    group.wait_for_new_answers(1)
            deleted = harness.send(make_event("customer.deleted", customer(id=customers[0])))
            assert deleted.json()["applied"] is True
            group.wait_for_new_answers(2)
            assert [answer[:2] for answer in group.latest()] == [[9, 9]] * 2
            answers = group.stop()
    finally:
        harness.client.close()
        harness.warehouse.close()

    errors = [a for a in answers if not isinstance(a, list)]
    assert not errors, errors[:3]
    # Each event is one commit: 10 customers (9 after the delete), each once, never 9 + 1 mid-upsert.
    assert {tuple(a[:2]) for a in answers} <= {(10, 10), (9, 9)}
    assert len({tuple(a) for a in answers}) > 1  # the readers watched the table change


@pytest.mark.postgres
def test_readers_see_cdc_tables_only_between_whole_source_transactions(
    store: Store, vault: Vault, warehouse: Warehouse, home: Path, tmp_path: Path
) -> None:
    """Each source transaction stamps every row with its number, adds 5 rows and deletes 5: readers must
    never see a transaction half applied, whatever page of the stream a commit carried."""
    with cdc_database() as db:
        db.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, gen integer NOT NULL)",
            "INSERT INTO items SELECT g, 0 FROM generate_series(1, 200) g",
        )
        source_id = add_cdc_source(store, vault, db)
        schema_id = add_cdc_schema(store, source_id, "items")
        [snapshot] = run_cdc(store, vault, warehouse, schema_id)
        assert snapshot.status == "Completed", snapshot.error
        for gen in range(1, 9):
            db.execute(
                f"""BEGIN;
                UPDATE items SET gen = {gen};
                INSERT INTO items SELECT g, {gen} FROM generate_series({200 + 5 * gen - 4}, {200 + 5 * gen}) g;
                DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY id LIMIT 5);
                COMMIT"""
            )
        committed = {(200, 200, gen, gen) for gen in range(9)}
        with readers(home / "warehouse.duckdb", "postgres_items", tmp_path, count=2) as group:
            pauses: list[list[Any]] = []

            def pause(progress: JobProgress) -> None:
                if progress.status == "Running" and len(pauses) < 3:
                    group.wait_for_new_answers(2)
                    pauses.append(group.latest())

            clock = Clock()
            job = jobs.claim(store, schema_id, clock.now())
            assert job is not None
            outcome = SyncEngine(store, vault, warehouse, clock, batch_rows=150).run(job, progress=pause)
            assert outcome.status == "Completed", outcome.error
            group.wait_for_new_answers(2)
            assert group.latest() == [[200, 200, 8, 8]] * 2
            answers = group.stop()
    # The stream was committed page by page, and readers saw each page's whole transactions.
    assert pauses == [[[200, 200, gen, gen]] * 2 for gen in (1, 2, 3)]
    assert_only_committed_states(answers, committed)
