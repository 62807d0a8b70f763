"""Handlers of the credential operations: connect_link, store_credentials, stored_credentials (rules in domain.credentials)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from warehouse_mcp.embedded.domain import credentials
from warehouse_mcp.embedded.domain.request_bodies import StoredCredentials
from warehouse_mcp.embedded.http import request_context


def connect_link(request: Request) -> Response:
    source_type = request.query_params.get("source_type", "").strip()
    backend = request_context.backend(request)
    return JSONResponse(credentials.connect_link(backend, request_context.team_id(request), source_type))


def store_credentials(request: Request) -> Response:
    body = StoredCredentials.parse(request_context.body(request))
    backend = request_context.backend(request)
    metadata = credentials.store_credential(
        backend.store, backend.vault, request_context.team_id(request), body.source_type, body.payload or {}
    )
    return JSONResponse(metadata, status_code=201)


def stored_credentials(request: Request) -> Response:
    backend = request_context.backend(request)
    rows = credentials.list_stored_credentials(
        backend.store,
        request_context.team_id(request),
        source_type=request.query_params.get("source_type") or None,
        search=request.query_params.get("search") or None,
    )
    return JSONResponse(rows)
