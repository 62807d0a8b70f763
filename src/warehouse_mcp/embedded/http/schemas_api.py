"""Handlers for `external_data_schemas/` (api-semantics §2 and the schema actions of §4); the rules are
domain.schemas and domain.schema_updates."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import schema_updates, schemas, serializers
from warehouse_mcp.embedded.domain.request_bodies import SchemaSettings
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.http.errors import ErrorAnswer
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.schema_records import SchemaRecord
from warehouse_mcp.embedded.store.source_records import SourceRecord


def _schema(request: Request) -> SchemaRecord:
    backend = request_context.backend(request)
    return schema_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )


def _schema_and_source(request: Request) -> tuple[SchemaRecord, SourceRecord]:
    schema = _schema(request)
    backend = request_context.backend(request)
    return schema, source_records.get(backend.store, request_context.team_id(request), schema.source_id)


def list_schemas(request: Request) -> Response:
    backend = request_context.backend(request)
    limit, offset = request_context.page_params(request)
    count, rows = schema_records.page(
        backend.store, request_context.team_id(request), request.query_params.get("search"), limit, offset
    )
    return request_context.paginated(
        request, count, [serializers.schema_json(row) for row in rows], limit, offset
    )


def retrieve(request: Request) -> Response:
    schema, source = _schema_and_source(request)
    return request_context.json_response(serializers.schema_json(schema, source))


def partial_update(request: Request) -> Response:
    backend = request_context.backend(request)
    schema, source = _schema_and_source(request)
    patch = SchemaSettings.parse(request_context.body(request))
    schema_updates.apply(backend, [schema_updates.plan(backend, source, schema, patch)])
    return request_context.json_response(
        serializers.schema_json(schema_records.get(backend.store, schema.team_id, schema.id))
    )


def destroy(request: Request) -> Response:
    schemas.destroy(request_context.backend(request), _schema(request))
    return request_context.empty_response(204)


def cancel(request: Request) -> Response:
    outcome = request_context.backend(request).sync.cancel(_schema(request).id)
    if outcome is None:
        raise ErrorAnswer(400, {"detail": "No running sync to cancel."})
    if outcome == "settled":
        return request_context.json_response(
            {"detail": "No sync was running. The sync status has been updated."}
        )
    return request_context.empty_response()


def delete_data(request: Request) -> Response:
    schema, source = _schema_and_source(request)
    schemas.delete_data(request_context.backend(request), source, schema)
    return request_context.empty_response()


def reload(request: Request) -> Response:
    """Sync this table now."""
    request_context.backend(request).sync.request_sync(_schema(request).id)
    return request_context.empty_response()


def resync(request: Request) -> Response:
    """Stop a running sync, forget the cursor and sync the whole table again."""
    request_context.backend(request).sync.request_sync(_schema(request).id, reset_cursor=True)
    return request_context.empty_response()


def incremental_fields(request: Request) -> Response:
    schema, source = _schema_and_source(request)
    return request_context.json_response(
        schemas.incremental_fields(request_context.backend(request), source, schema)
    )
