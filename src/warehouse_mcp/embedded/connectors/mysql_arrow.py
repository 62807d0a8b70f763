"""Run one MySQL/MariaDB query and stream its result as Arrow record batches, with no Python per row.

connectorx reads the result over MySQL's binary protocol and builds Arrow batches in Rust. It has no
TLS for MySQL, so it serves plain connections only (mysql.py keeps PyMySQL for TLS). connectorx aborts
(a Rust panic) on values it cannot represent, so the query must select them in forms it reads
exactly (mysql.py's `select_expression`: decimals as text, zero dates as NULL, geometry as bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from warehouse_mcp.embedded.connectors.arrow_conform import conform_batch
from warehouse_mcp.embedded.connectors.base import SourceError

INVALID_PREFIX = "_wmcp_invalid_"  # an extra selected column: the text of a value that must fail the read
_SESSION_SETUP = ["SET time_zone = '+00:00'"]  # TIMESTAMP values arrive in UTC


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
    import connectorx

    url = (
        f"mysql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(database, safe='')}"
    )
    secrets = [url, password, quote(password, safe="")]

    def clean(text: str) -> str:
        for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
            text = text.replace(secret, "********")
        return scrub(text)

    try:
        reader = connectorx.read_sql(
            url,
            query,
            return_type="arrow_stream",
            # connectorx keeps several batches of its own in flight: half-size batches cut the sync's
            # peak RSS by ~40 MB at 1,000,000 rows (README, Performance) at no cost in speed.
            batch_size=max(1, batch_rows // 2),
            pre_execution_query=_SESSION_SETUP,
        )
        for batch in reader:
            checked = _drop_invalid_checks(batch, schema, invalid)
            for offset in range(0, checked.num_rows, batch_rows):
                yield conform_batch(checked.slice(offset, batch_rows), schema, qualified)
    except SourceError:
        raise
    except Exception as error:
        raise SourceError(f"Reading '{qualified}' failed: {clean(str(error))}") from None
    except BaseException as error:  # a Rust panic (pyo3's PanicException derives from BaseException)
        if type(error).__name__ != "PanicException":
            raise
        raise SourceError(f"Reading '{qualified}' failed: {clean(str(error))}") from None


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
