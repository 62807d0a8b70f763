"""Run one MySQL/MariaDB query and stream its result as Arrow record batches, with no Python per row.

connectorx reads the result over MySQL's binary protocol and builds Arrow batches in Rust. It has no
TLS for MySQL, so it serves plain connections only (mysql.py keeps PyMySQL for TLS). connectorx aborts
(a Rust panic) on values it cannot represent, so the query must select them in forms it reads
exactly (mysql.py's `select_expression`: decimals as text, zero dates as NULL, geometry as bytes).

connectorx holds the GIL while it waits for the server, which would freeze this whole process (the
scheduler, the API, a cancel) behind a slow or locked source table. So the read runs in a child
process (`python -m` this module, like ssh_tunnel.py's: exec'd, never a fork of this threaded process)
that gets its settings on stdin (never in its arguments or environment) and streams the batches back
on its stdout as Arrow IPC. The parent's pipe reads release the GIL; stopping the read kills the child;
the child (mysql_read_process.py) dies with its parent (Linux's parent-death signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from warehouse_mcp.embedded.connectors import mysql_read_process
from warehouse_mcp.embedded.connectors.arrow_conform import conform_batch
from warehouse_mcp.embedded.connectors.base import SourceError, on_abort

INVALID_PREFIX = "_wmcp_invalid_"  # an extra selected column: the text of a value that must fail the read
_ERROR_LIMIT = 64 * 1024  # bytes of the child's stderr kept for the error message


def read_query(
    *,
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    query: str,
    schema: pa.Schema,
    batch_rows: int,
    qualified: str,
    scrub: Callable[[str], str],
    invalid: Callable[[str, str], SourceError],
) -> Generator[pa.RecordBatch, None, None]:
    """Batches of at most `batch_rows` rows of `query` (rendered, parameters inlined), typed as `schema`.

    Columns named INVALID_PREFIX + name after the schema's hold, where not NULL, a value of column
    `name` that cannot land: `invalid(name, value)` is raised for the first one.
    """
    url = (
        f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"
    )
    secrets = [url, password, quote(password, safe="")]

    def clean(text: str) -> str:
        for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
            text = text.replace(secret, "********")
        return scrub(text)

    def failed(detail: str) -> SourceError:
        return SourceError(f"Reading '{qualified}' failed: {clean(detail)}")

    child = subprocess.Popen(
        [sys.executable, "-m", mysql_read_process.__name__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    errors = bytearray()
    drain = threading.Thread(
        target=_drain, args=(child.stderr, errors), name="mysql-read-stderr", daemon=True
    )
    drain.start()
    try:
        with on_abort(child.kill):
            with contextlib.suppress(BrokenPipeError):  # a child that died at once: its stderr says why
                request = {
                    "url": url,
                    "query": query,
                    # connectorx keeps several batches of its own in flight: half-size batches cut the
                    # sync's peak RSS by ~40 MB at 1,000,000 rows (README, Performance) at no cost in speed.
                    "batch_size": max(1, batch_rows // 2),
                    "parent": os.getpid(),
                }
                child.stdin.write(json.dumps(request).encode() + b"\n")
                child.stdin.close()
            try:
                reader = pa.ipc.open_stream(child.stdout, memory_pool=pa.system_memory_pool())
                for batch in reader:
                    checked = _drop_invalid_checks(batch, schema, invalid)
                    for offset in range(0, checked.num_rows, batch_rows):
                        yield conform_batch(checked.slice(offset, batch_rows), schema, qualified)
            except (pa.ArrowInvalid, OSError) as error:
                child.wait()
                drain.join()
                raise failed(errors.decode(errors="replace").strip() or str(error)) from None
            if child.wait() != 0:
                drain.join()
                raise failed(errors.decode(errors="replace").strip() or f"exit status {child.returncode}")
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def _drain(stream: Any, into: bytearray) -> None:
    for chunk in iter(lambda: stream.read(4096), b""):
        into.extend(chunk[: max(0, _ERROR_LIMIT - len(into))])
    stream.close()


def _drop_invalid_checks(
    batch: pa.RecordBatch, schema: pa.Schema, invalid: Callable[[str, str], SourceError]
) -> pa.RecordBatch:
    if batch.num_columns == len(schema):
        return batch
    for name in batch.schema.names[len(schema) :]:
        column = batch.column(name)
        if column.null_count < len(column):
            value: Any = column.drop_null()[0].as_py()
            raise invalid(name.removeprefix(INVALID_PREFIX), str(value))
    return batch.select(list(range(len(schema))))
