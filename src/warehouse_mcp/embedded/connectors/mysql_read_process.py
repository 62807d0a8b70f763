"""The process that runs one connectorx read for mysql_arrow.py (see there why it is a process).

It reads one JSON line on stdin (`url`, `query`, `batch_size`, `parent`), writes the result to stdout
as an Arrow IPC stream, and on failure writes the error (the URL with its password removed) to stderr
and exits 1. It imports only pyarrow and connectorx: its memory adds to the sync's.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import pyarrow as pa

_SESSION_SETUP = ["SET time_zone = '+00:00'"]  # TIMESTAMP values arrive in UTC


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(Exception):  # Linux only; elsewhere the broken pipe ends the child
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def serve() -> None:
    request = json.loads(sys.stdin.buffer.readline())
    _die_with_parent(request["parent"])
    secrets = sorted({request["url"]}, key=len, reverse=True)
    out = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
    try:
        import connectorx

        batches = connectorx.read_sql(
            request["url"],
            request["query"],
            return_type="arrow_stream",
            batch_size=request["batch_size"],
            pre_execution_query=_SESSION_SETUP,
        )
        writer: pa.ipc.RecordBatchStreamWriter | None = None
        for batch in batches:
            if writer is None:
                writer = pa.ipc.new_stream(out, batch.schema)
            writer.write_batch(batch)
        if writer is None:
            writer = pa.ipc.new_stream(out, batches.schema)
        writer.close()
        out.flush()
    except BaseException as error:  # also a Rust panic (pyo3's PanicException derives from BaseException)
        text = str(error)
        for secret in secrets:
            text = text.replace(secret, "********")
        sys.stderr.write(text)
        sys.stderr.flush()
        os._exit(1)


if __name__ == "__main__":
    serve()
