"""Handlers for `external_data_sources/` (api-semantics §1 and §4), one function per operation.

Errors follow PostHog: standard CRUD and field checks answer DRF's shape, custom actions and the
connector's findings answer `{"message": ...}`.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded import (
    connector_access,
    credentials_api,
    request_context,
    schema_records,
    schema_updates,
    serializers,
    source_records,
    webhooks_api,
)
from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo, WebhookConnector
from warehouse_mcp.embedded.errors import (
    message_error,
    not_a_list,
    required,
    validation_error,
)
from warehouse_mcp.embedded.job_inputs_update import merge_job_inputs
from warehouse_mcp.embedded.setup_defaults import default_schemas
from warehouse_mcp.embedded.source_records import source_config
from warehouse_mcp.models import (
    DEFAULT_FREQUENCY,
    FREQUENCY_SECONDS,
    AccessMethod,
    CreatedVia,
)

if TYPE_CHECKING:
    from types import ModuleType

    from warehouse_mcp.embedded.backend import EmbeddedBackend

__all__ = ["source_config"]  # contract 5: the helper lives (is re-exported) here

logger = logging.getLogger(__name__)

Row = sqlite3.Row

PREFIX_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DIRECT_ENGINES = {"Postgres": "postgres", "MySQL": "mysql"}
CDC_SOURCE_TYPES = ("Postgres",)
CDC_FREQUENCY_SECONDS = 5 * 60
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


# --- shared pieces -------------------------------------------------------------------------------


def source_answer(backend: EmbeddedBackend, source: Row) -> dict[str, Any]:
    schemas = schema_records.of_source(backend.store, source["id"])
    return serializers.source_json(source, schemas, source_records.last_run_at(backend.store, source["id"]))


def check_prefix_format(prefix: str | None) -> None:
    """PostHog's prefix rules: the prefix must make valid table identifiers (underscores at the ends are ignored)."""
    if not prefix:
        return
    cleaned = prefix.strip("_")
    if not cleaned:
        raise validation_error("Prefix cannot consist of only underscores")
    if not PREFIX_PATTERN.match(cleaned):
        raise validation_error(
            "Prefix must contain only letters, numbers, and underscores, and start with a letter or underscore"
        )


def _direct_name(prefix: Any) -> str:
    name = prefix.strip() if isinstance(prefix, str) else ""
    if not name:
        raise message_error("Name is required for direct query sources")
    return name


def _source_type(data: dict[str, Any]) -> str:
    if data.get("source_type") is None:
        raise required("source_type")
    return request_context.choice(data, "source_type", registry.SOURCE_TYPES)


def _strip_strings(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value.strip() if isinstance(value, str) else value for key, value in payload.items()}


def _postgres() -> ModuleType:
    # Imported on use: the driver is heavy and only CDC checks need the module's extras.
    return importlib.import_module("warehouse_mcp.embedded.connectors.postgres")


def _cdc_mode(data: dict[str, Any]) -> str:
    mode = data.get("cdc_management_mode") or "posthog"
    if mode not in ("posthog", "self_managed"):
        raise message_error("cdc_management_mode must be 'posthog' or 'self_managed'.")
    return str(mode)


def default_slot_name(source_id: str) -> str:
    return f"posthog_{uuid.UUID(source_id).hex[:12]}"


def default_publication_name(source_id: str) -> str:
    return f"posthog_pub_{uuid.UUID(source_id).hex[:12]}"


# --- creating a source (create and setup) --------------------------------------------------------


@dataclass
class NewSource:
    source_type: str
    payload: dict[str, Any]
    prefix: str | None
    description: str | None
    access_method: str
    created_via: str


@dataclass(frozen=True)
class SchemaPlan:
    name: str
    table: TableInfo
    should_sync: bool
    sync_type: str | None
    incremental_field: str | None
    incremental_field_type: str | None
    primary_key_columns: list[str] | None
    sync_time_of_day: str | None
    enabled_columns: list[str] | None
    cdc_table_mode: str
    frequency_seconds: int | None


def create_source(
    backend: EmbeddedBackend,
    team_id: int,
    new: NewSource,
    checked: tuple[dict[str, Any], list[TableInfo]] | None = None,
) -> str:
    """Run create's checks in PostHog's order, store the source and its schemas, start the enabled syncs.

    `checked` is `(config, tables)` when the caller (setup) already validated and discovered.
    """
    direct = new.access_method == AccessMethod.direct
    prefix = new.prefix or None
    if direct:
        if new.source_type not in DIRECT_ENGINES:
            raise message_error(
                "Direct query mode is currently supported only for Postgres and MySQL sources."
            )
        prefix = _direct_name(new.prefix)
    else:
        check_prefix_format(prefix)
        conflict = source_records.prefix_conflict(backend.store, team_id, new.source_type, prefix)
        if conflict:
            raise message_error(conflict)

    payload = _strip_strings(new.payload)
    if checked is None:
        connector = connector_access.connector(new.source_type)
        config = connector_access.only_form_fields(new.source_type, payload)
        connector_access.check_config(new.source_type, config)
        connector_access.check_credentials(connector, config)
        tables = connector_access.discover(connector, config)
    else:
        config, tables = checked

    source_id = str(uuid.uuid4())
    cdc_on = bool(payload.get("cdc_enabled")) and new.source_type in CDC_SOURCE_TYPES
    plans = _schema_plans(payload.get("schemas"), tables, cdc_on=cdc_on, direct=direct)
    if cdc_on:
        config = {**config, **_cdc_settings(payload, source_id)}

    job_inputs, job_inputs_secret = source_records.encode_config(backend.vault, new.source_type, config)
    metadata = {"engine": DIRECT_ENGINES[new.source_type]} if direct else {}
    planned = {plan.name for plan in plans}
    to_sync: list[str] = []
    with backend.store.transaction() as db:
        source_records.insert(
            db,
            source_id=source_id,
            team_id=team_id,
            source_type=new.source_type,
            prefix=prefix,
            description=new.description,
            created_via=new.created_via,
            access_method=new.access_method,
            job_inputs=job_inputs,
            job_inputs_secret=job_inputs_secret,
            connection_metadata=metadata,
        )
        for plan in plans:
            schema_id = schema_records.insert(
                db,
                team_id=team_id,
                source_id=source_id,
                name=plan.name,
                table=plan.table,
                should_sync=plan.should_sync,
                sync_type=plan.sync_type,
                incremental_field=plan.incremental_field,
                incremental_field_type=plan.incremental_field_type,
                primary_key_columns=plan.primary_key_columns,
                sync_frequency_interval=plan.frequency_seconds,
                sync_time_of_day=plan.sync_time_of_day,
                enabled_columns=plan.enabled_columns,
                cdc_table_mode=plan.cdc_table_mode,
            )
            if plan.should_sync and not direct:
                to_sync.append(schema_id)
        # Tables the payload left out are known too (disabled), as PostHog's discovery adds them.
        for table in tables:
            if table.name not in planned:
                schema_records.insert(
                    db,
                    team_id=team_id,
                    source_id=source_id,
                    name=table.name,
                    table=table,
                    primary_key_columns=table.primary_keys or None,
                    sync_frequency_interval=FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
                )
    for schema_id in to_sync:
        backend.sync.request_sync(schema_id)
    return source_id


def _schema_plans(given: Any, tables: list[TableInfo], *, cdc_on: bool, direct: bool) -> list[SchemaPlan]:
    if not given or not isinstance(given, list):
        raise message_error("Schemas not given")
    by_name = {table.name: table for table in tables}
    entries = [entry if isinstance(entry, dict) else {} for entry in given]
    if any(entry.get("name") not in by_name for entry in entries):
        raise message_error("Schemas given do not exist in source")

    def wants_cdc(entry: dict[str, Any]) -> bool:
        return entry.get("sync_type") == "cdc" and bool(entry.get("should_sync", False))

    if not cdc_on:
        requested = sorted({entry["name"] for entry in entries if wants_cdc(entry)})
        if requested:
            raise message_error(
                "CDC must be enabled on the source before selecting it as a sync type. "
                f"The following schemas requested CDC: {', '.join(requested)}."
            )
    else:
        missing_pk = sorted(
            {
                entry["name"]
                for entry in entries
                if wants_cdc(entry) and not by_name[entry["name"]].primary_keys
            }
        )
        if missing_pk:
            raise message_error(
                "CDC requires a primary key on each table. "
                f"The following tables have no primary key: {', '.join(missing_pk)}."
            )

    plans: dict[str, SchemaPlan] = {}
    for entry in entries:
        plans[entry["name"]] = _schema_plan(entry, by_name[entry["name"]], direct=direct)
    return list(plans.values())


def _schema_plan(entry: dict[str, Any], table: TableInfo, *, direct: bool) -> SchemaPlan:
    name = table.name
    should_sync = bool(entry.get("should_sync", False))
    sync_type = entry.get("sync_type")
    if sync_type is not None and sync_type not in schema_updates.SYNC_TYPES:
        raise message_error(
            f"Unknown sync_type '{sync_type}' for schema '{name}'. Use one of: {', '.join(schema_updates.SYNC_TYPES)}."
        )
    field = entry.get("incremental_field")
    field_type = entry.get("incremental_field_type")
    if should_sync and sync_type in schema_updates.CURSOR_SYNC_TYPES:
        if field is None:
            raise message_error("Incremental schemas given do not have an incremental field set")
        if field_type is None:
            raise message_error("Incremental schemas given do not have an incremental field type set")
    if field_type is not None and field_type not in schema_updates.FIELD_TYPES:
        raise message_error(
            f"Unknown incremental_field_type '{field_type}' for schema '{name}'. "
            f"Use one of: {', '.join(schema_updates.FIELD_TYPES)}."
        )
    cdc_table_mode = entry.get("cdc_table_mode") or "consolidated"
    if cdc_table_mode not in schema_updates.CDC_TABLE_MODES:
        raise message_error(
            f"Unknown cdc_table_mode '{cdc_table_mode}' for schema '{name}'. "
            f"Use one of: {', '.join(schema_updates.CDC_TABLE_MODES)}."
        )
    time_of_day = entry.get("sync_time_of_day")
    if time_of_day is not None:
        try:
            time_of_day = schema_updates.parse_time_of_day(time_of_day)
        except Exception:
            raise message_error(
                f"Invalid sync time of day for schema '{name}': use HH:MM:SS (UTC)."
            ) from None
    enabled = entry.get("enabled_columns")
    enabled_columns = (
        [column for column in enabled if isinstance(column, str)] if isinstance(enabled, list) else None
    )
    pk = entry.get("primary_key_columns")
    primary_key = [str(column) for column in pk] if isinstance(pk, list) and pk else None
    cdc_set_up = sync_type == "cdc" and should_sync
    if sync_type == "cdc" and not should_sync:
        sync_type = None  # a CDC table nobody enabled is not set up yet
    return SchemaPlan(
        name=name,
        table=table,
        should_sync=should_sync,
        sync_type=None if direct else sync_type,
        incremental_field=field,
        incremental_field_type=field_type,
        primary_key_columns=primary_key or table.primary_keys or None,
        sync_time_of_day=None if direct else time_of_day,
        enabled_columns=enabled_columns,
        cdc_table_mode=cdc_table_mode,
        frequency_seconds=CDC_FREQUENCY_SECONDS
        if cdc_set_up and not direct
        else FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
    )


def _cdc_settings(payload: dict[str, Any], source_id: str) -> dict[str, Any]:
    return {
        "cdc_enabled": True,
        "cdc_management_mode": _cdc_mode(payload),
        "cdc_slot_name": payload.get("cdc_slot_name") or default_slot_name(source_id),
        "cdc_publication_name": payload.get("cdc_publication_name") or default_publication_name(source_id),
        "cdc_auto_drop_slot": payload.get("cdc_auto_drop_slot", True),
        "cdc_lag_warning_threshold_mb": payload.get("cdc_lag_warning_threshold_mb", 1024),
        "cdc_lag_critical_threshold_mb": payload.get("cdc_lag_critical_threshold_mb", 10240),
    }


# --- CRUD ----------------------------------------------------------------------------------------


def list_sources(request: Request) -> Response:
    backend = request_context.backend(request)
    limit, offset = request_context.page_params(request)
    count, rows = source_records.page(
        backend.store, request_context.team_id(request), request.query_params.get("search"), limit, offset
    )
    schemas = schema_records.of_sources(backend.store, [row["id"] for row in rows])
    results = [
        serializers.source_json(row, schemas[row["id"]], source_records.last_run_at(backend.store, row["id"]))
        for row in rows
    ]
    return request_context.paginated(request, count, results, limit, offset)


def create(request: Request) -> Response:
    backend = request_context.backend(request)
    data = request_context.body(request)
    source_type = _source_type(data)
    payload = request_context.optional_dict(data, "payload")
    if payload is None:
        raise required("payload")
    new = NewSource(
        source_type=source_type,
        payload=payload,
        prefix=request_context.optional_str(data, "prefix", max_length=100),
        description=request_context.optional_str(data, "description", max_length=400),
        access_method=request_context.choice(
            data, "access_method", tuple(AccessMethod), AccessMethod.warehouse
        ),
        created_via=request_context.choice(data, "created_via", tuple(CreatedVia), CreatedVia.api),
    )
    source_id = create_source(backend, request_context.team_id(request), new)
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
    if access_method is not None and access_method != source["access_method"]:
        raise validation_error("Access method cannot be changed. Create a new source instead.")
    changes: dict[str, Any] = {}
    if "description" in data:
        changes["description"] = request_context.optional_str(data, "description", max_length=400)
    if source["access_method"] == AccessMethod.direct:
        # For direct sources the prefix is the source's name; warehouse prefixes never change.
        prefix = data.get("prefix", source["prefix"])
        if not (isinstance(prefix, str) and prefix.strip()):
            raise validation_error("Name is required for direct query sources")
        changes["prefix"] = prefix.strip()
    if "job_inputs" in data:
        incoming = request_context.optional_dict(data, "job_inputs") or {}
        source_type = source["source_type"]
        existing = source_config(backend.store, backend.vault, source["id"])
        merged = merge_job_inputs(source_type, existing, incoming)
        config = connector_access.only_form_fields(source_type, merged)
        connector = connector_access.connector(source_type, validation_error)
        connector_access.check_config(source_type, config, validation_error)
        connector_access.check_credentials(connector, config, validation_error)
        changes["job_inputs"], changes["job_inputs_secret"] = source_records.encode_config(
            backend.vault, source_type, config
        )
    with backend.store.transaction() as db:
        source_records.update(db, source["id"], changes)
    return request_context.json_response(
        source_answer(backend, source_records.get(backend.store, team_id, source["id"]))
    )


def destroy(request: Request) -> Response:
    """Soft-delete the source and its schemas; stop its syncs, drop its tables, remove its webhook."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    config = source_config(backend.store, backend.vault, source["id"])
    with backend.store.transaction() as db:
        source_records.soft_delete(db, source["id"])
    webhooks_api.delete_for_destroyed_source(backend, source, config)
    try:
        backend.sync.drop_source(source["id"])
    except Exception:
        logger.exception("could not drop the synced tables of deleted source %s", source["id"])
    return request_context.empty_response(204)


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
        raise validation_error("This list may not be empty.", "schemas", "empty")
    ids = [_schema_update_id(update, index) for index, update in enumerate(updates)]
    if len(set(ids)) != len(ids):
        raise validation_error("Schema updates must contain unique ids")
    rows = {schema["id"]: schema for schema in schema_records.of_source(backend.store, source["id"])}
    if any(schema_id not in rows for schema_id in ids):
        raise validation_error("One or more schemas could not be found for this source")
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
        raise validation_error(
            f"Invalid data. Expected a dictionary, but got {type(update).__name__}.", f"schemas__{index}"
        )
    if update.get("id") is None:
        raise required(f"schemas__{index}__id")
    try:
        return str(uuid.UUID(str(update["id"])))
    except ValueError:
        raise validation_error("Must be a valid UUID.", f"schemas__{index}__id") from None


def reload(request: Request) -> Response:
    """Sync every enabled table of the source now."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source["access_method"] == AccessMethod.direct:
        return refresh_schemas(request)
    for schema in schema_records.of_source(backend.store, source["id"]):
        if schema["should_sync"]:
            backend.sync.request_sync(schema["id"])
    with backend.store.transaction() as db:
        source_records.update(db, source["id"], {"status": "Running"})
    return request_context.empty_response()


def refresh_schemas(request: Request) -> Response:
    """Re-discover the source's tables: add new ones (disabled), retire vanished ones, refresh columns."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = connector_access.connector(source["source_type"])
    config = source_config(backend.store, backend.vault, source["id"])
    tables = connector_access.discover(connector, config)
    existing = {schema["name"]: schema for schema in schema_records.of_source(backend.store, source["id"])}
    seen = {table.name for table in tables}
    added = deleted = 0
    disabled: list[str] = []
    with backend.store.transaction() as db:
        for table in tables:
            schema = existing.get(table.name)
            if schema is None:
                schema_records.insert(
                    db,
                    team_id=source["team_id"],
                    source_id=source["id"],
                    name=table.name,
                    table=table,
                    primary_key_columns=table.primary_keys or None,
                    sync_frequency_interval=FREQUENCY_SECONDS[DEFAULT_FREQUENCY],
                )
                added += 1
                continue
            refreshed: dict[str, Any] = {
                "available_columns": json.dumps(schema_records.available_columns(table)),
                "description": table.description,
            }
            if not schema["primary_key_columns"] and table.primary_keys:
                refreshed["primary_key_columns"] = json.dumps(table.primary_keys)
            schema_records.update(db, schema["id"], refreshed)
        for name, schema in existing.items():
            if name in seen:
                continue
            deleted += 1
            if schema["table_id"] is not None:
                schema_records.update(db, schema["id"], {"should_sync": 0})  # keep the data it holds
                disabled.append(schema["id"])
            else:
                schema_records.soft_delete(db, schema["id"])
    for schema_id in disabled:
        backend.sync.schedule_changed(schema_id)
    return request_context.json_response(
        {"added": added, "deleted": deleted, "total_tables_seen": len(tables)}
    )


def revenue_analytics_config(request: Request) -> Response:
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    source = source_records.get(backend.store, team_id, request_context.path_id(request))
    data = request_context.body(request)
    changes: dict[str, Any] = {}
    enabled = request_context.optional_bool(data, "enabled")
    if enabled is not None:
        changes["revenue_enabled"] = int(enabled)
    invoiceless = request_context.optional_bool(data, "include_invoiceless_charges")
    if invoiceless is not None:
        changes["revenue_include_invoiceless"] = int(invoiceless)
    with backend.store.transaction() as db:
        source_records.update(db, source["id"], changes)
    return request_context.json_response(
        source_answer(backend, source_records.get(backend.store, team_id, source["id"]))
    )


def jobs(request: Request) -> Response:
    """The source's sync runs, newest first, at most 50; `after`/`before` are exclusive bounds."""
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    after = _timestamp_param(request, "after")
    before = _timestamp_param(request, "before")
    results: list[dict[str, Any]] = []
    for job in source_records.recent_jobs(
        backend.store, source["id"], request.query_params.getlist("schemas")
    ):
        created = _parse_timestamp(job["created_at"])
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
        raise validation_error(
            f"'{raw}' is not an ISO 8601 timestamp: use e.g. 2024-05-01T00:00:00Z.", name
        ) from None


def check_cdc_prerequisites_for_source(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source["source_type"] not in CDC_SOURCE_TYPES:
        raise message_error(f"CDC is not supported for source type: {source['source_type']}")
    data = request_context.body(request)
    mode = _cdc_mode(data)
    config = source_config(backend.store, backend.vault, source["id"])
    return _prerequisites(config, [], mode, data)


def cdc_status(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source["source_type"] not in CDC_SOURCE_TYPES:
        raise message_error(f"CDC is not supported for source type: {source['source_type']}")
    config = source_config(backend.store, backend.vault, source["id"])
    if not config.get("cdc_enabled"):
        return request_context.json_response({"enabled": False})
    slot = config.get("cdc_slot_name") or default_slot_name(source["id"])
    publication = config.get("cdc_publication_name") or default_publication_name(source["id"])
    try:
        live = _postgres().cdc_status(config, slot, publication)
    except SourceError as exc:
        raise message_error(f"Could not connect to source to read CDC status: {exc}") from None
    return request_context.json_response(
        {
            "enabled": True,
            "management_mode": config.get("cdc_management_mode") or "posthog",
            "slot_name": slot,
            "publication_name": publication,
            "lag_warning_threshold_mb": config.get("cdc_lag_warning_threshold_mb"),
            "lag_critical_threshold_mb": config.get("cdc_lag_critical_threshold_mb"),
            **live,
        }
    )


# --- actions on the collection -------------------------------------------------------------------


def connections(request: Request) -> Response:
    backend = request_context.backend(request)
    rows = source_records.direct_connections(backend.store, request_context.team_id(request))
    return request_context.json_response(
        [
            {
                "id": row["id"],
                "prefix": row["prefix"],
                "engine": serializers.loads(row["connection_metadata"], {}).get("engine"),
            }
            for row in rows
        ]
    )


def wizard(request: Request) -> Response:
    """Every source's form definition; `?source_type=A,B` narrows the (large) answer."""
    forms_by_type = registry.wizard()
    wanted = [name.strip() for name in request.query_params.get("source_type", "").split(",") if name.strip()]
    if wanted:
        forms_by_type = {name: forms_by_type[name] for name in wanted if name in forms_by_type}
    return request_context.json_response(forms_by_type)


def database_schema(request: Request) -> Response:
    """Check a config against the live source and list its tables, without creating anything."""
    data = request_context.body(request)
    source_type = data.get("source_type")
    if source_type is None:
        raise message_error("Missing required parameter: source_type")
    if not registry.is_known(str(source_type)):
        raise message_error(f"Unknown source_type '{source_type}'")
    connector = connector_access.connector(source_type)
    config = connector_access.only_form_fields(source_type, data)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config)
    return request_context.json_response([serializers.discovered_table_json(table) for table in tables])


def source_prefix(request: Request) -> Response:
    """Would this prefix be accepted for a new source of this type? 200 when yes."""
    backend = request_context.backend(request)
    data = request_context.body(request)
    source_type = data.get("source_type")
    if not source_type:
        raise message_error("Missing required parameter: source_type")
    prefix = data.get("prefix")
    if data.get("access_method") == AccessMethod.direct:
        if source_type not in DIRECT_ENGINES:
            raise message_error(
                "Direct query mode is currently supported only for Postgres and MySQL sources."
            )
        _direct_name(prefix)
        return request_context.empty_response()
    if prefix is not None and not isinstance(prefix, str):
        raise validation_error("Not a valid string.", "prefix")
    check_prefix_format(prefix)
    conflict = source_records.prefix_conflict(
        backend.store, request_context.team_id(request), source_type, prefix
    )
    if conflict:
        raise message_error(conflict)
    return request_context.empty_response()


def check_cdc_prerequisites(request: Request) -> Response:
    data = request_context.body(request)
    if data.get("source_type") not in CDC_SOURCE_TYPES:
        raise message_error("CDC prerequisite checks are only supported for Postgres.")
    config = connector_access.only_form_fields("Postgres", data)
    connector_access.check_config("Postgres", config)
    mode = _cdc_mode(data)
    tables = data.get("tables") or []
    if not isinstance(tables, list) or not all(isinstance(table, str) for table in tables):
        raise message_error("'tables' must be a list of table names (schema.table or table).")
    return _prerequisites(config, tables, mode, data)


def _prerequisites(config: dict[str, Any], tables: list[str], mode: str, data: dict[str, Any]) -> Response:
    try:
        errors = _postgres().check_cdc_prerequisites(
            config, tables, mode, data.get("cdc_slot_name") or None, data.get("cdc_publication_name") or None
        )
    except SourceError as exc:
        raise message_error(str(exc)) from None
    return request_context.json_response({"valid": not errors, "errors": list(errors)})


def setup(request: Request) -> Response:
    """One call from credentials to a syncing source: validate, discover, default every table, create.

    `payload.credential_id` names a credential the user stored through the connect page; its values
    win over inline keys, and it is deleted once the source owns them.
    """
    backend = request_context.backend(request)
    team_id = request_context.team_id(request)
    data = request_context.body(request)
    source_type = _source_type(data)
    payload = dict(request_context.optional_dict(data, "payload") or {})
    prefix = request_context.optional_str(data, "prefix", max_length=100)
    description = request_context.optional_str(data, "description", max_length=400)

    credential_id = payload.pop("credential_id", None)
    if credential_id is not None:
        stored = credentials_api.take_stored_credential(
            backend.store, backend.vault, team_id, str(credential_id), source_type
        )
        payload = {**payload, **stored}

    connector = connector_access.connector(source_type)
    payload = _strip_strings(payload)
    config = connector_access.only_form_fields(source_type, payload)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config)
    if not tables:
        raise message_error("No tables found for this source. Check the credentials and permissions.")
    payload["schemas"] = default_schemas(tables)

    new = NewSource(source_type, payload, prefix, description, AccessMethod.warehouse, CreatedVia.mcp)
    source_id = create_source(backend, team_id, new, checked=(config, tables))
    if credential_id is not None:
        credentials_api.delete_stored_credential(backend.store, str(credential_id))

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
        result = webhooks_api.register(backend, source, connector, capable, keep_on_failure=False)
    except Exception as exc:  # never fails setup: the source exists and polls
        logger.warning("webhook registration for source %s failed: %s", source_id, type(exc).__name__)
        return {"success": False, "webhook_url": None, "error": str(exc), "pending_inputs": []}
    if not result["success"]:
        return result
    switched: list[tuple[str, bool]] = []
    with backend.store.transaction() as db:
        for schema in schema_records.of_source(backend.store, source_id):
            if schema["name"] in capable:
                schema_records.update(db, schema["id"], {"sync_type": "webhook", "should_sync": 1})
                switched.append((schema["id"], bool(schema["should_sync"])))
    for schema_id, was_enabled in switched:
        if was_enabled:
            backend.sync.schedule_changed(schema_id)
        else:
            backend.sync.request_sync(schema_id)
    return result
