"""When syncs run, and who runs them.

Scheduling lives in SQLite (`schemas.next_sync_at`), so any process sharing the data directory can
ask for a sync by writing the row. Exactly one process runs them: the holder of an exclusive
`flock` on `<home>/warehouse.lock`, which is also the only process that writes the warehouse (readers,
in any process, open its published versions without it). The others retry the lock now and then and take over when the
holder exits; the kernel drops the lock of a process that dies, even by `kill -9`, and the new holder
fails the jobs the dead one left Running and reschedules them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from warehouse_mcp.embedded.store import Store, jobs, schedule, utcnow
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.engine import (
    DEFAULT_BATCH_ROWS,
    RUNNABLE_SYNC_TYPES,
    JobProgress,
    ProgressCallback,
    SyncEngine,
)
from warehouse_mcp.embedded.sync.warehouse import WAREHOUSE_FILE, Warehouse
from warehouse_mcp.models import SyncType

logger = logging.getLogger(__name__)

LOCK_FILE = "warehouse.lock"
DAY = timedelta(days=1)


class Clock:
    """Wall-clock time in UTC; tests substitute a ManualClock."""

    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Sleep up to `seconds`, returning early (True) once `event` is set."""
        return event.wait(max(seconds, 0.0))


class ManualClock(Clock):
    """A clock that only moves when told to: `advance()` wakes whoever waits on it."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2025, 1, 1, tzinfo=UTC)
        self._changed = threading.Condition()

    def now(self) -> datetime:
        with self._changed:
            return self._now

    def advance(self, by: timedelta | float) -> None:
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        with self._changed:
            self._now += step
            self._changed.notify_all()

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self._changed:
            deadline = self._now + timedelta(seconds=seconds)
            # The short real timeout only lets a set event be noticed; time itself moves by advance().
            while not event.is_set() and self._now < deadline:
                self._changed.wait(0.02)
        return event.is_set()


class WarehouseLock:
    """The exclusive, non-blocking `flock` that makes one process the warehouse writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class WarehouseBusyError(RuntimeError):
    """The warehouse belongs to another process, so this one cannot change it."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"Another warehouse-mcp process owns the warehouse at {path}; run this there or stop it"
        )


def next_run_at(
    finished: datetime, interval_seconds: int | None, time_of_day_text: str | None
) -> datetime | None:
    """The next run after one that ended at `finished`: `interval` later, on the `HH:MM:SS` UTC grid if set.

    Intervals under a day repeat from that time of day (6hour at 03:00 → 03:00, 09:00, 15:00, 21:00);
    longer ones land on that time of day nearest to `finished + interval`.
    """
    if interval_seconds is None:
        return None
    interval = timedelta(seconds=interval_seconds)
    if not time_of_day_text:
        return finished + interval
    at = time_of_day.fromisoformat(time_of_day_text)
    if interval < DAY:
        anchor = datetime.combine(finished.date(), at, tzinfo=UTC)
        return anchor + ((finished - anchor) // interval + 1) * interval
    wanted = finished + interval
    candidate = datetime.combine(wanted.date(), at, tzinfo=UTC)
    if candidate - wanted > DAY / 2:
        candidate -= DAY
    elif wanted - candidate > DAY / 2:
        candidate += DAY
    return candidate


def due_schema_ids(store: Store, now: datetime, limit: int) -> list[str]:
    """Schemas to run now, most overdue first: enabled, polled, due, and not already running."""
    return schedule.due_schema_ids(store, now, limit, RUNNABLE_SYNC_TYPES)


def seconds_until_next_due(store: Store, now: datetime) -> float | None:
    days = schedule.days_until_next_due(store, now, RUNNABLE_SYNC_TYPES)
    return None if days is None else max(days * 86400.0, 0.0)


def request_run(store: Store, schema_id: str, now: datetime, *, reset_cursor: bool = False) -> None:
    """Make the schema due now; with `reset_cursor` ("resync") also stop its running job and forget the cursor."""
    with store.transaction() as db:
        if reset_cursor:
            jobs.request_cancel(db, schema_id)
            schedule.forget_cursor(db, schema_id)
        # Running from the request on, as PostHog shows a triggered sync: whoever waits for it (the
        # data-warehouse-sync-wait tool) must not read the previous run's Completed as this one's.
        schedule.mark_requested(db, schema_id, now, RUNNABLE_SYNC_TYPES)


def reschedule_after_run(store: Store, schema_id: str, finished: datetime) -> None:
    """Set the next run from the schema's frequency; a run requested while this one ran is kept if sooner."""
    with store.transaction() as db:
        settings = schedule.settings(db, schema_id, deleted_too=True)
        if settings is None:
            return
        planned = (
            None  # webhook tables are kept fresh by the source; they run only when asked (backfill)
            if settings.sync_type == SyncType.webhook
            else next_run_at(finished, settings.sync_frequency_interval, settings.sync_time_of_day)
        )
        requested = _parse(settings.next_sync_at)
        candidates = [moment for moment in (planned, requested) if moment is not None]
        schedule.set_next_run(db, schema_id, min(candidates) if candidates else None)


def recompute_schedule(store: Store, schema_id: str, now: datetime) -> None:
    """After should_sync / frequency / time-of-day changes: disabled → no run; never synced → now; else on plan."""
    with store.transaction() as db:
        settings = schedule.settings(db, schema_id, deleted_too=False)
        if settings is None:
            return
        if not settings.should_sync:
            next_at = None
        elif schedule.has_running_job(db, schema_id):
            return  # the running job reschedules from the new settings when it ends
        elif settings.last_synced_at is None:
            next_at = now
        elif settings.sync_type == SyncType.webhook:
            next_at = None  # loaded once already; the source pushes the rest
        else:
            planned = next_run_at(
                _parse(settings.last_synced_at) or now,
                settings.sync_frequency_interval,
                settings.sync_time_of_day,
            )
            next_at = None if planned is None else max(planned, now)
        schedule.set_next_run(db, schema_id, next_at)


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Scheduler:
    """The background thread that holds (or waits for) the warehouse lock and runs due syncs."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        home: Path,
        *,
        clock: Clock | None = None,
        max_concurrency: int = 2,
        poll_seconds: float = 5.0,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.store = store
        self.vault = vault
        self.clock = clock or Clock()
        self.warehouse_path = home / WAREHOUSE_FILE
        self.max_concurrency = max_concurrency
        self.poll_seconds = poll_seconds
        self.batch_rows = batch_rows
        self._lock = WarehouseLock(home / LOCK_FILE)
        self._holder = threading.RLock()  # guards becoming / ceasing to be the holder
        self._state = threading.Lock()  # guards the dictionaries below
        self._warehouse: Warehouse | None = None
        self._engine: SyncEngine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: dict[str, Future[JobProgress]] = {}
        self._blocked: set[str] = set()
        self._listeners: list[ProgressCallback] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def holds_lock(self) -> bool:
        return self._lock.held

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stopping.clear()
        self._executor = ThreadPoolExecutor(
            max_workers=self.max_concurrency, thread_name_prefix="warehouse-sync"
        )
        self._thread = threading.Thread(target=self._loop, name="warehouse-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop scanning, let running jobs stop at their next batch (recorded as interrupted), release the lock."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._state:
            futures = list(self._in_flight.values())
        _, unfinished = wait_for_futures(futures, timeout=timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=not unfinished, cancel_futures=True)
            self._executor = None
        if unfinished:
            # A job is stuck in a source read; its process keeps the lock until it exits.
            logger.warning("%d sync job(s) did not stop within %.0fs", len(unfinished), timeout)
            return
        self._release()

    def wake(self) -> None:
        self._wake.set()

    def add_listener(self, listener: ProgressCallback) -> Callable[[], None]:
        """Call `listener` after each batch and at the end of every job this process runs; returns a remover."""
        with self._state:
            self._listeners.append(listener)

        def remove() -> None:
            with self._state:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    @contextmanager
    def exclusive(self, schema_ids: list[str], timeout: float = 60.0) -> Iterator[Warehouse]:
        """The warehouse, with the given schemas' running jobs cancelled and finished and none started meanwhile.

        Raises WarehouseBusyError when another process holds the warehouse lock.
        """
        with self._holder:
            temporary = not self._lock.held and not self.running
            warehouse = self._become_holder()
            if warehouse is None:
                raise WarehouseBusyError(self.warehouse_path)
            try:
                with self._state:
                    self._blocked.update(schema_ids)
                    futures = [self._in_flight[s] for s in schema_ids if s in self._in_flight]
                with self.store.transaction() as db:
                    for schema_id in schema_ids:
                        jobs.request_cancel(db, schema_id)
                _, unfinished = wait_for_futures(futures, timeout=timeout)
                if unfinished:
                    raise TimeoutError(
                        f"The running sync did not stop within {timeout:.0f}s; try again shortly."
                    )
                yield warehouse
            finally:
                with self._state:
                    self._blocked.difference_update(schema_ids)
                if temporary:
                    self._release()

    # The scheduler thread.

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                if self._become_holder() is not None:
                    self._dispatch_due()
            except Exception:
                logger.exception("The sync scheduler failed a scan; it retries at the next one")
            self.clock.wait(self._wake, self._sleep_seconds())

    def _sleep_seconds(self) -> float:
        with self._state:
            full = len(self._in_flight) >= self.max_concurrency
        if full or not self._lock.held:
            return self.poll_seconds  # a job that ends wakes the loop
        until_due = seconds_until_next_due(self.store, self.clock.now())
        return self.poll_seconds if until_due is None else min(self.poll_seconds, until_due)

    def _become_holder(self) -> Warehouse | None:
        with self._holder:
            if self._warehouse is not None:
                return self._warehouse
            if not self._lock.try_acquire():
                return None
            try:
                self._warehouse = Warehouse(self.warehouse_path)
            except BaseException:
                self._lock.release()
                raise
            self._engine = SyncEngine(
                self.store, self.vault, self._warehouse, self.clock, batch_rows=self.batch_rows
            )
            recovered = jobs.recover_orphans(self.store, self.clock.now())
            if recovered:
                logger.warning(
                    "Marked %d interrupted sync job(s) as failed; they run again now", len(recovered)
                )
            logger.info("This process now runs the syncs (warehouse %s)", self.warehouse_path)
            return self._warehouse

    def _release(self) -> None:
        with self._holder:
            if self._warehouse is not None:
                self._warehouse.close()
                self._warehouse = None
                self._engine = None
            self._lock.release()

    def _dispatch_due(self) -> None:
        executor = self._executor
        if executor is None or self._stopping.is_set():
            return
        with self._state:
            free = self.max_concurrency - len(self._in_flight)
            busy = set(self._in_flight) | self._blocked
        if free <= 0:
            return
        now = self.clock.now()
        for schema_id in due_schema_ids(self.store, now, limit=free + len(busy)):
            if free <= 0:
                break
            if schema_id in busy:
                continue
            job = jobs.claim(self.store, schema_id, now)
            if job is None:
                continue
            # A CDC table's run serves every CDC table of its source (they share one replication slot).
            group = [job, *jobs.claim_cdc_siblings(self.store, job, now)]
            with self._state:
                future = executor.submit(self._run, group)
                for member in group:
                    self._in_flight[member.schema_id] = future
            free -= 1

    def _run(self, group: list[jobs.ClaimedJob]) -> JobProgress:
        engine = self._engine
        assert engine is not None
        job = group[0]
        try:
            outcome = engine.run(job, stop=self._stopping, progress=self._notify, cdc_siblings=group[1:])
            if outcome.error != jobs.INTERRUPTED_ERROR:
                for member in group:
                    reschedule_after_run(self.store, member.schema_id, self.clock.now())
            return outcome
        except Exception:
            logger.exception("Sync job %s could not be recorded; it is failed at the next start", job.job_id)
            raise
        finally:
            with self._state:
                for member in group:
                    self._in_flight.pop(member.schema_id, None)
            self._wake.set()

    def _notify(self, progress: JobProgress) -> None:
        with self._state:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(progress)
