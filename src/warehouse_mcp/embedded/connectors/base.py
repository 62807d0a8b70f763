"""What every embedded connector provides, and the shapes it speaks in.

A connector knows one source type: how to check credentials against the live source, how to list
its tables, and how to stream a table out as Arrow record batches. It never stores anything; the
sync engine and the API handlers do. `config` is always the source's `job_inputs` with secrets
decrypted (flat keys as the wizard form names them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

IncrementalFieldType = Literal["integer", "numeric", "datetime", "date", "timestamp", "objectid", "xid"]


class SourceError(Exception):
    """A failure reported by (or about) the source, worded for the user.

    The message must never contain a secret: connectors build it from the driver's error text with
    any password or key removed. The API answers it as `400 {"message": ...}`.
    """


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    data_type: str  # the source's own type name, as PostHog shows it (e.g. "timestamp with time zone")
    is_nullable: bool
    warehouse_type: str  # the DuckDB type the column lands as (e.g. "DECIMAL(12,2)", "JSON", "INTEGER[]")


@dataclass(frozen=True)
class IncrementalCandidate:
    field: str
    field_type: IncrementalFieldType
    nullable: bool
    is_indexed: bool | None = None  # the leading column of an index (SQL sources); None when not known
    label: str | None = None  # how PostHog shows it, when not the field's own name (Stripe's "created_at")
    display_type: str | None = None  # PostHog's `type`, when not `field_type` (Stripe's "datetime")


@dataclass(frozen=True)
class TableInfo:
    name: str
    columns: list[ColumnInfo]
    primary_keys: list[str] = field(default_factory=list)
    incremental_fields: list[IncrementalCandidate] = field(default_factory=list)
    row_estimate: int | None = None
    supports_incremental: bool = True
    supports_append: bool = True
    cdc_available: bool = False
    supports_webhooks: bool = False
    webhook_only: bool = False
    description: str | None = None


@dataclass
class ReadMarks:
    """What a connector learns while reading, for the engine to save with the cursor."""

    # Postgres: the oldest transaction (64-bit id) still running at a snapshot taken no later than the
    # read's. Every row the read did not see was written by a transaction at or above it.
    snapshot_xmin: int | None = None
    # MySQL/MariaDB, a date or time cursor: the lowest cursor value a transaction still running at a moment
    # no later than the read's snapshot may yet commit (mysql_cursor_floor.py), typed like the column's values.
    cursor_floor: Any = None


@dataclass(frozen=True)
class ReadRequest:
    """One table read: which rows (the predicate, built by the connector) and which columns.

    With `cursor` None and `since_xid` None the whole table is read. Otherwise a row is read when any of:
    - `incremental_field >= cursor` (at, not above: rows sharing the saved maximum may have arrived
      since; the engine drops the ones it already has),
    - `incremental_field IS NULL` (such rows have no place on the cursor, so every run reads them),
    - its transaction id (Postgres xmin, 64-bit) is `>= since_xid` (rows committed late, or xmin sync).
    """

    table: TableInfo
    columns: list[str] | None = None  # None = every column
    incremental_field: str | None = None
    cursor: Any = None  # JSON-serialisable value as saved by the engine (ISO string for dates/times)
    since_xid: int | None = None  # Postgres only
    batch_rows: int = 50_000
    marks: ReadMarks = field(default_factory=ReadMarks, compare=False)

    @property
    def is_full_read(self) -> bool:
        return self.cursor is None and self.since_xid is None


class _Named(Protocol):
    @property
    def name(self) -> str: ...


ColumnT = TypeVar("ColumnT", bound=_Named)


def pick_columns(
    columns: Sequence[ColumnT] | None, request: ReadRequest, qualified: str, user: str
) -> list[ColumnT]:
    """The live table's columns a read asks for (all when `request.columns` is None), or a SourceError that
    names what is missing."""
    if not columns:
        raise SourceError(f"Table '{qualified}' does not exist or is not visible to user '{user}'")
    by_name = {column.name: column for column in columns}
    wanted = list(request.columns) if request.columns else [column.name for column in columns]
    unknown = [name for name in wanted if name not in by_name]
    if request.incremental_field and request.incremental_field not in by_name:
        unknown.append(request.incremental_field)
    if unknown:
        raise SourceError(f"Unknown column(s) in table '{qualified}': {', '.join(unknown)}")
    return [by_name[name] for name in wanted]


@runtime_checkable
class Connector(Protocol):
    source_type: str

    def validate(self, config: Mapping[str, Any]) -> None:
        """Connect to the live source with `config`; raise SourceError("Invalid credentials"/...) if it fails."""

    def discover(self, config: Mapping[str, Any]) -> list[TableInfo]:
        """List the tables this config can sync, sorted by name."""

    def read(self, config: Mapping[str, Any], request: ReadRequest) -> Iterator[pa.RecordBatch]:
        """Stream the table as record batches whose columns are `request.columns` (or all), in bounded memory."""


@dataclass(frozen=True)
class WebhookRegistration:
    success: bool
    webhook_url: str | None = None
    error: str | None = None
    external_id: str | None = None
    signing_secret: str | None = None  # stored encrypted by the caller, never returned by the API
    pending_inputs: list[str] = field(default_factory=list)


@runtime_checkable
class WebhookConnector(Connector, Protocol):
    """A connector whose source can push changes to us (Stripe)."""

    def register_webhook(
        self, config: Mapping[str, Any], url: str, tables: list[str]
    ) -> WebhookRegistration: ...

    def delete_webhook(self, config: Mapping[str, Any], external_id: str) -> bool: ...


_abort_hooks: ContextVar[list[Callable[[], None]] | None] = ContextVar("read_abort_hooks", default=None)


def watch_aborts(hooks: list[Callable[[], None]]) -> None:
    """Collect in `hooks` what `on_abort` registers in this context (a read running on another thread):
    the owner calls them to stop a read it abandons while the read is blocked at the source."""
    _abort_hooks.set(hooks)


@contextlib.contextmanager
def on_abort(hook: Callable[[], None]) -> Iterator[None]:
    """While inside, `hook` stops this read if its owner abandons it (see `watch_aborts`)."""
    hooks = _abort_hooks.get()
    if hooks is None:
        yield
        return
    hooks.append(hook)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            hooks.remove(hook)
