"""Run one Postgres query and stream its result as Arrow record batches, with no Python per row.

ADBC's Postgres driver (libpq) sends the query as `COPY (...) TO STDOUT (FORMAT binary)` and decodes
the binary stream into Arrow in C++: the read runs at close to the speed of the wire and in memory
bounded by one driver batch (its size hint, a few MB) however big the table. `read_query` is the seam
between what a sync reads (the connector builds the query) and how the rows become Arrow.

A read its sync abandons (a cancel, a failure, a server stop: `base.on_abort`) has its query cancelled
at the server, so a query stuck at the source (a locked table, a slow plan) does not run on there holding
a connection, locks and a snapshot until the source answers; the read then fails and closes its connection.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Generator, Mapping
from typing import Any

import pyarrow as pa
from psycopg import conninfo

from warehouse_mcp.embedded.connectors.arrow_conform import conform_batch
from warehouse_mcp.embedded.connectors.base import SourceError, on_abort

logger = logging.getLogger(__name__)

# libpq settings of the read session: timestamptz cast to text reads in UTC, and nothing can be written.
_SESSION_OPTIONS = "-c TimeZone=UTC -c default_transaction_read_only=on"
BATCH_SIZE_HINT_BYTES = 8 * 1024 * 1024
NESTED_PREFIX = "_wmcp_ndims_"  # an extra selected column per array column: its number of dimensions


def read_query(
    params: Mapping[str, Any],
    query: str,
    schema: pa.Schema,
    *,
    batch_rows: int,
    qualified: str,
    scrub: Any,
    snapshot: str | None = None,
) -> Generator[pa.RecordBatch, None, None]:
    """Batches of at most `batch_rows` rows of `query` (already rendered, parameters inlined), typed as
    `schema`. `params` are libpq connection parameters; `scrub` removes secrets from error text.

    Columns named NESTED_PREFIX + name carry `array_ndims` of array column `name`: a value with more
    than one dimension fails the read (Arrow's list would silently flatten it). With `snapshot` (an
    exported snapshot id, CDC) the query reads as of that snapshot.
    """
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    settings = dict(params)
    settings["options"] = f"{settings.get('options', '')} {_SESSION_OPTIONS}".strip()
    try:
        connection = adbc.connect(conninfo.make_conninfo(**settings), autocommit=snapshot is None)
    except adbc_driver_manager.Error as error:
        raise SourceError(
            f"Could not open a read connection for '{qualified}': {scrub(str(error))}"
        ) from None
    server_cancel = _ServerCancel(qualified, scrub)
    try:
        cursor = connection.cursor()
        cursor.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_SIZE_HINT_BYTES)}
        )
        with on_abort(lambda: server_cancel.start(cursor)):
            if snapshot is not None:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"SET TRANSACTION SNAPSHOT {_literal(snapshot)}")
            cursor.execute(query)
            reader = cursor.fetch_record_batch()
            for batch in reader:
                checked = _drop_dimension_checks(batch, schema, qualified)
                for offset in range(0, checked.num_rows, batch_rows):
                    yield conform_batch(checked.slice(offset, batch_rows), schema, qualified)
    # The batch reader reports a broken stream (a killed backend, a dropped link) as an Arrow/OS error.
    except (adbc_driver_manager.Error, pa.ArrowException, OSError) as error:
        raise SourceError(f"Reading '{qualified}' failed: {scrub(_reason(error))}") from None
    finally:
        server_cancel.close(connection)


class _ServerCancel:
    """Cancels the read's running query at the server, through the driver (libpq's cancel request, sent
    to the address the read connected to: through the job's SSH tunnel when it has one).

    The request runs on a thread of its own: libpq waits for the server to answer it with no timeout, and
    whoever abandons the read must not hang on that. A lock keeps it off a connection being closed."""

    def __init__(self, qualified: str, scrub: Callable[[str], str]) -> None:
        self._qualified = qualified
        self._scrub = scrub
        self._lock = threading.Lock()
        self._closed = False

    def start(self, cursor: Any) -> None:
        threading.Thread(
            target=self._cancel, args=(cursor,), name="postgres-read-cancel", daemon=True
        ).start()

    def _cancel(self, cursor: Any) -> None:
        import adbc_driver_manager

        with self._lock:
            if self._closed:
                return
            try:
                cursor.adbc_cancel()
            except adbc_driver_manager.Error as error:
                logger.warning(
                    "Could not cancel the abandoned read of '%s' at the source: %s",
                    self._qualified,
                    self._scrub(_reason(error)),
                )
                return
        logger.info("Asked the source to cancel the abandoned read of '%s'", self._qualified)

    def close(self, connection: Any) -> None:
        import adbc_driver_manager

        with self._lock:
            self._closed = True
            with contextlib.suppress(adbc_driver_manager.Error, pa.ArrowException, OSError):
                connection.close()


def _drop_dimension_checks(batch: pa.RecordBatch, schema: pa.Schema, qualified: str) -> pa.RecordBatch:
    if batch.num_columns == len(schema):
        return batch
    import pyarrow.compute as pc

    for name in batch.schema.names[len(schema) :]:
        column = name.removeprefix(NESTED_PREFIX)
        most = pc.max(batch.column(name)).as_py()
        if most is not None and most > 1:
            landing = schema.field(column).metadata[b"warehouse_type"].decode()
            raise SourceError(
                f"Column '{column}' of '{qualified}' has a value that does not fit {landing}: "
                f"an array of {most} dimensions"
            )
    return batch.select(list(range(len(schema))))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _reason(error: Exception) -> str:
    """The driver's message without ADBC's status prefix and SQLSTATE suffix."""
    text = str(error).strip()
    for prefix in ("INVALID_STATE: ", "IO: ", "INTERNAL: ", "UNKNOWN: "):
        text = text.removeprefix(prefix)
    return text.removeprefix("[libpq] ").strip()
