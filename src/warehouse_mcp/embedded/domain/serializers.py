"""Records → the JSON PostHog answers (api-semantics §1-§3), field for field and in PostHog's order.

Pure functions: callers fetch the records, these only shape them. Secrets never reach this module's
output: a source's `job_inputs` go through `forms.public_job_inputs`, which keeps only fields the
source's form declares non-sensitive.
"""

from __future__ import annotations

from typing import Any

from warehouse_mcp.embedded.connectors import form_fields, forms, registry
from warehouse_mcp.embedded.connectors.base import TableInfo
from warehouse_mcp.embedded.store.schema_records import SchemaRecord
from warehouse_mcp.embedded.store.source_records import JobRecord, SourceRecord
from warehouse_mcp.embedded.sync.runnable import XMIN_SOURCE_TYPES
from warehouse_mcp.models import SchemaStatus, frequency_name

# Stored schema statuses → what the API shows (PostHog keeps enum names for the billing states).
_STATUS_LABELS = {
    "BillingLimitReached": SchemaStatus.BillingLimitReached.value,
    "BillingLimitTooLow": SchemaStatus.BillingLimitTooLow.value,
}
_JOB_STATUS_LABELS = {"BillingLimitReached": "Billing limits", "BillingLimitTooLow": "Billing limit too low"}


def schema_status(stored: str | None) -> str | None:
    return _STATUS_LABELS.get(stored or "", stored)


def table_json(schema: SchemaRecord, *, include_columns: bool = True) -> dict[str, Any] | None:
    """The synced table; the source list leaves its columns out, as PostHog's does."""
    if schema.table_id is None:
        return None
    answer: dict[str, Any] = {"id": schema.table_id, "name": schema.table_name}
    if include_columns:
        answer["columns"] = [
            {"key": column["name"], "name": column["name"], "type": column["type"], "schema_valid": True}
            for column in schema.table_columns or []
        ]
    answer["row_count"] = schema.table_row_count
    return answer


def schema_source_json(source: SourceRecord) -> dict[str, Any]:
    """The parent-source summary only the single-schema retrieve embeds."""
    return {
        "id": source.id,
        "source_type": source.source_type,
        "supports_column_selection": supports_column_selection(source.source_type),
        "access_method": source.access_method,
        "user_access_level": "editor",
    }


def schema_json(
    schema: SchemaRecord, source: SourceRecord | None = None, *, include_columns: bool = True
) -> dict[str, Any]:
    sync_type = schema.sync_type
    return {
        "id": schema.id,
        "name": schema.name,
        "label": schema.label,
        "table": table_json(schema, include_columns=include_columns),
        "should_sync": bool(schema.should_sync),
        "last_synced_at": schema.last_synced_at,
        "latest_error": schema.latest_error,
        "incremental": sync_type == "incremental",
        "status": schema_status(schema.status),
        "sync_type": sync_type,
        "incremental_field": schema.incremental_field,
        "incremental_field_type": schema.incremental_field_type,
        "sync_frequency": frequency_name(schema.sync_frequency_interval),
        "sync_time_of_day": schema.sync_time_of_day,
        "description": schema.description,
        "primary_key_columns": schema.primary_key_columns,
        "cdc_table_mode": schema.cdc_table_mode,
        "enabled_columns": schema.enabled_columns,
        "available_columns": schema.available_columns,
        "source": schema_source_json(source) if source is not None else None,
    }


def source_status(stored: str, schemas: list[SchemaRecord]) -> str:
    """The status PostHog computes from the schemas that matter (api-semantics §1); first match wins."""
    active = [s for s in schemas if s.should_sync or s.latest_error is not None]
    syncing = [schema_status(s.status) for s in active if s.should_sync]
    statuses = [schema_status(s.status) for s in active]
    if SchemaStatus.Failed in syncing:
        return SchemaStatus.Failed.value
    if SchemaStatus.BillingLimitReached in syncing:
        return SchemaStatus.BillingLimitReached.value
    if SchemaStatus.BillingLimitTooLow in syncing:
        return SchemaStatus.BillingLimitTooLow.value
    for status in (SchemaStatus.Paused, SchemaStatus.Running, SchemaStatus.Completed):
        if status in statuses:
            return status.value
    return stored


def source_json(
    source: SourceRecord,
    schemas: list[SchemaRecord],
    last_run_at: str | None,
    *,
    include_columns: bool = True,
) -> dict[str, Any]:
    """`schemas`: the source's non-deleted schemas, ordered by name. Fields in PostHog's order."""
    source_type = source.source_type
    metadata = source.connection_metadata
    latest_error = next((s.latest_error for s in schemas if s.latest_error is not None), None)
    return {
        "id": source.id,
        "created_at": source.created_at,
        "created_by": source.created_by,
        "created_via": source.created_via,
        "status": source_status(source.status, schemas),
        "source_type": source_type,
        "latest_error": latest_error,
        "prefix": source.prefix,
        "description": source.description,
        "access_method": source.access_method,
        "direct_query_enabled": bool(source.direct_query_enabled),
        "engine": metadata.get("engine"),
        "last_run_at": last_run_at,
        "schemas": [schema_json(schema, include_columns=include_columns) for schema in schemas],
        "job_inputs": public_job_inputs(source_type, source.job_inputs),
        "revenue_analytics_config": {
            "enabled": bool(source.revenue_enabled),
            "include_invoiceless_charges": bool(source.revenue_include_invoiceless),
        },
        "user_access_level": "editor",
        "supports_webhooks": supports_webhooks(source_type),
        "supports_column_selection": supports_column_selection(source_type),
    }


def job_json(job: JobRecord) -> dict[str, Any]:
    """`job`: a jobs row joined with its schema's columns as `schema_*` (see source_records.recent_jobs)."""
    return {
        "id": job.id,
        "created_at": job.created_at,
        "created_by": job.created_by,
        "finished_at": job.finished_at,
        "status": _JOB_STATUS_LABELS.get(job.status, job.status),
        "schema": {
            "id": job.schema_id,
            "name": job.schema_name,
            "label": job.schema_label,
            "should_sync": bool(job.schema_should_sync),
            "last_synced_at": job.schema_last_synced_at,
            "sync_type": job.schema_sync_type,
        },
        "rows_synced": job.rows_synced,
        "latest_error": job.latest_error,
        "workflow_run_id": job.workflow_run_id,
        "cdc_write_mode": None,
    }


def incremental_candidates(table: TableInfo) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = []
    for candidate in table.incremental_fields:
        entry: dict[str, Any] = {
            "label": candidate.label or candidate.field,
            "type": candidate.display_type or candidate.field_type,
            "field": candidate.field,
            "field_type": candidate.field_type,
            "nullable": candidate.nullable,
        }
        if candidate.is_indexed is not None:
            entry["is_indexed"] = candidate.is_indexed
        answer.append(entry)
    return answer


def discovered_columns(table: TableInfo) -> list[dict[str, Any]]:
    """Columns as discovery answers them (`database_schema`, `incremental_fields`)."""
    return [
        {"field": column.name, "label": column.name, "type": column.data_type, "nullable": column.is_nullable}
        for column in table.columns
    ]


def xmin_available(source_type: str) -> bool | None:
    """PostHog offers xmin on Postgres only (null elsewhere)."""
    return True if source_type in XMIN_SOURCE_TYPES else None


def discovered_table_json(
    source_type: str, table: TableInfo, permission_error: str | None = None
) -> dict[str, Any]:
    """One entry of `database_schema`'s answer, keys in PostHog's order."""
    return {
        "table": table.name,
        "label": None,
        "should_sync": False,
        "incremental_fields": incremental_candidates(table),
        "incremental_available": table.supports_incremental,
        "append_available": table.supports_append,
        "cdc_available": table.cdc_available,
        "xmin_available": xmin_available(source_type),
        "incremental_field": table.incremental_fields[0].field if table.incremental_fields else None,
        "sync_type": None,
        "rows": table.row_estimate,
        "supports_webhooks": table.supports_webhooks,
        "webhook_only": table.webhook_only,
        "description": table.description,
        "should_sync_default": not table.webhook_only,
        "available_columns": discovered_columns(table),
        "detected_primary_keys": table.primary_keys,
        "permission_error": permission_error,
        "rls_warning": None,
    }


def public_job_inputs(source_type: str, job_inputs: dict[str, Any]) -> dict[str, Any]:
    if not registry.is_known(source_type):
        return {}
    return forms.public_job_inputs(source_type, job_inputs)


def supports_webhooks(source_type: str) -> bool:
    """A source type takes webhooks when its form declares webhook fields (Stripe's signing secret)."""
    return bool(form_fields.webhook_fields(source_type))


def supports_column_selection(source_type: str) -> bool:
    return bool((registry.form(source_type) or {}).get("supportsColumnSelection"))
