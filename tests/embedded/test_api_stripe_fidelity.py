"""Issue 17, Stripe findings: the embedded API answers as PostHog's server does for Stripe sources, against the
local Stripe-protocol server (tests/fakes/stripe_server.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.embedded.api_support import SCHEMAS, SOURCES, Api, assert_drf
from tests.fakes.stripe_server import DEFAULT_KEY, POSTHOG_STRIPE_TABLES, FakeStripe
from warehouse_mcp.embedded.backend import EmbeddedBackend

NESTED_AUTH = {"auth_method": {"selection": "api_key", "stripe_secret_key": DEFAULT_KEY}}


@pytest.fixture
def api(home: Path, stripe: FakeStripe) -> Iterator[Api]:
    backend = EmbeddedBackend(home, public_url="https://warehouse.example.test", run_scheduler=False)
    client = Api(backend)
    try:
        yield client
    finally:
        backend.close()
    assert not [body for body in client.bodies if DEFAULT_KEY in body], "the Stripe key left the server"


def create_stripe(api: Api, payload: dict[str, Any], *schemas: dict[str, Any], **extra: Any) -> str:
    given = list(schemas) or [{"name": "Customer", "should_sync": False}]
    return api.create_source("Stripe", {**payload, "schemas": given}, **extra)


# --- 1. nested auth_method ------------------------------------------------------------------------


def test_posthogs_nested_auth_method_creates_and_answers_selection(api: Api, stripe: FakeStripe) -> None:
    source_id = create_stripe(api, NESTED_AUTH)
    assert api.source(source_id)["job_inputs"] == {"auth_method": {"selection": "api_key"}}
    assert stripe.requests[0].headers["authorization"] == f"Bearer {DEFAULT_KEY}"

    flat = create_stripe(api, {"auth_method": "api_key", "stripe_secret_key": DEFAULT_KEY}, prefix="x")
    assert api.source(flat)["job_inputs"] == {"auth_method": {"selection": "api_key"}}, (
        "stored as PostHog does"
    )
    stored = api.backend.store.query_one("SELECT job_inputs FROM sources WHERE id = ?", (flat,))
    assert stored is not None and DEFAULT_KEY not in stored["job_inputs"]

    # A PATCH echoing the public job_inputs keeps the stored key; a wrong new key is refused by Stripe.
    echoed = api.patch(f"{SOURCES}{source_id}/", {"job_inputs": {"auth_method": {"selection": "api_key"}}})
    assert echoed.status_code == 200, echoed.text
    wrong = {"auth_method": {"selection": "api_key", "stripe_secret_key": "rk_test_51NotTheKey0000"}}
    refused = api.patch(f"{SOURCES}{source_id}/", {"job_inputs": wrong})
    assert refused.status_code == 400 and "Invalid credentials" in refused.json()["detail"]


# --- 2. PostHog's resources, names and per-endpoint permissions -------------------------------------


def test_stripe_resources_under_posthogs_names_with_permission_errors(api: Api, stripe: FakeStripe) -> None:
    stripe.forbidden.add("disputes")
    response = api.post(f"{SOURCES}database_schema/", {"source_type": "Stripe", **NESTED_AUTH})
    assert response.status_code == 200, response.text
    tables = {table["table"]: table for table in response.json()}
    assert list(tables) == POSTHOG_STRIPE_TABLES
    assert "rak_disputes_read" in tables["Dispute"]["permission_error"]
    assert all(table["permission_error"] is None for name, table in tables.items() if name != "Dispute")
    assert tables["Charge"]["incremental_fields"] == [
        {
            "label": "created_at",
            "type": "datetime",
            "field": "created",
            "field_type": "integer",
            "nullable": False,
        }
    ]
    assert tables["Discount"]["webhook_only"] is True and tables["Discount"]["should_sync_default"] is False
    assert tables["CustomerPaymentMethod"]["incremental_fields"] == []
    assert tables["Charge"]["xmin_available"] is None and tables["Charge"]["rows"] is None

    wizard = api.get(f"{SOURCES}wizard/?source_type=Stripe").json()["Stripe"]
    assert [table["table"] for table in wizard["suggestedTables"]] == [
        "Customer",
        "Charge",
        "Invoice",
        "Subscription",
        "Product",
    ]


def test_warehouse_tables_follow_posthogs_names(api: Api, stripe: FakeStripe) -> None:
    stripe.add("charges", amount=100, currency="usd")
    source_id = create_stripe(
        api, NESTED_AUTH, {"name": "Charge", "should_sync": True, "sync_type": "full_refresh"}
    )
    schema = api.schema_by_name(source_id, "Charge")
    api.backend.sync.start()  # this backend was built without its scheduler
    try:
        deadline = time.monotonic() + 20
        while api.get(f"{SCHEMAS}{schema['id']}/").json()["status"] != "Completed":
            assert time.monotonic() < deadline, "the Charge sync did not finish"
            time.sleep(0.05)
    finally:
        api.backend.sync.stop()
    table = api.get(f"{SCHEMAS}{schema['id']}/").json()["table"]
    assert (table["name"], table["row_count"]) == ("stripe_charge", 1)


# --- 6. validation ----------------------------------------------------------------------------------


def test_stripe_takes_no_column_selection_and_webhook_keeps_the_cursor_config(
    api: Api, stripe: FakeStripe
) -> None:
    stripe.forbidden.add("webhook_endpoints")
    created = api.post(f"{SOURCES}setup/", {"source_type": "Stripe", "payload": dict(NESTED_AUTH)}).json()
    customer = next(schema for schema in created["schemas"] if schema["name"] == "Customer")
    url = f"{SCHEMAS}{customer['id']}/"
    assert_drf(
        api.patch(url, {"enabled_columns": ["id", "email"]}),
        "Column selection is not supported for this source type.",
    )
    assert api.patch(url, {"enabled_columns": None}).status_code == 200

    stripe.forbidden.discard("webhook_endpoints")
    switched = api.patch(url, {"sync_type": "webhook"})
    assert switched.status_code == 200, switched.text
    body = switched.json()
    assert (body["sync_type"], body["incremental_field"], body["incremental_field_type"]) == (
        "webhook",
        "created",
        "integer",
    )
    assert body["primary_key_columns"] == ["id"]


# --- 8. webhooks --------------------------------------------------------------------------------------


def test_delete_webhook_removes_ours_when_stripe_refuses(api: Api, stripe: FakeStripe) -> None:
    created = api.post(f"{SOURCES}setup/", {"source_type": "Stripe", "payload": dict(NESTED_AUTH)}).json()
    assert created["webhook"]["success"] is True
    updates = [{"id": schema["id"], "should_sync": False} for schema in created["schemas"]]
    assert (
        api.patch(f"{SOURCES}{created['id']}/bulk_update_schemas/", {"schemas": updates}).status_code == 200
    )

    stripe.forbidden.add("webhook_endpoints")
    answer = api.post(f"{SOURCES}{created['id']}/delete_webhook/").json()
    assert answer["success"] is True and answer["external_deleted"] is False
    assert "rak_webhook_endpoints_read" in answer["error"]
    assert api.get(f"{SOURCES}{created['id']}/webhook_info/").json()["exists"] is False
    assert len(stripe.webhook_endpoints) == 1, "left at Stripe, as the error says"

    stripe.forbidden.discard("webhook_endpoints")
    again = api.post(f"{SOURCES}{created['id']}/create_webhook/").json()
    assert set(again) == {"success", "webhook_url", "error", "pending_inputs"}
    assert again["success"] is True and again["error"] is None and again["pending_inputs"] == []
