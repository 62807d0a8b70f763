"""CDC handlers (api-semantics §4): prerequisite checks, with a config or a source's stored one, and live status.

Only Postgres has CDC; the checks and the status read are the Postgres connector's, imported on use.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import SourceError, TableInfo
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.source_creation import (
    CDC_SOURCE_TYPES,
    cdc_mode,
    default_publication_name,
    default_slot_name,
)
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import source_records


def check_cdc_prerequisites_for_source(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source.source_type not in CDC_SOURCE_TYPES:
        raise Refused(f"CDC is not supported for source type: {source.source_type}")
    data = request_context.body(request)
    mode = cdc_mode(data)
    config = source_records.source_config(backend.store, backend.vault, source.id)
    # PostHog names the stored source, not the engine, when it cannot reach it.
    return _prerequisites(config, [], mode, data, "Could not connect to source to check prerequisites: ")


def cdc_status(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    if source.source_type not in CDC_SOURCE_TYPES:
        raise Refused(f"CDC is not supported for source type: {source.source_type}")
    config = source_records.source_config(backend.store, backend.vault, source.id)
    if not config.get("cdc_enabled"):
        return request_context.json_response({"enabled": False})
    slot = config.get("cdc_slot_name") or default_slot_name(source.id)
    publication = config.get("cdc_publication_name") or default_publication_name(source.id)
    try:
        from warehouse_mcp.embedded.connectors import postgres  # on use: the driver is heavy

        live = postgres.cdc_status(config, slot, publication)
    except SourceError as exc:
        raise Refused(f"Could not connect to source to read CDC status: {exc}") from None
    warning, critical = (
        config.get("cdc_lag_warning_threshold_mb"),
        config.get("cdc_lag_critical_threshold_mb"),
    )
    return request_context.json_response(
        {
            "enabled": True,
            "management_mode": config.get("cdc_management_mode") or "posthog",
            "slot_name": slot,
            "publication_name": publication,
            "lag_warning_threshold_mb": warning,
            "lag_critical_threshold_mb": critical,
            **live,
            "lag_status": lag_status(live["lag_bytes"], warning, critical),
        }
    )


def lag_status(lag_bytes: int | None, warning_mb: Any, critical_mb: Any) -> str | None:
    """ "ok", "warning" or "critical": the slot's lag against the source's thresholds (None without a slot)."""
    if lag_bytes is None:
        return None
    megabytes = lag_bytes / (1024 * 1024)
    if isinstance(critical_mb, int | float) and megabytes >= critical_mb:
        return "critical"
    if isinstance(warning_mb, int | float) and megabytes >= warning_mb:
        return "warning"
    return "ok"


def check_cdc_prerequisites(request: Request) -> Response:
    data = request_context.body(request)
    if data.get("source_type") not in CDC_SOURCE_TYPES:
        raise Refused(f"CDC prerequisite checks are only supported for {registry.names(CDC_SOURCE_TYPES)}.")
    config = connector_access.only_form_fields(data["source_type"], data)
    connector_access.check_config(data["source_type"], config)
    mode = cdc_mode(data)
    tables = data.get("tables") or []
    if not isinstance(tables, list) or not all(isinstance(table, str) for table in tables):
        raise Refused("'tables' must be a list of table names (schema.table or table).")
    return _prerequisites(config, tables, mode, data)


CONNECT_FAILED = "Could not connect to Postgres to check prerequisites: "


def refuse_unready_cdc(source_type: str, config: dict[str, Any], tables: list[TableInfo]) -> None:
    """Setup asked for CDC: the database must pass the prerequisite checks, or setup stops with every
    failure and the fix (the same checks as check_cdc_prerequisites)."""
    if source_type not in CDC_SOURCE_TYPES:
        raise Refused(
            f"CDC is only available for {registry.names(CDC_SOURCE_TYPES)} sources, not {source_type}."
        )
    names = [table.name for table in tables if table.primary_keys]
    if not names:
        raise Refused("CDC needs tables with a primary key; none of this source's tables has one.")
    try:
        from warehouse_mcp.embedded.connectors import postgres  # on use: the driver is heavy

        errors = postgres.check_cdc_prerequisites(
            config,
            names,
            cdc_mode(config),
            config.get("cdc_slot_name") or None,
            config.get("cdc_publication_name") or None,
        )
    except SourceError as exc:
        raise Refused(str(exc)) from None
    if errors:
        raise Refused(
            "CDC was requested but the database is not ready for it: "
            + " ".join(errors)
            + " Fix these and retry, or set up the source without cdc_enabled."
        )


def _prerequisites(
    config: dict[str, Any],
    tables: list[str],
    mode: str,
    data: dict[str, Any],
    connect_failed: str = CONNECT_FAILED,
) -> Response:
    try:
        from warehouse_mcp.embedded.connectors import postgres  # on use: the driver is heavy

        errors = postgres.check_cdc_prerequisites(
            config, tables, mode, data.get("cdc_slot_name") or None, data.get("cdc_publication_name") or None
        )
    except SourceError as exc:
        text = str(exc)
        if text.startswith(CONNECT_FAILED):
            text = connect_failed + text.removeprefix(CONNECT_FAILED)
        raise Refused(text) from None
    return request_context.json_response({"valid": not errors, "errors": list(errors)})
