"""Handlers for `external_data_sources/` (api-semantics §1 and §4), one function per operation.

Each reads its request (a body through domain.request_bodies), calls the domain and answers JSON. The
rules are in domain/: sources.py, source_creation.py, source_setup.py, schema_updates.py; the CDC actions
are cdc_api.py, the webhook actions webhooks_api.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import (
    schema_updates,
    serializers,
    source_creation,
    source_setup,
    sources,
)
from warehouse_mcp.embedded.domain.request_bodies import (
    BulkSchemaUpdate,
    PrefixCheck,
    RevenueConfig,
    SourceCreate,
    SourcePatch,
    SourceSetup,
    TablePreview,
)
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.source_records import SourceRecord

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend


def _source(request: Request) -> SourceRecord:
    backend = request_context.backend(request)
    return source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )


def _answer(backend: EmbeddedBackend, source: SourceRecord) -> dict[str, Any]:
    """The source as retrieve answers it."""
    schemas = schema_records.of_source(backend.store, source.id)
    return serializers.source_json(source, schemas, source_records.last_run_at(backend.store, source.id))


# --- CRUD ----------------------------------------------------------------------------------------


def list_sources(request: Request) -> Response:
    backend = request_context.backend(request)
    limit, offset = request_context.page_params(request)
    count, rows = source_records.page(
        backend.store, request_context.team_id(request), request.query_params.get("search"), limit, offset
    )
    schemas = schema_records.of_sources(backend.store, [row.id for row in rows])
    results = [
        serializers.source_json(
            row, schemas[row.id], source_records.last_run_at(backend.store, row.id), include_columns=False
        )
        for row in rows
    ]
    return request_context.paginated(request, count, results, limit, offset)


def create(request: Request) -> Response:
    body = SourceCreate.parse(request_context.body(request))
    source_id = source_creation.create(
        request_context.backend(request), request_context.team_id(request), body
    )
    return request_context.json_response({"id": source_id}, 201)


def retrieve(request: Request) -> Response:
    source = _source(request)
    return request_context.json_response(_answer(request_context.backend(request), source))


def partial_update(request: Request) -> Response:
    source = _source(request)
    backend = request_context.backend(request)
    sources.update(backend, source, SourcePatch.parse(request_context.body(request)))
    return request_context.json_response(_answer(backend, _source(request)))


def destroy(request: Request) -> Response:
    sources.destroy(request_context.backend(request), _source(request))
    return request_context.empty_response(204)


# --- actions on one source -----------------------------------------------------------------------


def bulk_update_schemas(request: Request) -> Response:
    source = _source(request)
    backend = request_context.backend(request)
    ids = schema_updates.bulk_update(backend, source, BulkSchemaUpdate.parse(request_context.body(request)))
    return request_context.json_response(
        [
            serializers.schema_json(schema_records.get(backend.store, source.team_id, schema_id))
            for schema_id in ids
        ]
    )


def reload(request: Request) -> Response:
    refreshed = sources.reload(request_context.backend(request), _source(request))
    return request_context.empty_response() if refreshed is None else request_context.json_response(refreshed)


def refresh_schemas(request: Request) -> Response:
    return request_context.json_response(
        sources.refresh_tables(request_context.backend(request), _source(request))
    )


def revenue_analytics_config(request: Request) -> Response:
    source = _source(request)
    backend = request_context.backend(request)
    sources.set_revenue_config(backend, source, RevenueConfig.parse(request_context.body(request)))
    return request_context.json_response(_answer(backend, _source(request)))


def jobs(request: Request) -> Response:
    source = _source(request)
    bounds = {
        name: sources.parse_timestamp(raw, name) if (raw := request.query_params.get(name)) else None
        for name in ("after", "before")
    }
    found = sources.recent_jobs(
        request_context.backend(request), source, request.query_params.getlist("schemas"), **bounds
    )
    return request_context.json_response([serializers.job_json(job) for job in found])


# --- actions on the collection -------------------------------------------------------------------


def connections(request: Request) -> Response:
    backend = request_context.backend(request)
    return request_context.json_response(
        sources.direct_connections(backend, request_context.team_id(request))
    )


def wizard(request: Request) -> Response:
    """Every source's form definition; `?source_type=A,B` narrows the (large) answer."""
    wanted = [name.strip() for name in request.query_params.get("source_type", "").split(",") if name.strip()]
    return request_context.json_response(sources.wizard_forms(wanted))


def database_schema(request: Request) -> Response:
    sent = request_context.body(request)
    return request_context.json_response(source_creation.preview_tables(TablePreview.parse(sent), sent))


def source_prefix(request: Request) -> Response:
    backend = request_context.backend(request)
    body = PrefixCheck.parse(request_context.body(request))
    source_creation.check_new_prefix(backend, request_context.team_id(request), body)
    return request_context.empty_response()


def setup(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    source_id, webhook = source_setup.setup(
        backend, team_id, SourceSetup.parse(request_context.body(request))
    )
    answer = _answer(backend, source_records.get(backend.store, team_id, source_id))
    if webhook is not None:
        answer["webhook"] = webhook
    return request_context.json_response(answer, 201)
