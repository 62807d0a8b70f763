"""Handlers for `warehouse/` (embedded only, not part of PostHog's API): read the synced tables.

`GET warehouse/tables/` lists the synced tables with their columns and row counts (and the source table
each comes from); `POST warehouse/query/` runs one read-only SQL statement over them (sync/query.py
enforces read-only, caps and timeout). Any process sharing the data directory answers both: reading
needs no warehouse lock.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain.errors import Invalid, Refused
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import schema_records

MAX_SQL_CHARACTERS = 20_000

# sync.query and sync.warehouse load DuckDB: imported by the handlers, not when the app is built, so that a
# server answers tools/list without loading it (tests/mcp/test_cold_start.py).


def tables(request: Request) -> Response:
    from warehouse_mcp.embedded.sync import query
    from warehouse_mcp.embedded.sync.warehouse import WAREHOUSE_FILE

    backend = request_context.backend(request)
    origins = schema_records.synced_tables(backend.store, request_context.team_id(request))
    results: list[dict[str, Any]] = []
    for table in query.tables(backend.home / WAREHOUSE_FILE):
        origin = origins.get(table["name"])
        if origin is not None:
            table |= {
                "schema_id": origin.id,
                "source_id": origin.source_id,
                "source_type": origin.source_type,
                "source_table": origin.name,
                "last_synced_at": origin.last_synced_at,
            }
        results.append(table)
    return request_context.json_response({"results": results, "count": len(results)})


def run(request: Request) -> Response:
    from warehouse_mcp.embedded.sync import query
    from warehouse_mcp.embedded.sync.warehouse import WAREHOUSE_FILE

    backend = request_context.backend(request)
    data = request_context.body(request)
    sql = data.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise Invalid("Send the SQL to run as `sql` (one SELECT statement).", "sql", "required")
    if len(sql) > MAX_SQL_CHARACTERS:
        raise Invalid(f"The SQL is longer than {MAX_SQL_CHARACTERS} characters.", "sql", "max_length")
    try:
        answer = query.run_query(backend.home / WAREHOUSE_FILE, sql)
    except query.QueryError as exc:
        raise Refused(str(exc)) from None
    return request_context.json_response(answer)
