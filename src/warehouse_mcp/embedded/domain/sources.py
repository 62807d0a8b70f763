"""The rules of a source's life after creation (api-semantics §1, §4): change, delete, reload, re-discover.

Creating one is source_creation.py, one call from credentials to a source setup.py.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo
from warehouse_mcp.embedded.domain import cdc, connector_access, webhooks
from warehouse_mcp.embedded.domain.errors import Invalid, Refused
from warehouse_mcp.embedded.domain.job_inputs_update import merge_job_inputs
from warehouse_mcp.embedded.domain.request_bodies import RevenueConfig, SourcePatch
from warehouse_mcp.embedded.domain.source_creation import DIRECT_ENGINES
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.source_records import JobRecord, SourceRecord
from warehouse_mcp.models import DEFAULT_FREQUENCY, FREQUENCY_SECONDS, AccessMethod

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

logger = logging.getLogger(__name__)

JOBS_LIMIT = 50
# Changing only these job inputs touches nothing about the connection: no live check.
CDC_UPKEEP_SETTINGS = {"cdc_auto_drop_slot", "cdc_lag_warning_threshold_mb", "cdc_lag_critical_threshold_mb"}


def update(backend: Services, source: SourceRecord, patch: SourcePatch) -> None:
    """PATCH: description, direct_query_enabled, a direct source's name, and job inputs merged over the
    stored ones (checked against the live source; CDC turned off drops the slot first)."""
    if patch.access_method is not None and patch.access_method != source.access_method:
        raise Invalid("Access method cannot be changed. Create a new source instead.")
    direct = source.access_method == AccessMethod.direct
    changes: dict[str, Any] = {}
    if patch.given("description"):
        changes["description"] = patch.description
    if patch.direct_query_enabled is not None and not direct:
        changes["direct_query_enabled"] = int(
            patch.direct_query_enabled
        )  # PostHog ignores it on direct sources
    if direct:
        # For direct sources the prefix is the source's name; warehouse prefixes never change.
        prefix = patch.prefix if patch.given("prefix") else source.prefix
        if not (prefix and prefix.strip()):
            raise Invalid("Name is required for direct query sources")
        changes["prefix"] = prefix.strip()
    refresh = False
    if patch.given("job_inputs"):
        incoming = patch.job_inputs or {}
        changes |= _new_job_inputs(backend, source, incoming)
        # A direct source queries the schema it names: another schema means another table list.
        existing = source.job_inputs
        refresh = (
            direct
            and "schema" in incoming
            and str(incoming.get("schema") or "") != str(existing.get("schema") or "")
        )
    with backend.store.transaction() as db:
        source_records.update(db, source.id, changes)
    if refresh:
        refresh_tables(backend, source_records.get(backend.store, source.team_id, source.id))


def _new_job_inputs(backend: Services, source: SourceRecord, incoming: dict[str, Any]) -> dict[str, Any]:
    source_type = source.source_type
    existing = source_records.source_config(backend.store, backend.vault, source.id)
    config = connector_access.only_form_fields(source_type, merge_job_inputs(source_type, existing, incoming))
    try:
        connector = connector_access.connector(source_type)
        connector_access.check_config(source_type, config)
        if not set(incoming) <= CDC_UPKEEP_SETTINGS:
            # Only CDC upkeep settings changed: no live check, so a source whose database is gone can
            # still give up its slot drop and be deleted.
            connector_access.check_credentials(connector, config)
    except connector_access.SourceRefused as refused:  # PATCH answers DRF's shape
        raise Invalid(str(refused)) from None
    if forms.truthy(existing.get("cdc_enabled")) and not forms.truthy(config.get("cdc_enabled")):
        _drop_cdc_slot(backend, source.id, existing)
    job_inputs, secret = source_records.encode_config(backend.vault, source_type, config)
    return {"job_inputs": job_inputs, "job_inputs_secret": secret}


def destroy(backend: Services, source: SourceRecord) -> None:
    """Soft-delete the source and its schemas; stop its syncs, drop its tables, remove its webhook."""
    config = source_records.source_config(backend.store, backend.vault, source.id)
    _drop_cdc_slot(backend, source.id, config)
    with backend.store.transaction() as db:
        source_records.soft_delete(db, source.id)
    webhooks.delete_for_destroyed_source(backend, source, config)
    try:
        backend.sync.drop_source(source.id)
    except Exception:
        logger.exception("could not drop the synced tables of deleted source %s", source.id)


def _drop_cdc_slot(backend: Services, source_id: str, config: dict[str, Any]) -> None:
    """CDC off or source deleted: the slot must go first (a slot left behind fills the source's disk)."""
    try:
        cdc.drop_if_managed(source_id, config)
    except SourceError as exc:
        raise Refused(str(exc)) from None
    backend.sync.forget_cdc_snapshots(source_id)


def reload(backend: Services, source: SourceRecord) -> dict[str, int] | None:
    """Sync every enabled table now; a direct source has nothing to copy and re-discovers instead."""
    if source.access_method == AccessMethod.direct:
        return refresh_tables(backend, source)
    for schema in schema_records.of_source(backend.store, source.id):
        if schema.should_sync:
            backend.sync.request_sync(schema.id)
    with backend.store.transaction() as db:
        source_records.update(db, source.id, {"status": "Running"})
    return None


def refresh_tables(backend: Services, source: SourceRecord) -> dict[str, int]:
    """Re-discover the source's tables, as PostHog's sync_old_schemas_with_new_schemas does: a new table
    is added disabled, or its soft-deleted schema comes back with its settings; a vanished table's
    schema is soft-deleted when nobody enabled it and it holds no data, else it is disabled and kept."""
    connector = connector_access.connector(source.source_type)
    config = source_records.source_config(backend.store, backend.vault, source.id)
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
                hidden = schema_records.NO_TABLE if direct else {}
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


def set_revenue_config(backend: Services, source: SourceRecord, config: RevenueConfig) -> None:
    changes: dict[str, Any] = {}
    if config.enabled is not None:
        changes["revenue_enabled"] = int(config.enabled)
    if config.include_invoiceless_charges is not None:
        changes["revenue_include_invoiceless"] = int(config.include_invoiceless_charges)
    with backend.store.transaction() as db:
        source_records.update(db, source.id, changes)


def parse_timestamp(value: str, name: str) -> datetime:
    """An ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            f"'{value}' is not an ISO 8601 timestamp: use e.g. 2024-05-01T00:00:00Z.", name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def recent_jobs(
    backend: Services,
    source: SourceRecord,
    schema_names: list[str],
    after: datetime | None,
    before: datetime | None,
) -> list[JobRecord]:
    """The source's sync runs, newest first, at most 50; `after`/`before` are exclusive bounds."""
    found: list[JobRecord] = []
    for job in source_records.recent_jobs(backend.store, source.id, schema_names):
        created = parse_timestamp(job.created_at, "created_at")
        if (after and created <= after) or (before and created >= before):
            continue
        found.append(job)
        if len(found) == JOBS_LIMIT:
            break
    return found


def direct_connections(backend: Services, team_id: int) -> list[dict[str, Any]]:
    """Sources queried in place: direct ones and synced ones with `direct_query_enabled` (PostHog's filter)."""
    rows = source_records.direct_connections(backend.store, team_id, tuple(DIRECT_ENGINES))
    return [
        {
            "id": row.id,
            "prefix": row.prefix,
            "engine": row.connection_metadata.get("engine") or DIRECT_ENGINES[row.source_type],
        }
        for row in rows
    ]


def wizard_forms(wanted: list[str]) -> dict[str, Any]:
    """Every source type's form definition, or only the `wanted` ones (an unknown name is refused)."""
    forms_by_type = registry.wizard()
    unknown = sorted(name for name in wanted if name not in forms_by_type)
    if unknown:
        raise Refused(
            f"Unknown source_type(s): {', '.join(unknown)}. Omit source_type to list every available type."
        )
    return {name: forms_by_type[name] for name in wanted} if wanted else forms_by_type
