"""Scheduling, the warehouse lock, orphaned jobs and crash recovery, with the real Postgres as the source."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.conftest import Database
from tests.waiting import wait_until
from warehouse_mcp.embedded.store import Store, iso
from warehouse_mcp.embedded.store.jobs import INTERRUPTED_ERROR
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync import scheduler
from warehouse_mcp.embedded.sync.engine import JobProgress
from warehouse_mcp.embedded.sync.scheduler import ManualClock, Scheduler, next_run_at
from warehouse_mcp.embedded.sync.service import SyncService, WarehouseBusyError

from .sync_support import add_schema, add_source, job_rows, schema_row

START = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def service(store: Store, vault: Vault, home: Path, clock: ManualClock) -> Iterator[SyncService]:
    svc = SyncService(store, vault, home, clock, batch_rows=100)
    yield svc
    svc.stop()


@pytest.fixture
def source_table(postgres_db: Database) -> Database:
    postgres_db.execute(
        "CREATE TABLE items (id integer PRIMARY KEY, name text)",
        "INSERT INTO items SELECT g, 'n' || g FROM generate_series(1, 10) g",
    )
    return postgres_db


def completed_jobs(store: Store, schema_id: str) -> int:
    return sum(1 for job in job_rows(store, schema_id) if job["status"] == "Completed")


# --- next_run_at ------------------------------------------------------------------------------------------


def test_next_run_is_interval_later_without_time_of_day() -> None:
    finished = datetime(2025, 3, 1, 10, 7, 30, tzinfo=UTC)
    assert next_run_at(finished, 300, None) == finished + timedelta(minutes=5)
    assert next_run_at(finished, None, None) is None
    assert next_run_at(finished, None, "03:00:00") is None


def test_short_intervals_repeat_from_the_time_of_day() -> None:
    six_hours = 6 * 3600
    assert next_run_at(datetime(2025, 3, 1, 10, 7, tzinfo=UTC), six_hours, "03:00:00") == datetime(
        2025, 3, 1, 15, 0, tzinfo=UTC
    )
    assert next_run_at(datetime(2025, 3, 1, 1, 0, tzinfo=UTC), six_hours, "03:00:00") == datetime(
        2025, 3, 1, 3, 0, tzinfo=UTC
    )
    assert next_run_at(datetime(2025, 3, 1, 21, 0, tzinfo=UTC), six_hours, "03:00:00") == datetime(
        2025, 3, 2, 3, 0, tzinfo=UTC
    )


def test_long_intervals_land_on_the_time_of_day() -> None:
    day, week = 24 * 3600, 7 * 24 * 3600
    # A daily 03:00 sync that finished at 03:05 runs next at 03:00 tomorrow, not 03:05.
    assert next_run_at(datetime(2025, 3, 1, 3, 5, tzinfo=UTC), day, "03:00:00") == datetime(
        2025, 3, 2, 3, 0, tzinfo=UTC
    )
    assert next_run_at(datetime(2025, 3, 1, 22, 0, tzinfo=UTC), day, "03:00:00") == datetime(
        2025, 3, 3, 3, 0, tzinfo=UTC
    )
    assert next_run_at(datetime(2025, 3, 1, 3, 5, tzinfo=UTC), week, "03:00:00") == datetime(
        2025, 3, 8, 3, 0, tzinfo=UTC
    )


# --- the lock ---------------------------------------------------------------------------------------------


def test_only_one_scheduler_holds_the_lock_and_the_other_takes_over(
    store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    first = Scheduler(store, vault, home, clock=clock, poll_seconds=1)
    second = Scheduler(store, vault, home, clock=clock, poll_seconds=1)
    first.start()
    try:
        wait_until(lambda: first.holds_lock, what="the first scheduler to take the lock")
        second.start()
        second.wake()
        time.sleep(0.2)
        assert first.holds_lock and not second.holds_lock
        assert (home / "warehouse.lock").read_text().strip() == str(os.getpid())

        first.stop()
        assert not first.holds_lock
        second.wake()
        wait_until(lambda: second.holds_lock, what="the second scheduler to take over")
    finally:
        first.stop()
        second.stop()


def test_dropping_data_needs_the_lock(
    source_table: Database, store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(store, source_id, "items")
    holder = SyncService(store, vault, home, clock)
    other = SyncService(store, vault, home, clock)
    holder.start()
    try:
        wait_until(lambda: holder.holds_lock, what="the lock")
        with pytest.raises(WarehouseBusyError) as raised:
            other.delete_data(schema_id)
        assert str(raised.value) == (
            f"Another warehouse-mcp process owns the warehouse at {home / 'warehouse.duckdb'}; run this there or stop it"
        )
        with pytest.raises(WarehouseBusyError):
            other.drop_source(source_id)
        # Requests through the metadata work from any process: the holder runs them.
        other.request_sync(schema_id)
        holder.wake()
        wait_until(lambda: completed_jobs(store, schema_id) == 1, what="the requested sync")
        holder.delete_data(schema_id)
        schema = schema_row(store, schema_id)
        assert (schema["table_name"], schema["last_synced_at"], schema["status"], schema["sync_cursor"]) == (
            None,
            None,
            None,
            None,
        )
        with pytest.raises(WarehouseBusyError), other.warehouse_writer():
            pass
    finally:
        holder.stop()
        other.stop()

    # With nobody holding it, a service that is not running takes the warehouse just for the write.
    with other.warehouse_writer() as warehouse:
        assert other.holds_lock
        assert not warehouse.table_exists("postgres_items")
    assert not other.holds_lock


# --- scheduling -------------------------------------------------------------------------------------------


def test_a_5min_schema_runs_again_after_5_minutes(
    source_table: Database, store: Store, vault: Vault, service: SyncService, clock: ManualClock
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(store, source_id, "items", frequency="5min", next_sync_at=START)
    service.start()

    wait_until(lambda: completed_jobs(store, schema_id) == 1, what="the first run")
    assert schema_row(store, schema_id)["next_sync_at"] == iso(START + timedelta(minutes=5))
    clock.advance(timedelta(minutes=4))
    time.sleep(0.2)
    assert completed_jobs(store, schema_id) == 1

    clock.advance(timedelta(minutes=1))
    wait_until(lambda: completed_jobs(store, schema_id) == 2, what="the second run")
    assert schema_row(store, schema_id)["next_sync_at"] == iso(START + timedelta(minutes=10))


def test_disabled_and_never_schemas_are_not_repeated_and_webhook_runs_only_when_asked(
    source_table: Database, store: Store, vault: Vault, service: SyncService, clock: ManualClock
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    disabled = add_schema(store, source_id, "items", should_sync=False, next_sync_at=START)
    never = add_schema(store, source_id, "items", frequency="never")
    service.start()
    service.schedule_changed(never)  # enabled and never synced: runs once, then never again

    wait_until(lambda: completed_jobs(store, never) == 1, what="the initial run")
    assert schema_row(store, never)["next_sync_at"] is None
    # A webhook table gets one backfill when asked (after setup, reload, resync), then only pushed events.
    webhook = add_schema(store, source_id, "items", sync_type="webhook", next_sync_at=START)
    service.wake()
    wait_until(lambda: completed_jobs(store, webhook) == 1, what="the webhook backfill")
    assert schema_row(store, webhook)["next_sync_at"] is None
    clock.advance(timedelta(days=60))
    time.sleep(0.2)
    assert job_rows(store, disabled) == []
    assert completed_jobs(store, never) == 1 and completed_jobs(store, webhook) == 1


def test_resync_cancels_the_running_job_and_starts_over(
    source_table: Database, store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    source_table.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(11, 3000) g")
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(
        store, source_id, "items", sync_type="incremental", incremental_field="id", primary_key_columns=["id"]
    )
    service = SyncService(store, vault, home, clock, batch_rows=100)
    first_batch = threading.Event()
    release = threading.Event()

    def slow_first_job(progress: JobProgress) -> None:
        if progress.status == "Running" and not first_batch.is_set():
            first_batch.set()
            release.wait(10)

    service.add_listener(slow_first_job)
    service.start()
    try:
        service.request_sync(schema_id)
        assert first_batch.wait(10)
        service.request_sync(schema_id, reset_cursor=True)
        release.set()
        wait_until(lambda: completed_jobs(store, schema_id) == 1, what="the re-run")
        runs = {job["status"]: job for job in job_rows(store, schema_id)}  # same clock time: order by status
        assert sorted(runs) == ["Completed", "Failed"]
        assert runs["Failed"]["latest_error"] == "Sync cancelled by user"  # as PostHog records it
        assert runs["Completed"]["rows_synced"] == 3000
    finally:
        service.stop()


# --- crashes ----------------------------------------------------------------------------------------------


def test_job_left_running_is_failed_at_start_and_rerun(
    source_table: Database, store: Store, vault: Vault, service: SyncService, clock: ManualClock
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(store, source_id, "items")
    with store.transaction() as db:  # what a process killed mid-sync leaves behind
        db.execute(
            "INSERT INTO jobs (id, team_id, source_id, schema_id, status, rows_synced, created_at) "
            "VALUES ('dead-job', 1, ?, ?, 'Running', 40, ?)",
            (source_id, schema_id, iso(START - timedelta(minutes=1))),
        )
        db.execute("UPDATE schemas SET status = 'Running' WHERE id = ?", (schema_id,))

    service.start()

    wait_until(lambda: completed_jobs(store, schema_id) == 1, what="the rescheduled run")
    dead, rerun = job_rows(store, schema_id)
    assert (dead["id"], dead["status"], dead["latest_error"]) == ("dead-job", "Failed", INTERRUPTED_ERROR)
    assert dead["finished_at"] == iso(START)
    assert rerun["status"] == "Completed" and rerun["rows_synced"] == 10
    schema = schema_row(store, schema_id)
    assert (schema["status"], schema["latest_error"]) == ("Completed", None)


def test_stop_mid_sync_fails_the_job_for_a_retry(
    source_table: Database, store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    source_table.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(11, 1000) g")
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(store, source_id, "items", next_sync_at=START)
    service = SyncService(store, vault, home, clock, batch_rows=100)
    service.add_listener(lambda progress: time.sleep(0.05))
    service.start()
    wait_until(lambda: (job_rows(store, schema_id) or [{}])[0].get("rows_synced", 0) > 0, what="a batch")
    service.stop()

    [job] = job_rows(store, schema_id)
    assert (job["status"], job["latest_error"]) == ("Failed", INTERRUPTED_ERROR)
    schema = schema_row(store, schema_id)
    assert (schema["status"], schema["next_sync_at"]) == ("Failed", iso(START))


CRASHING_SYNC = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from warehouse_mcp.embedded.store import Store
    from warehouse_mcp.embedded.store.vault import Vault
    from warehouse_mcp.embedded.sync.service import SyncService

    home, schema_id = Path(sys.argv[1]), sys.argv[2]
    service = SyncService(Store(home), Vault(home), home, batch_rows=50, poll_seconds=0.1)

    def slow(progress):
        print(progress.status, progress.rows_synced, flush=True)
        time.sleep(0.2)

    service.add_listener(slow)
    service.start()
    service.request_sync(schema_id)
    time.sleep(60)
    """
)


def test_kill_9_mid_sync_keeps_the_previous_table_and_the_next_start_recovers(
    source_table: Database, store: Store, vault: Vault, home: Path
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_id = add_schema(store, source_id, "items", frequency="24hour")
    first = SyncService(store, vault, home, poll_seconds=0.1)
    first.start()
    first.request_sync(schema_id)
    wait_until(lambda: completed_jobs(store, schema_id) == 1, what="the first sync")
    first.stop()
    source_table.execute("INSERT INTO items SELECT g, 'n' || g FROM generate_series(11, 2000) g")

    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_SYNC, str(home), schema_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the first batch is in the child's staging table
        assert line.startswith("Running"), line + (child.stderr.read() if child.stderr else "")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()

    [_, killed] = job_rows(store, schema_id)
    assert killed["status"] == "Running"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM postgres_items").fetchone() == (10,)

    restarted = SyncService(store, vault, home, poll_seconds=0.1)
    restarted.start()
    try:
        wait_until(lambda: completed_jobs(store, schema_id) == 2, what="the retried sync")
        jobs_after = job_rows(store, schema_id)
        assert (jobs_after[1]["status"], jobs_after[1]["latest_error"]) == ("Failed", INTERRUPTED_ERROR)
        assert (jobs_after[2]["status"], jobs_after[2]["rows_synced"]) == ("Completed", 2000)
        assert schema_row(store, schema_id)["table_row_count"] == 2000
    finally:
        restarted.stop()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM postgres_items").fetchone() == (2000,)
        tables = db.execute("SELECT table_name FROM information_schema.tables").fetchall()
        assert tables == [("postgres_items",)]


def test_request_and_schedule_changes_write_the_row(store: Store, vault: Vault, clock: ManualClock) -> None:
    source_id = add_source(
        store, vault, "Postgres", {"host": "h", "database": "d", "user": "u", "password": "p"}
    )
    schema_id = add_schema(store, source_id, "t", frequency="1hour")
    scheduler.recompute_schedule(store, schema_id, START)
    assert schema_row(store, schema_id)["next_sync_at"] == iso(START)  # never synced: now

    with store.transaction() as db:
        db.execute(
            "UPDATE schemas SET last_synced_at = ?, sync_cursor = '5' WHERE id = ?",
            (iso(START - timedelta(minutes=10)), schema_id),
        )
    scheduler.recompute_schedule(store, schema_id, START)
    assert schema_row(store, schema_id)["next_sync_at"] == iso(START + timedelta(minutes=50))

    with store.transaction() as db:
        db.execute("UPDATE schemas SET should_sync = 0 WHERE id = ?", (schema_id,))
    scheduler.recompute_schedule(store, schema_id, START)
    assert schema_row(store, schema_id)["next_sync_at"] is None

    scheduler.request_run(store, schema_id, START, reset_cursor=True)
    row = schema_row(store, schema_id)
    assert (row["next_sync_at"], row["sync_cursor"]) == (iso(START), None)


def test_due_schemas_run_side_by_side(
    source_table: Database, store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    source_table.execute(
        "CREATE TABLE other (id integer PRIMARY KEY, v text)",
        "INSERT INTO other SELECT g, 'v' || g FROM generate_series(1, 2000) g",
        "INSERT INTO items SELECT g, 'n' || g FROM generate_series(11, 2000) g",
    )
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_ids = [add_schema(store, source_id, name, next_sync_at=START) for name in ("items", "other")]
    running_together = threading.Barrier(2, timeout=10)
    met: set[str] = set()

    def meet(progress: JobProgress) -> None:
        if progress.status == "Running" and progress.schema_id not in met:
            met.add(progress.schema_id)
            running_together.wait()  # fails unless both jobs are mid-run at once

    service = SyncService(store, vault, home, clock, max_concurrency=2, batch_rows=100)
    service.add_listener(meet)
    service.start()
    try:
        wait_until(lambda: all(completed_jobs(store, s) == 1 for s in schema_ids), what="both syncs")
        assert [schema_row(store, s)["table_row_count"] for s in schema_ids] == [2000, 2000]
    finally:
        service.stop()


def test_concurrency_is_bounded_and_queued_schemas_still_run(
    source_table: Database, store: Store, vault: Vault, home: Path, clock: ManualClock
) -> None:
    source_id = add_source(store, vault, "Postgres", source_table.config)
    schema_ids = [add_schema(store, source_id, "items", next_sync_at=START) for _ in range(3)]
    running: set[str] = set()
    most_at_once = 0

    def count(progress: JobProgress) -> None:
        nonlocal most_at_once
        if progress.status == "Running":
            running.add(progress.job_id)
        else:
            running.discard(progress.job_id)
        most_at_once = max(most_at_once, len(running))

    service = SyncService(store, vault, home, clock, max_concurrency=1, batch_rows=3)
    service.add_listener(count)
    service.start()
    try:
        wait_until(lambda: all(completed_jobs(store, s) == 1 for s in schema_ids), what="all three syncs")
        assert most_at_once == 1
    finally:
        service.stop()
