"""SyncService: what the API handlers call to run, steer and undo syncs.

Requests (sync now, resync, cancel, schedule changes) are rows in SQLite, so they work from any process
sharing the data directory; the warehouse lock holder acts on them. Dropping synced tables needs the
warehouse itself, so only the holder can do it (others get WarehouseBusyError).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from warehouse_mcp.embedded.store import Store, jobs, schedule
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync import cdc, scheduler
from warehouse_mcp.embedded.sync.engine import DEFAULT_BATCH_ROWS, ProgressCallback
from warehouse_mcp.embedded.sync.scheduler import Clock, Scheduler, WarehouseBusyError
from warehouse_mcp.embedded.sync.warehouse import Warehouse, warehouse_table_name

__all__ = ["SyncService", "WarehouseBusyError"]

logger = logging.getLogger(__name__)


class SyncService:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        home: Path,
        clock: Clock | None = None,
        max_concurrency: int = 2,
        *,
        poll_seconds: float = 5.0,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.store = store
        self.clock = clock or Clock()
        self._scheduler = Scheduler(
            store,
            vault,
            home,
            clock=self.clock,
            max_concurrency=max_concurrency,
            poll_seconds=poll_seconds,
            batch_rows=batch_rows,
        )

    @property
    def warehouse_path(self) -> Path:
        return self._scheduler.warehouse_path

    @property
    def holds_lock(self) -> bool:
        """True while this process is the one that writes the warehouse and runs the syncs."""
        return self._scheduler.holds_lock

    def warehouse_writer(self) -> AbstractContextManager[Warehouse]:
        """The warehouse for a short write outside the sync jobs (webhook rows).

        Raises WarehouseBusyError when another process owns the warehouse.
        """
        return self._scheduler.exclusive([])

    def start(self) -> None:
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.stop()

    def wake(self) -> None:
        """Look for due work now instead of at the next poll."""
        self._scheduler.wake()

    def add_listener(self, listener: ProgressCallback) -> Callable[[], None]:
        """Follow the jobs this process runs (after each batch and at the end); returns a remover."""
        return self._scheduler.add_listener(listener)

    def request_sync(self, schema_id: str, *, reset_cursor: bool = False) -> None:
        """Sync the schema now; with `reset_cursor` (resync) also cancel its running job and start from scratch."""
        scheduler.request_run(self.store, schema_id, self.clock.now(), reset_cursor=reset_cursor)
        self.wake()

    def cancel(self, schema_id: str) -> str | None:
        """Stop the schema's sync: "cancelled" when its running job was asked to stop at its next batch
        (the job and schema then fail with "Sync cancelled by user"), "settled" when the schema showed
        Running with no job running (the pending request is dropped and the latest outcome shown),
        None when there was nothing to stop."""
        with self.store.transaction() as db:
            if jobs.request_cancel(db, schema_id):
                return "cancelled"
            settled = jobs.settle_stale_running(db, schema_id, self.clock.now())
        if not settled:
            return None
        scheduler.reschedule_after_run(self.store, schema_id, self.clock.now())
        return "settled"

    def schedule_changed(self, schema_id: str) -> None:
        """Recompute the next run after should_sync, frequency or time of day changed."""
        scheduler.recompute_schedule(self.store, schema_id, self.clock.now())
        self.wake()

    def forget_cdc_snapshots(self, source_id: str) -> None:
        """The source's CDC tables load from a new snapshot when they next run (their slot is gone)."""
        jobs.forget_cdc_snapshots(self.store, source_id, paused_only=False)

    def delete_data(self, schema_id: str) -> None:
        """Stop the schema's sync, drop its table and forget what was synced (table, last sync, status, cursor)."""
        self._drop_tables([schema_id], unschedule=False)

    def drop_source(self, source_id: str) -> None:
        """Stop the source's syncs for good and drop every table its schemas landed (deleted schemas included)."""
        self._drop_tables(schedule.source_schema_ids(self.store, source_id), unschedule=True)

    def _drop_tables(self, schema_ids: list[str], *, unschedule: bool) -> None:
        if not schema_ids:
            return
        with self._scheduler.exclusive(schema_ids) as warehouse:
            for names in schedule.landed_names(self.store, schema_ids):
                # The derived name too: a table may have landed without the schema row recording it (a crash).
                derived = warehouse_table_name(names.prefix, names.source_type, names.name)
                recorded = {names.table_name} if names.table_name is not None else set()
                for table in recorded | {derived, cdc.change_table_name(derived)}:
                    if warehouse.drop_table(table):
                        logger.info("Dropped warehouse table %s", table)
            now = self.clock.now()
            with self.store.transaction() as db:
                for schema_id in schema_ids:
                    jobs.reset_synced_data(db, schema_id, now)
                    if unschedule:
                        schedule.set_next_run(db, schema_id, None)
