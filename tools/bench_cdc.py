"""`bench.py cdc`: Postgres CDC into the warehouse: snapshot, apply rate, end-to-end latency.

In ONE run, on a scratch database with `--cdc-rows` rows (posthog mode: the run creates its slot and drops it):
- the snapshot (first run) in rows per second;
- the apply rate: `--changes` changes (a quarter inserts, half updates, a quarter deletes, in transactions of
  1,000) applied by one run, in changes per second, for `consolidated` and for `both` (change table too);
- end-to-end latency from a source commit to the row being visible to a reader of warehouse.duckdb:
  on reload (the commit, then a reload request to the running server's scheduler), median of `--repeat`;
  and at the `1min` schedule (commits at random moments, the scheduler left alone), each of `--minute-samples`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

from bench_sync import PG, _pg, _print, scratch_database
from warehouse_mcp.embedded.store import Store, iso, jobs, schema_records, source_records, utcnow
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import SyncEngine
from warehouse_mcp.embedded.sync.scheduler import Clock
from warehouse_mcp.embedded.sync.service import SyncService
from warehouse_mcp.embedded.sync.warehouse import Warehouse
from warehouse_mcp.models import FREQUENCY_SECONDS

TABLE = "CREATE TABLE items (id bigint PRIMARY KEY, v integer NOT NULL, note text, updated_at timestamptz)"


def add_commands(commands: Any) -> None:
    parser = commands.add_parser("cdc", help="CDC snapshot, apply rate and commit-to-warehouse latency")
    parser.add_argument("--cdc-rows", type=int, default=100_000, help="rows in the table before CDC starts")
    parser.add_argument("--changes", type=int, default=100_000, help="changes one run applies")
    parser.add_argument("--repeat", type=int, default=5, help="latency samples on reload")
    parser.add_argument(
        "--minute-samples", type=int, default=2, help="latency samples at 1min (each ≤ 1 min)"
    )
    parser.set_defaults(run=bench_cdc)


def bench_cdc(args: argparse.Namespace) -> int:
    results: list[tuple[str, str]] = []
    failures: list[str] = []
    for mode in ("consolidated", "both"):
        with scratch_database() as database, tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            _fill(database, args.cdc_rows)
            schema_id = _add_cdc_schema(home, database, mode, "1hour")
            seconds, rows = _run_once(home, schema_id)
            if mode == "consolidated":
                results.append((f"snapshot, {rows:,} rows", f"{seconds:.2f} s, {rows / seconds:,.0f} rows/s"))
            applied = _make_changes(database, args.cdc_rows, args.changes)
            seconds, rows = _run_once(home, schema_id)
            if rows != applied:
                failures.append(f"{mode}: the run applied {rows} changes, the source made {applied}")
            _check_equal(home, database, failures, mode)
            results.append(
                (
                    f"apply {applied:,} changes ({mode})",
                    f"{seconds:.2f} s, {applied / seconds:,.0f} changes/s",
                )
            )

    with scratch_database() as database, tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        _fill(database, 1000)
        schema_id = _add_cdc_schema(home, database, "consolidated", "1min")
        service = SyncService(Store(home), Vault(home), home, poll_seconds=1.0)
        service.start()
        try:
            service.request_sync(schema_id)
            _wait_visible(home, 1000, "SELECT count(*) FROM postgres_items WHERE id = 1000")
            reload = []
            for sample in range(args.repeat):
                marker = 10_000 + sample
                committed = _commit_marker(database, marker)
                service.request_sync(schema_id)
                reload.append(_wait_visible(home, marker, _marker_query(marker)) - committed)
            results.append(
                (
                    "commit → warehouse on reload",
                    f"median {statistics.median(reload):.2f} s, max {max(reload):.2f} s",
                )
            )
            minute = []
            for sample in range(args.minute_samples):
                time.sleep(random.uniform(0, 30))
                marker = 20_000 + sample
                committed = _commit_marker(database, marker)
                minute.append(_wait_visible(home, marker, _marker_query(marker), timeout=120) - committed)
            if minute:
                results.append(
                    (
                        "commit → warehouse at 1min",
                        ", ".join(f"{value:.1f} s" for value in minute)
                        + " (the wait for the next run, ≤ 60 s, "
                        "plus the run)",
                    )
                )
        finally:
            service.stop()
            _drop_slots(database)
    _print(results)
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def _fill(database: str, rows: int) -> None:
    with _pg(database) as conn:
        conn.execute(TABLE)
        conn.execute(
            "INSERT INTO items SELECT g, g, 'row ' || g, now() FROM generate_series(1, %s) g",  # type: ignore[arg-type]
            (rows,),
        )


def _add_cdc_schema(home: Path, database: str, mode: str, frequency: str) -> str:
    store, vault = Store(home), Vault(home)
    config = {
        "host": PG["host"],
        "port": PG["port"],
        "user": PG["user"],
        "password": "",
        "database": database,
        "schema": "public",
        "cdc_enabled": True,
        "cdc_management_mode": "posthog",
    }
    job_inputs, job_inputs_secret = source_records.encode_config(vault, "Postgres", config)
    source_id = str(uuid.uuid4())
    with store.transaction() as db:
        source_records.insert(
            db,
            source_id=source_id,
            team_id=1,
            source_type="Postgres",
            prefix=None,
            description=None,
            created_via="api",
            access_method="warehouse",
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata={"engine": "duckdb"},
        )
        schema_id = schema_records.insert(
            db,
            team_id=1,
            source_id=source_id,
            name="items",
            table=None,
            should_sync=True,
            sync_type="cdc",
            incremental_field=None,
            primary_key_columns=["id"],
            sync_frequency_interval=FREQUENCY_SECONDS[frequency],
            cdc_table_mode=mode,
        )
        db.execute("UPDATE schemas SET next_sync_at = ? WHERE id = ?", (iso(utcnow()), schema_id))
    return schema_id


def _run_once(home: Path, schema_id: str) -> tuple[float, int]:
    store, vault = Store(home), Vault(home)
    warehouse = Warehouse(home / "warehouse.duckdb")
    try:
        job = jobs.claim(store, schema_id, utcnow())
        assert job is not None
        started = time.perf_counter()
        outcome = SyncEngine(store, vault, warehouse, Clock()).run(job)
        seconds = time.perf_counter() - started
    finally:
        warehouse.close()
    if outcome.status != "Completed":
        raise SystemExit(f"CDC run failed: {outcome.error}")
    return seconds, outcome.rows_synced


def _make_changes(database: str, rows: int, changes: int) -> int:
    """A quarter inserts, half updates, a quarter deletes, 1,000 a transaction; returns how many were made."""
    made = 0
    next_id = rows + 1
    with _pg(database, autocommit=False) as conn:
        while made < changes:
            step = min(1000, changes - made)
            inserts, updates = step // 4, step // 2
            deletes = step - inserts - updates
            conn.execute(
                "INSERT INTO items SELECT g, 0, 'new', now() FROM generate_series(%s::bigint, %s::bigint) g",
                (next_id, next_id + inserts - 1),
            )
            next_id += inserts
            updated = conn.execute(
                "UPDATE items SET v = v + 1, updated_at = now() WHERE id IN "
                "(SELECT id FROM items ORDER BY random() LIMIT %s)",
                (updates,),
            ).rowcount
            deleted = conn.execute(
                "DELETE FROM items WHERE id IN (SELECT id FROM items ORDER BY random() LIMIT %s)", (deletes,)
            ).rowcount
            conn.commit()
            made += inserts + updated + deleted
    return made


def _check_equal(home: Path, database: str, failures: list[str], mode: str) -> None:
    with _pg(database) as conn:
        source = conn.execute("SELECT count(*), sum(v), sum(id) FROM items").fetchone()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        landed = db.execute("SELECT count(*), sum(v), sum(id) FROM postgres_items").fetchone()
    if tuple(source or ()) != tuple(landed or ()):
        failures.append(f"{mode}: warehouse {landed} != source {source}")


def _commit_marker(database: str, marker: int) -> float:
    with _pg(database) as conn:
        conn.execute("INSERT INTO items VALUES (%s, %s, 'marker', now())", (marker, marker))
    return time.perf_counter()


def _marker_query(marker: int) -> str:
    return f"SELECT count(*) FROM postgres_items WHERE id = {marker}"


def _wait_visible(home: Path, marker: int, query: str, timeout: float = 60) -> float:
    """When a reader opening warehouse.duckdb afresh first sees the row (polled every 20 ms)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
                row = db.execute(query).fetchone()
            if row and row[0]:
                return time.perf_counter()
        except duckdb.Error:
            pass  # the table is not there yet
        time.sleep(0.02)
    raise SystemExit(f"row {marker} did not reach the warehouse within {timeout:.0f}s")


def _drop_slots(database: str) -> None:
    with _pg("postgres") as admin:
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s",
            (database,),
        )
