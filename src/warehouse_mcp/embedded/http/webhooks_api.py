"""Webhook handlers (api-semantics §4: webhook_info, create_webhook, update_webhook_inputs, delete_webhook).

Generic over connectors that implement `WebhookConnector`. A source's webhook is kept in two
columns: `sources.webhook` (JSON `{external_id, url, inputs}` with non-secret inputs only) and
`sources.webhook_secret` (vault ciphertext of `{signing_secret, ...secret inputs}`), which the
receiver reads to check signatures. The signing secret is never answered.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import SourceError, WebhookConnector
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import message_error
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import schema_records, source_records

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend

logger = logging.getLogger(__name__)

Row = sqlite3.Row

NOT_SUPPORTED = "This source type does not support webhooks"


def webhook_url(backend: EmbeddedBackend, source: Row) -> str:
    """Where the source posts its events: the public URL when one is set, else the loopback server."""
    base = (backend.public_url or backend.connect_base_url()).rstrip("/")
    return f"{base}/webhooks/{source['source_type'].lower()}/{source['id']}/"


def webhook_record(source: Row) -> dict[str, Any] | None:
    return json.loads(source["webhook"]) if source["webhook"] else None


def webhook_fields(source_type: str) -> list[dict[str, Any]]:
    return list((registry.form(source_type) or {}).get("webhookFields") or [])


def register(
    backend: EmbeddedBackend,
    source: Row,
    connector: WebhookConnector,
    tables: list[str],
    *,
    keep_on_failure: bool,
) -> dict[str, Any]:
    """Register a webhook for `tables` at the source; answer `{success, webhook_url, error, pending_inputs}`.

    Callers pass every webhook-capable table, so a table switched to webhook sync later is covered.
    On success the registration replaces any earlier one (which is then deleted at the source, best
    effort). `keep_on_failure` records the webhook even when the source refused it, so the user can
    add the endpoint by hand and give its signing secret with update_webhook_inputs.
    """
    config = source_records.source_config(backend.store, backend.vault, source["id"])
    url = webhook_url(backend, source)
    registration = connector.register_webhook(config, url, tables)
    previous = webhook_record(source) or {}
    if registration.success or keep_on_failure:
        secrets = backend.vault.decrypt(source["webhook_secret"]) or {}
        if registration.signing_secret:
            secrets["signing_secret"] = registration.signing_secret
        record = {
            "external_id": registration.external_id if registration.success else previous.get("external_id"),
            "url": url,
            "inputs": previous.get("inputs") or {},
        }
        with backend.store.transaction() as db:
            source_records.update(
                db,
                source["id"],
                {"webhook": json.dumps(record), "webhook_secret": backend.vault.encrypt(secrets)},
            )
        stale = previous.get("external_id")
        if registration.success and stale and stale != registration.external_id:
            _delete_at_source(connector, config, stale)
    return {
        "success": registration.success,
        "webhook_url": registration.webhook_url or url,
        "error": registration.error,
        "pending_inputs": list(registration.pending_inputs),
    }


def delete_for_destroyed_source(backend: EmbeddedBackend, source: Row, config: dict[str, Any]) -> None:
    """Best-effort removal of a deleted source's webhook at the source."""
    record = webhook_record(source)
    if not record or not record.get("external_id"):
        return
    try:
        connector = connector_access.webhook_connector(source["source_type"])
    except Exception:
        return
    if connector is not None:
        _delete_at_source(connector, config, record["external_id"])


def _delete_at_source(connector: WebhookConnector, config: dict[str, Any], external_id: str) -> None:
    try:
        connector.delete_webhook(config, external_id)
    except SourceError as exc:
        logger.warning("could not delete webhook %s at the source: %s", external_id, exc)


def _webhook_schemas(backend: EmbeddedBackend, source_id: str) -> list[Row]:
    return [
        schema
        for schema in schema_records.of_source(backend.store, source_id)
        if schema["sync_type"] == "webhook" and schema["should_sync"]
    ]


def _require_webhook_connector(source: Row) -> WebhookConnector:
    connector = connector_access.webhook_connector(source["source_type"])
    if connector is None:
        raise message_error(NOT_SUPPORTED)
    return connector


# --- handlers ------------------------------------------------------------------------------------


def webhook_info(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = connector_access.webhook_connector(source["source_type"])
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
    schemas = _webhook_schemas(backend, source["id"])
    external_status: Any = None
    missing_events: list[str] = []
    status_of = getattr(connector, "webhook_status", None)
    if record.get("external_id") and callable(status_of):
        try:
            config = source_records.source_config(backend.store, backend.vault, source["id"])
            status = status_of(config, record["external_id"], [schema["name"] for schema in schemas])
            external_status = status.get("external_status")
            missing_events = list(status.get("missing_events") or [])
        except SourceError as exc:
            logger.info("webhook status of source %s unavailable: %s", source["id"], exc)
    return request_context.json_response(
        {
            "supports_webhooks": True,
            "exists": True,
            "webhook_url": record.get("url") or webhook_url(backend, source),
            "schema_mapping": {schema["name"]: schema["id"] for schema in schemas},
            "inputs": _inputs_view(backend, source, record),
            "external_status": external_status,
            "missing_events": missing_events,
        }
    )


def create_webhook(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = _require_webhook_connector(source)
    config = source_records.source_config(backend.store, backend.vault, source["id"])
    try:
        capable = [table.name for table in connector.discover(config) if table.supports_webhooks]
    except SourceError as exc:
        logger.info("create_webhook: discovery failed for source %s: %s", source["id"], exc)
        raise message_error("Failed to load source configuration or schemas") from None
    result = register(backend, source, connector, capable, keep_on_failure=True)
    return request_context.json_response(result)


def update_webhook_inputs(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    _require_webhook_connector(source)
    inputs = request_context.body(request).get("inputs", {})
    if not inputs or not isinstance(inputs, dict):
        raise message_error("No inputs provided")
    fields = {field["name"]: field for field in webhook_fields(source["source_type"])}
    invalid = sorted(set(inputs) - set(fields))
    if invalid:
        raise message_error(f"Invalid input keys: {', '.join(invalid)}")
    blanked = [
        name
        for name, field in fields.items()
        if field.get("required") and name in inputs and not inputs[name]
    ]
    if blanked:
        raise message_error(f"Missing required fields: {', '.join(blanked)}")
    record = webhook_record(source)
    if record is None:
        raise message_error("No webhook function found for this source. Create a webhook first.")
    secrets = backend.vault.decrypt(source["webhook_secret"]) or {}
    public = dict(record.get("inputs") or {})
    for name, value in inputs.items():
        if _is_secret(fields[name]):
            secrets[name] = value
        else:
            public[name] = value
    record["inputs"] = public
    with backend.store.transaction() as db:
        source_records.update(
            db,
            source["id"],
            {"webhook": json.dumps(record), "webhook_secret": backend.vault.encrypt(secrets)},
        )
    return request_context.json_response({"success": True})


def delete_webhook(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    connector = _require_webhook_connector(source)
    in_use = [schema["name"] for schema in _webhook_schemas(backend, source["id"])]
    if in_use:
        raise message_error(
            f"Cannot delete webhook while tables are using webhook sync: {', '.join(in_use)}. "
            "Switch them to full refresh, incremental, or disable syncing first."
        )
    record = webhook_record(source)
    external_deleted = False
    error = None
    if record and record.get("external_id"):
        config = source_records.source_config(backend.store, backend.vault, source["id"])
        try:
            external_deleted = connector.delete_webhook(config, record["external_id"])
        except SourceError as exc:
            # As PostHog: our side goes anyway (nothing is received any more); the answer says what is
            # left at the source for the user to remove by hand.
            error = f"Failed to delete the webhook at the source: {exc} Remove the endpoint in the source's dashboard."
            logger.warning("could not delete webhook %s at the source: %s", record["external_id"], exc)
    with backend.store.transaction() as db:
        source_records.update(db, source["id"], {"webhook": None, "webhook_secret": None})
    return request_context.json_response(
        {"success": True, "external_deleted": external_deleted, "error": error}
    )


def _is_secret(field: dict[str, Any]) -> bool:
    return bool(field.get("secret")) or field.get("type") == "password"


def _inputs_view(backend: EmbeddedBackend, source: Row, record: dict[str, Any]) -> dict[str, Any]:
    """Each webhook input: `{"value": v}` when public, `{"secret": true}` when a secret is set (never its value)."""
    secrets = backend.vault.decrypt(source["webhook_secret"]) or {}
    view: dict[str, Any] = {name: {"value": value} for name, value in (record.get("inputs") or {}).items()}
    for field in webhook_fields(source["source_type"]):
        if _is_secret(field) and secrets.get(field["name"]):
            view[field["name"]] = {"secret": True}
    return view
