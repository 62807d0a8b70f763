"""CDC against the real Postgres: snapshot then stream, in every table mode, compared with the source row for row."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import Bastion, Database
from warehouse_mcp.embedded.connectors import ssh_tunnel
from warehouse_mcp.embedded.store import Store, iso
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.scheduler import ManualClock
from warehouse_mcp.embedded.sync.service import SyncService
from warehouse_mcp.embedded.sync.warehouse import Warehouse

from .cdc_support import add_cdc_schema, add_cdc_source, cdc_database, cursor_of, rows, run_cdc, slots_of
from .sync_support import job_rows, schema_row

COLUMNS = "id, name, price, tags, doc, seen_at"


@pytest.fixture
def db() -> Iterator[Database]:
    with cdc_database() as database:
        database.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name text, price numeric(10,2), tags int[], doc jsonb, "
            "seen_at timestamptz)",
            "INSERT INTO items SELECT g, 'n' || g, g * 1.5, ARRAY[g, g + 1], jsonb_build_object('g', g), "
            "'2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour' FROM generate_series(1, 20) g",
        )
        yield database


def source_rows(db: Database) -> list[tuple]:
    return db.fetch(f"SELECT {COLUMNS} FROM items ORDER BY id")


def comparable(values: list[tuple]) -> list[tuple]:
    """Rows from either side as plain values: JSON parsed, numbers as they are."""
    out = []
    for row in values:
        out.append(tuple(json.loads(v) if isinstance(v, str) and v.startswith("{") else v for v in row))
    return out


def change_the_source(db: Database) -> None:
    db.execute(
        "INSERT INTO items VALUES (100, 'new', 9.99, '{7}', '{\"k\": [1, 2]}', '2025-05-05 05:05:05+02')",
        "UPDATE items SET name = 'renamed', price = price + 1 WHERE id <= 3",
        "DELETE FROM items WHERE id IN (4, 5)",
        "UPDATE items SET id = 200 WHERE id = 6",  # primary-key change
        "BEGIN; INSERT INTO items VALUES (101, 'in tx', NULL, NULL, NULL, NULL); "
        "UPDATE items SET name = 'twice' WHERE id = 101; DELETE FROM items WHERE id = 7; COMMIT",
    )


@pytest.mark.parametrize("mode", ["consolidated", "cdc_only", "both"])
def test_snapshot_then_stream_matches_the_source_in_every_mode(
    mode: str, db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items", mode)

    [first] = run_cdc(store, vault, warehouse, schema_id)
    assert (first.status, first.rows_synced, first.error) == ("Completed", 20, None)
    assert slots_of(db.name) == [f"posthog_{source_id.replace('-', '')[:12]}"]
    consolidated = "postgres_items" if mode != "cdc_only" else None
    changelog = "postgres_items_cdc" if mode != "consolidated" else None
    if consolidated:
        assert comparable(rows(warehouse, consolidated, COLUMNS)) == comparable(source_rows(db))
    else:
        assert not warehouse.table_exists("postgres_items")
    if changelog:
        ops = warehouse.cursor().execute(f"SELECT _cdc_op, count(*) FROM {changelog} GROUP BY 1").fetchall()
        assert ops == [("snapshot", 20)]

    change_the_source(db)
    [second] = run_cdc(store, vault, warehouse, schema_id)
    # 1 insert + 3 updates + 2 deletes + 1 key change + (insert, update, delete)
    assert (second.status, second.rows_synced, second.error) == ("Completed", 10, None)
    if consolidated:
        assert comparable(rows(warehouse, consolidated, COLUMNS)) == comparable(source_rows(db))
        assert schema_row(store, schema_id)["table_row_count"] == len(source_rows(db))
    if changelog:
        changes = (
            warehouse.cursor()
            .execute(
                f"SELECT _cdc_op, id, name, _cdc_before FROM {changelog} WHERE _cdc_op != 'snapshot' "
                "ORDER BY _cdc_lsn, _cdc_seq"
            )
            .fetchall()
        )
        assert [(op, id_) for op, id_, _, _ in changes] == [
            ("insert", 100),
            ("update", 1),
            ("update", 2),
            ("update", 3),
            ("delete", 4),
            ("delete", 5),
            ("update", 200),
            ("insert", 101),
            ("update", 101),
            ("delete", 7),
        ]
        # The key change carries the old key; deletes carry the key they removed.
        assert json.loads(changes[6][3]) == {"id": "6"}
        assert json.loads(changes[4][3]) == {"id": "4"}
        assert changes[1][3] is None
        lsns = warehouse.cursor().execute(f"SELECT DISTINCT _cdc_lsn FROM {changelog}").fetchall()
        assert len(lsns) == 1 + 5  # the snapshot point and one per source transaction

    [third] = run_cdc(store, vault, warehouse, schema_id)
    assert (third.status, third.rows_synced) == ("Completed", 0)
    if consolidated:
        assert comparable(rows(warehouse, consolidated, COLUMNS)) == comparable(source_rows(db))
    if changelog:
        assert warehouse.row_count(changelog) == 20 + 10

    db.execute("TRUNCATE items", "INSERT INTO items (id, name) VALUES (1, 'after truncate')")
    [fourth] = run_cdc(store, vault, warehouse, schema_id)
    assert (fourth.status, fourth.rows_synced) == ("Completed", 2)
    if consolidated:
        assert rows(warehouse, consolidated, "id, name") == [(1, "after truncate")]
    if changelog:
        last = (
            warehouse.cursor()
            .execute(f"SELECT _cdc_op, id FROM {changelog} ORDER BY _cdc_lsn DESC, _cdc_seq DESC LIMIT 2")
            .fetchall()
        )
        assert last == [("insert", 1), ("truncate", None)]
    assert [job["rows_synced"] for job in job_rows(store, schema_id)] == [20, 10, 0, 2]


def test_a_page_per_batch_of_changes_gives_the_same_table(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items", "both")
    run_cdc(store, vault, warehouse, schema_id)
    for round_ in range(5):
        change_the_source(db)
        db.execute(
            f"UPDATE items SET id = id + {1000 * (round_ + 1)} WHERE id IN (100, 101, 200)",
            f"UPDATE items SET name = 'round {round_}' WHERE id % 3 = 0",
        )
    [outcome] = run_cdc(store, vault, warehouse, schema_id, batch_rows=3)
    assert outcome.status == "Completed", outcome.error
    assert comparable(rows(warehouse, "postgres_items", COLUMNS)) == comparable(source_rows(db))


def test_resync_takes_a_new_snapshot(db: Database, store: Store, vault: Vault, warehouse: Warehouse) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items")
    run_cdc(store, vault, warehouse, schema_id)
    token = cursor_of(store, schema_id)["cdc_snapshot"]
    db.execute("DELETE FROM items WHERE id > 10")
    with store.transaction() as sqlite:
        sqlite.execute("UPDATE schemas SET sync_cursor = NULL WHERE id = ?", (schema_id,))
    [outcome] = run_cdc(store, vault, warehouse, schema_id)
    assert (outcome.status, outcome.rows_synced) == ("Completed", 10)
    assert cursor_of(store, schema_id)["cdc_snapshot"] != token
    assert comparable(rows(warehouse, "postgres_items", COLUMNS)) == comparable(source_rows(db))


def test_a_column_added_at_the_source_joins_the_table(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items", "both")
    run_cdc(store, vault, warehouse, schema_id)
    db.execute(
        "ALTER TABLE items ADD COLUMN extra text",
        "INSERT INTO items (id, name, extra) VALUES (300, 'with extra', 'x')",
        "UPDATE items SET extra = 'y' WHERE id = 1",
    )
    [outcome] = run_cdc(store, vault, warehouse, schema_id)
    assert (outcome.status, outcome.rows_synced) == ("Completed", 2)
    columns = f"{COLUMNS}, extra"
    expected = db.fetch(f"SELECT {columns} FROM items ORDER BY id")
    assert comparable(rows(warehouse, "postgres_items", columns)) == comparable(expected)
    assert rows(warehouse, "postgres_items_cdc", "id, extra", "_cdc_lsn DESC, _cdc_seq DESC LIMIT 1") == [
        (1, "y")
    ]

    db.execute("ALTER TABLE items DROP COLUMN extra", "UPDATE items SET name = 'after drop' WHERE id = 300")
    [after_drop] = run_cdc(store, vault, warehouse, schema_id)
    assert after_drop.status == "Completed", after_drop.error
    # The warehouse keeps the column; a row changed after the drop has it NULL, as the source has no value.
    assert comparable(rows(warehouse, "postgres_items", COLUMNS)) == comparable(source_rows(db))
    assert rows(warehouse, "postgres_items", "extra", "id DESC LIMIT 1") == [(None,)]


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        ("ALTER TABLE items ADD COLUMN flag text NOT NULL DEFAULT 'on'", "with a default value"),
        (
            "ALTER TABLE items ALTER COLUMN price TYPE text",
            "changed type at the source (DECIMAL(10,2) → VARCHAR)",
        ),
    ],
)
def test_a_change_the_stream_cannot_carry_fails_the_table_until_a_resync(
    alter: str, message: str, db: Database, store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items")
    run_cdc(store, vault, warehouse, schema_id)
    db.execute(alter, "UPDATE items SET name = 'changed' WHERE id = 2")
    [failed] = run_cdc(store, vault, warehouse, schema_id)
    assert failed.status == "Failed"
    assert message in (failed.error or "") and "Resync the table" in (failed.error or "")
    assert schema_row(store, schema_id)["latest_error"] == failed.error
    db.execute("UPDATE items SET name = 'later' WHERE id = 3")  # the slot moves on past this table's position
    [still] = run_cdc(store, vault, warehouse, schema_id)
    assert (still.status, still.error) == ("Failed", failed.error)  # the same reason, not a gap's

    with store.transaction() as sqlite:  # what the resync endpoint does to the cursor
        sqlite.execute("UPDATE schemas SET sync_cursor = NULL WHERE id = ?", (schema_id,))
    [resynced] = run_cdc(store, vault, warehouse, schema_id)
    assert resynced.status == "Completed", resynced.error
    assert comparable(rows(warehouse, "postgres_items", "*")) == comparable(
        db.fetch("SELECT * FROM items ORDER BY id")
    )


def test_a_streamed_row_lands_exactly_like_a_snapshot_row(
    store: Store, vault: Vault, warehouse: Warehouse
) -> None:
    with cdc_database() as db:
        db.execute(
            "CREATE TYPE mood AS ENUM ('ok', 'sad')",
            "CREATE DOMAIN positive AS integer CHECK (VALUE > 0)",
            "CREATE TABLE kinds (id integer PRIMARY KEY, big bigint, small smallint, exact numeric(12,3), "
            "loose numeric, ratio double precision, real4 real, flag boolean, label varchar(20), ch char(3), "
            "day date, at timestamp, at_tz timestamptz, clock time, span interval, doc jsonb, plain json, "
            "ref uuid, raw bytea, ints integer[], words text[], feeling mood, feelings mood[], pos positive, "
            "addr inet)",
            "INSERT INTO kinds VALUES "
            "(1, 9007199254740993, -32768, 123456789.125, 3.14159265358979323846264338327950288, 'NaN', -0.5, true, "
            "'ünï ''q''', 'ab', '2024-02-29', '2024-01-02 03:04:05.123456', '1999-12-31 23:59:59.5+05', '23:59:59', "
            "'1 year 2 mons 3 days 04:05:06.5', '{\"a\": [1, {\"b\": null}]}', '{\"x\" : 1}', "
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '{1,NULL,3}', '{\"a b\",\"c,d\",NULL}', 'sad', "
            "'{ok,sad}', 7, '10.0.0.1/8'), "
            "(2, NULL, NULL, 'NaN', NULL, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
            "'2 mons 03:00:00', NULL, NULL, NULL, '', '{}', '{}', NULL, NULL, NULL, NULL)",
        )
        source_id = add_cdc_source(store, vault, db)
        schema_id = add_cdc_schema(store, source_id, "kinds", "both")
        [first] = run_cdc(store, vault, warehouse, schema_id)
        assert first.status == "Completed", first.error
        db.execute(
            "INSERT INTO kinds SELECT id + 100, big, small, exact, loose, ratio, real4, flag, label, ch, day, at, "
            "at_tz, clock, span, doc, plain, ref, raw, ints, words, feeling, feelings, pos, addr FROM kinds"
        )
        [second] = run_cdc(store, vault, warehouse, schema_id)
        assert (second.status, second.rows_synced, second.error) == ("Completed", 2, None)
        for table in ("postgres_kinds", "postgres_kinds_cdc"):
            columns = [
                c.name for c in warehouse.columns(table) if c.name != "id" and not c.name.startswith("_cdc")
            ]
            projection = ", ".join(f'"{c}"' for c in columns)
            snapshot = (
                rows(warehouse, table, projection, "id")
                if False
                else warehouse.cursor()
                .execute(f"SELECT {projection} FROM {table} WHERE id < 100 ORDER BY id")
                .fetchall()
            )
            streamed = (
                warehouse.cursor()
                .execute(f"SELECT {projection} FROM {table} WHERE id > 100 ORDER BY id")
                .fetchall()
            )
            assert len(snapshot) == 2
            assert [_nan_equal(row) for row in streamed] == [_nan_equal(row) for row in snapshot], table


def _nan_equal(row: tuple) -> tuple:
    """NaN != NaN: compare it as a marker."""
    return tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row)


def test_cdc_snapshot_and_stream_through_an_ssh_tunnel_one_tunnel_per_run(
    db: Database,
    store: Store,
    vault: Vault,
    warehouse: Warehouse,
    bastion: Bastion,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[ssh_tunnel.Tunnel] = []
    real_open = ssh_tunnel.Tunnel.open

    def counting_open(self: ssh_tunnel.Tunnel) -> ssh_tunnel.Tunnel:
        opened.append(self)
        return real_open(self)

    monkeypatch.setattr(ssh_tunnel.Tunnel, "open", counting_open)
    source_id = add_cdc_source(store, vault, db, ssh_tunnel=bastion.tunnel())
    schema_id = add_cdc_schema(store, source_id, "items", "consolidated")
    [first] = run_cdc(store, vault, warehouse, schema_id)  # discovery, snapshot slot, snapshot read, slot
    assert (first.status, first.rows_synced, first.error) == ("Completed", 20, None)
    assert len(opened) == 1 and opened[0].destination == ("127.0.0.1", 5432)
    change_the_source(db)
    [second] = run_cdc(store, vault, warehouse, schema_id)  # the changes streamed from the slot
    assert (second.status, second.error) == ("Completed", None)
    assert len(opened) == 2
    assert comparable(rows(warehouse, "postgres_items", COLUMNS)) == comparable(source_rows(db))


def test_a_slot_that_lost_changes_is_explained_with_the_fix() -> None:
    from warehouse_mcp.embedded.connectors.postgres_cdc import SlotHealth
    from warehouse_mcp.embedded.sync.cdc import lost_changes

    assert lost_changes(SlotHealth(exists=True, confirmed_lsn=100), 100, "s", managed=True) is None
    assert lost_changes(SlotHealth(exists=True, confirmed_lsn=90), 100, "s", managed=True) is None
    dropped = lost_changes(SlotHealth(exists=False), 100, "s", managed=True) or ""
    assert "'s' no longer exists" in dropped and "Resync the table" in dropped
    invalidated = lost_changes(SlotHealth(exists=True, lost=True), 100, "s", managed=False) or ""
    assert "fell too far behind and PostgreSQL invalidated it" in invalidated
    assert "raise max_slot_wal_keep_size" in invalidated and "Resync the table" in invalidated
    consumed = (
        lost_changes(SlotHealth(exists=True, confirmed_lsn=0x1_0000_0001), 0x10, "s", managed=True) or ""
    )
    assert "(it is at 1/1, the table at 0/10)" in consumed


def test_the_scheduler_runs_a_source_s_cdc_tables_together_every_minute(
    db: Database, store: Store, vault: Vault, home: Path
) -> None:
    db.execute("CREATE TABLE other (id integer PRIMARY KEY, v integer)", "INSERT INTO other VALUES (1, 1)")
    source_id = add_cdc_source(store, vault, db)
    items = add_cdc_schema(store, source_id, "items")
    other = add_cdc_schema(store, source_id, "other")
    with store.transaction() as sqlite:  # both due now, as a new source's tables are
        sqlite.execute("UPDATE schemas SET next_sync_at = ? WHERE source_id = ?", (iso(START), source_id))
    clock = ManualClock(START)
    service = SyncService(store, vault, home, clock, poll_seconds=0.05)
    service.start()
    try:
        wait_for(lambda: completed(store, items) == 1 and completed(store, other) == 1, "the first run")
        first = {job["schema_id"]: job for job in store.query("SELECT * FROM jobs")}
        assert first[items]["created_at"] == first[other]["created_at"]  # one run served both
        db.execute("UPDATE items SET name = 'x' WHERE id = 1", "INSERT INTO other VALUES (2, 2)")
        clock.advance(30)
        time.sleep(0.3)
        assert completed(store, items) == 1  # not due before the minute
        clock.advance(31)
        wait_for(
            lambda: completed(store, items) == 2 and completed(store, other) == 2, "the run a minute later"
        )
    finally:
        service.stop()
    assert [job["rows_synced"] for job in job_rows(store, items)] == [20, 1]
    assert [job["rows_synced"] for job in job_rows(store, other)] == [1, 1]


START = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def completed(store: Store, schema_id: str) -> int:
    return sum(1 for job in job_rows(store, schema_id) if job["status"] == "Completed")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_an_idle_run_publishes_no_version_and_streams_on(
    db: Database, store: Store, vault: Vault, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_id = add_cdc_source(store, vault, db)
    schema_id = add_cdc_schema(store, source_id, "items", "consolidated")
    run_cdc(store, vault, warehouse, schema_id)
    db.execute(
        "CREATE TABLE other (n int)", "INSERT INTO other SELECT generate_series(1, 1000)"
    )  # WAL, no change
    version = warehouse.manifest.version
    [idle] = run_cdc(store, vault, warehouse, schema_id)
    assert (idle.status, idle.rows_synced, warehouse.manifest.version) == ("Completed", 0, version)

    monkeypatch.setattr("warehouse_mcp.embedded.sync.cdc.IDLE_WAL_BYTES", 1)  # past the bound: positions move
    [moved] = run_cdc(store, vault, warehouse, schema_id)
    assert (moved.status, warehouse.manifest.version) == ("Completed", version + 1)

    change_the_source(db)
    [second] = run_cdc(store, vault, warehouse, schema_id)
    assert (second.status, second.rows_synced, second.error) == ("Completed", 10, None)
    assert comparable(rows(warehouse, "postgres_items", COLUMNS)) == comparable(source_rows(db))
