"""Readers in other processes: they open `warehouse.duckdb` read-only again and again while the test writes.

Each reader is a real subprocess that, until told to stop, opens the file afresh (as a new user would),
runs one consistency query on one table and appends the answer (or the error) as a JSON line to its own
file. The tests then check every answer against the states a finished commit can have left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

READER = r"""
import json, pathlib, sys, time, duckdb
warehouse, table, out, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
query = sys.argv[5].format(table=table)
with out.open("a") as sink:
    while not stop.exists():
        try:
            with duckdb.connect(warehouse, read_only=True) as db:
                names = {name for (name,) in db.execute("SHOW TABLES").fetchall()}
                answer = list(db.execute(query).fetchone()) if table in names else "missing"
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sink.write(json.dumps(answer, default=str) + "\n")
        sink.flush()
        time.sleep(0.01)  # leave the writer some CPU on a small machine
"""


# (rows, distinct ids, lowest and highest `gen`): the tests' source tables stamp every row of one change with one gen.
GENERATIONS = 'SELECT count(*), count(DISTINCT id), min(gen), max(gen) FROM "{table}"'


class Readers:
    def __init__(self, warehouse: Path, table: str, directory: Path, count: int, query: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.stop_file = directory / "stop-readers"
        self.outputs = [directory / f"reader-{i}.jsonl" for i in range(count)]
        self.processes = [
            subprocess.Popen(
                [sys.executable, "-c", READER, str(warehouse), table, str(out), str(self.stop_file), query],
                stderr=subprocess.PIPE,
                text=True,
            )
            for out in self.outputs
        ]

    def answers(self) -> list[Any]:
        lines = [line for out in self.outputs if out.exists() for line in out.read_text().splitlines()]
        return [json.loads(line) for line in lines if line.endswith(("]", '"', "}"))]

    def latest(self) -> list[Any]:
        """Each reader's newest answer."""
        return [json.loads(out.read_text().splitlines()[-1]) for out in self.outputs]

    def wait_for_new_answers(self, minimum: int = 2, timeout: float = 30.0) -> None:
        """Block (the writer, e.g. mid-sync) until every reader has answered `minimum` more times."""
        start = [self._lines(out) for out in self.outputs]
        deadline = time.monotonic() + timeout
        while any(
            self._lines(out) < before + minimum for out, before in zip(self.outputs, start, strict=True)
        ):
            dead = [p for p in self.processes if p.poll() is not None]
            assert not dead, dead[0].stderr.read() if dead[0].stderr else "a reader died"
            assert time.monotonic() < deadline, "the readers stopped answering"
            time.sleep(0.02)

    def stop(self) -> list[Any]:
        self.stop_file.touch()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        errors = [p.stderr.read() for p in self.processes if p.returncode and p.stderr]
        assert not errors, errors
        return self.answers()

    @staticmethod
    def _lines(path: Path) -> int:
        return len(path.read_text().splitlines()) if path.exists() else 0


@contextmanager
def readers(
    warehouse: Path, table: str, directory: Path, count: int = 1, query: str = GENERATIONS
) -> Iterator[Readers]:
    group = Readers(warehouse, table, directory, count, query)
    try:
        group.wait_for_new_answers(1)
        yield group
    finally:
        if not group.stop_file.exists():
            group.stop()


def assert_only_committed_states(answers: list[Any], committed: set[tuple[int, int, int, int]]) -> None:
    """Every answer is a whole committed state (count, distinct ids, min gen, max gen); none failed."""
    errors = [a for a in answers if isinstance(a, dict)]
    assert not errors, errors[:3]
    seen = {tuple(a) for a in answers if isinstance(a, list)}
    assert seen, "no reader answered"
    assert seen <= committed, sorted(seen - committed)[:5]
