"""read_ahead: the order, the errors and the early stop of a source read run on its own thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from warehouse_mcp.embedded.sync.read_ahead import read_ahead


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: set[int] = set()

    def source() -> Iterator[int]:
        for n in range(100):
            threads.add(threading.get_ident())
            yield n

    assert list(read_ahead(source(), depth=3)) == list(range(100))
    assert threads and threading.get_ident() not in threads


def test_an_error_in_the_source_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("source broke")

    seen = []
    with pytest.raises(ValueError, match="source broke"):
        for item in read_ahead(source()):
            seen.append(item)
    assert seen == [1, 2]


def test_closing_early_stops_the_reader_and_closes_the_source() -> None:
    produced = []
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            for n in range(1_000_000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    reader = read_ahead(source(), depth=2)
    assert next(reader) == 0
    reader.close()
    assert closed.wait(5)
    assert len(produced) <= 5  # bounded: the reader never ran more than `depth` (+ in-flight) ahead
