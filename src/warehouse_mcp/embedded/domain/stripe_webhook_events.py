"""Stripe webhook events: checking a delivery and landing its object in the warehouse (the route that
receives them, `POST /webhooks/stripe/{source_id}/`, is http/stripe_webhooks.py).

Stripe signs each delivery with the endpoint's secret (`Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`,
HMAC-SHA256 over `"<t>.<raw body>"`). Anything unsigned, mis-signed, older (or newer) than five
minutes, or addressed to an unknown or deleted source is answered 400 and writes nothing.

A verified event's `data.object` goes to the table of its object type (customer → Customer, ...),
but only for a schema of that source that syncs by webhook: upserted on `id` through the
warehouse's staging merge, or deleted for `*.deleted` events (a "deleted" subscription is a
cancelled one and stays, as Stripe still lists it). Applied event ids are kept (`webhook_events`):
an exact replay is acknowledged without writing, and an event older than one already applied to
the same object does not overwrite it (Stripe does not deliver in order).

Only the process that holds the warehouse lock may write the warehouse; any other answers 503, which
Stripe retries later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from warehouse_mcp.embedded.connectors.stripe import (
    TABLE_FOR_OBJECT,
    StripeConnector,
    StripeTable,
    object_row,
    record_batch,
)
from warehouse_mcp.embedded.store import Store, utcnow, webhook_events
from warehouse_mcp.embedded.store.vault import Vault, VaultError
from warehouse_mcp.embedded.store.webhook_events import LandedTable, WebhookSchema

if TYPE_CHECKING:
    from warehouse_mcp.embedded.sync.warehouse import TableState, Warehouse

logger = logging.getLogger(__name__)

SIGNATURE_TOLERANCE_SECONDS = 300
EVENT_RETENTION = timedelta(days=30)  # Stripe retries a delivery for up to three days
SOURCE_TYPE = StripeConnector.source_type

WarehouseOpener = Callable[[], AbstractContextManager["Warehouse"]]


class SignatureError(Exception):
    pass


class WarehouseUnavailable(Exception):
    """This process cannot write the warehouse now (another one holds its lock)."""


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def verify_signature(
    payload: bytes,
    header: str | None,
    secret: str,
    *,
    now: float,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """Raise SignatureError unless one `v1` of `header` signs `payload` with `secret` within `tolerance`."""
    if not header:
        raise SignatureError("The request has no Stripe-Signature header.")
    timestamp: str | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not timestamp.isdigit() or not signatures:
        raise SignatureError("The Stripe-Signature header has no timestamp or no v1 signature.")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise SignatureError("No signature in the Stripe-Signature header matches the payload.")
    if abs(now - int(timestamp)) > tolerance:
        raise SignatureError(f"The signature timestamp is more than {tolerance} seconds from now.")


class StripeWebhookReceiver:
    def __init__(
        self,
        store: Store,
        vault: Vault,
        open_warehouse: WarehouseOpener,
        *,
        now: Callable[[], float] = time.time,
        tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    ) -> None:
        self.store = store
        self.vault = vault
        self.open_warehouse = open_warehouse
        self.now = now
        self.tolerance = tolerance

    def receive(self, source_id: str, payload: bytes, signature: str | None) -> Outcome:
        source = webhook_events.live_source(self.store, source_id)
        if source is None or source.source_type != SOURCE_TYPE:
            return _refused(f"No Stripe source '{source_id}' takes webhooks here.")
        secret = self._signing_secret(source.webhook_secret)
        if not secret:
            return _refused("This source has no webhook signing secret; set it with update_webhook_inputs.")
        try:
            verify_signature(payload, signature, secret, now=self.now(), tolerance=self.tolerance)
        except SignatureError as exc:
            logger.warning("Refused a Stripe webhook for source %s: %s", source_id, exc)
            return _refused(str(exc))
        event = _parse_event(payload)
        if event is None:
            return _refused("The body is not a Stripe event with an id, a type and a data.object.")
        try:
            return self._apply(source, event)
        except WarehouseUnavailable as exc:
            logger.info("Stripe event %s for source %s deferred: %s", event["id"], source_id, exc)
            return Outcome(503, {"message": str(exc)}, {"Retry-After": "60"})

    def _signing_secret(self, ciphertext: bytes | None) -> str | None:
        try:
            stored = self.vault.decrypt(ciphertext)
        except VaultError:
            logger.error("A webhook signing secret cannot be decrypted with this data directory's vault key")
            return None
        value = stored.get("signing_secret") if isinstance(stored, Mapping) else stored
        return value if isinstance(value, str) and value else None

    def _apply(self, source: Any, event: dict[str, Any]) -> Outcome:
        source_id, event_id = source.id, event["id"]
        obj: dict[str, Any] = event["data"]["object"]
        object_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        created = event.get("created") if isinstance(event.get("created"), int) else None
        if webhook_events.already_applied(self.store, source_id, event_id):
            return Outcome(200, {"received": True, "duplicate": True})
        table = TABLE_FOR_OBJECT.get(str(obj.get("object")))
        schemas = (
            webhook_events.webhook_schemas(self.store, source_id, table.name) if table and object_id else []
        )
        if not schemas or table is None or object_id is None:
            self._record(source_id, event_id, object_id, created, landed=[])
            return Outcome(200, {"received": True, "applied": False})
        if created is not None and webhook_events.newer_event_applied(
            self.store, source_id, object_id, created
        ):
            self._record(source_id, event_id, object_id, created, landed=[])
            return Outcome(200, {"received": True, "applied": False, "stale": True})
        delete = event["type"].endswith(".deleted") and table.object_type != "subscription"
        landed = self._write(source.prefix, schemas, table, obj, delete=delete, event_id=event_id)
        self._record(source_id, event_id, object_id, created, landed=landed)
        logger.info("Applied Stripe event %s (%s) to %d table(s)", event_id, event["type"], len(landed))
        return Outcome(200, {"received": True, "applied": True})

    def _write(
        self,
        prefix: str | None,
        schemas: list[WebhookSchema],
        table: StripeTable,
        obj: dict[str, Any],
        *,
        delete: bool,
        event_id: str,
    ) -> list[LandedTable]:
        """Upsert (or delete) the object in each schema's table; what landed, per schema."""
        import duckdb

        from warehouse_mcp.embedded.sync.scheduler import WarehouseBusyError
        from warehouse_mcp.embedded.sync.warehouse import warehouse_table_name

        landed: list[LandedTable] = []
        try:
            with self.open_warehouse() as warehouse:
                for schema in schemas:
                    name = warehouse_table_name(prefix, SOURCE_TYPE, schema.name)
                    if delete:
                        state = _delete(warehouse, name, obj["id"])
                    else:
                        state = _upsert(warehouse, name, table, _columns(table, schema.enabled_columns), obj)
                    if state is not None:
                        landed.append(_landed(schema.id, state))
        except WarehouseBusyError as exc:
            raise WarehouseUnavailable(
                "Another warehouse-mcp process writes the warehouse; Stripe will deliver this event again."
            ) from exc
        except (duckdb.Error, OSError) as exc:  # e.g. a full disk
            logger.warning("Stripe event %s could not be written now: %s", event_id, exc)
            raise WarehouseUnavailable(
                "The warehouse is busy; Stripe will deliver this event again."
            ) from exc
        return landed

    # metadata

    def _record(
        self,
        source_id: str,
        event_id: str,
        object_id: str | None,
        created: int | None,
        *,
        landed: list[LandedTable],
    ) -> None:
        now = utcnow()
        webhook_events.record_event(
            self.store,
            source_id,
            event_id,
            object_id,
            created,
            now=now,
            forget_before=now - EVENT_RETENTION,
            landed=landed,
        )


def _landed(schema_id: str, state: TableState) -> LandedTable:
    return LandedTable(
        schema_id, state.name, state.row_count, [{"name": c.name, "type": c.type} for c in state.columns]
    )


def _refused(message: str) -> Outcome:
    return Outcome(400, {"message": message})


def _parse_event(payload: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
    ):
        return None
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        return None
    return event


def _columns(table: StripeTable, enabled_columns: list[str] | None) -> list[str]:
    enabled = set(enabled_columns) if enabled_columns is not None else None
    return [name for name in table.column_names if enabled is None or name in enabled or name == "id"]


def _upsert(
    warehouse: Warehouse, name: str, table: StripeTable, columns: list[str], obj: Mapping[str, Any]
) -> TableState:
    infos = [column for column in table.info().columns if column.name in columns]
    staging = warehouse.start_staging(name, infos, f"webhook{uuid.uuid4().hex}")
    try:
        staging.append(record_batch(table, [object_row(table, obj, columns)], columns))
        return staging.merge_into_target(["id"])
    except BaseException:
        staging.discard()
        raise


def _delete(warehouse: Warehouse, name: str, object_id: str) -> TableState | None:
    return warehouse.delete_rows(name, "id", [object_id])
