"""Webhooks: registering, recording and deleting a source's webhook, and its four operations (webhook_info,
create_webhook, update_webhook_inputs, delete_webhook; the handlers are http.webhooks_api).

Generic over connectors that implement `WebhookConnector`. A source's webhook is kept in two
columns: `sources.webhook` (JSON `{external_id, url, inputs}` with non-secret inputs only) and
`sources.webhook_secret` (vault ciphertext of `{signing_secret, ...secret inputs}`), which the
receiver reads to check signatures. The signing secret is never answered.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import form_fields
from warehouse_mcp.embedded.connectors.base import SourceError, WebhookConnector
from warehouse_mcp.embedded.connectors.form_fields import FormField
from warehouse_mcp.embedded.domain import connector_access
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.request_bodies import WebhookInputs
from warehouse_mcp.embedded.store import Store, schema_records, source_records
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


@dataclass(frozen=True)
class WebhookSource:
    """A source whose type takes webhooks, with its connector (from webhook_source)."""

    source: SourceRecord
    connector: WebhookConnector


def webhook_source(store: Store, team_id: int, source_id: str) -> WebhookSource:
    """The source of create_webhook, update_webhook_inputs or delete_webhook; refused when its type takes none."""
    source = source_records.get(store, team_id, source_id)
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        raise Refused(NOT_SUPPORTED)
    return WebhookSource(source, connector)


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
        _save(backend, source.id, record, secrets)
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


def info(backend: Services, source: SourceRecord) -> dict[str, Any]:
    """webhook_info: whether the source's type takes webhooks, its webhook if any, and its state at the source."""
    connector = connector_access.webhook_connector(source.source_type)
    if connector is None:
        return {
            "supports_webhooks": False,
            "exists": False,
            "webhook_url": None,
            "schema_mapping": {},
            "external_status": None,
        }
    record = webhook_record(source)
    if record is None:
        return {
            "supports_webhooks": True,
            "exists": False,
            "webhook_url": None,
            "schema_mapping": {},
            "inputs": {},
            "external_status": None,
            "missing_events": [],
        }
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
    return {
        "supports_webhooks": True,
        "exists": True,
        "webhook_url": record.get("url") or webhook_url(backend, source),
        "schema_mapping": {schema.name: schema.id for schema in schemas},
        "inputs": inputs_view(backend, source, record),
        "external_status": external_status,
        "missing_events": missing_events,
    }


def create(backend: Services, target: WebhookSource) -> dict[str, Any]:
    """create_webhook: register for every webhook-capable table, recording the webhook even when the source
    refuses it (see register)."""
    source, connector = target.source, target.connector
    config = source_records.source_config(backend.store, backend.vault, source.id)
    try:
        capable = [table.name for table in connector.discover(config) if table.supports_webhooks]
    except SourceError as exc:
        logger.info("create_webhook: discovery failed for source %s: %s", source.id, exc)
        raise Refused("Failed to load source configuration or schemas") from None
    return register(backend, source, connector, capable, keep_on_failure=True)


def update_inputs(backend: Services, target: WebhookSource, body: WebhookInputs) -> None:
    """update_webhook_inputs: set some of the form's webhook inputs (secret ones go to the vault)."""
    source, inputs = target.source, body.inputs
    fields: dict[str, FormField] = {
        field.name: field for field in form_fields.webhook_fields(source.source_type)
    }
    invalid = sorted(set(inputs) - set(fields))
    if invalid:
        raise Refused(f"Invalid input keys: {', '.join(invalid)}")
    blanked = [
        name for name, field in fields.items() if field.required and name in inputs and not inputs[name]
    ]
    if blanked:
        raise Refused(f"Missing required fields: {', '.join(blanked)}")
    record = webhook_record(source)
    if record is None:
        raise Refused("No webhook function found for this source. Create a webhook first.")
    secrets = backend.vault.decrypt(source.webhook_secret) or {}
    public = dict(record.get("inputs") or {})
    for name, value in inputs.items():
        if fields[name].is_secret:
            secrets[name] = value
        else:
            public[name] = value
    _save(backend, source.id, {**record, "inputs": public}, secrets)


def delete(backend: Services, target: WebhookSource) -> dict[str, Any]:
    """delete_webhook: refused while a table syncs by webhook; else forget the webhook here and delete it at
    the source, `{success, external_deleted, error}` saying whether that worked."""
    source, connector = target.source, target.connector
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
    return {"success": True, "external_deleted": external_deleted, "error": error}


def inputs_view(backend: Services, source: SourceRecord, record: dict[str, Any]) -> dict[str, Any]:
    """Each webhook input: `{"value": v}` when public, `{"secret": true}` when a secret is set (never its value)."""
    secrets = backend.vault.decrypt(source.webhook_secret) or {}
    view: dict[str, Any] = {name: {"value": value} for name, value in (record.get("inputs") or {}).items()}
    for field in form_fields.webhook_fields(source.source_type):
        if field.is_secret and secrets.get(field.name):
            view[field.name] = {"secret": True}
    return view


def _save(backend: Services, source_id: str, record: dict[str, Any], secrets: dict[str, Any]) -> None:
    """Record a webhook: its public part in `sources.webhook`, its secrets encrypted beside it."""
    with backend.store.transaction() as db:
        source_records.update(
            db, source_id, {"webhook": json.dumps(record), "webhook_secret": backend.vault.encrypt(secrets)}
        )
