"""Webhooks through the API, against the local Stripe stand-in (tests/fakes/stripe_server.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Database
from tests.embedded.api_support import SCHEMAS, SOURCES, Api, assert_message, orders_schema, shared_pg
from tests.fakes.stripe_server import DEFAULT_KEY, FakeStripe
from warehouse_mcp.embedded.backend import EmbeddedBackend
from warehouse_mcp.embedded.connectors import registry
from warehouse_mcp.embedded.connectors.base import TableInfo
from warehouse_mcp.embedded.connectors.stripe import StripeConnector

__all__ = ["shared_pg"]  # fixtures

PUBLIC_URL = "https://warehouse.example.test"
STRIPE_CONFIG = {"auth_method": "api_key", "stripe_secret_key": DEFAULT_KEY}
NOT_SUPPORTED = "This source type does not support webhooks"


@pytest.fixture
def backend(home: Path) -> Iterator[EmbeddedBackend]:
    instance = EmbeddedBackend(home, public_url=PUBLIC_URL + "/", run_scheduler=False)
    yield instance
    instance.close()


@pytest.fixture
def api(backend: EmbeddedBackend, stripe: FakeStripe) -> Iterator[Api]:
    client = Api(backend)
    yield client
    client.assert_no_secret_leaked()
    secrets = [DEFAULT_KEY, *(endpoint["secret"] for endpoint in stripe.webhook_endpoints.values())]
    for body in client.bodies:
        assert not any(secret in body for secret in secrets), "a Stripe secret left the server"


def setup_stripe(api: Api, **extra: Any) -> dict[str, Any]:
    response = api.post(
        f"{SOURCES}setup/", {"source_type": "Stripe", "payload": dict(STRIPE_CONFIG), **extra}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def webhook_tables(source: dict[str, Any]) -> set[str]:
    return {schema["name"] for schema in source["schemas"] if schema["sync_type"] == "webhook"}


def stored_secret(backend: EmbeddedBackend, source_id: str) -> dict[str, Any]:
    row = backend.store.query_one("SELECT webhook_secret FROM sources WHERE id = ?", (source_id,))
    assert row is not None
    return dict(backend.vault.decrypt(row["webhook_secret"]) or {})


def test_setup_registers_a_webhook_and_switches_tables_to_it(
    api: Api, backend: EmbeddedBackend, stripe: FakeStripe
) -> None:
    source = setup_stripe(api)
    url = f"{PUBLIC_URL}/webhooks/stripe/{source['id']}/"
    assert source["webhook"] == {"success": True, "webhook_url": url, "error": None, "pending_inputs": []}
    assert source["supports_webhooks"] is True
    assert source["revenue_analytics_config"] == {"enabled": True, "include_invoiceless_charges": True}
    assert source["job_inputs"] == {"auth_method": {"selection": "api_key"}}  # PostHog's nested shape

    capable = {table.name for table in StripeConnector().discover(STRIPE_CONFIG) if table.supports_webhooks}
    fresh = api.source(source["id"])
    assert webhook_tables(fresh) == capable
    assert all(schema["should_sync"] for schema in fresh["schemas"])

    (endpoint,) = stripe.webhook_endpoints.values()
    assert endpoint["url"] == url
    assert stored_secret(backend, source["id"]) == {"signing_secret": endpoint["secret"]}

    info = api.get(f"{SOURCES}{source['id']}/webhook_info/").json()
    assert info["supports_webhooks"] is True and info["exists"] is True and info["webhook_url"] == url
    assert set(info["schema_mapping"]) == capable
    assert info["inputs"] == {"signing_secret": {"secret": True}}
    status = info["external_status"]
    assert set(status) == {"exists", "url", "enabled_events", "status", "description", "created_at", "error"}
    assert (status["exists"], status["url"], status["status"], status["error"]) == (
        True,
        url,
        "enabled",
        None,
    )
    assert status["enabled_events"] == endpoint["enabled_events"] and info["missing_events"] == []


def test_setup_keeps_polling_when_registration_fails(api: Api, stripe: FakeStripe) -> None:
    stripe.forbidden.add("webhook_endpoints")
    source = setup_stripe(api)
    webhook = source["webhook"]
    assert (
        webhook["success"] is False and webhook["error"] and webhook["pending_inputs"] == ["signing_secret"]
    )
    assert webhook_tables(source) == set()
    by_type = {schema["name"]: schema["sync_type"] for schema in source["schemas"]}
    assert by_type.pop("Discount") is None, "webhook-only: nothing to poll"
    assert by_type.pop("CustomerBalanceTransaction") == by_type.pop("CustomerPaymentMethod") == "full_refresh"
    assert set(by_type.values()) == {"incremental"}
    assert api.get(f"{SOURCES}{source['id']}/webhook_info/").json()["exists"] is False


def test_without_a_public_url_the_loopback_server_receives(home: Path, stripe: FakeStripe) -> None:
    backend = EmbeddedBackend(home / "loopback", run_scheduler=False)
    try:
        source = setup_stripe(Api(backend))
        webhook_url = source["webhook"]["webhook_url"]
        assert webhook_url == f"{backend.connect_base_url()}/webhooks/stripe/{source['id']}/"
        assert webhook_url.startswith("http://127.0.0.1:")
        assert httpx.post(webhook_url, content=b"{}").status_code in (400, 401, 403)  # it is really served
    finally:
        backend.close()


def test_delete_webhook_waits_for_tables_to_leave_webhook_sync(
    api: Api, backend: EmbeddedBackend, stripe: FakeStripe
) -> None:
    source = setup_stripe(api)
    url = f"{SOURCES}{source['id']}/delete_webhook/"
    names = sorted(webhook_tables(source))
    assert_message(
        api.post(url),
        f"Cannot delete webhook while tables are using webhook sync: {', '.join(names)}. "
        "Switch them to full refresh, incremental, or disable syncing first.",
    )
    updates = [{"id": schema["id"], "should_sync": False} for schema in source["schemas"]]
    assert api.patch(f"{SOURCES}{source['id']}/bulk_update_schemas/", {"schemas": updates}).status_code == 200
    assert api.post(url).json() == {"success": True, "external_deleted": True, "error": None}
    assert stripe.webhook_endpoints == {}
    assert api.get(f"{SOURCES}{source['id']}/webhook_info/").json()["exists"] is False
    assert stored_secret(backend, source["id"]) == {}
    assert api.post(url).json() == {"success": True, "external_deleted": False, "error": None}


def test_create_webhook_and_update_its_inputs(api: Api, backend: EmbeddedBackend, stripe: FakeStripe) -> None:
    stripe.forbidden.add("webhook_endpoints")
    source = setup_stripe(api)
    inputs_url = f"{SOURCES}{source['id']}/update_webhook_inputs/"
    assert_message(
        api.post(inputs_url, {"inputs": {"signing_secret": "whsec_manual"}}),
        "No webhook function found for this source. Create a webhook first.",
    )

    # Stripe refuses the key: the webhook is kept so the user can add the endpoint by hand.
    created = api.post(f"{SOURCES}{source['id']}/create_webhook/").json()
    assert created["success"] is False and created["pending_inputs"] == ["signing_secret"]
    assert created["webhook_url"] == f"{PUBLIC_URL}/webhooks/stripe/{source['id']}/"
    assert api.get(f"{SOURCES}{source['id']}/webhook_info/").json()["exists"] is True

    assert_message(api.post(inputs_url, {}), "No inputs provided")
    assert_message(api.post(inputs_url, {"inputs": "whsec"}), "No inputs provided")
    assert_message(
        api.post(inputs_url, {"inputs": {"zeta": 1, "alpha": 2}}), "Invalid input keys: alpha, zeta"
    )
    assert_message(
        api.post(inputs_url, {"inputs": {"signing_secret": ""}}), "Missing required fields: signing_secret"
    )
    assert api.post(inputs_url, {"inputs": {"signing_secret": "whsec_manual_123"}}).json() == {
        "success": True
    }
    assert stored_secret(backend, source["id"]) == {"signing_secret": "whsec_manual_123"}
    info = api.get(f"{SOURCES}{source['id']}/webhook_info/")
    assert info.json()["inputs"] == {"signing_secret": {"secret": True}}
    assert "whsec_manual_123" not in info.text

    stripe.forbidden.discard("webhook_endpoints")
    assert api.post(f"{SOURCES}{source['id']}/create_webhook/").json()["success"] is True
    assert len(stripe.webhook_endpoints) == 1


def test_switching_a_table_to_webhook_registers_the_webhook(
    api: Api, stripe: FakeStripe, backend: EmbeddedBackend
) -> None:
    stripe.forbidden.add("webhook_endpoints")
    source = setup_stripe(api)
    stripe.forbidden.discard("webhook_endpoints")
    customers = next(schema for schema in source["schemas"] if schema["name"] == "Customer")
    response = api.patch(f"{SCHEMAS}{customers['id']}/", {"sync_type": "webhook"})
    assert response.status_code == 200, response.text
    assert len(stripe.webhook_endpoints) == 1
    assert api.get(f"{SOURCES}{source['id']}/webhook_info/").json()["exists"] is True


def test_a_failed_registration_refuses_the_switch(api: Api, stripe: FakeStripe) -> None:
    stripe.forbidden.add("webhook_endpoints")
    source = setup_stripe(api)
    customers = next(schema for schema in source["schemas"] if schema["name"] == "Customer")
    response = api.patch(f"{SCHEMAS}{customers['id']}/", {"sync_type": "webhook"})
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Failed to register webhook on your source: ")
    assert api.get(f"{SCHEMAS}{customers['id']}/").json()["sync_type"] == "incremental"


def test_destroying_the_source_removes_its_webhook(api: Api, stripe: FakeStripe) -> None:
    source = setup_stripe(api)
    assert len(stripe.webhook_endpoints) == 1
    assert api.delete(f"{SOURCES}{source['id']}/").status_code == 204
    assert stripe.webhook_endpoints == {}


def test_sources_without_webhooks(api: Api, shared_pg: Database) -> None:
    source_id = api.create_source("Postgres", {**shared_pg.config, "schemas": [orders_schema()]})
    assert api.get(f"{SOURCES}{source_id}/webhook_info/").json() == {
        "supports_webhooks": False,
        "exists": False,
        "webhook_url": None,
        "schema_mapping": {},
        "external_status": None,
    }
    for action in ("create_webhook", "update_webhook_inputs", "delete_webhook"):
        assert_message(api.post(f"{SOURCES}{source_id}/{action}/", {"inputs": {"x": 1}}), NOT_SUPPORTED)


class WebhookOnlyStripe(StripeConnector):
    """Stripe with one table that has no list endpoint, as PostHog's Stripe has (e.g. discounts)."""

    def discover(self, config: Any) -> list[TableInfo]:
        return [
            replace(table, webhook_only=True) if table.name == "Customer" else table
            for table in super().discover(config)
        ]


@pytest.fixture
def webhook_only(monkeypatch: pytest.MonkeyPatch) -> None:
    real = registry.connector_for
    monkeypatch.setattr(
        registry,
        "connector_for",
        lambda source_type: WebhookOnlyStripe() if source_type == "Stripe" else real(source_type),
    )


@pytest.mark.usefixtures("webhook_only")
def test_webhook_only_tables(api: Api, stripe: FakeStripe) -> None:
    stripe.forbidden.add("webhook_endpoints")
    source = setup_stripe(api)
    customers = next(schema for schema in source["schemas"] if schema["name"] == "Customer")
    assert customers["should_sync"] is False and customers["sync_type"] is None, (
        "disabled until a webhook exists"
    )
    response = api.patch(f"{SCHEMAS}{customers['id']}/", {"sync_type": "full_refresh"})
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "Customer can only be synced via webhooks — pick the Webhook sync method."
    )

    stripe.forbidden.discard("webhook_endpoints")
    enabled = setup_stripe(api, prefix="second")
    customers = next(schema for schema in enabled["schemas"] if schema["name"] == "Customer")
    assert customers["should_sync"] is True and customers["sync_type"] == "webhook"
