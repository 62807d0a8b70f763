"""CDC handlers (api-semantics §4): prerequisite checks, with a config or a source's stored one, and live status.

The rules are in domain.cdc.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import cdc
from warehouse_mcp.embedded.domain.request_bodies import CdcConfigCheck, CdcSettings
from warehouse_mcp.embedded.http import request_context


def check_cdc_prerequisites_for_source(request: Request) -> Response:
    backend = request_context.backend(request)
    source = cdc.cdc_source(backend.store, request_context.team_id(request), request_context.path_id(request))
    # The body after the source: a source without CDC is refused whatever the body says.
    body = CdcSettings.parse(request_context.body(request))
    return request_context.json_response(cdc.prerequisites_for_source(backend, source, body))


def cdc_status(request: Request) -> Response:
    backend = request_context.backend(request)
    source = cdc.cdc_source(backend.store, request_context.team_id(request), request_context.path_id(request))
    return request_context.json_response(cdc.status(backend, source))


def check_cdc_prerequisites(request: Request) -> Response:
    sent = request_context.body(request)
    return request_context.json_response(cdc.prerequisites_for_config(CdcConfigCheck.parse(sent), sent))
