"""Webhooks: registering, recording and deleting a source's webhook (the handlers are http.webhooks_api).

Generic over connectors that implement `WebhookConnector`. A source's webhook is kept in two
columns: `sources.webhook` (JSON `{external_id, url, inputs}` with non-secret inputs only) and
`sources.webhook_secret` (vault ciphertext of `{signing_secret, ...secret inputs}`), which the
receiver reads to check signatures. The signing secret is never answered.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms, registry
from warehouse_mcp.embedded.connectors.base import SourceError, WebhookConnector
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.embedded.store.schema_records import SchemaRecord
from warehouse_mcp.embedded.store.source_records import SourceRecord

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

logger = logging.getLogger(__name__)


NOT_SUPPORTED = "This source type does not support webhooks"


def webhook_url(backend: Services, source: SourceRecord) -> str:
    """Where the source posts its events: the public URL when one is set, else the loopback server."""
    base = (backend.public_url or backend.connect_base_url()).rstrip("/")
    return f"{base}/webhooks/{source.source_type.lower()}/{source.id}/"


def webhook_record(source: SourceRecord) -> dict[str, Any] | None:
    return source.webhook


def webhook_fields(source_type: str) -> list[dict[str, Any]]:
    return list((registry.form(source_type) or {}).get("webhookFields") or [])


def register(
    backend: Services,
    source: SourceRecord,
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
    config = source_records.source_config(backend.store, backend.vault, source.id)
    url = webhook_url(backend, source)
    registration = connector.register_webhook(config, url, tables)
    previous = webhook_record(source) or {}
    if registration.success or keep_on_failure:
        secrets = backend.vault.decrypt(source.webhook_secret) or {}
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
                source.id,
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


def delete_for_destroyed_source(backend: Services, source: SourceRecord, config: dict[str, Any]) -> None:
    """Best-effort removal of a deleted source's webhook at the source."""
    record = webhook_record(source)
    if not record or not record.get("external_id"):
        return
    try:
        connector = connector_access.webhook_connector(source.source_type)
    except Exception:
        return
    if connector is not None:
        _delete_at_source(connector, config, record["external_id"])


def _delete_at_source(connector: WebhookConnector, config: dict[str, Any], external_id: str) -> None:
    try:
        connector.delete_webhook(config, external_id)
    except SourceError as exc:
        logger.warning("could not delete webhook %s at the source: %s", external_id, exc)


def webhook_schemas(backend: Services, source_id: str) -> list[SchemaRecord]:
    return [
        schema
        for schema in schema_records.of_source(backend.store, source_id)
        if schema.sync_type == "webhook" and schema.should_sync
    ]


def require_webhook_connector(source: SourceRecord) -> WebhookConnector:
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        raise Refused(NOT_SUPPORTED)
    return connector


def is_secret_input(field: dict[str, Any]) -> bool:
    return forms.is_secret_field(field)


def inputs_view(backend: Services, source: SourceRecord, record: dict[str, Any]) -> dict[str, Any]:
    """Each webhook input: `{"value": v}` when public, `{"secret": true}` when a secret is set (never its value)."""
    secrets = backend.vault.decrypt(source.webhook_secret) or {}
    view: dict[str, Any] = {name: {"value": value} for name, value in (record.get("inputs") or {}).items()}
    for field in webhook_fields(source.source_type):
        if is_secret_input(field) and secrets.get(field["name"]):
            view[field["name"]] = {"secret": True}
    return view
