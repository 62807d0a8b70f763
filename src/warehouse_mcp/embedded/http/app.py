"""The embedded PostHog-compatible API as a Starlette app (docs/operations.md, docs/api-semantics.md).

Every operation is served under both path families, `/api/environments/{project}/` and
`/api/projects/{project}/` (project: digits, or `@current` = 1), with or without the trailing
slash, by Starlette's own routing: one `Mount` per family over one `Route` per catalog path.
Each path's endpoint is an `HTTPEndpoint` with one method per operation, so a path that matches
with another method answers 405, as PostHog's router does (the path decides the view, then the
view checks the method). The endpoint checks the bearer token (when the backend has one) before
the method, parses the JSON body, and runs the handler in the thread pool. Errors become answers
in one place, `http.errors`.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from warehouse_mcp.embedded.http import (
    cdc_api,
    connect_page,
    credentials_api,
    errors,
    schemas_api,
    sources_api,
    stripe_webhooks,
    warehouse_api,
    webhooks_api,
)
from warehouse_mcp.operations import OPERATIONS

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend

Handler = Callable[[Request], Response]

CURRENT_PROJECT = 1
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PATH_FAMILIES = ("environments", "projects")


class ProjectConvertor(Convertor[int]):
    """A project id: ASCII digits that fit SQLite's INTEGER (at most 18 of them), or `@current` (= 1)."""

    regex = "[0-9]{1,18}|@current"

    def convert(self, value: str) -> int:
        return CURRENT_PROJECT if value == "@current" else int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("project", ProjectConvertor())


@dataclass(frozen=True)
class Endpoint:
    name: str  # the catalog path without its trailing slash, e.g. `external_data_sources/{id}`
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
    # Collection actions before `{id}`: the first route whose path matches wins, so `wizard` is never
    # read as a source id (a wrong method on it is a 405, as on PostHog).
    ordered = sorted(by_path.items(), key=lambda item: "{id}" in item[0])
    return tuple(Endpoint(path, methods) for path, methods in ordered)


ENDPOINTS = _endpoints()


def check_token(request: Request, expected: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.not_authenticated()
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise errors.authentication_failed()


async def parse_body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.parse_error(str(exc)) from None


def _method(handler: Handler) -> Callable[[Any, Request], Any]:
    async def run(self: OperationEndpoint, request: Request) -> Response:
        request.state.team_id = request.path_params["project"]
        request.state.body = await parse_body(request) if request.method in BODY_METHODS else None
        return await run_in_threadpool(handler, request)

    return run


class OperationEndpoint(HTTPEndpoint):
    """One API path: a method per operation (subclasses add them); the token is checked first."""

    api_token: str | None = None

    async def dispatch(self) -> None:
        request = Request(self.scope, receive=self.receive)
        try:
            if self.api_token:
                check_token(request, self.api_token)
            await super().dispatch()
        except Exception as exc:
            await errors.answer(request, exc)(self.scope, self.receive, self.send)


def api_routes(backend: EmbeddedBackend) -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for endpoint in ENDPOINTS:
        members = {method.lower(): _method(handler) for method, handler in endpoint.methods.items()}
        endpoint_class = type(
            f"Endpoint[{endpoint.name}]", (OperationEndpoint,), {"api_token": backend.api_token, **members}
        )
        for path in (f"/{endpoint.name}", f"/{endpoint.name}/"):  # the trailing slash is optional
            routes.append(Route(path, endpoint_class))
    return [Mount(f"/api/{family}/{{project:project}}", routes=routes) for family in PATH_FAMILIES]


def build_app(backend: EmbeddedBackend) -> Starlette:
    routes: list[BaseRoute] = [
        *connect_page.routes(backend),
        *stripe_webhooks.routes(backend),
        *api_routes(backend),
    ]
    app = Starlette(routes=routes, exception_handlers=errors.EXCEPTION_HANDLERS)
    app.state.backend = backend
    return app
