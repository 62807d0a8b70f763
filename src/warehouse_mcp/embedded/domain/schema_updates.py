"""A schema PATCH (api-semantics §2 PATCH rules): check everything first, then write.

`plan` validates one schema's update against its row and source and returns the column changes
(it may talk to the live source, so it runs outside any write transaction); `apply` writes many
planned changes in one transaction and then tells the sync service. bulk_update_schemas plans
every schema before writing any, so it is all-or-nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo, WebhookConnector
from warehouse_mcp.embedded.domain import connector_access, serializers, webhooks
from warehouse_mcp.embedded.domain.errors import Invalid
from warehouse_mcp.embedded.domain.request_bodies import BulkSchemaUpdate, SchemaSettings
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.schema_records import SchemaRecord
from warehouse_mcp.embedded.store.source_records import SourceRecord
from warehouse_mcp.embedded.sync import runnable
from warehouse_mcp.models import (
    FREQUENCY_SECONDS,
    frequency_name,
)

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services


CURSOR_SYNC_TYPES = ("incremental", "append")
NON_CDC_FLOOR_FREQUENCY = "5min"
# Types whose schemas keep a cursor config (webhook keeps it for the backfill), and that config's fields.
CURSOR_CONFIG_SYNC_TYPES = ("incremental", "append", "webhook")
CURSOR_CONFIG_FIELDS = (
    "incremental_field",
    "incremental_field_type",
    "incremental_field_lookback_seconds",
    "primary_key_columns",
)
PK_CHANGE_AFTER_DATA = "Primary key cannot be changed after data has been synced. Delete the synced data first, then change the primary key."


@dataclass
class SchemaChange:
    schema_id: str
    columns: dict[str, Any] = field(default_factory=dict)
    reschedule: bool = False


def cdc_enabled(source: SourceRecord) -> bool:
    return bool(source.job_inputs.get("cdc_enabled"))


def plan(
    backend: Services, source: SourceRecord, schema: SchemaRecord, patch: SchemaSettings
) -> SchemaChange:
    """Check `patch` (its shape is already valid) against `schema` and its source; a refusal is `Invalid`."""
    should_sync = patch.should_sync
    sync_type = patch.sync_type
    incremental_field = patch.incremental_field
    primary_key = patch.primary_key_columns
    enabled_columns = patch.enabled_columns
    frequency = patch.sync_frequency

    name = schema.name
    change = SchemaChange(schema.id)
    columns = change.columns

    type_given = patch.given("sync_type")
    new_type = sync_type if type_given else schema.sync_type
    _check_bare_cursor_fields(patch, new_type, type_given)

    if patch.given("enabled_columns"):
        if enabled_columns is not None and not serializers.supports_column_selection(source.source_type):
            raise Invalid("Column selection is not supported for this source type.")
        _check_enabled_columns(schema, enabled_columns)
        columns["enabled_columns"] = json.dumps(enabled_columns) if enabled_columns is not None else None

    stored_pk = schema.primary_key_columns
    has_data = schema.table_id is not None
    if type_given:
        if sync_type == "xmin":
            _check_xmin(source, name, primary_key or stored_pk)
        if sync_type == "cdc" and not cdc_enabled(source):
            raise Invalid(
                "CDC must be enabled on the source before selecting it as a sync type. Create the source with "
                "cdc_enabled in its payload (Postgres only; check it first with check_cdc_prerequisites)."
            )
        _check_webhook_choice(backend, source, name, sync_type)
        columns["sync_type"] = sync_type

    if new_type == "cdc":
        if patch.cdc_table_mode is not None:
            columns["cdc_table_mode"] = patch.cdc_table_mode
        if primary_key:
            if stored_pk and primary_key != stored_pk and has_data:
                raise Invalid(PK_CHANGE_AFTER_DATA)
            columns["primary_key_columns"] = json.dumps(primary_key)
        elif type_given and not stored_pk:
            raise Invalid(
                f"CDC requires a primary key on table '{name}'. "
                "Provide primary_key_columns or refresh schema discovery to pick one up."
            )
    elif patch.given("primary_key_columns"):
        # Choosing a first primary key is allowed after data landed; replacing one is not.
        if new_type == "incremental" and stored_pk and primary_key != stored_pk and has_data:
            raise Invalid(PK_CHANGE_AFTER_DATA)
        columns["primary_key_columns"] = json.dumps(primary_key) if primary_key is not None else None

    if patch.given("incremental_field"):
        columns["incremental_field"] = incremental_field
    if patch.given("incremental_field_type"):
        columns["incremental_field_type"] = patch.incremental_field_type
    field_changed = patch.given("incremental_field") and incremental_field != schema.incremental_field
    if field_changed or (type_given and sync_type != schema.sync_type):
        columns["sync_cursor"] = None

    resulting_frequency = frequency or frequency_name(schema.sync_frequency_interval)
    if resulting_frequency == "1min" and new_type != "cdc":
        if frequency:
            raise Invalid(
                "A 1-minute sync frequency is only available for CDC schemas. "
                "The fastest frequency for other sync types is 5 minutes."
            )
        frequency = NON_CDC_FLOOR_FREQUENCY  # leaving CDC: PostHog clamps the cadence to the floor

    if frequency is not None and FREQUENCY_SECONDS[frequency] != schema.sync_frequency_interval:
        columns["sync_frequency_interval"] = FREQUENCY_SECONDS[frequency]
        change.reschedule = True

    if patch.given("sync_time_of_day") and patch.sync_time_of_day != schema.sync_time_of_day:
        columns["sync_time_of_day"] = patch.sync_time_of_day
        change.reschedule = True

    warehouse = source.access_method == "warehouse"
    if should_sync is True and warehouse and new_type is None:
        raise Invalid("Sync type must be set up first before enabling schema")
    resulting_pk = primary_key if patch.given("primary_key_columns") else stored_pk
    if should_sync is True and not schema.should_sync and new_type == "cdc" and not resulting_pk:
        raise Invalid(
            f"CDC requires a primary key on table '{name}'. Add a primary key on the source table and retry."
        )
    resulting_field = incremental_field if patch.given("incremental_field") else schema.incremental_field
    will_sync = should_sync if should_sync is not None else bool(schema.should_sync)
    if will_sync and new_type in CURSOR_SYNC_TYPES and not resulting_field:
        raise Invalid(
            f"Table '{name}' needs an incremental_field for {new_type} sync: pick one of the candidates "
            "incremental_fields lists for this schema.",
            "incremental_field",
        )
    if should_sync is not None:
        columns["should_sync"] = int(should_sync)
        change.reschedule = True
        if not warehouse and should_sync != bool(schema.should_sync):
            # A direct source's enabled table is exposed live; disabling hides it (PostHog's direct engines).
            columns.update(
                schema_records.live_table(schema.id, name, schema.available_columns)
                if should_sync
                else schema_records.NO_TABLE
            )

    if type_given and sync_type == "webhook" and sync_type != schema.sync_type:
        _ensure_webhook(backend, source, name)
    return change


def _check_bare_cursor_fields(patch: SchemaSettings, new_type: str | None, type_given: bool) -> None:
    """Cursor settings sent without `sync_type` to a schema whose type cannot use them would be a no-op
    that looks applied; PostHog refuses them."""
    if type_given or new_type in CURSOR_CONFIG_SYNC_TYPES:
        return
    unappliable = [name for name in CURSOR_CONFIG_FIELDS if getattr(patch, name) is not None]
    if unappliable:
        raise Invalid(
            f"{', '.join(unappliable)} cannot be applied to a schema with sync type {new_type or 'not set'} "
            "on its own. Include sync_type in the same request to change the sync type."
        )


def _check_xmin(source: SourceRecord, name: str, primary_key: list[str] | None) -> None:
    refusal = runnable.refusal(source.source_type, "xmin", name, primary_key)
    if refusal:
        raise Invalid(refusal)


def bulk_update(backend: Services, source: SourceRecord, body: BulkSchemaUpdate) -> list[str]:
    """bulk_update_schemas: plan every entry before writing any (all or nothing); the ids, in order."""
    ids = [str(entry.id) for entry in body.schemas]
    if len(set(ids)) != len(ids):
        raise Invalid("Schema updates must contain unique ids")
    rows = {schema.id: schema for schema in schema_records.of_source(backend.store, source.id)}
    if any(schema_id not in rows for schema_id in ids):
        raise Invalid("One or more schemas could not be found for this source")
    apply(backend, [plan(backend, source, rows[str(entry.id)], entry) for entry in body.schemas])
    return ids


def apply(backend: Services, changes: list[SchemaChange]) -> None:
    with backend.store.transaction() as db:
        for change in changes:
            schema_records.update(db, change.schema_id, change.columns)
    for change in changes:
        if change.reschedule:
            backend.sync.schedule_changed(change.schema_id)


def _check_enabled_columns(schema: SchemaRecord, enabled_columns: list[str] | None) -> None:
    if enabled_columns is None:
        return
    known = {column["name"] for column in schema.available_columns}
    unknown = sorted(column for column in enabled_columns if column not in known)
    if known and unknown:
        raise Invalid(
            f"Unknown columns in enabled_columns: {unknown}. "
            "Run refresh_schemas on the source to pick up new columns."
        )


def _source_table(connector: WebhookConnector, config: dict[str, Any], name: str) -> TableInfo | None:
    try:
        return next((table for table in connector.discover(config) if table.name == name), None)
    except SourceError:
        return None


def _check_webhook_choice(backend: Services, source: SourceRecord, name: str, sync_type: str | None) -> None:
    """Webhook-only tables take only `webhook`; `webhook` needs a source (and table) that sends them."""
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        if sync_type == "webhook":
            raise Invalid(
                f"{name} cannot be synced via webhooks: {source.source_type} sources do not send webhooks. "
                "Pick full_refresh, incremental or append."
            )
        return
    config = source_records.source_config(backend.store, backend.vault, source.id)
    table = _source_table(connector, config, name)
    if table is None:
        return
    if sync_type != "webhook" and table.webhook_only:
        raise Invalid(f"{name} can only be synced via webhooks — pick the Webhook sync method.")
    if sync_type == "webhook" and not table.supports_webhooks:
        raise Invalid(
            f"{name} cannot be synced via webhooks: the source sends no events for it. "
            "Pick full_refresh, incremental or append."
        )


def _ensure_webhook(backend: Services, source: SourceRecord, name: str) -> None:
    """Switching a table to webhook sync registers the source's webhook when it has none yet.

    The webhook covers every webhook-capable table, so later switches need no new registration.
    """
    if webhooks.webhook_record(source) is not None:
        return
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        return
    config = source_records.source_config(backend.store, backend.vault, source.id)
    try:
        tables = [table.name for table in connector.discover(config) if table.supports_webhooks]
    except SourceError:
        tables = [name]
    result = webhooks.register(backend, source, connector, tables or [name], keep_on_failure=False)
    if not result["success"]:
        raise Invalid(
            f"Failed to register webhook on your source: {result['error'] or 'Unknown error'}. "
            "You can set up the webhook manually with create_webhook."
        )
