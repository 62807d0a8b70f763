"""Webhook handlers (docs/api-semantics.md: webhook_info, create_webhook, update_webhook_inputs, delete_webhook).

The rules (registering, recording and deleting a source's webhook) are in domain.webhooks.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.connectors.base import SourceError
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.webhooks import (
    inputs_view,
    is_secret_input,
    register,
    require_webhook_connector,
    webhook_fields,
    webhook_record,
    webhook_schemas,
    webhook_url,
)
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import source_records

logger = logging.getLogger(__name__)

# --- handlers ------------------------------------------------------------------------------------


def webhook_info(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        return request_context.json_response(
            {
                "supports_webhooks": False,
                "exists": False,
                "webhook_url": None,
                "schema_mapping": {},
                "external_status": None,
            }
        )
    record = webhook_record(source)
    if record is None:
        return request_context.json_response(
            {
                "supports_webhooks": True,
                "exists": False,
                "webhook_url": None,
                "schema_mapping": {},
                "inputs": {},
                "external_status": None,
                "missing_events": [],
            }
        )
    schemas = webhook_schemas(backend, source.id)
    external_status: Any = None
    missing_events: list[str] = []
    status_of = getattr(connector, "webhook_status", None)
    if record.get("external_id") and callable(status_of):
        try:
            config = source_records.source_config(backend.store, backend.vault, source.id)
            status = status_of(config, record["external_id"], [schema.name for schema in schemas])
            external_status = status.get("external_status")
            missing_events = list(status.get("missing_events") or [])
        except SourceError as exc:
            logger.info("webhook status of source %s unavailable: %s", source.id, exc)
    return request_context.json_response(
        {
            "supports_webhooks": True,
            "exists": True,
            "webhook_url": record.get("url") or webhook_url(backend, source),
            "schema_mapping": {schema.name: schema.id for schema in schemas},
            "inputs": inputs_view(backend, source, record),
            "external_status": external_status,
            "missing_events": missing_events,
        }
    )


def create_webhook(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = require_webhook_connector(source)
    config = source_records.source_config(backend.store, backend.vault, source.id)
    try:
        capable = [table.name for table in connector.discover(config) if table.supports_webhooks]
    except SourceError as exc:
        logger.info("create_webhook: discovery failed for source %s: %s", source.id, exc)
        raise Refused("Failed to load source configuration or schemas") from None
    result = register(backend, source, connector, capable, keep_on_failure=True)
    return request_context.json_response(result)


def update_webhook_inputs(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    require_webhook_connector(source)
    inputs = request_context.body(request).get("inputs", {})
    if not inputs or not isinstance(inputs, dict):
        raise Refused("No inputs provided")
    fields = {field["name"]: field for field in webhook_fields(source.source_type)}
    invalid = sorted(set(inputs) - set(fields))
    if invalid:
        raise Refused(f"Invalid input keys: {', '.join(invalid)}")
    blanked = [
        name
        for name, field in fields.items()
        if field.get("required") and name in inputs and not inputs[name]
    ]
    if blanked:
        raise Refused(f"Missing required fields: {', '.join(blanked)}")
    record = webhook_record(source)
    if record is None:
        raise Refused("No webhook function found for this source. Create a webhook first.")
    secrets = backend.vault.decrypt(source.webhook_secret) or {}
    public = dict(record.get("inputs") or {})
    for name, value in inputs.items():
        if is_secret_input(fields[name]):
            secrets[name] = value
        else:
            public[name] = value
    record["inputs"] = public
    with backend.store.transaction() as db:
        source_records.update(
            db,
            source.id,
            {"webhook": json.dumps(record), "webhook_secret": backend.vault.encrypt(secrets)},
        )
    return request_context.json_response({"success": True})


def delete_webhook(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = require_webhook_connector(source)
    in_use = [schema.name for schema in webhook_schemas(backend, source.id)]
    if in_use:
        raise Refused(
            f"Cannot delete webhook while tables are using webhook sync: {', '.join(in_use)}. "
            "Switch them to full refresh, incremental, or disable syncing first."
        )
    record = webhook_record(source)
    external_deleted = False
    error = None
    if record and record.get("external_id"):
        config = source_records.source_config(backend.store, backend.vault, source.id)
        try:
            external_deleted = connector.delete_webhook(config, record["external_id"])
        except SourceError as exc:
            # As PostHog: our side goes anyway (nothing is received any more); the answer says what is
            # left at the source for the user to remove by hand.
            error = f"Failed to delete the webhook at the source: {exc} Remove the endpoint in the source's dashboard."
            logger.warning("could not delete webhook %s at the source: %s", record["external_id"], exc)
    with backend.store.transaction() as db:
        source_records.update(db, source.id, {"webhook": None, "webhook_secret": None})
    return request_context.json_response(
        {"success": True, "external_deleted": external_deleted, "error": error}
    )
