"""Overlap a source read with the warehouse writes: a reader thread runs ahead by `depth` batches (one).

The connector's iterator runs on its own thread (its connection is used by that thread only) and
hands batches over through a bounded queue, so memory stays at `depth` batches plus the ones being
read and written, whatever the table size. The drivers and DuckDB release the GIL while they work,
so reading the next batch and writing this one really run at once.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

from warehouse_mcp.embedded.connectors.base import watch_aborts

T = TypeVar("T")

DEFAULT_DEPTH = 1
_POLL_SECONDS = 0.1
_WAIT_CHECK_SECONDS = 0.5
_JOIN_SECONDS = 5.0


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def read_ahead(
    items: Iterable[T], depth: int = DEFAULT_DEPTH, *, while_waiting: Callable[[], None] | None = None
) -> Generator[T, None, None]:
    """Yield `items` in order while a thread fetches up to `depth` more. Exceptions raised by `items`
    are raised here; closing this generator stops the reader and closes `items`. `while_waiting` runs
    every half second the next item is late (a slow or stuck source): what it raises ends the read."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    break
            else:
                put(_End())
        except BaseException as error:
            put(_Failed(error))
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()

    # The reader sees the job's context: its SSH tunnel scope, so the read shares the job's one tunnel.
    context = contextvars.copy_context()
    aborts: list[Callable[[], None]] = []
    context.run(watch_aborts, aborts)
    reader = threading.Thread(target=context.run, args=(produce,), name="sync-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            try:
                item = handoff.get(timeout=_WAIT_CHECK_SECONDS)
            except queue.Empty:
                if while_waiting is not None:
                    while_waiting()
                continue
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        # A read blocked at the source is stopped if its connector can (its read process killed, its query
        # cancelled at the server); else it finishes on its own: don't hang a cancel on it.
        for abort in list(aborts):
            abort()
        reader.join(_JOIN_SECONDS)
