"""Read-only SQL over the synced tables, for agents: the engine enforces it, not string checks.

Each query gets its own in-memory DuckDB that attaches the newest catalog version (catalog.py) read-only,
may read exactly that version's Parquet files and no other file (`allowed_paths`, then
`enable_external_access = false`), cannot load extensions, and has its configuration locked before the
query runs. DuckDB's own parser must find one SELECT (or EXPLAIN) statement. The answer is capped in rows
and bytes (`_truncated` says so) and the query is interrupted at its timeout.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb

from warehouse_mcp.embedded.sync.catalog import Manifest, latest_readable, literal, reading
from warehouse_mcp.embedded.sync.warehouse import data_dir_for

MAX_ROWS = 200
MAX_BYTES = 64_000
TIMEOUT_SECONDS = 30.0
MEMORY_LIMIT = "1GB"
ALLOWED_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class QueryError(Exception):
    """The query was refused or failed; the message says why and what to do."""


def tables(warehouse_path: Path) -> list[dict[str, Any]]:
    """Every synced table of the newest version: name, row count, columns with their types."""
    readable = latest_readable(data_dir_for(warehouse_path))
    if readable is None:
        return []
    manifest, _ = readable
    return [
        {
            "name": name,
            "row_count": entry.rows,
            "columns": [{"name": c.name, "type": c.type} for c in entry.columns],
        }
        for name, entry in sorted(manifest.tables.items())
    ]


def run_query(
    warehouse_path: Path,
    sql: str,
    *,
    max_rows: int = MAX_ROWS,
    max_bytes: int = MAX_BYTES,
    timeout: float = TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """`{columns, rows, row_count, _truncated}` of one read-only statement over the synced tables."""
    readable = latest_readable(data_dir_for(warehouse_path))
    manifest, catalog_file = readable or (Manifest(0), None)
    with _sandbox(warehouse_path, manifest, catalog_file) as db:
        _check_statement(db, sql)
        timer = threading.Timer(timeout, db.interrupt)
        timer.start()
        try:
            result = db.execute(sql)
            columns = [d[0] for d in result.description or []]
            rows, truncated = _capped_rows(result, max_rows, max_bytes)
        except duckdb.InterruptException:
            raise QueryError(
                f"The query was stopped after {timeout:.0f}s; narrow it (WHERE, LIMIT, fewer joins)."
            ) from None
        except duckdb.CatalogException as exc:
            raise QueryError(f"{exc}\nThe synced tables are listed by data-warehouse-tables-list.") from None
        except duckdb.Error as exc:
            raise QueryError(f"{type(exc).__name__}: {exc}") from None
        finally:
            timer.cancel()
    answer: dict[str, Any] = {
        "columns": columns,
        "rows": rows,
        "row_count": len(rows),
        "_truncated": truncated,
    }
    if truncated:
        answer["_truncated_reason"] = (
            f"only the first {len(rows)} rows fit (at most {max_rows} rows / {max_bytes} bytes): "
            "aggregate, filter or add LIMIT/OFFSET"
        )
    return answer


@contextmanager
def _sandbox(
    warehouse_path: Path, manifest: Manifest, catalog_file: Path | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that sees the catalog's tables and can touch no other file (no catalog: no tables)."""
    data_dir = data_dir_for(warehouse_path)
    files = sorted({str(data_dir / f) for entry in manifest.tables.values() for f in entry.all_files})
    db = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": "",
        }
    )
    try:
        with reading(catalog_file) if catalog_file else contextlib.nullcontext():
            db.execute("SET TimeZone = 'UTC'")
            if catalog_file is not None:
                db.execute(f"ATTACH {literal(str(catalog_file))} AS warehouse (READ_ONLY)")
                db.execute("USE warehouse")
            db.execute(f"SET allowed_paths = [{', '.join(literal(f) for f in files)}]")
            db.execute("SET enable_external_access = false")
            db.execute("SET lock_configuration = true")
            yield db
    finally:
        db.close()


def _check_statement(db: duckdb.DuckDBPyConnection, sql: str) -> None:
    try:
        statements = db.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"The SQL does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryError(f"Send exactly one statement (got {len(statements)}).")
    kind = statements[0].type
    if kind not in ALLOWED_STATEMENTS:
        raise QueryError(
            f"Only read queries run here (SELECT, WITH … SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN); "
            f"this is a {kind.name} statement."
        )


def _capped_rows(
    result: duckdb.DuckDBPyConnection, max_rows: int, max_bytes: int
) -> tuple[list[list[Any]], bool]:
    rows: list[list[Any]] = []
    size = 2
    while True:
        chunk = result.fetchmany(min(1000, max_rows + 1 - len(rows)))
        if not chunk:
            return rows, False
        for raw in chunk:
            if len(rows) == max_rows:
                return rows, True
            row = [json_value(value) for value in raw]
            size += len(json.dumps(row, ensure_ascii=False)) + 1
            if size > max_bytes:
                return rows, True
            rows.append(row)


def json_value(value: Any) -> Any:
    """A DuckDB value as JSON keeps it: exact decimals and times as text, bytes as base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return str(value)
