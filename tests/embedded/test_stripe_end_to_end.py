"""Stripe through the embedded HTTP API: credentials → setup → sync → warehouse, and the webhook lifecycle.

The fake Stripe server (tests/fakes/stripe_server.py) serves the objects and, once setup has
registered an endpoint, delivers signed events over real HTTP to the backend's loopback server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.embedded.api_support import SCHEMAS, SOURCES, Api
from tests.fakes.stripe_server import DEFAULT_KEY, FakeStripe, make_event, post_event
from tests.waiting import wait_until
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors.stripe import API_BASE_ENV, TABLES

WEBHOOK_TABLES = sorted(name for name, table in TABLES.items() if table.events)
POLLED_TABLES = sorted(name for name, table in TABLES.items() if not table.events)
LISTED_TABLES = sorted(name for name, table in TABLES.items() if table.path is not None)
# PostHog's table names → where the fake keeps their objects (Stripe's URL names)
FAKE_FLAT = {
    "BalanceTransaction": "balance_transactions",
    "Charge": "charges",
    "Coupon": "coupons",
    "CreditNote": "credit_notes",
    "Customer": "customers",
    "Dispute": "disputes",
    "Invoice": "invoices",
    "InvoiceItem": "invoiceitems",
    "Payout": "payouts",
    "Price": "prices",
    "Product": "products",
    "Refund": "refunds",
    "Subscription": "subscriptions",
}
FAKE_PER_CUSTOMER = {
    "CustomerBalanceTransaction": "balance_transactions",
    "CustomerPaymentMethod": "payment_methods",
}


def fake_ids(stripe: FakeStripe, table: str) -> set[str]:
    if table in FAKE_PER_CUSTOMER:
        return set(stripe.customer_objects[FAKE_PER_CUSTOMER[table]])
    return set(stripe.objects[FAKE_FLAT[table]])


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        monkeypatch.setenv(API_BASE_ENV, fake.url)
        seed(fake)
        yield fake


@pytest.fixture
def backend(home: Path) -> Iterator[EmbeddedBackend]:
    # The scheduler is started by each test once setup has answered, so which tables poll is settled.
    instance = EmbeddedBackend(home)
    try:
        yield instance
    finally:
        instance.close()


@pytest.fixture
def api(backend: EmbeddedBackend) -> Iterator[Api]:
    client = Api(backend)
    yield client
    leaked = [body for body in client.bodies if DEFAULT_KEY in body or "whsec_" in body]
    assert not leaked, "a Stripe key or signing secret appeared in an API response"


def seed(stripe: FakeStripe) -> None:
    for n in range(3):
        customer = stripe.add("customers", email=f"c{n}@example.com", address={"city": "Berlin"})
        stripe.add_to_customer(customer["id"], "balance_transactions", amount=-100 * n, type="adjustment")
    stripe.add_to_customer(customer["id"], "payment_methods", type="card", card={"last4": "4242"})
    coupon = stripe.add("coupons", percent_off=10.0, duration="once", valid=True)
    stripe.add("credit_notes", amount=100, currency="usd", status="issued", metadata={"coupon": coupon["id"]})
    stripe.add("disputes", amount=1500, currency="usd", status="needs_response")
    stripe.add("invoiceitems", amount=250, currency="usd", customer=customer["id"])
    stripe.add("payouts", amount=9000, currency="usd", status="paid")
    product = stripe.add("products", name="Pro", active=True)
    stripe.add(
        "prices", product=product["id"], unit_amount=1500, currency="usd", recurring={"interval": "month"}
    )
    stripe.add("subscriptions", status="active", customer="cus_x")
    stripe.add("subscriptions", status="canceled", customer="cus_y")
    charge = stripe.add("charges", amount=1500, currency="usd", paid=True)
    stripe.add("refunds", amount=500, charge=charge["id"], status="succeeded")
    stripe.add("invoices", total=1500, status="paid")
    stripe.add("payment_intents", amount=1500, status="succeeded")
    for n in range(3):
        stripe.add("balance_transactions", amount=1000 + n, type="charge")


def warehouse_ids(backend: EmbeddedBackend, table: str) -> set[str] | None:
    """The ids landed in the warehouse table of `table`, or None while it does not exist."""
    with backend.sync.warehouse_writer() as warehouse:
        name = f"stripe_{table.lower()}"
        if not warehouse.table_exists(name):
            return None
        return {row[0] for row in warehouse.cursor().execute(f'SELECT id FROM "{name}"').fetchall()}


def warehouse_value(backend: EmbeddedBackend, table: str, object_id: str, column: str) -> Any:
    with backend.sync.warehouse_writer() as warehouse:
        row = (
            warehouse.cursor()
            .execute(f'SELECT "{column}" FROM "stripe_{table.lower()}" WHERE id = ?', [object_id])
            .fetchone()
        )
        return None if row is None else row[0]


def synced(api: Api, source_id: str, names: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        schemas = {schema["name"]: schema for schema in api.source(source_id)["schemas"]}
        return all(schemas[name]["status"] == "Completed" for name in names)

    return check


def set_up_stripe(api: Api) -> dict[str, Any]:
    stored = api.post(
        f"{SOURCES}store_credentials/",
        {"source_type": "Stripe", "payload": {"auth_method": "api_key", "stripe_secret_key": DEFAULT_KEY}},
    )
    assert stored.status_code == 201, stored.text
    response = api.post(
        f"{SOURCES}setup/",
        {"source_type": "Stripe", "payload": {"credential_id": stored.json()["credential_id"]}},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_setup_without_webhook_permission_polls_every_table_into_the_warehouse(
    stripe: FakeStripe, backend: EmbeddedBackend, api: Api
) -> None:
    stripe.forbidden.add("webhook_endpoints")
    created = set_up_stripe(api)

    webhook = created["webhook"]
    assert webhook["success"] is False
    assert webhook["error"].startswith("Could not register the Stripe webhook")
    assert created["revenue_analytics_config"] == {"enabled": True, "include_invoiceless_charges": True}
    schemas = {schema["name"]: schema for schema in created["schemas"]}
    assert set(schemas) == set(TABLES)
    assert schemas["Discount"]["should_sync"] is False, "webhook-only: nothing to poll without a webhook"
    for name in LISTED_TABLES:  # the polling defaults stay
        cursor = TABLES[name].incremental_field
        expected = ("incremental", cursor) if cursor else ("full_refresh", None)
        assert schemas[name]["should_sync"] is True
        assert (schemas[name]["sync_type"], schemas[name]["incremental_field"]) == expected, name
        assert schemas[name]["primary_key_columns"] == ["id"]

    backend.start()
    wait_until(synced(api, created["id"], LISTED_TABLES), "every table's first sync")
    for name in LISTED_TABLES:
        assert warehouse_ids(backend, name) == fake_ids(stripe, name), name  # cancelled subscriptions too
        assert warehouse_ids(backend, name), name

    # The next run asks Stripe only for newer objects and merges them in.
    newest = max(obj["created"] for obj in stripe.objects["customers"].values())
    late = stripe.add("customers", email="late@example.com", created=newest + 10)
    before = len(stripe.requests_to("/v1/customers"))
    assert api.post(f"{SCHEMAS}{schemas['Customer']['id']}/reload/").status_code == 200
    wait_until(lambda: late["id"] in (warehouse_ids(backend, "Customer") or set()), "the incremental run")
    incremental = stripe.requests_to("/v1/customers")[before:]
    assert incremental and incremental[0].query["created[gt]"] == [str(newest)]
    assert warehouse_ids(backend, "Customer") == set(stripe.objects["customers"])


def test_setup_registers_the_webhook_and_pushed_events_land(
    stripe: FakeStripe, backend: EmbeddedBackend, api: Api
) -> None:
    created = set_up_stripe(api)
    source_id = created["id"]
    receiver_url = f"{backend.connect_base_url()}/webhooks/stripe/{source_id}/"
    assert created["webhook"] == {
        "success": True,
        "webhook_url": receiver_url,
        "error": None,
        "pending_inputs": [],
    }
    [endpoint] = stripe.webhook_endpoints.values()
    assert endpoint["url"] == receiver_url
    schemas = {schema["name"]: schema for schema in created["schemas"]}
    assert {name for name, schema in schemas.items() if schema["sync_type"] == "webhook"} == set(
        WEBHOOK_TABLES
    )
    for name in POLLED_TABLES:
        assert schemas[name]["sync_type"] == (
            "incremental" if TABLES[name].incremental_field else "full_refresh"
        )

    backend.start()
    wait_until(synced(api, source_id, POLLED_TABLES), "the polled tables' first sync")
    for name in POLLED_TABLES:
        assert warehouse_ids(backend, name) == fake_ids(stripe, name)

    # Stripe pushes changes; each lands in the warehouse as it arrives.
    new = stripe.add("customers", email="pushed@example.com")
    [delivery] = stripe.emit("customer.created", new)
    assert delivery.status_code == 200, delivery.text
    assert new["id"] in (warehouse_ids(backend, "Customer") or set())
    stripe.emit("customer.updated", stripe.update("customers", new["id"], email="changed@example.com"))
    assert warehouse_value(backend, "Customer", new["id"], "email") == "changed@example.com"
    [deleted] = stripe.emit("customer.deleted", stripe.remove("customers", new["id"]))
    assert deleted.status_code == 200
    assert new["id"] not in (warehouse_ids(backend, "Customer") or set())
    schema = api.schema_by_name(source_id, "Customer")
    assert schema["table"] is not None and schema["last_synced_at"]

    # A forged delivery changes nothing.
    forged = post_event(
        receiver_url, make_event("customer.created", {**new, "id": "cus_forged"}), "whsec_guess"
    )
    assert forged.status_code == 400
    assert "cus_forged" not in (warehouse_ids(backend, "Customer") or set())

    check_webhook_info(api, source_id, receiver_url, schemas)
    check_update_webhook_inputs(api, stripe, source_id, receiver_url)
    check_delete_webhook(api, stripe, source_id, receiver_url, schemas)


def check_webhook_info(api: Api, source_id: str, receiver_url: str, schemas: dict[str, Any]) -> None:
    info = api.get(f"{SOURCES}{source_id}/webhook_info/")
    assert info.status_code == 200, info.text
    body = info.json()
    external_status = body.pop("external_status")
    assert body == {
        "supports_webhooks": True,
        "exists": True,
        "webhook_url": receiver_url,
        "schema_mapping": {name: schemas[name]["id"] for name in WEBHOOK_TABLES},
        "inputs": {"signing_secret": {"secret": True}},
        "missing_events": [],
    }
    assert external_status["exists"] is True and external_status["status"] == "enabled"
    assert external_status["url"] == receiver_url and external_status["error"] is None


def check_update_webhook_inputs(api: Api, stripe: FakeStripe, source_id: str, receiver_url: str) -> None:
    path = f"{SOURCES}{source_id}/update_webhook_inputs/"
    assert api.post(path, {"inputs": {}}).json() == {"message": "No inputs provided"}
    assert api.post(path, {"inputs": {"bogus": "x"}}).json() == {"message": "Invalid input keys: bogus"}
    assert api.post(path, {"inputs": {"signing_secret": ""}}).json() == {
        "message": "Missing required fields: signing_secret"
    }
    # A secret entered by hand (an endpoint made in Stripe's dashboard) replaces the registered one.
    rotated = "whsec_entered_by_hand_0123456789"
    assert api.post(path, {"inputs": {"signing_secret": rotated}}).json() == {"success": True}
    obj = stripe.add("products", name="Hand-signed")
    assert post_event(receiver_url, make_event("product.created", obj), rotated).status_code == 200
    [old_secret] = stripe.emit("product.updated", obj)
    assert old_secret.status_code == 400


def check_delete_webhook(
    api: Api, stripe: FakeStripe, source_id: str, receiver_url: str, schemas: dict[str, Any]
) -> None:
    path = f"{SOURCES}{source_id}/delete_webhook/"
    refused = api.post(path)
    assert refused.status_code == 400
    assert refused.json()["message"].startswith(
        f"Cannot delete webhook while tables are using webhook sync: {', '.join(WEBHOOK_TABLES)}."
    )
    assert len(stripe.webhook_endpoints) == 1

    for name in WEBHOOK_TABLES:
        response = api.patch(f"{SCHEMAS}{schemas[name]['id']}/", {"should_sync": False})
        assert response.status_code == 200, response.text
    deleted = api.post(path)
    assert deleted.json() == {"success": True, "external_deleted": True, "error": None}
    assert stripe.webhook_endpoints == {}
    assert api.get(f"{SOURCES}{source_id}/webhook_info/").json()["exists"] is False
    late = post_event(
        receiver_url, make_event("customer.created", {"id": "cus_late", "object": "customer"}), None
    )
    assert late.status_code == 400
