"""Handlers for `warehouse/` (embedded only, not part of PostHog's API): read the synced tables.

`GET warehouse/tables/` lists the synced tables with their columns and row counts (and the source table
each comes from); `POST warehouse/query/` runs one read-only SQL statement over them. The rules are in
domain.warehouse_reads.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import warehouse_reads
from warehouse_mcp.embedded.domain.request_bodies import WarehouseQuery
from warehouse_mcp.embedded.http import request_context


def tables(request: Request) -> Response:
    backend = request_context.backend(request)
    results = warehouse_reads.tables(backend.store, request_context.team_id(request), backend.home)
    return request_context.json_response({"results": results, "count": len(results)})


def run(request: Request) -> Response:
    body = WarehouseQuery.parse(request_context.body(request))
    return request_context.json_response(warehouse_reads.run(request_context.backend(request).home, body))
