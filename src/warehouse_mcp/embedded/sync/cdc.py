"""CDC runs: snapshot, then apply the source's changes to the warehouse, exactly once.

One run serves every CDC table of a source, since they share its replication slot (the scheduler hands the
run a job per table). A run:

1. reads the slot's health, then (posthog mode) makes the publication hold exactly the syncing CDC tables
   and creates the slot if missing; self_managed mode only checks them;
2. loads the tables that need it (first run, resync, delete_data, new mode) from one exported snapshot:
   each table's position is the snapshot's consistent point, so the stream continues exactly after it;
3. peeks whole transactions from the slot in commit order, at most `batch_changes` messages at a time, and
   commits each page's changes of every table together with the tables' new positions in one warehouse
   transaction; only then confirms the page to the slot. A crash before the confirm re-reads the page, and
   each table skips the transactions its stored position says it has (exactly once).

Table modes: `consolidated` keeps the source's current rows (deleted rows are gone); `cdc_only` appends every
change to `<table>_cdc`; `both` does both. The change table's columns are the source's (the row after an
insert or update, the old key, or whole old row, of a delete) plus `_cdc_op` (snapshot, insert, update, delete,
truncate), `_cdc_lsn` (the transaction's commit LSN as a number), `_cdc_seq` (the change's place in its
transaction), `_cdc_commit_time` and `_cdc_before` (the old key or row in Postgres text form, as JSON, when
the source sent one).

A table whose position the slot has moved past (slot dropped, invalidated or consumed elsewhere) has lost
changes: it fails with the reason and the fix (resync) rather than continuing with a gap.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import ColumnInfo, ReadRequest, SourceError, TableInfo
from warehouse_mcp.embedded.store import jobs
from warehouse_mcp.embedded.sync.replication_names import slot_and_publication
from warehouse_mcp.embedded.sync.warehouse import (
    DELETED_COLUMN,
    KEEP_COLUMN,
    PRIOR_KEY_PREFIX,
    CdcPosition,
    Staging,
    TableState,
    TableWrite,
    Warehouse,
    warehouse_table_name,
)
from warehouse_mcp.models import CdcTableMode

if TYPE_CHECKING:
    import pyarrow as pa

    from warehouse_mcp.embedded.connectors.postgres_cdc import (
        ChangedTable,
        PostgresCdc,
        SlotHealth,
        TableChange,
    )
    from warehouse_mcp.embedded.store import Store
    from warehouse_mcp.embedded.store.vault import Vault
    from warehouse_mcp.embedded.sync.scheduler import Clock

logger = logging.getLogger(__name__)

CHANGE_TABLE_SUFFIX = "_cdc"
# An idle run moves the positions (a new warehouse version) and the slot only once this much WAL is held back.
IDLE_WAL_BYTES = 16 * 1024 * 1024
CHANGE_COLUMNS = [
    ColumnInfo("_cdc_op", "text", False, "VARCHAR"),
    ColumnInfo("_cdc_lsn", "pg_lsn", False, "UBIGINT"),
    ColumnInfo("_cdc_seq", "integer", False, "INTEGER"),
    ColumnInfo("_cdc_commit_time", "timestamp with time zone", False, "TIMESTAMPTZ"),
    ColumnInfo("_cdc_before", "json", True, "JSON"),
]
_source_locks: dict[str, threading.Lock] = {}
_source_locks_guard = threading.Lock()


def change_table_name(table: str) -> str:
    return table + CHANGE_TABLE_SUFFIX


@dataclass
class TableOutcome:
    rows: int = 0
    error: str | None = None
    state: TableState | None = None
    cursor_before: str | None = None
    cursor_after: str | None = None
    table_id: str | None = None


@dataclass
class _Table:
    target: jobs.SyncTarget
    info: TableInfo
    columns: dict[str, ColumnInfo]
    keys: list[str]
    token: str
    position: CdcPosition | None
    outcome: TableOutcome
    needs_snapshot: bool = False
    failed_until_resync: bool = False
    consolidated: str | None = None
    changelog: str | None = None

    @property
    def mode(self) -> str:
        return self.target.cdc_table_mode

    @property
    def active(self) -> bool:
        return self.outcome.error is None

    def fail(self, error: str, *, until_resync: bool = False) -> None:
        """Stop this table for this run; `until_resync`: also every later run, with the same reason (the slot
        moves on without it, so it cannot stream on)."""
        if self.outcome.error is None:
            self.outcome.error = error
            self.failed_until_resync = until_resync
            logger.warning("CDC table %s failed: %s", self.target.schema_name, error)

    def take_relation(self, changed: ChangedTable, has_default: Callable[[str, str], bool]) -> None:
        """Schema drift: a column added at the source joins the table (NULL in rows synced before: so are
        they at the source), unless it has a default, which PostgreSQL puts into every existing row without
        a change to stream; a column whose type changed, or added with a default, fails the table."""
        enabled = set(self.target.enabled_columns or [])
        for column in changed.columns:
            known = self.columns.get(column.name)
            if known is None:
                if enabled and column.name not in enabled:
                    continue
                if has_default(changed.name, column.name):
                    self.fail(
                        f"Column '{column.name}' was added to '{self.target.schema_name}' at the source with a "
                        "default value, which PostgreSQL gives the existing rows without a change to stream. "
                        "Resync the table to load it again with the new column.",
                        until_resync=True,
                    )
                    return
                self.columns[column.name] = column
            else:
                self.check_type(column, known.warehouse_type)

    def check_type(self, column: ColumnInfo, warehouse_type: str) -> None:
        if column.warehouse_type != warehouse_type:
            self.fail(
                f"Column '{column.name}' of '{self.target.schema_name}' changed type at the source "
                f"({warehouse_type} → {column.warehouse_type}). Resync the table to load it again with the new "
                "type.",
                until_resync=True,
            )

    @property
    def column_types(self) -> dict[str, str]:
        return {name: column.warehouse_type for name, column in self.columns.items()}


@dataclass
class _Net:
    """The last state of one key in a page: a row (None: deleted), with columns still to keep from the target."""

    row: dict[str, Any] | None
    keep: frozenset[str] = frozenset()
    prior: tuple[Any, ...] | None = None


@dataclass
class _Page:
    """One table's share of a page of transactions."""

    truncate: bool = False
    net: dict[tuple[Any, ...], _Net] = field(default_factory=dict)
    changes: list[tuple[Any, ...]] = field(default_factory=list)  # change table rows (data dict, meta...)
    count: int = 0


class CdcRun:
    """One run over a source's CDC tables; `run()` returns each schema's outcome."""

    def __init__(
        self,
        store: Store,
        vault: Vault,
        warehouse: Warehouse,
        clock: Clock,
        *,
        batch_changes: int,
        check_stop: Callable[[], None],
        progress: Callable[[str, int], None],
    ) -> None:
        self.store = store
        self.vault = vault
        self.warehouse = warehouse
        self.clock = clock
        self.batch_changes = max(1, batch_changes)
        self.check_stop = check_stop
        self.progress = progress

    def run(self, source_id: str) -> dict[str, TableOutcome]:
        lock = _source_lock(source_id)
        with lock:
            return self._run(source_id)

    def _run(self, source_id: str) -> dict[str, TableOutcome]:
        jobs.forget_cdc_snapshots(self.store, source_id, paused_only=True)
        targets = [t for t in map(self._target, jobs.cdc_schema_ids(self.store, source_id)) if t is not None]
        if not targets:
            return {}
        first = targets[0]
        config = forms.merge_secrets(first.job_inputs, self.vault.decrypt(first.job_inputs_secret))
        secrets = forms.secret_values(first.source_type, config)
        try:
            if not forms.truthy(config.get("cdc_enabled")):
                raise SourceError(
                    "CDC is turned off for this source. Turn it on again (job_inputs cdc_enabled), or give "
                    "the table another sync type."
                )
            slot, publication, managed = slot_and_publication(source_id, config)
            tables = self._tables(targets, registry.connector_for(first.source_type).discover(config))
            # Imported on use, as domain.cdc does: the driver is heavy and only CDC runs need it here.
            from warehouse_mcp.embedded.connectors import postgres_cdc

            session = postgres_cdc.PostgresCdc(config, slot=slot, publication=publication, managed=managed)
            with session as cdc:
                self._check_slot(cdc, tables)
                self._record_failures(tables)
                cdc.prepare(sorted({t.info.name for t in tables}))
                self._snapshot(cdc, [t for t in tables if t.active and t.needs_snapshot])
                self._stream(cdc, [t for t in tables if t.active])
            self._fill_states(tables)
        except SourceError as error:
            message = _scrub(str(error), secrets)
            return {t.schema_id: TableOutcome(error=message) for t in targets}
        return {t.target.schema_id: t.outcome for t in tables} | {
            t.schema_id: TableOutcome(error=f"Table '{t.schema_name}' no longer exists in the source.")
            for t in targets
            if t.schema_id not in {table.target.schema_id for table in tables}
        }

    def _fill_states(self, tables: list[_Table]) -> None:
        for table in tables:
            if table.outcome.state is None and table.active:
                table.outcome.state = self.warehouse.describe(table.consolidated or table.changelog or "")

    def _target(self, schema_id: str) -> jobs.SyncTarget | None:
        target = jobs.load_target(self.store, schema_id)
        return None if target is None or target.deleted else target

    def _tables(self, targets: list[jobs.SyncTarget], discovered: list[TableInfo]) -> list[_Table]:
        by_name = {info.name: info for info in discovered}
        positions = self.warehouse.cdc_positions([t.schema_id for t in targets])
        tables = []
        for target in targets:
            info = by_name.get(target.schema_name)
            if info is None:
                continue
            keys = target.primary_key_columns or info.primary_keys
            enabled = set(target.enabled_columns or [])
            columns = {c.name: c for c in info.columns if not enabled or c.name in enabled or c.name in keys}
            cursor = target.sync_cursor if isinstance(target.sync_cursor, dict) else {}
            token = str(cursor.get("cdc_snapshot") or uuid.uuid4().hex)
            position = positions.get(target.schema_id)
            table = _Table(
                target=target,
                info=info,
                columns=columns,
                keys=list(keys),
                token=token,
                position=position,
                outcome=TableOutcome(cursor_before=target.sync_cursor_json, table_id=target.table_id),
            )
            table.needs_snapshot = position is None or position.token != token or position.mode != table.mode
            if position is not None and not table.needs_snapshot and position.error:
                table.fail(position.error)
            elif position is not None and not table.needs_snapshot:
                # Columns added at the source since join when their first change shows them (take_relation).
                table.columns = {n: c for n, c in columns.items() if n in position.columns}
                for column in table.columns.values():
                    table.check_type(column, position.columns[column.name])
            name = warehouse_table_name(target.prefix, target.source_type, target.schema_name)
            if table.mode != CdcTableMode.cdc_only:
                table.consolidated = name
            if table.mode != CdcTableMode.consolidated:
                table.changelog = change_table_name(name)
            if not keys:
                table.fail(f"CDC requires a primary key on table '{target.schema_name}'.")
            tables.append(table)
        return tables

    def _check_slot(self, cdc: PostgresCdc, tables: list[_Table]) -> None:
        """Tables that stream on from a position fail when the slot lost changes they have not applied."""
        health = cdc.slot_health()
        for table in tables:
            if not table.needs_snapshot and table.position is not None:
                problem = lost_changes(health, table.position.lsn, cdc.slot, managed=cdc.managed)
                if problem:
                    table.fail(problem, until_resync=True)
            if health.problem:
                table.fail(health.problem)

    def _record_failures(self, tables: list[_Table]) -> None:
        """Store the reason of a table that fails until resynced with its position before the slot is recreated:
        later runs give that reason, not the recreated slot's (which reads as consumed by another client)."""
        unrecorded = {
            t.target.schema_id: replace(t.position, error=t.outcome.error)
            for t in tables
            if t.failed_until_resync and t.position is not None and t.position.error != t.outcome.error
        }
        if unrecorded:
            self.warehouse.commit_changes([], unrecorded)
            for table in tables:
                table.position = unrecorded.get(table.target.schema_id, table.position)

    # Snapshot.

    def _snapshot(self, cdc: PostgresCdc, tables: list[_Table]) -> None:
        if not tables:
            return
        for table in tables:
            after = json.dumps({"cdc_snapshot": table.token})
            if table.outcome.cursor_before != after and not jobs.save_cursor(
                self.store, table.target.schema_id, table.outcome.cursor_before, after
            ):
                table.fail("The table was resynced while this run started; it loads at the next run.")
                continue
            table.outcome.cursor_before = table.outcome.cursor_after = after
        with cdc.exported_snapshot() as (consistent_point, snapshot):
            for table in (t for t in tables if t.active):
                self.check_stop()
                self._snapshot_table(cdc, table, consistent_point, snapshot)

    def _snapshot_table(self, cdc: PostgresCdc, table: _Table, consistent_point: int, snapshot: str) -> None:
        columns = list(table.columns.values())
        request = ReadRequest(
            table=table.info, columns=[c.name for c in columns], batch_rows=self.batch_changes
        )
        run_id = uuid.uuid4().hex
        consolidated = (
            self.warehouse.start_staging(table.consolidated, columns, run_id + "a")
            if table.consolidated
            else None
        )
        changelog = (
            self.warehouse.start_staging(table.changelog, columns + CHANGE_COLUMNS, run_id + "b")
            if table.changelog
            else None
        )
        now = self.clock.now()
        try:
            batches = cdc.read_snapshot(request, snapshot)
            for batch in batches:
                if consolidated is not None:
                    consolidated.append(batch)
                if changelog is not None:
                    meta = [("snapshot", consistent_point, 0, now, None)] * batch.num_rows
                    changelog.append(_with_change_columns(batch, meta))
                table.outcome.rows += batch.num_rows
                self.progress(table.target.schema_id, table.outcome.rows)
                self.check_stop()
            writes = [TableWrite(consolidated, "replace")] if consolidated else []
            writes += [TableWrite(changelog, "append")] if changelog else []
            position = CdcPosition(consistent_point, table.token, table.mode, table.column_types)
            states = self.warehouse.commit_changes(writes, {table.target.schema_id: position})
        except BaseException:
            for staging in (consolidated, changelog):
                if staging is not None:
                    staging.discard()
            raise
        table.position = position
        table.outcome.state = states.get(table.consolidated or "") or states.get(table.changelog or "")
        logger.info(
            "CDC snapshot of %s: %d rows at %s",
            table.target.schema_name,
            table.outcome.rows,
            lsn_text(consistent_point),
        )

    # Stream.

    def _stream(self, cdc: PostgresCdc, tables: list[_Table]) -> None:
        if not tables:
            return
        upto = cdc.current_lsn()
        while True:
            self.check_stop()
            transactions, messages = cdc.peek(upto, self.batch_changes)
            if transactions:
                self._apply(cdc, tables, transactions)
                cdc.advance(transactions[-1].end_lsn)
            if messages <= self.batch_changes:
                break
        # Every transaction committed before `upto` is applied: positions (and the slot) move up to it, so an
        # idle table does not hold WAL back; only once it holds IDLE_WAL_BYTES, so an idle run publishes no
        # warehouse version. (The slot must not pass a position: that reads as lost changes.)
        live = [t for t in tables if t.active and t.position is not None and t.position.lsn < upto]
        if live and upto - min(t.position.lsn for t in live if t.position) >= IDLE_WAL_BYTES:
            self._commit(tables, {}, upto)
            cdc.advance(upto)

    def _apply(self, cdc: PostgresCdc, tables: list[_Table], transactions: list[Any]) -> None:
        by_name = {(cdc.schema, t.info.name): t for t in tables}
        pages: dict[str, _Page] = {}
        for transaction in transactions:
            for seq, (changed, change) in enumerate(transaction.changes):
                table = by_name.get((changed.schema, changed.name))
                if table is None or not table.active or table.position is None:
                    continue
                if transaction.commit_lsn < table.position.lsn:
                    continue  # already in the table (its snapshot or an earlier, confirmed-late page)
                table.take_relation(changed, cdc.column_has_default)
                if not table.active:
                    continue
                page = pages.setdefault(table.target.schema_id, _Page())
                _absorb(page, table, change)
                if table.changelog:
                    row = change.new if change.new is not None else change.old or {}
                    before = json.dumps(change.old_text) if change.old_text else None
                    page.changes.append(
                        (row, change.operation, transaction.commit_lsn, seq, transaction.commit_time, before)
                    )
        self._commit(tables, pages, transactions[-1].end_lsn, cdc=cdc)

    def _commit(
        self, tables: list[_Table], pages: dict[str, _Page], lsn: int, *, cdc: PostgresCdc | None = None
    ) -> None:
        writes: list[TableWrite] = []
        positions: dict[str, CdcPosition] = {}
        stagings: list[Staging] = []
        try:
            for table in tables:
                if table.failed_until_resync and table.position is not None:
                    positions[table.target.schema_id] = replace(table.position, error=table.outcome.error)
                if not table.active or table.position is None:
                    continue
                positions[table.target.schema_id] = CdcPosition(
                    max(table.position.lsn, lsn), table.token, table.mode, table.column_types
                )
                page = pages.get(table.target.schema_id)
                if page is None or cdc is None:
                    continue
                qualified = f"{cdc.schema}.{table.info.name}"
                columns = list(table.columns.values())
                run_id = uuid.uuid4().hex
                if table.consolidated and (page.net or page.truncate):
                    staging = self.warehouse.start_staging(
                        table.consolidated, columns + _apply_columns(table), run_id + "a"
                    )
                    stagings.append(staging)
                    staging.append(_net_batch(cdc, table, page, qualified))
                    keep = sorted({name for net in page.net.values() for name in net.keep})
                    writes.append(TableWrite(staging, "apply", table.keys, page.truncate, keep))
                if table.changelog and page.changes:
                    staging = self.warehouse.start_staging(
                        table.changelog, columns + CHANGE_COLUMNS, run_id + "b"
                    )
                    stagings.append(staging)
                    rows = [tuple(data.get(c.name) for c in columns) for data, *_ in page.changes]
                    batch = cdc.to_batch(columns, rows, qualified)
                    staging.append(_with_change_columns(batch, [tuple(meta) for _, *meta in page.changes]))
                    writes.append(TableWrite(staging, "append"))
            states = self.warehouse.commit_changes(writes, positions)
        except BaseException:
            for staging in stagings:
                staging.discard()
            raise
        for table in tables:
            if table.target.schema_id in positions:
                table.position = positions[table.target.schema_id]
                page = pages.get(table.target.schema_id)
                if page is not None:
                    table.outcome.rows += page.count
                    self.progress(table.target.schema_id, table.outcome.rows)
                state = states.get(table.consolidated or "") or states.get(table.changelog or "")
                table.outcome.state = state or table.outcome.state


def lost_changes(health: SlotHealth, position: int, slot: str, *, managed: bool) -> str | None:
    """Why a table applied up to `position` can no longer stream from the slot (with the fix), or None."""
    resync = "Resync the table (external-data-schemas-resync-create) to load it again"
    if not health.exists:
        return (
            f"The replication slot '{slot}' no longer exists (dropped outside warehouse-mcp), so changes since "
            f"the last sync are lost. {resync}"
            + (" and recreate the slot." if managed else " after recreating the slot.")
        )
    if health.lost:
        return (
            f"The replication slot '{slot}' fell too far behind and PostgreSQL invalidated it "
            "(max_slot_wal_keep_size), so changes since the last sync are lost. "
            f"{resync}; sync more often or raise max_slot_wal_keep_size to prevent it."
        )
    if health.confirmed_lsn is not None and health.confirmed_lsn > position:
        return (
            f"The replication slot '{slot}' has moved past changes this table has not applied "
            f"(it is at {lsn_text(health.confirmed_lsn)}, the table at {lsn_text(position)}): "
            f"another client consumed it or it was recreated. {resync}."
        )
    return None


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _source_lock(source_id: str) -> threading.Lock:
    with _source_locks_guard:
        return _source_locks.setdefault(source_id, threading.Lock())


def _key(table: _Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row.get(k) for k in table.keys)


def _absorb(page: _Page, table: _Table, change: TableChange) -> None:
    """Fold one change into the page's last state per key."""
    page.count += 1
    if change.operation == "truncate":
        page.net.clear()
        page.truncate = True
        return
    if change.operation == "delete":
        page.net[_key(table, change.old or {})] = _Net(None)
        return
    new = dict(change.new or {})
    key = _key(table, new)
    old_key = _key(table, change.old) if change.old else key
    previous = page.net.get(old_key)
    keep = frozenset(change.unchanged)
    prior: tuple[Any, ...] | None = old_key
    if previous is not None:
        prior = previous.prior
        if previous.row is not None:
            for name in keep:
                if name in previous.row:
                    new[name] = previous.row[name]
            keep = keep & previous.keep
    if old_key != key:
        page.net[old_key] = _Net(None)
    page.net[key] = _Net(new, keep, prior if keep else None)


def _apply_columns(table: _Table) -> list[ColumnInfo]:
    priors = [
        ColumnInfo(PRIOR_KEY_PREFIX + k, c.data_type, True, c.warehouse_type)
        for k in table.keys
        if (c := table.columns.get(k)) is not None
    ]
    return [
        ColumnInfo(DELETED_COLUMN, "boolean", False, "BOOLEAN"),
        ColumnInfo(KEEP_COLUMN, "text[]", True, "VARCHAR[]"),
        *priors,
    ]


def _net_batch(cdc: PostgresCdc, table: _Table, page: _Page, qualified: str) -> pa.RecordBatch:
    import pyarrow as pa

    columns = list(table.columns.values())
    key_columns = [table.columns[k] for k in table.keys]
    priors = [ColumnInfo(PRIOR_KEY_PREFIX + c.name, c.data_type, True, c.warehouse_type) for c in key_columns]
    rows, deleted, keep = [], [], []
    for key, net in page.net.items():
        values = net.row if net.row is not None else dict(zip(table.keys, key, strict=True))
        prior = net.prior if net.prior is not None else (None,) * len(table.keys)
        rows.append((*(values.get(c.name) for c in columns), *prior))
        deleted.append(net.row is None)
        keep.append(sorted(net.keep) or None)
    batch = cdc.to_batch(columns + priors, rows, qualified)
    batch = batch.append_column(DELETED_COLUMN, pa.array(deleted, pa.bool_()))
    return batch.append_column(KEEP_COLUMN, pa.array(keep, pa.list_(pa.string())))


def _with_change_columns(batch: pa.RecordBatch, meta: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """`batch` plus the change table's columns, from (op, lsn, seq, commit time, before) per row."""
    import pyarrow as pa

    types = [pa.string(), pa.uint64(), pa.int32(), pa.timestamp("us", tz="UTC"), pa.string()]
    for index, (column, arrow_type) in enumerate(zip(CHANGE_COLUMNS, types, strict=True)):
        batch = batch.append_column(column.name, pa.array([row[index] for row in meta], arrow_type))
    return batch


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
