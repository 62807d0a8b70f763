"""One sync job: read a source table as Arrow batches and land it in the warehouse.

The connector's read runs a few batches ahead on its own thread (read_ahead.py), so the source read
and the warehouse writes overlap. Batches go to a staging table; between batches the job records its progress and honours a cancel
(`jobs.cancel_requested`, set by any process) or a server stop. Only after every batch is in does it
commit to the target table (swap, merge or insert, by sync type) and then, in the metadata store,
the new cursor: the cursor never runs ahead of the data, so a crash at any point loses no rows (an
append run that dies between the two commits inserts its rows again on the retry).

Cursor rules (README, "Sync guarantees"): `full_refresh` reads everything and replaces the table.
`incremental` and `append` read the rows whose `incremental_field` is at or above the saved cursor or NULL,
and on Postgres also every row written by a transaction not finished when the last read took its snapshot
(rows committed late with an older cursor value; on MySQL/MariaDB a date or time cursor starts instead at the
floor its last read saved, when that is lower); `incremental` merges them on the primary key, `append`
inserts the ones the table does not hold yet. `xmin` (Postgres) reads the rows written since the last
read's snapshot and merges them on the primary key. With no saved cursor (first run, after a resync or
delete_data) every type reads everything and replaces the table.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms, registry, ssh_tunnel
from warehouse_mcp.embedded.connectors.base import ColumnInfo, ReadRequest, SourceError, TableInfo
from warehouse_mcp.embedded.store import jobs
from warehouse_mcp.embedded.store.vault import Vault, VaultError
from warehouse_mcp.embedded.sync import cdc, runnable
from warehouse_mcp.embedded.sync import cursor as sync_cursor
from warehouse_mcp.embedded.sync.read_ahead import read_ahead
from warehouse_mcp.embedded.sync.warehouse import (
    SchemaDriftError,
    Staging,
    TableState,
    Warehouse,
    warehouse_table_name,
)
from warehouse_mcp.models import JobStatus, SyncType

if TYPE_CHECKING:
    import pyarrow as pa

    from warehouse_mcp.embedded.store import Store
    from warehouse_mcp.embedded.sync.scheduler import Clock

logger = logging.getLogger(__name__)

# Sync types the scheduler runs by reading tables; webhook rows arrive pushed (stripe_webhooks.py).
POLLED_SYNC_TYPES = (SyncType.full_refresh, SyncType.incremental, SyncType.append, SyncType.xmin)
# Webhook tables also run, but only when asked (first load after setup, reload, resync): the source
# pushes changes afterwards, and a full read is how the rows that existed before the webhook arrive.
# CDC tables run on their schedule too, one run per source for all its CDC tables (sync/cdc.py).
RUNNABLE_SYNC_TYPES = (*POLLED_SYNC_TYPES, SyncType.webhook, SyncType.cdc)
DEFAULT_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class JobProgress:
    """A job's state after a batch (status Running) or at its end."""

    job_id: str
    schema_id: str
    status: str
    rows_synced: int
    error: str | None = None


ProgressCallback = Callable[[JobProgress], None]


class _Cancelled(Exception):
    pass


class _Interrupted(Exception):
    pass


@dataclass(frozen=True)
class _Plan:
    table_name: str
    table: TableInfo
    columns: list[ColumnInfo]
    request: ReadRequest
    write: str  # "replace" | "merge" | "append"
    primary_keys: list[str]
    sync_type: str
    saved: sync_cursor.SyncCursor | None


class SyncEngine:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        warehouse: Warehouse,
        clock: Clock,
        *,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        self.store = store
        self.vault = vault
        self.warehouse = warehouse
        self.clock = clock
        self.batch_rows = batch_rows

    def run(
        self,
        job: jobs.ClaimedJob,
        *,
        stop: threading.Event | None = None,
        progress: ProgressCallback | None = None,
        cdc_siblings: list[jobs.ClaimedJob] | None = None,
    ) -> JobProgress:
        """Run a claimed job to its end and record it; never raises for a failed sync.

        A CDC job runs with the jobs of its source's other CDC tables (`cdc_siblings`): one run serves them all.
        """
        with ssh_tunnel.tunnel_scope():  # one SSH tunnel (if the source has one) per job, closed with it
            return self._run(job, stop=stop, progress=progress, cdc_siblings=cdc_siblings)

    def _run(
        self,
        job: jobs.ClaimedJob,
        *,
        stop: threading.Event | None,
        progress: ProgressCallback | None,
        cdc_siblings: list[jobs.ClaimedJob] | None,
    ) -> JobProgress:
        target = jobs.load_target(self.store, job.schema_id)
        if target is not None and target.sync_type == SyncType.cdc and not target.deleted:
            return self._run_cdc(target, [job, *(cdc_siblings or [])], stop, progress)
        started = time.monotonic()
        rows = 0
        secrets: list[str] = []
        staging: Staging | None = None

        def report(status: str, error: str | None = None) -> JobProgress:
            return _notify(progress, JobProgress(job.job_id, job.schema_id, status, rows, error))

        check_stop = self._stop_check(stop, [job])
        try:
            target = jobs.load_target(self.store, job.schema_id)
            if target is None or target.deleted:
                raise _Cancelled
            config = self._config(target)
            secrets = forms.secret_values(target.source_type, config)
            connector = registry.connector_for(target.source_type)
            plan = _plan(target, connector.discover(config), self.batch_rows)
            staging = self.warehouse.start_staging(plan.table_name, plan.columns, job.job_id)
            high_water = _HighWater(plan.request.incremental_field)
            check_stop()
            # A cancel or stop is honoured while the source is slow to send the next batch too.
            batches = read_ahead(connector.read(config, plan.request), while_waiting=check_stop)
            try:
                for batch in batches:
                    staging.append(batch)
                    high_water.update(batch)
                    rows += batch.num_rows
                    jobs.record_progress(self.store, job.job_id, rows)
                    report(JobStatus.Running)
                    check_stop()
            finally:
                _close(batches)
            table = _commit(staging, plan)
            staging = None
            jobs.record_success(
                self.store,
                job,
                rows_synced=rows,
                finished_at=self.clock.now(),
                cursor_before=target.sync_cursor_json,
                cursor_after=sync_cursor.dump(_next_cursor(plan, high_water)),
                table=table,
                table_id=target.table_id or str(uuid.uuid4()),
            )
            logger.info(
                "Synced %s: %d rows into %s in %.1fs",
                target.schema_name,
                rows,
                table.name,
                time.monotonic() - started,
            )
            return report(JobStatus.Completed)
        except _Cancelled:
            _discard(staging)
            jobs.record_cancelled(self.store, job, rows_synced=rows, finished_at=self.clock.now())
            return report(JobStatus.Failed, jobs.CANCELLED_ERROR)
        except _Interrupted:
            _discard(staging)
            jobs.record_interrupted(self.store, job, rows_synced=rows, finished_at=self.clock.now())
            return report(JobStatus.Failed, jobs.INTERRUPTED_ERROR)
        except (SourceError, VaultError, SchemaDriftError) as exc:  # worded for the user
            _discard(staging)
            error = _scrub(str(exc), secrets)
            logger.warning("Sync job %s failed: %s", job.job_id, error)
            jobs.record_failure(self.store, job, rows_synced=rows, error=error, finished_at=self.clock.now())
            return report(JobStatus.Failed, error)
        except Exception as exc:
            _discard(staging)
            error = _scrub(f"Sync failed: {type(exc).__name__}: {exc}", secrets)
            logger.error("Sync job %s failed unexpectedly:\n%s", job.job_id, _scrub(_traceback(exc), secrets))
            jobs.record_failure(self.store, job, rows_synced=rows, error=error, finished_at=self.clock.now())
            return report(JobStatus.Failed, error)

    def _run_cdc(
        self,
        target: jobs.SyncTarget,
        group: list[jobs.ClaimedJob],
        stop: threading.Event | None,
        progress: ProgressCallback | None,
    ) -> JobProgress:
        by_schema = {job.schema_id: job for job in group}
        rows = dict.fromkeys(by_schema, 0)
        secrets: list[str] = []

        def report(job: jobs.ClaimedJob, status: str, error: str | None = None) -> JobProgress:
            return _notify(
                progress, JobProgress(job.job_id, job.schema_id, status, rows[job.schema_id], error)
            )

        check_stop = self._stop_check(stop, group)

        def on_progress(schema_id: str, count: int) -> None:
            job = by_schema.get(schema_id)
            if job is not None:
                rows[schema_id] = count
                jobs.record_progress(self.store, job.job_id, count)
                report(job, JobStatus.Running)

        finished = self.clock.now
        try:
            secrets = forms.secret_values(target.source_type, self._config(target))
            run = cdc.CdcRun(
                self.store,
                self.vault,
                self.warehouse,
                self.clock,
                batch_changes=self.batch_rows,
                check_stop=check_stop,
                progress=on_progress,
            )
            outcomes = run.run(target.source_id)
        except _Cancelled:
            for job in group:
                jobs.record_cancelled(
                    self.store, job, rows_synced=rows[job.schema_id], finished_at=finished()
                )
            return report(group[0], JobStatus.Cancelled, jobs.CANCELLED_ERROR)
        except _Interrupted:
            for job in group:
                jobs.record_interrupted(
                    self.store, job, rows_synced=rows[job.schema_id], finished_at=finished()
                )
            return report(group[0], JobStatus.Failed, jobs.INTERRUPTED_ERROR)
        except Exception as exc:
            error = _scrub(f"Sync failed: {type(exc).__name__}: {exc}", secrets)
            logger.error(
                "CDC run of %s failed unexpectedly:\n%s", target.source_id, _scrub(_traceback(exc), secrets)
            )
            outcomes = {job.schema_id: cdc.TableOutcome(error=error) for job in group}
        answers = []
        for job in group:
            outcome = outcomes.get(job.schema_id) or cdc.TableOutcome(
                error="The table no longer syncs with CDC."
            )
            rows[job.schema_id] = outcome.rows
            if outcome.error is None and outcome.state is not None:
                jobs.record_success(
                    self.store,
                    job,
                    rows_synced=outcome.rows,
                    finished_at=finished(),
                    cursor_before=outcome.cursor_before,
                    cursor_after=outcome.cursor_after or outcome.cursor_before,
                    table=outcome.state,
                    table_id=outcome.table_id or str(uuid.uuid4()),
                )
                answers.append(report(job, JobStatus.Completed))
            else:
                error = outcome.error or "The CDC table has not been loaded yet."
                jobs.record_failure(
                    self.store, job, rows_synced=outcome.rows, error=error, finished_at=finished()
                )
                answers.append(report(job, JobStatus.Failed, error))
        return answers[0]

    def _config(self, target: jobs.SyncTarget) -> dict[str, Any]:
        """The source's connection settings, secrets decrypted."""
        return forms.merge_secrets(target.job_inputs, self.vault.decrypt(target.job_inputs_secret))

    def _stop_check(self, stop: threading.Event | None, group: list[jobs.ClaimedJob]) -> Callable[[], None]:
        """Raises _Interrupted when the server stops, _Cancelled when any job of `group` is cancelled."""

        def check_stop() -> None:
            if stop is not None and stop.is_set():
                raise _Interrupted
            if any(jobs.cancel_requested(self.store, job.job_id) for job in group):
                raise _Cancelled

        return check_stop


def _notify(progress: ProgressCallback | None, state: JobProgress) -> JobProgress:
    """Tell the progress listener (its failure never stops the sync); `state` back."""
    if progress is not None:
        try:
            progress(state)
        except Exception:
            logger.exception("A sync progress listener failed (the sync goes on)")
    return state


def _plan(target: jobs.SyncTarget, tables: list[TableInfo], batch_rows: int) -> _Plan:
    sync_type = target.sync_type
    if sync_type is None:
        raise SourceError(f"Table '{target.schema_name}' has no sync type set; choose one before syncing it.")
    if sync_type == SyncType.webhook:
        sync_type = SyncType.full_refresh  # the backfill; pushed events merge into it by primary key
    table = next((t for t in tables if t.name == target.schema_name), None)
    if table is None:
        raise SourceError(
            f"Table '{target.schema_name}' no longer exists in the source (or this user cannot read it). "
            "Refresh the source's schemas, or restore the table."
        )
    primary_keys = target.primary_key_columns or table.primary_keys
    refusal = runnable.refusal(target.source_type, sync_type, target.schema_name, primary_keys)
    if refusal:
        raise SourceError(refusal)
    if sync_type not in POLLED_SYNC_TYPES:
        raise SourceError(f"Table '{target.schema_name}' uses {sync_type} sync, which is not run by polling.")

    field: str | None = None
    table_name = warehouse_table_name(target.prefix, target.source_type, target.schema_name)
    # A table landed under an earlier naming rule: the new name starts with a full load.
    moved = target.table_name is not None and target.table_name != table_name
    saved = None if moved else sync_cursor.load(target.sync_cursor_json)
    cursor: Any = None
    since_xid: int | None = None
    if sync_type in (SyncType.incremental, SyncType.append):
        field = target.incremental_field
        if not field:
            raise SourceError(
                f"Table '{target.schema_name}' uses {sync_type} sync but has no incremental field; set one."
            )
        if saved is not None and saved.value is not None:
            cursor, since_xid = sync_cursor.read_from(saved), saved.xid
    elif sync_type == SyncType.xmin and saved is not None:
        since_xid = saved.xid
    keyed = sync_type == SyncType.xmin or (sync_type == SyncType.incremental and bool(primary_keys))
    if keyed:
        _check_primary_key(target, table, primary_keys, saved)
    # No cursor (first run, resync, delete_data): read everything and replace whatever is there.
    first = cursor is None and since_xid is None
    write = "replace" if first else "merge" if keyed else "append"

    required = {field, *primary_keys} if keyed else {field}
    enabled = set(target.enabled_columns) if target.enabled_columns else None
    columns = [c for c in table.columns if enabled is None or c.name in enabled or c.name in required]
    if not columns:
        raise SourceError(f"None of the enabled columns of '{target.schema_name}' exist in the source table.")
    names = {c.name for c in columns}
    if field and field not in names:
        raise SourceError(f"The incremental field '{field}' is not a column of '{target.schema_name}'.")
    request = ReadRequest(
        table=table,
        columns=[c.name for c in columns] if enabled is not None else None,
        incremental_field=field,
        cursor=cursor,
        since_xid=since_xid,
        batch_rows=batch_rows,
    )
    return _Plan(
        table_name=table_name,
        table=table,
        columns=columns,
        request=request,
        write=write,
        primary_keys=[k for k in primary_keys if k in names] if keyed else [],
        sync_type=sync_type,
        saved=saved,
    )


def _check_primary_key(
    target: jobs.SyncTarget, table: TableInfo, primary_keys: list[str], saved: sync_cursor.SyncCursor | None
) -> None:
    """Rows are merged on `primary_keys`: refuse to merge on a key the source no longer has."""
    fix = "Delete the synced data (delete_data), set primary_key_columns to the key to merge on, and sync again."
    names = {column.name for column in table.columns}
    gone = [key for key in primary_keys if key not in names]
    if gone:
        raise SourceError(
            f"The primary key column(s) {', '.join(gone)} of '{target.schema_name}' no longer exist at the source, "
            f"so its rows cannot be merged. {fix}"
        )
    if saved is not None and saved.key is not None and tuple(table.primary_keys) != saved.key:
        raise SourceError(
            f"The primary key of '{target.schema_name}' changed at the source since the last sync "
            f"(was {_key_text(saved.key)}, now {_key_text(table.primary_keys)}); rows merged on the old key could "
            f"be mixed up, so this table was not synced. {fix}"
        )


def _key_text(key: Sequence[str]) -> str:
    return "(" + ", ".join(key) + ")" if key else "none"


def _commit(staging: Staging, plan: _Plan) -> TableState:
    if plan.write == "replace":
        return staging.replace_target()
    if plan.write == "merge":
        return staging.merge_into_target(plan.primary_keys)
    return staging.append_to_target(skip_landed_by=plan.request.incremental_field)


class _HighWater:
    """The running maximum of the incremental field over the batches read."""

    def __init__(self, field: str | None) -> None:
        self.field = field
        self.value: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        if self.field is None or batch.num_rows == 0:
            return
        import pyarrow.compute as pc

        index = batch.schema.get_field_index(self.field)
        if index < 0:
            raise SourceError(
                f"The source returned no '{self.field}' column to track the incremental cursor."
            )
        value = pc.max(batch.column(index)).as_py()
        if value is not None and (self.value is None or value > self.value):
            self.value = value


def _next_cursor(plan: _Plan, high_water: _HighWater) -> sync_cursor.SyncCursor | None:
    """Where the next run starts: everything up to the snapshot this read saw is in the warehouse now."""
    xid = plan.request.marks.snapshot_xmin
    key = tuple(plan.table.primary_keys) if plan.primary_keys else None
    if plan.sync_type == SyncType.xmin:
        return sync_cursor.SyncCursor(xid=xid, key=key)
    if plan.request.incremental_field is None:
        return None  # full refresh: a later switch to incremental starts with a full load
    value = high_water.value if high_water.value is not None else plan.saved and plan.saved.value
    if value is None:
        return None  # no cursor value yet (no rows, or only NULLs): the next run reads everything again
    return sync_cursor.SyncCursor(sync_cursor.json_value(value), xid, key, plan.request.marks.cursor_floor)


def _close(batches: Iterable[Any]) -> None:
    close = getattr(batches, "close", None)
    if callable(close):
        close()


def _discard(staging: Staging | None) -> None:
    if staging is None:
        return
    try:
        staging.discard()
    except Exception:
        logger.exception(
            "Could not drop the staging table %s (dropped when the warehouse next opens)", staging.name
        )


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:  # longest first, as forms.secret_values orders them
        text = text.replace(secret, "***")
    return text


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
