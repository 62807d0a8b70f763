"""The Stripe webhook receiver: signed events land in the warehouse; anything else changes nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.fakes.stripe_server import make_event, post_event, signature_header
from warehouse_mcp.embedded.domain.stripe_webhook_events import SignatureError, verify_signature
from warehouse_mcp.embedded.http.stripe_webhooks import routes
from warehouse_mcp.embedded.store import Store, iso, utcnow
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.scheduler import WarehouseBusyError
from warehouse_mcp.embedded.sync.warehouse import Warehouse

SECRET = "whsec_test_receiver_secret_0123456789"


class Harness:
    def __init__(self, home: Path) -> None:
        self.store = Store(home)
        self.vault = Vault(home)
        self.warehouse = Warehouse(home / "warehouse.duckdb")
        self.busy = False
        self.source_id = self.add_source()
        self.schema_ids = {
            "Customer": self.add_schema("Customer", "webhook"),
            "Subscription": self.add_schema("Subscription", "webhook"),
            "Product": self.add_schema("Product", "webhook", enabled_columns=["name"]),
            "Charge": self.add_schema("Charge", "incremental"),
        }
        backend = SimpleNamespace(
            store=self.store, vault=self.vault, sync=SimpleNamespace(warehouse_writer=self.writer)
        )
        self.client = TestClient(Starlette(routes=routes(backend)))  # type: ignore[arg-type]

    @contextmanager
    def writer(self) -> Iterator[Warehouse]:
        if self.busy:
            raise WarehouseBusyError(self.warehouse.path)
        yield self.warehouse

    def add_source(
        self, *, source_type: str = "Stripe", secret: str | None = SECRET, deleted: int = 0
    ) -> str:
        source_id = str(uuid.uuid4())
        now = iso(utcnow())
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO sources (id, team_id, source_type, webhook, webhook_secret, created_at, updated_at, deleted) "
                "VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                (
                    source_id,
                    source_type,
                    json.dumps({"external_id": "we_1", "url": "http://x/", "inputs": {}}),
                    self.vault.encrypt({"signing_secret": secret}) if secret else None,
                    now,
                    now,
                    deleted,
                ),
            )
        return source_id

    def add_schema(self, name: str, sync_type: str, *, enabled_columns: list[str] | None = None) -> str:
        schema_id = str(uuid.uuid4())
        now = iso(utcnow())
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO schemas (id, team_id, source_id, name, should_sync, sync_type, enabled_columns, "
                "created_at, updated_at) VALUES (?, 1, ?, ?, 1, ?, ?, ?, ?)",
                (
                    schema_id,
                    self.source_id,
                    name,
                    sync_type,
                    json.dumps(enabled_columns) if enabled_columns else None,
                    now,
                    now,
                ),
            )
        return schema_id

    def url(self, source_id: str | None = None) -> str:
        return f"/webhooks/stripe/{source_id or self.source_id}/"

    def send(self, event: dict[str, Any], secret: str | None = SECRET, **options: Any) -> Any:
        return post_event(
            self.url(options.pop("source_id", None)), event, secret, client=self.client, **options
        )

    def rows(self, table: str) -> list[dict[str, Any]]:
        if not self.warehouse.table_exists(table):
            return []
        cursor = self.warehouse.cursor().execute(f'SELECT * FROM "{table}" ORDER BY id')
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def recorded_events(self) -> int:
        row = self.store.query_one("SELECT count(*) AS n FROM webhook_events")
        return int(row["n"]) if row else 0


@pytest.fixture
def harness(home: Path) -> Iterator[Harness]:
    harness = Harness(home)
    try:
        yield harness
    finally:
        harness.client.close()
        harness.warehouse.close()


def customer(**fields: Any) -> dict[str, Any]:
    return {"id": "cus_A1", "object": "customer", "created": 1_700_000_001, "livemode": False, **fields}


def test_signed_events_create_update_and_delete_rows(harness: Harness) -> None:
    response = harness.send(
        make_event("customer.created", customer(email="a@example.com", metadata={"tier": "x"}))
    )
    assert response.status_code == 200 and response.json()["applied"] is True
    [row] = harness.rows("stripe_customer")
    assert row["id"] == "cus_A1" and row["email"] == "a@example.com" and row["created"] == 1_700_000_001
    assert json.loads(row["metadata"]) == {"tier": "x"}
    schema = harness.store.query_one(
        "SELECT table_name, table_row_count, table_id, last_synced_at FROM schemas WHERE id = ?",
        (harness.schema_ids["Customer"],),
    )
    assert schema is not None
    assert (schema["table_name"], schema["table_row_count"]) == ("stripe_customer", 1)
    assert schema["table_id"] and schema["last_synced_at"]

    assert harness.send(make_event("customer.updated", customer(email="b@example.com"))).status_code == 200
    assert [r["email"] for r in harness.rows("stripe_customer")] == ["b@example.com"]

    assert harness.send(make_event("customer.deleted", customer(email="b@example.com"))).status_code == 200
    assert harness.rows("stripe_customer") == []


def test_route_without_trailing_slash_is_served_too(harness: Harness) -> None:
    event = make_event("customer.created", customer())
    response = post_event(harness.url().rstrip("/"), event, SECRET, client=harness.client)
    assert response.status_code == 200
    assert len(harness.rows("stripe_customer")) == 1


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"secret": None}, id="unsigned"),
        pytest.param({"secret": "whsec_someone_else"}, id="wrong-secret"),
        pytest.param({"age": 360}, id="stale"),
        pytest.param({"age": -360}, id="from-the-future"),
        pytest.param({"signature": "t=1700000000"}, id="no-v1"),
        pytest.param({"signature": "v1=abc"}, id="no-timestamp"),
        pytest.param({"signature": "garbage"}, id="garbage"),
    ],
)
def test_unverified_events_are_refused_and_write_nothing(harness: Harness, options: dict[str, Any]) -> None:
    if "age" in options:
        options = {"timestamp": int(time.time()) - options.pop("age")}
    response = harness.send(make_event("customer.created", customer()), **options)
    assert response.status_code == 400
    assert response.json()["message"]
    assert harness.rows("stripe_customer") == []
    assert harness.recorded_events() == 0


def test_a_signature_over_another_body_is_refused(harness: Harness) -> None:
    signed = json.dumps(make_event("customer.created", customer(email="signed@example.com"))).encode()
    tampered = make_event("customer.created", customer(email="tampered@example.com"))
    response = harness.send(tampered, signature=signature_header(signed, SECRET))
    assert response.status_code == 400
    assert harness.rows("stripe_customer") == []


def test_unknown_deleted_or_secretless_sources_are_refused(harness: Harness) -> None:
    event = make_event("customer.created", customer())
    gone = harness.add_source(deleted=1)
    no_secret = harness.add_source(secret=None)
    other_type = harness.add_source(source_type="Postgres")
    for source_id in (str(uuid.uuid4()), "not-a-uuid", gone, no_secret, other_type):
        assert harness.send(event, source_id=source_id).status_code == 400
    assert harness.rows("stripe_customer") == []
    assert harness.recorded_events() == 0


def test_any_matching_v1_signature_is_accepted(harness: Harness) -> None:
    event = make_event("customer.created", customer())
    payload = json.dumps(event, indent=2).encode()
    good = signature_header(payload, SECRET)
    t, v1 = good.split(",")
    header = f"{t},v1={'0' * 64},{v1},v0=ignored"
    assert harness.send(event, signature=header).status_code == 200
    assert len(harness.rows("stripe_customer")) == 1


def test_replays_and_late_deliveries_do_not_roll_rows_back(harness: Harness) -> None:
    first = make_event("customer.updated", customer(email="v1@example.com"))
    first["created"] = 1_700_000_100
    second = make_event("customer.updated", customer(email="v2@example.com"))
    second["created"] = 1_700_000_200
    assert harness.send(first).json()["applied"] is True
    assert harness.send(second).json()["applied"] is True

    replay = harness.send(first)
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    late = make_event("customer.updated", customer(email="v1.5@example.com"))
    late["created"] = 1_700_000_150
    assert harness.send(late).json() == {"received": True, "applied": False, "stale": True}

    assert [r["email"] for r in harness.rows("stripe_customer")] == ["v2@example.com"]
    assert harness.recorded_events() == 3


def test_events_for_tables_not_synced_by_webhook_are_acknowledged_but_ignored(harness: Harness) -> None:
    charge = {"id": "ch_1", "object": "charge", "created": 1_700_000_000, "amount": 100}
    response = harness.send(make_event("charge.succeeded", charge))
    assert response.status_code == 200 and response.json()["applied"] is False
    invoice = {"id": "in_1", "object": "invoice", "created": 1_700_000_000}
    assert harness.send(make_event("invoice.paid", invoice)).json()["applied"] is False
    assert not harness.warehouse.table_exists("stripe_charge")
    assert not harness.warehouse.table_exists("stripe_invoice")


def test_a_deleted_subscription_is_kept_as_cancelled(harness: Harness) -> None:
    subscription = {"id": "sub_1", "object": "subscription", "created": 1_700_000_000, "status": "active"}
    harness.send(make_event("customer.subscription.created", subscription))
    harness.send(make_event("customer.subscription.deleted", {**subscription, "status": "canceled"}))
    assert [r["status"] for r in harness.rows("stripe_subscription")] == ["canceled"]


def test_only_enabled_columns_land(harness: Harness) -> None:
    product = {"id": "prod_1", "object": "product", "created": 1_700_000_000, "name": "Pro", "active": True}
    harness.send(make_event("product.created", product))
    assert harness.rows("stripe_product") == [{"id": "prod_1", "name": "Pro"}]


def test_busy_warehouse_answers_503_and_the_retry_applies(harness: Harness) -> None:
    event = make_event("customer.created", customer(email="later@example.com"))
    harness.busy = True
    response = harness.send(event)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert harness.recorded_events() == 0  # not marked as applied: Stripe's retry must get through
    harness.busy = False
    assert harness.send(event).json()["applied"] is True
    assert [r["email"] for r in harness.rows("stripe_customer")] == ["later@example.com"]


def test_malformed_events_are_refused(harness: Harness) -> None:
    for body in (b"not json", b"[]", json.dumps({"id": "evt_1", "type": "customer.created"}).encode()):
        response = harness.client.post(
            harness.url(), content=body, headers={"Stripe-Signature": signature_header(body, SECRET)}
        )
        assert response.status_code == 400
    assert harness.recorded_events() == 0


def test_verify_signature_tolerance_is_inclusive_and_symmetric() -> None:
    payload = b'{"id": "evt_1"}'
    header = signature_header(payload, SECRET, timestamp=1_000)
    verify_signature(payload, header, SECRET, now=1_300)
    verify_signature(payload, header, SECRET, now=700)
    for now in (1_301, 699):
        with pytest.raises(SignatureError, match="300 seconds"):
            verify_signature(payload, header, SECRET, now=now)
