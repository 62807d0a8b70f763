"""The rules of one schema (a source's table) beyond its settings (api-semantics §2, §4): delete it, delete
its data, re-discover it. Its settings are schema_updates.py."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.domain import connector_access, serializers
from warehouse_mcp.embedded.domain.errors import Conflict, Refused
from warehouse_mcp.embedded.domain.schema_updates import cdc_enabled
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.schema_records import SchemaRecord
from warehouse_mcp.embedded.store.source_records import SourceRecord
from warehouse_mcp.models import AccessMethod

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

logger = logging.getLogger(__name__)


def destroy(backend: Services, schema: SchemaRecord) -> None:
    """Soft-delete the schema; its running sync stops and its synced table is dropped."""
    backend.sync.cancel(schema.id)
    with backend.store.transaction() as db:
        schema_records.soft_delete(db, schema.id)
    try:
        backend.sync.delete_data(schema.id)
    except Exception:
        logger.exception("could not drop the synced table of deleted schema %s", schema.id)


def delete_data(backend: Services, source: SourceRecord, schema: SchemaRecord) -> None:
    """Drop the synced table; a direct source copied nothing, so its live table is hidden and the schema
    disabled, as PostHog does."""
    if source.access_method == AccessMethod.direct:
        with backend.store.transaction() as db:
            schema_records.update(db, schema.id, {"should_sync": 0, **schema_records.NO_TABLE})
        return
    from warehouse_mcp.embedded.sync.scheduler import WarehouseBusyError

    try:
        backend.sync.delete_data(schema.id)
    except WarehouseBusyError as exc:
        raise Conflict(str(exc)) from None


def incremental_fields(backend: Services, source: SourceRecord, schema: SchemaRecord) -> dict[str, Any]:
    """Re-discover this table at the source: its sync options, columns and primary key."""
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
    return {
        "incremental_fields": serializers.incremental_candidates(table),
        "incremental_available": table.supports_incremental,
        "append_available": table.supports_append,
        "cdc_available": table.cdc_available if cdc_enabled(source) else None,
        "xmin_available": serializers.xmin_available(source.source_type),
        "full_refresh_available": not table.webhook_only,
        "supports_webhooks": table.supports_webhooks,
        "webhook_only": table.webhook_only,
        "available_columns": serializers.discovered_columns(table),
        "detected_primary_keys": table.primary_keys,
    }
