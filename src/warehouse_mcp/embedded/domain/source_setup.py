"""`setup`: one call from credentials to a syncing source (api-semantics §4 setup).

It validates and discovers, builds the `schemas` array so the caller never has to, creates the source
through source_creation and, for a source that sends webhooks, registers one. Every discovered table is enabled: `incremental` when the table supports it, has a cursor
candidate and a primary key (incremental runs merge changed rows on it), else `append` when
supported (it needs a cursor too, but no key), else `full_refresh`. `cdc` only when asked (`cdc=True`, after
the prerequisites passed), for every table with a primary key. Webhook-only tables start disabled; setup
switches them on if it manages to register the source's webhook.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors import forms
from warehouse_mcp.embedded.connectors.base import IncrementalCandidate, TableInfo, WebhookConnector
from warehouse_mcp.embedded.domain import cdc, connector_access, credentials, source_creation, webhooks
from warehouse_mcp.embedded.domain.errors import Refused
from warehouse_mcp.embedded.domain.request_bodies import SourceSetup
from warehouse_mcp.embedded.store import schema_records, source_records
from warehouse_mcp.models import INCREMENTAL_FIELD_PREFERENCE, AccessMethod, CreatedVia

if TYPE_CHECKING:
    from warehouse_mcp.embedded.domain.services import Services

logger = logging.getLogger(__name__)


def setup(backend: Services, team_id: int, body: SourceSetup) -> tuple[str, dict[str, Any] | None]:
    """Create a source with every table on sensible defaults; `(source id, webhook registration or None)`.

    `payload.credential_id` names a credential the user stored through the connect page; its values
    win over inline keys, and it is deleted once the source owns them.
    """
    source_type = body.source_type
    payload = dict(body.payload or {})
    source_creation.refuse_secret_refs(payload)
    credential_id = payload.pop("credential_id", None)
    if credential_id is not None:
        stored = credentials.take_stored_credential(
            backend.store, backend.vault, team_id, str(credential_id), source_type
        )
        payload = {**payload, **stored}

    connector = connector_access.connector(source_type)
    payload = source_creation.strip_strings(payload)
    config = connector_access.only_form_fields(source_type, payload)
    connector_access.check_config(source_type, config)
    connector_access.check_credentials(connector, config)
    tables = connector_access.discover(connector, config)
    if not tables:
        raise Refused("No tables found for this source. Check the credentials and permissions.")
    cdc_on = forms.truthy(config.get("cdc_enabled"))
    if cdc_on:
        cdc.refuse_unready_cdc(source_type, config, tables)
    payload["schemas"] = default_schemas(tables, cdc=cdc_on)

    new = source_creation.NewSource(
        source_type,
        payload,
        body.prefix,
        body.description,
        AccessMethod.warehouse,
        CreatedVia.mcp,
        direct_query_enabled=bool(body.direct_query_enabled),
    )
    source_id = source_creation.create_source(backend, team_id, new, checked=(config, tables))
    if credential_id is not None:
        credentials.delete_stored_credential(backend.store, str(credential_id))
    webhook = None
    if isinstance(connector, WebhookConnector):
        webhook = _auto_register_webhook(backend, team_id, source_id, connector, tables)
    return source_id, webhook


def _auto_register_webhook(
    backend: Services,
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
        result = webhooks.register(backend, source, connector, capable, keep_on_failure=False)
    except Exception as exc:  # never fails setup: the source exists and polls
        logger.warning("webhook registration for source %s failed: %s", source_id, type(exc).__name__)
        return {"success": False, "webhook_url": None, "error": str(exc), "pending_inputs": []}
    if not result["success"]:
        return result
    switched: list[tuple[str, bool]] = []
    with backend.store.transaction() as db:
        for schema in schema_records.of_source(backend.store, source_id):
            if schema.name in capable:
                schema_records.update(db, schema.id, {"sync_type": "webhook", "should_sync": 1})
                switched.append((schema.id, bool(schema.should_sync)))
    for schema_id, was_enabled in switched:
        if was_enabled:
            backend.sync.schedule_changed(schema_id)
        else:
            backend.sync.request_sync(schema_id)
    return result


def cursor_field(candidates: list[IncrementalCandidate]) -> IncrementalCandidate | None:
    """The preferred update-tracking column (by name, case-insensitive), else the first candidate."""
    usable = [candidate for candidate in candidates if candidate.field]
    by_name = {candidate.field.lower(): candidate for candidate in usable}
    for name in INCREMENTAL_FIELD_PREFERENCE:
        if name in by_name:
            return by_name[name]
    return usable[0] if usable else None


def default_schemas(tables: list[TableInfo], *, cdc: bool = False) -> list[dict[str, Any]]:
    schemas: list[dict[str, Any]] = []
    for table in tables:
        if table.webhook_only:
            schemas.append({"name": table.name, "should_sync": False})
            continue
        if cdc and table.cdc_available and table.primary_keys:
            schemas.append(
                {
                    "name": table.name,
                    "should_sync": True,
                    "sync_type": "cdc",
                    "primary_key_columns": list(table.primary_keys),
                }
            )
            continue
        chosen = cursor_field(table.incremental_fields)
        if chosen is not None and table.supports_incremental and table.primary_keys:
            sync_type = "incremental"
        elif chosen is not None and table.supports_append:
            sync_type = "append"
        else:
            sync_type = "full_refresh"
        entry: dict[str, Any] = {"name": table.name, "should_sync": True, "sync_type": sync_type}
        if chosen is not None and sync_type != "full_refresh":
            entry["incremental_field"] = chosen.field
            entry["incremental_field_type"] = chosen.field_type
        if table.primary_keys:
            entry["primary_key_columns"] = list(table.primary_keys)
        schemas.append(entry)
    return schemas
