"""Handlers for `external_data_sources/` (api-semantics §1 and §4), one function per operation.

Creating a source lives in domain/source_creation.py, the CDC actions in cdc_api.py, the webhook actions in
webhooks_api.py. Errors follow PostHog: standard CRUD and field checks answer DRF's shape, custom actions and the
connector's findings answer `{"message": ...}`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo, WebhookConnector
from warehouse_mcp.embedded.domain import (
    cdc,
    cdc_slots,
    connector_access,
    credentials,
    fields,
    schema_updates,
    serializers,
    source_creation,
    webhooks,
)
from warehouse_mcp.embedded.domain.errors import (
    Invalid,
    Refused,
    not_a_list,
    required,
)
from warehouse_mcp.embedded.domain.job_inputs_update import merge_job_inputs
from warehouse_mcp.embedded.domain.setup_defaults import default_schemas
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.source_records import SourceRecord, source_config
from warehouse_mcp.models import (
    DEFAULT_FREQUENCY,
    FREQUENCY_SECONDS,
    AccessMethod,
    CreatedVia,
)

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend

# `source_config` is defined in source_records and imported here, where callers look for it.

logger = logging.getLogger(__name__)


JOBS_LIMIT = 50
BULK_UPDATE_FIELDS = (
    "should_sync",
    "sync_type",
    "incremental_field",
    "incremental_field_type",
    "sync_frequency",
    "sync_time_of_day",
    "cdc_table_mode",
    "enabled_columns",
)


def source_answer(backend: EmbeddedBackend, source: SourceRecord) -> dict[str, Any]:
    schemas = schema_records.of_source(backend.store, source.id)
    return serializers.source_json(source, schemas, source_records.last_run_at(backend.store, source.id))


def _source_type(data: dict[str, Any]) -> str:
    if data.get("source_type") is None:
        raise required("source_type")
    return fields.choice(data, "source_type", registry.SOURCE_TYPES)


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
            row,
            schemas[row.id],
            source_records.last_run_at(backend.store, row.id),
            include_columns=False,
        )
        for row in rows
    ]
    return request_context.paginated(request, count, results, limit, offset)


def create(request: Request) -> Response:
    backend = request_context.backend(request)
    data = request_context.body(request)
    source_type = _source_type(data)
    payload = fields.optional_dict(data, "payload")
    if payload is None:
        raise required("payload")
    source_creation.refuse_secret_refs(payload)
    new = source_creation.NewSource(
        source_type=source_type,
        payload=payload,
        prefix=fields.optional_str(data, "prefix", max_length=100),
        description=fields.optional_str(data, "description", max_length=400),
        access_method=fields.choice(data, "access_method", tuple(AccessMethod), AccessMethod.warehouse),
        created_via=fields.choice(data, "created_via", tuple(CreatedVia), CreatedVia.api),
        direct_query_enabled=bool(fields.optional_bool(data, "direct_query_enabled")),
    )
    source_id = source_creation.create_source(backend, request_context.team_id(request), new)
    return request_context.json_response({"id": source_id}, 201)


def retrieve(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    return request_context.json_response(source_answer(backend, source))


def partial_update(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    source = source_records.get(backend.store, team_id, request_context.path_id(request))
    data = request_context.body(request)
    access_method = data.get("access_method")
    if access_method is not None and access_method != source.access_method:
        raise Invalid("Access method cannot be changed. Create a new source instead.")
    changes: dict[str, Any] = {}
    if "description" in data:
        changes["description"] = fields.optional_str(data, "description", max_length=400)
    direct_query_enabled = fields.optional_bool(data, "direct_query_enabled")
    if direct_query_enabled is not None and source.access_method != AccessMethod.direct:
        changes["direct_query_enabled"] = int(direct_query_enabled)  # PostHog ignores it on direct sources
    refresh = False
    if source.access_method == AccessMethod.direct:
        # For direct sources the prefix is the source's name; warehouse prefixes never change.
        prefix = data.get("prefix", source.prefix)
        if not (isinstance(prefix, str) and prefix.strip()):
            raise Invalid("Name is required for direct query sources")
        changes["prefix"] = prefix.strip()
    if "job_inputs" in data:
        incoming = fields.optional_dict(data, "job_inputs") or {}
        source_type = source.source_type
        existing = source_config(backend.store, backend.vault, source.id)
        merged = merge_job_inputs(source_type, existing, incoming)
        config = connector_access.only_form_fields(source_type, merged)
        try:
            connector = connector_access.connector(source_type)
            connector_access.check_config(source_type, config)
            if not set(incoming) <= CDC_UPKEEP_SETTINGS:
                # Only CDC upkeep settings changed, nothing about the connection: the live check is skipped,
                # so a source whose database is gone can still give up its slot drop and be deleted.
                connector_access.check_credentials(connector, config)
        except connector_access.SourceRefused as refused:  # PATCH answers DRF's shape
            raise Invalid(str(refused)) from None
        if forms.truthy(existing.get("cdc_enabled")) and not forms.truthy(config.get("cdc_enabled")):
            _drop_cdc_slot(backend, source.id, existing)
        changes["job_inputs"], changes["job_inputs_secret"] = source_records.encode_config(
            backend.vault, source_type, config
        )
        # A direct source queries the schema it names: another schema means another table list.
        refresh = (
            source.access_method == AccessMethod.direct
            and "schema" in incoming
            and (str(incoming.get("schema") or "") != str(existing.get("schema") or ""))
        )
    if refresh:
        with backend.store.transaction() as db:
            source_records.update(db, source.id, changes)
        _refresh_tables(backend, source_records.get(backend.store, team_id, source.id))
        changes = {}
    return _save_and_answer(backend, team_id, source.id, changes)


def _save_and_answer(
    backend: EmbeddedBackend, team_id: int, source_id: str, changes: dict[str, Any]
) -> Response:
    with backend.store.transaction() as db:
        source_records.update(db, source_id, changes)
    return request_context.json_response(
        source_answer(backend, source_records.get(backend.store, team_id, source_id))
    )


def destroy(request: Request) -> Response:
    """Soft-delete the source and its schemas; stop its syncs, drop its tables, remove its webhook."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    config = source_config(backend.store, backend.vault, source.id)
    _drop_cdc_slot(backend, source.id, config)
    with backend.store.transaction() as db:
        source_records.soft_delete(db, source.id)
    webhooks.delete_for_destroyed_source(backend, source, config)
    try:
        backend.sync.drop_source(source.id)
    except Exception:
        logger.exception("could not drop the synced tables of deleted source %s", source.id)
    return request_context.empty_response(204)


CDC_UPKEEP_SETTINGS = {"cdc_auto_drop_slot", "cdc_lag_warning_threshold_mb", "cdc_lag_critical_threshold_mb"}


def _drop_cdc_slot(backend: EmbeddedBackend, source_id: str, config: dict[str, Any]) -> None:
    """CDC off or source deleted: the slot must go first (a slot left behind fills the source's disk)."""
    try:
        cdc_slots.drop_if_managed(source_id, config)
    except SourceError as exc:
        raise Refused(str(exc)) from None
    backend.sync.forget_cdc_snapshots(source_id)


# --- actions on one source -----------------------------------------------------------------------


def bulk_update_schemas(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    source = source_records.get(backend.store, team_id, request_context.path_id(request))
    data = request_context.body(request)
    if data.get("schemas") is None:
        raise required("schemas")
    updates = data["schemas"]
    if not isinstance(updates, list):
        raise not_a_list(updates, "schemas")
    if not updates:
        raise Invalid("This list may not be empty.", "schemas", "empty")
    ids = [_schema_update_id(update, index) for index, update in enumerate(updates)]
    if len(set(ids)) != len(ids):
        raise Invalid("Schema updates must contain unique ids")
    rows = {schema.id: schema for schema in schema_records.of_source(backend.store, source.id)}
    if any(schema_id not in rows for schema_id in ids):
        raise Invalid("One or more schemas could not be found for this source")
    changes = [
        schema_updates.plan(
            backend,
            source,
            rows[schema_id],
            {key: value for key, value in update.items() if key in BULK_UPDATE_FIELDS},
        )
        for schema_id, update in zip(ids, updates, strict=True)
    ]
    schema_updates.apply(backend, changes)
    return request_context.json_response(
        [serializers.schema_json(schema_records.get(backend.store, team_id, schema_id)) for schema_id in ids]
    )


def _schema_update_id(update: Any, index: int) -> str:
    if not isinstance(update, dict):
        raise Invalid(
            f"Invalid data. Expected a dictionary, but got {type(update).__name__}.", f"schemas__{index}"
        )
    if update.get("id") is None:
        raise required(f"schemas__{index}__id")
    try:
        return str(uuid.UUID(str(update["id"])))
    except ValueError:
        raise Invalid("Must be a valid UUID.", f"schemas__{index}__id") from None


def reload(request: Request) -> Response:
    """Sync every enabled table of the source now."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source.access_method == AccessMethod.direct:
        return refresh_schemas(request)
    for schema in schema_records.of_source(backend.store, source.id):
        if schema.should_sync:
            backend.sync.request_sync(schema.id)
    with backend.store.transaction() as db:
        source_records.update(db, source.id, {"status": "Running"})
    return request_context.empty_response()


def refresh_schemas(request: Request) -> Response:
    """Re-discover the source's tables, as PostHog's sync_old_schemas_with_new_schemas does: a new table
    is added disabled, or its soft-deleted schema comes back with its settings; a vanished table's
    schema is soft-deleted when nobody enabled it and it holds no data, else it is disabled and kept."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    return request_context.json_response(_refresh_tables(backend, source))


def _refresh_tables(backend: EmbeddedBackend, source: SourceRecord) -> dict[str, int]:
    connector = connector_access.connector(source.source_type)
    config = source_config(backend.store, backend.vault, source.id)
    direct = source.access_method == AccessMethod.direct
    try:
        tables = connector_access.discover(connector, config, direct=direct)
    except connector_access.SourceRefused as refused:  # PostHog's classified words, never the raw error
        raise Refused(connector_access.refresh_error_message(SourceError(str(refused)))) from None
    existing = {schema.name: schema for schema in schema_records.of_source(backend.store, source.id)}
    seen = {table.name for table in tables}
    added = deleted = 0
    rescheduled: list[str] = []
    with backend.store.transaction() as db:
        for table in tables:
            schema = existing.get(table.name)
            if schema is None:
                _add_discovered(db, source, table)
                added += 1
                continue
            refreshed: dict[str, Any] = {
                "available_columns": json.dumps(schema_records.available_columns(table)),
                "description": table.description,
            }
            if not schema.primary_key_columns and table.primary_keys:
                refreshed["primary_key_columns"] = json.dumps(table.primary_keys)
            schema_records.update(db, schema.id, refreshed)
        for name, schema in existing.items():
            if name in seen:
                continue
            if schema.table_id is None and not schema.should_sync:
                schema_records.soft_delete(db, schema.id)
                deleted += 1
            else:  # keep the user's choice and the data it holds, visibly off
                hidden = schema_records.NO_TABLE if source.access_method == AccessMethod.direct else {}
                schema_records.update(db, schema.id, {"should_sync": 0, "status": "Completed", **hidden})
                rescheduled.append(schema.id)
    for schema_id in rescheduled:
        backend.sync.schedule_changed(schema_id)
    return {"added": added, "deleted": deleted, "total_tables_seen": len(tables)}


def _add_discovered(db: sqlite3.Connection, source: SourceRecord, table: TableInfo) -> None:
    restored = schema_records.last_deleted(db, source.id, table.name)
    if restored is not None:
        schema_records.restore(db, restored.id, table)
        return
    schema_records.insert(
        db,
        team_id=source.team_id,
        source_id=source.id,
        name=table.name,
        table=table,
        primary_key_columns=table.primary_keys or None,
        sync_frequency_interval=FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
    )


def revenue_analytics_config(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    source = source_records.get(backend.store, team_id, request_context.path_id(request))
    data = request_context.body(request)
    changes: dict[str, Any] = {}
    enabled = fields.optional_bool(data, "enabled")
    if enabled is not None:
        changes["revenue_enabled"] = int(enabled)
    invoiceless = fields.optional_bool(data, "include_invoiceless_charges")
    if invoiceless is not None:
        changes["revenue_include_invoiceless"] = int(invoiceless)
    return _save_and_answer(backend, team_id, source.id, changes)


def jobs(request: Request) -> Response:
    """The source's sync runs, newest first, at most 50; `after`/`before` are exclusive bounds."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    after = _timestamp_param(request, "after")
    before = _timestamp_param(request, "before")
    results: list[dict[str, Any]] = []
    for job in source_records.recent_jobs(backend.store, source.id, request.query_params.getlist("schemas")):
        created = _parse_timestamp(job.created_at)
        if (after and created <= after) or (before and created >= before):
            continue
        results.append(serializers.job_json(job))
        if len(results) == JOBS_LIMIT:
            break
    return request_context.json_response(results)


def _parse_timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _timestamp_param(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return _parse_timestamp(raw)
    except ValueError:
        raise Invalid(f"'{raw}' is not an ISO 8601 timestamp: use e.g. 2024-05-01T00:00:00Z.", name) from None


# --- actions on the collection -------------------------------------------------------------------


def connections(request: Request) -> Response:
    """Sources queried in place: direct ones and synced ones with `direct_query_enabled` (PostHog's filter)."""
    backend = request_context.backend(request)
    engines = source_creation.DIRECT_ENGINES
    rows = source_records.direct_connections(backend.store, request_context.team_id(request), tuple(engines))
    return request_context.json_response(
        [
            {
                "id": row.id,
                "prefix": row.prefix,
                "engine": row.connection_metadata.get("engine") or engines[row.source_type],
            }
            for row in rows
        ]
    )


def wizard(request: Request) -> Response:
    """Every source's form definition; `?source_type=A,B` narrows the (large) answer."""
    forms_by_type = registry.wizard()
    wanted = [name.strip() for name in request.query_params.get("source_type", "").split(",") if name.strip()]
    unknown = sorted(name for name in wanted if name not in forms_by_type)
    if unknown:
        raise Refused(
            f"Unknown source_type(s): {', '.join(unknown)}. Omit source_type to list every available type."
        )
    if wanted:
        forms_by_type = {name: forms_by_type[name] for name in wanted}
    return request_context.json_response(forms_by_type)


def database_schema(request: Request) -> Response:
    """Check a config against the live source and list its tables, without creating anything."""
    data = request_context.body(request)
    source_type = data.get("source_type")
    if source_type is None:
        raise Refused("Missing required parameter: source_type")
    source_creation.refuse_secret_refs(data)
    if not registry.is_known(str(source_type)):
        raise Refused(f"Unknown source_type '{source_type}'")
    connector = connector_access.connector(source_type)
    config = connector_access.only_form_fields(source_type, data)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(
        connector, config, direct=data.get("access_method") == AccessMethod.direct
    )
    permissions = connector_access.endpoint_permissions(connector, config, [table.name for table in tables])
    return request_context.json_response(
        [
            serializers.discovered_table_json(source_type, table, permissions.get(table.name))
            for table in tables
        ]
    )


def source_prefix(request: Request) -> Response:
    """Would this prefix be accepted for a new source of this type? 200 when yes."""
    backend = request_context.backend(request)
    data = request_context.body(request)
    source_type = data.get("source_type")
    if not source_type:
        raise Refused("Missing required parameter: source_type")
    prefix = data.get("prefix")
    if data.get("access_method") == AccessMethod.direct:
        if source_type not in source_creation.DIRECT_ENGINES:
            raise Refused(
                f"Direct query mode is currently supported only for {registry.names(tuple(source_creation.DIRECT_ENGINES))} sources."
            )
        source_creation.direct_name(prefix)
        return request_context.empty_response()
    if prefix is not None and not isinstance(prefix, str):
        raise Invalid("Not a valid string.", "prefix")
    source_creation.check_prefix_format(prefix)
    conflict = source_records.prefix_conflict(
        backend.store, request_context.team_id(request), source_type, prefix
    )
    if conflict:
        raise Refused(conflict)
    return request_context.empty_response()


def setup(request: Request) -> Response:
    """One call from credentials to a syncing source: validate, discover, default every table, create.

    `payload.credential_id` names a credential the user stored through the connect page; its values
    win over inline keys, and it is deleted once the source owns them.
    """
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    data = request_context.body(request)
    source_type = _source_type(data)
    payload = dict(fields.optional_dict(data, "payload") or {})
    source_creation.refuse_secret_refs(payload)
    prefix = fields.optional_str(data, "prefix", max_length=100)
    description = fields.optional_str(data, "description", max_length=400)

    credential_id = payload.pop("credential_id", None)
    if credential_id is not None:
        stored = credentials.take_stored_credential(
            backend.store, backend.vault, team_id, str(credential_id), source_type
        )
        payload = {**payload, **stored}

    connector = connector_access.connector(source_type)
    payload = source_creation.strip_strings(payload)
    config = connector_access.only_form_fields(source_type, payload)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config)
    if not tables:
        raise Refused("No tables found for this source. Check the credentials and permissions.")
    cdc_on = forms.truthy(config.get("cdc_enabled"))
    if cdc_on:
        cdc.refuse_unready_cdc(source_type, config, tables)
    payload["schemas"] = default_schemas(tables, cdc=cdc_on)

    new = source_creation.NewSource(
        source_type,
        payload,
        prefix,
        description,
        AccessMethod.warehouse,
        CreatedVia.mcp,
        direct_query_enabled=bool(fields.optional_bool(data, "direct_query_enabled")),
    )
    source_id = source_creation.create_source(backend, team_id, new, checked=(config, tables))
    if credential_id is not None:
        credentials.delete_stored_credential(backend.store, str(credential_id))

    webhook = None
    if isinstance(connector, WebhookConnector):
        webhook = _auto_register_webhook(backend, team_id, source_id, connector, tables)
    answer = source_answer(backend, source_records.get(backend.store, team_id, source_id))
    if webhook is not None:
        answer["webhook"] = webhook
    return request_context.json_response(answer, 201)


def _auto_register_webhook(
    backend: EmbeddedBackend,
    team_id: int,
    source_id: str,
    connector: WebhookConnector,
    tables: list[TableInfo],
) -> dict[str, Any] | None:
    """Best effort: on success every webhook-capable table switches to webhook sync (webhook-only ones
    included); on failure the polling defaults stay and webhook-only tables stay disabled."""
    capable = [table.name for table in tables if table.supports_webhooks]
    if not capable:
        return None
    source = source_records.get(backend.store, team_id, source_id)
    try:
        result = webhooks.register(backend, source, connector, capable, keep_on_failure=False)
    except Exception as exc:  # never fails setup: the source exists and polls
        logger.warning("webhook registration for source %s failed: %s", source_id, type(exc).__name__)
        return {"success": False, "webhook_url": None, "error": str(exc), "pending_inputs": []}
    if not result["success"]:
        return result
    switched: list[tuple[str, bool]] = []
    with backend.store.transaction() as db:
        for schema in schema_records.of_source(backend.store, source_id):
            if schema.name in capable:
                schema_records.update(db, schema.id, {"sync_type": "webhook", "should_sync": 1})
                switched.append((schema.id, bool(schema.should_sync)))
    for schema_id, was_enabled in switched:
        if was_enabled:
            backend.sync.schedule_changed(schema_id)
        else:
            backend.sync.request_sync(schema_id)
    return result
