"""Handlers for `external_data_schemas/` (api-semantics §2 and the schema actions of §4)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import connector_access, schema_updates, serializers
from warehouse_mcp.embedded.domain.errors import Conflict, Refused
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.http.errors import ErrorAnswer
from warehouse_mcp.embedded.store import schema_records, source_records

logger = logging.getLogger(__name__)


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
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    schema = schema_records.get(backend.store, team_id, request_context.path_id(request))
    source = source_records.get(backend.store, team_id, schema.source_id)
    return request_context.json_response(serializers.schema_json(schema, source))


def partial_update(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    schema = schema_records.get(backend.store, team_id, request_context.path_id(request))
    source = source_records.get(backend.store, team_id, schema.source_id)
    change = schema_updates.plan(backend, source, schema, request_context.body(request))
    schema_updates.apply(backend, [change])
    return request_context.json_response(
        serializers.schema_json(schema_records.get(backend.store, team_id, schema.id))
    )


def destroy(request: Request) -> Response:
    """Soft-delete the schema; its running sync stops and its synced table is dropped."""
    backend = request_context.backend(request)
    schema = schema_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    backend.sync.cancel(schema.id)
    with backend.store.transaction() as db:
        schema_records.soft_delete(db, schema.id)
    try:
        backend.sync.delete_data(schema.id)
    except Exception:
        logger.exception("could not drop the synced table of deleted schema %s", schema.id)
    return request_context.empty_response(204)


def cancel(request: Request) -> Response:
    backend = request_context.backend(request)
    schema = schema_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    outcome = backend.sync.cancel(schema.id)
    if outcome is None:
        raise ErrorAnswer(400, {"detail": "No running sync to cancel."})
    if outcome == "settled":
        return request_context.json_response(
            {"detail": "No sync was running. The sync status has been updated."}
        )
    return request_context.empty_response()


def delete_data(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    schema = schema_records.get(backend.store, team_id, request_context.path_id(request))
    source = source_records.get(backend.store, team_id, schema.source_id)
    if source.access_method == "direct":
        # Nothing was copied: as PostHog, the live table is hidden and the schema disabled.
        with backend.store.transaction() as db:
            schema_records.update(db, schema.id, {"should_sync": 0, **schema_records.NO_TABLE})
        return request_context.empty_response()
    from warehouse_mcp.embedded.sync.scheduler import WarehouseBusyError

    try:
        backend.sync.delete_data(schema.id)
    except WarehouseBusyError as exc:
        raise Conflict(str(exc)) from None
    return request_context.empty_response()


def reload(request: Request) -> Response:
    """Sync this table now."""
    backend = request_context.backend(request)
    schema = schema_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    backend.sync.request_sync(schema.id)
    return request_context.empty_response()


def resync(request: Request) -> Response:
    """Stop a running sync, forget the cursor and sync the whole table again."""
    backend = request_context.backend(request)
    schema = schema_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    backend.sync.request_sync(schema.id, reset_cursor=True)
    return request_context.empty_response()


def incremental_fields(request: Request) -> Response:
    """Re-discover this table at the source: its sync options, columns and primary key."""
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    schema = schema_records.get(backend.store, team_id, request_context.path_id(request))
    source = source_records.get(backend.store, team_id, schema.source_id)
    connector = connector_access.connector(source.source_type)
    config = source_records.source_config(backend.store, backend.vault, source.id)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config)
    table = next((table for table in tables if table.name == schema.name), None)
    if table is None:
        raise Refused(
            f"Could not discover schema {schema.name}. The connection may be missing SELECT or schema access "
            "privileges, or discovery may not support this relation type. Check that the relation exists, restore "
            "read privileges, or expose it as a supported table or view, then try again."
        )
    return request_context.json_response(
        {
            "incremental_fields": serializers.incremental_candidates(table),
            "incremental_available": table.supports_incremental,
            "append_available": table.supports_append,
            "cdc_available": table.cdc_available if schema_updates.cdc_enabled(source) else None,
            "xmin_available": serializers.xmin_available(source.source_type),
            "full_refresh_available": not table.webhook_only,
            "supports_webhooks": table.supports_webhooks,
            "webhook_only": table.webhook_only,
            "available_columns": serializers.discovered_columns(table),
            "detected_primary_keys": table.primary_keys,
        }
    )
