"""The embedded PostHog-compatible API as a Starlette app (docs/operations.md, docs/api-semantics.md).

Every operation is served under both path families, `/api/environments/{project}/` and
`/api/projects/{project}/` (project: digits, or `@current` = 1), with or without the trailing
slash. One dispatcher resolves the path, checks the bearer token (when the backend has one),
checks the method, parses the JSON body, and runs the handler in the thread pool. Failures answer
PostHog's DRF error shape; an unexpected exception is logged with its traceback and answered as a
generic 500, never with its text (it could quote a source's error).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from warehouse_mcp.embedded.domain.errors import (
    ErrorAnswer,
    authentication_failed,
    method_not_allowed,
    not_authenticated,
    not_found,
    parse_error,
    server_error,
)
from warehouse_mcp.embedded.http import (
    cdc_api,
    connect_page,
    credentials_api,
    schemas_api,
    sources_api,
    stripe_webhooks,
    warehouse_api,
    webhooks_api,
)
from warehouse_mcp.operations import OPERATIONS

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Response]

# Project ids: ASCII digits that fit SQLite's INTEGER (at most 18 of them), or @current.
API_PATH = re.compile(r"^/api/(?:environments|projects)/(?P<project>[0-9]{1,18}|@current)/(?P<rest>.*?)/?$")
CURRENT_PROJECT = 1
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Endpoint:
    name: str
    pattern: re.Pattern[str]
    methods: dict[str, Handler]


# One handler per catalog operation: the paths and methods come from warehouse_mcp.operations, so the
# embedded API serves exactly what the tools call.
HANDLERS: dict[str, Handler] = {
    "external-data-sources-list": sources_api.list_sources,
    "external-data-sources-create": sources_api.create,
    "external-data-sources-retrieve": sources_api.retrieve,
    "external-data-sources-partial-update": sources_api.partial_update,
    "external-data-sources-destroy": sources_api.destroy,
    "external-data-sources-bulk-update-schemas-partial-update": sources_api.bulk_update_schemas,
    "external-data-sources-cdc-status-retrieve": cdc_api.cdc_status,
    "external-data-sources-check-cdc-prerequisites-for-source-create": cdc_api.check_cdc_prerequisites_for_source,
    "external-data-sources-create-webhook-create": webhooks_api.create_webhook,
    "external-data-sources-delete-webhook-create": webhooks_api.delete_webhook,
    "external-data-sources-jobs-retrieve": sources_api.jobs,
    "external-data-sources-refresh-schemas-create": sources_api.refresh_schemas,
    "external-data-sources-reload-create": sources_api.reload,
    "external-data-sources-revenue-analytics-config-partial-update": sources_api.revenue_analytics_config,
    "external-data-sources-update-webhook-inputs-create": webhooks_api.update_webhook_inputs,
    "external-data-sources-webhook-info-retrieve": webhooks_api.webhook_info,
    "external-data-sources-check-cdc-prerequisites-create": cdc_api.check_cdc_prerequisites,
    "data-warehouse-source-connect-link": credentials_api.connect_link,
    "external-data-sources-connections-list": sources_api.connections,
    "external-data-sources-database-schema-create": sources_api.database_schema,
    "data-warehouse-source-setup": sources_api.setup,
    "external-data-sources-source-prefix-create": sources_api.source_prefix,
    "external-data-sources-store-credentials-create": credentials_api.store_credentials,
    "data-warehouse-stored-credentials-list": credentials_api.stored_credentials,
    "external-data-sources-wizard-retrieve": sources_api.wizard,
    "external-data-schemas-list": schemas_api.list_schemas,
    "external-data-schemas-retrieve": schemas_api.retrieve,
    "external-data-schemas-partial-update": schemas_api.partial_update,
    "external-data-schemas-destroy": schemas_api.destroy,
    "external-data-schemas-cancel-create": schemas_api.cancel,
    "external-data-schemas-delete-data-destroy": schemas_api.delete_data,
    "external-data-schemas-incremental-fields-create": schemas_api.incremental_fields,
    "external-data-schemas-reload-create": schemas_api.reload,
    "external-data-schemas-resync-create": schemas_api.resync,
    "data-warehouse-tables-list": warehouse_api.tables,
    "data-warehouse-query": warehouse_api.run,
}


def _endpoints() -> tuple[Endpoint, ...]:
    by_path: dict[str, dict[str, Handler]] = {}
    for op in OPERATIONS:
        if not op.composite:
            by_path.setdefault(op.path.rstrip("/"), {})[op.method] = HANDLERS[op.tool]
    # Collection actions before `{id}`, so that `wizard` is never read as a source id.
    ordered = sorted(by_path.items(), key=lambda item: "{id}" in item[0])
    return tuple(
        Endpoint(path, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), methods)
        for path, methods in ordered
    )


ENDPOINTS = _endpoints()


def resolve(path: str) -> tuple[int, Endpoint, dict[str, str]]:
    """`(team_id, endpoint, path params)` for an API path, or a 404."""
    match = API_PATH.match(path)
    if match is None:
        raise not_found()
    project = match["project"]
    team_id = CURRENT_PROJECT if project == "@current" else int(project)
    for endpoint in ENDPOINTS:
        found = endpoint.pattern.match(match["rest"])
        if found:
            return team_id, endpoint, found.groupdict()
    raise not_found()


def check_token(request: Request, expected: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise not_authenticated()
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise authentication_failed()


async def parse_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise parse_error(str(exc)) from None


def error_response(error: ErrorAnswer) -> Response:
    return JSONResponse(error.body, status_code=error.status)


def make_dispatcher(backend: EmbeddedBackend) -> Callable[[Request], object]:
    async def dispatch(request: Request) -> Response:
        endpoint_name = "?"
        try:
            team_id, endpoint, params = resolve(request.url.path)
            endpoint_name = endpoint.name
            if backend.api_token:
                check_token(request, backend.api_token)
            handler = endpoint.methods.get("GET" if request.method == "HEAD" else request.method)
            if handler is None:
                raise method_not_allowed(request.method)
            request.scope["path_params"] = params
            request.state.team_id = team_id
            request.state.body = await parse_body(request) if request.method in BODY_METHODS else None
            return await run_in_threadpool(handler, request)
        except ErrorAnswer as error:
            return error_response(error)
        except Exception:
            logger.exception("unhandled error in %s %s", request.method, endpoint_name)
            return error_response(server_error())

    return dispatch


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (paths outside the API) in the API's error shape."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        return error_response(not_found())
    if status == 405:
        return error_response(method_not_allowed(request.method))
    return error_response(server_error())


def build_app(backend: EmbeddedBackend) -> Starlette:
    routes: list[BaseRoute] = [
        *connect_page.routes(backend),
        *stripe_webhooks.routes(backend),
        Route("/api/{path:path}", make_dispatcher(backend), methods=ALL_METHODS),
    ]
    app = Starlette(routes=routes, exception_handlers={404: http_exception, 405: http_exception})
    app.state.backend = backend
    return app
