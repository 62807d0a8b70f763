"""The Stripe connector against a local server that speaks Stripe's protocol (tests/fakes/stripe_server.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pytest

from tests.fakes.stripe_server import DEFAULT_KEY, POSTHOG_STRIPE_TABLES, FakeStripe
from warehouse_mcp.embedded.connectors.base import ReadRequest, SourceError, WebhookConnector
from warehouse_mcp.embedded.connectors.stripe import API_BASE_ENV, TABLES, StripeConnector, webhook_events

CONFIG = {"auth_method": "api_key", "stripe_secret_key": DEFAULT_KEY}


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connector(stripe: FakeStripe, sleeps: list[float]) -> StripeConnector:
    return StripeConnector(stripe.url, page_size=2, sleep=sleeps.append)


def read_all(connector: StripeConnector, table: str, **options: object) -> pa.Table:
    info = TABLES[table].info()
    batches = list(connector.read(CONFIG, ReadRequest(table=info, **options)))  # type: ignore[arg-type]
    return pa.Table.from_batches(batches)


def test_is_a_webhook_connector() -> None:
    assert isinstance(StripeConnector(), WebhookConnector)


def test_validate_accepts_the_key_with_one_cheap_call(stripe: FakeStripe, connector: StripeConnector) -> None:
    connector.validate(CONFIG)
    [request] = stripe.requests
    assert (request.method, request.path, request.query) == ("GET", "/v1/customers", {"limit": ["1"]})
    assert request.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert "stripe-account" not in request.headers


def test_bad_key_is_invalid_credentials_with_stripes_message_but_not_the_key(
    connector: StripeConnector,
) -> None:
    wrong_key = "rk_test_51WrongKeyNotTheRealOne9876"
    with pytest.raises(SourceError) as error:
        connector.validate({**CONFIG, "stripe_secret_key": wrong_key})
    message = str(error.value)
    assert message.startswith("Invalid credentials: Invalid API Key provided")
    assert wrong_key not in message
    assert "9876" not in message  # not even the masked tail Stripe echoes back


def test_missing_key_and_oauth_are_explained(connector: StripeConnector) -> None:
    with pytest.raises(SourceError, match="Required field 'stripe_secret_key' is missing"):
        connector.validate({"auth_method": "api_key"})
    with pytest.raises(SourceError, match="OAuth connections are not supported"):
        connector.validate({"auth_method": "oauth", "stripe_integration_id": 3})


def test_account_header_is_sent_when_an_account_is_given(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    stripe.add("customers")
    connector.validate({**CONFIG, "stripe_account_id": "acct_1Connected"})
    list(
        connector.read(
            {**CONFIG, "stripe_account_id": "acct_1Connected"}, ReadRequest(TABLES["Customer"].info())
        )
    )
    assert [r.headers.get("stripe-account") for r in stripe.requests] == ["acct_1Connected"] * 2
    assert all(r.headers["stripe-version"] for r in stripe.requests)


def test_discover_lists_every_table_with_columns_keys_and_cursor(connector: StripeConnector) -> None:
    tables = connector.discover(CONFIG)
    names = [table.name for table in tables]
    assert names == POSTHOG_STRIPE_TABLES
    cursors = {"InvoiceItem": "date", "Discount": None, "CustomerBalanceTransaction": None}
    cursors["CustomerPaymentMethod"] = None
    for table in tables:
        columns = {column.name: column for column in table.columns}
        assert table.primary_keys == ["id"]
        assert columns["id"].warehouse_type == "VARCHAR" and not columns["id"].is_nullable
        cursor = cursors.get(table.name, "created")
        if cursor is None:
            assert table.incremental_fields == [] and not table.supports_append
        else:
            assert columns[cursor].warehouse_type == "BIGINT"
            assert [(c.field, c.field_type) for c in table.incremental_fields] == [(cursor, "integer")]
        assert table.description
    by_name = {table.name: table for table in tables}
    assert by_name["Customer"].supports_webhooks
    assert not by_name["BalanceTransaction"].supports_webhooks  # Stripe sends no events for them
    assert {c.name: c.warehouse_type for c in by_name["Customer"].columns}["metadata"] == "JSON"


def test_read_follows_pages_until_has_more_is_false(stripe: FakeStripe, connector: StripeConnector) -> None:
    created = [stripe.add("customers", email=f"c{i}@example.com", metadata={"n": i}) for i in range(5)]
    table = read_all(connector, "Customer")
    assert sorted(table.column("id").to_pylist()) == sorted(c["id"] for c in created)
    pages = stripe.requests_to("/v1/customers")
    assert len(pages) == 3  # 2 + 2 + 1 objects
    assert [r.query.get("starting_after") for r in pages] == [None, [created[3]["id"]], [created[1]["id"]]]
    assert all(r.query["limit"] == ["2"] for r in pages)
    row = next(r for r in table.to_pylist() if r["id"] == created[0]["id"])
    assert row["email"] == "c0@example.com" and row["created"] == created[0]["created"]
    assert json.loads(row["metadata"]) == {"n": 0}


def test_read_selected_columns_only(stripe: FakeStripe, connector: StripeConnector) -> None:
    stripe.add("charges", amount=1250, currency="usd", customer={"id": "cus_expanded", "object": "customer"})
    table = read_all(connector, "Charge", columns=["id", "amount", "customer"])
    assert table.column_names == ["id", "amount", "customer"]
    assert table.to_pylist()[0]["amount"] == 1250
    assert table.to_pylist()[0]["customer"] == "cus_expanded"  # an expanded reference lands as its id


def test_incremental_read_asks_stripe_for_newer_objects_only(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    old = stripe.add("invoices", created=1_700_000_100, total=10)
    new = stripe.add("invoices", created=1_700_000_200, total=20)
    table = read_all(connector, "Invoice", incremental_field="created", cursor=old["created"])
    assert table.column("id").to_pylist() == [new["id"]]
    assert stripe.requests_to("/v1/invoices")[0].query["created[gt]"] == ["1700000100"]
    with pytest.raises(SourceError, match="only by 'created'"):
        read_all(connector, "Invoice", incremental_field="total", cursor=1)


def test_batches_are_bounded_and_typed(stripe: FakeStripe, connector: StripeConnector) -> None:
    for n in range(5):
        stripe.add("balance_transactions", amount=n, exchange_rate=1.5 if n else None, fee_details=[])
    batches = list(connector.read(CONFIG, ReadRequest(TABLES["BalanceTransaction"].info(), batch_rows=2)))
    assert [batch.num_rows for batch in batches] == [2, 2, 1]
    schema = batches[0].schema
    assert (schema.field("amount").type, schema.field("exchange_rate").type) == (pa.int64(), pa.float64())
    assert schema.field("fee_details").type == pa.json_()
    assert list(connector.read(CONFIG, ReadRequest(TABLES["Refund"].info()))) == []


def test_cancelled_subscriptions_are_included(stripe: FakeStripe, connector: StripeConnector) -> None:
    stripe.add("subscriptions", status="active")
    stripe.add("subscriptions", status="canceled")
    assert sorted(read_all(connector, "Subscription").column("status").to_pylist()) == ["active", "canceled"]


def test_rate_limit_is_retried_after_the_advertised_delay(
    stripe: FakeStripe, connector: StripeConnector, sleeps: list[float]
) -> None:
    stripe.add("products", name="Pro")
    stripe.fail_next(2, status=429, retry_after="3")
    table = read_all(connector, "Product")
    assert table.column("name").to_pylist() == ["Pro"]
    assert sleeps == [3.0, 3.0]
    assert len(stripe.requests_to("/v1/products")) == 3


def test_server_errors_back_off_exponentially_then_give_up(
    stripe: FakeStripe, connector: StripeConnector, sleeps: list[float]
) -> None:
    stripe.fail_next(10, status=503, retry_after=None)
    with pytest.raises(SourceError, match="Stripe answered 503 after 5 attempts"):
        connector.validate(CONFIG)
    assert len(stripe.requests) == 5
    assert len(sleeps) == 4
    assert all(0.25 * 2**i <= delay <= 0.5 * 2**i for i, delay in enumerate(sleeps))


def test_client_errors_are_not_retried(
    stripe: FakeStripe, connector: StripeConnector, sleeps: list[float]
) -> None:
    stripe.forbidden.add("customers")
    with pytest.raises(SourceError) as error:
        connector.validate(CONFIG)
    assert "lacks a permission" in str(error.value)
    assert DEFAULT_KEY[-4:] not in str(error.value)
    assert sleeps == [] and len(stripe.requests) == 1


def test_unreachable_server_is_a_source_error(sleeps: list[float]) -> None:
    connector = StripeConnector("http://127.0.0.1:9", max_attempts=2, sleep=sleeps.append)
    with pytest.raises(
        SourceError, match=r"Could not reach Stripe at http://127\.0\.0\.1:9 after 2 attempts"
    ):
        connector.validate(CONFIG)


def test_api_base_comes_from_the_environment(stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_BASE_ENV, stripe.url + "/")
    StripeConnector().validate(CONFIG)
    assert len(stripe.requests) == 1


def test_register_and_delete_webhook(stripe: FakeStripe, connector: StripeConnector) -> None:
    url = "https://example.com/webhooks/stripe/abc/"
    registration = connector.register_webhook(CONFIG, url, ["Customer", "BalanceTransaction", "Subscription"])
    assert registration.success and registration.error is None
    assert registration.webhook_url == url
    assert registration.signing_secret and registration.signing_secret.startswith("whsec_")
    endpoint = stripe.webhook_endpoints[registration.external_id or ""]
    assert endpoint["url"] == url
    assert endpoint["enabled_events"] == webhook_events(["Customer", "Subscription"])
    assert "customer.subscription.deleted" in endpoint["enabled_events"]
    [create] = stripe.requests_to("/v1/webhook_endpoints")
    assert create.headers["content-type"] == "application/x-www-form-urlencoded"
    assert create.headers["idempotency-key"]

    status = connector.webhook_status(CONFIG, registration.external_id or "", ["Customer", "Product"])
    assert status["missing_events"] == webhook_events(["Product"])
    assert (status["external_status"]["exists"], status["external_status"]["status"]) == (True, "enabled")

    assert connector.delete_webhook(CONFIG, registration.external_id or "")
    assert stripe.webhook_endpoints == {}
    assert connector.delete_webhook(CONFIG, registration.external_id or "")  # already gone is gone
    gone = connector.webhook_status(CONFIG, registration.external_id or "", ["Customer"])
    assert gone["external_status"]["exists"] is False and gone["missing_events"] == []


def test_webhook_registration_retried_after_429_creates_one_endpoint(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    stripe.fail_next(1)
    registration = connector.register_webhook(CONFIG, "https://example.com/hook/", ["Charge"])
    assert registration.success
    assert len(stripe.webhook_endpoints) == 1
    first, second = stripe.requests_to("/v1/webhook_endpoints")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"]


def test_webhook_registration_failure_is_reported_not_raised(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    stripe.forbidden.add("webhook_endpoints")
    registration = connector.register_webhook(CONFIG, "https://example.com/hook/", ["Customer"])
    assert not registration.success
    assert registration.error and registration.error.startswith("Could not register the Stripe webhook")
    assert DEFAULT_KEY[-4:] not in registration.error
    assert registration.pending_inputs == ["signing_secret"]
    assert registration.external_id is None and registration.signing_secret is None

    nothing = connector.register_webhook(CONFIG, "https://example.com/hook/", ["BalanceTransaction"])
    assert not nothing.success and "can sync via webhooks" in (nothing.error or "")


def test_posthogs_nested_auth_method_carries_the_key(stripe: FakeStripe, connector: StripeConnector) -> None:
    connector.validate({"auth_method": {"selection": "api_key", "stripe_secret_key": DEFAULT_KEY}})
    assert stripe.requests[-1].headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    with pytest.raises(SourceError, match="OAuth connections are not supported"):
        connector.validate({"auth_method": {"selection": "oauth", "stripe_integration_id": 3}})


def test_tables_listed_per_customer_are_read_through_every_customer(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    first, second, _without_any = (stripe.add("customers") for _ in range(3))
    made = [
        stripe.add_to_customer(first["id"], "balance_transactions", amount=-500, type="adjustment"),
        stripe.add_to_customer(second["id"], "balance_transactions", amount=700, type="applied_to_invoice"),
        stripe.add_to_customer(second["id"], "balance_transactions", amount=100, type="adjustment"),
    ]
    table = read_all(connector, "CustomerBalanceTransaction")
    rows = {row["id"]: row for row in table.to_pylist()}
    assert set(rows) == {obj["id"] for obj in made}
    assert {row["customer"] for row in rows.values()} == {first["id"], second["id"]}
    assert sorted(row["amount"] for row in rows.values()) == [-500, 100, 700]

    method = stripe.add_to_customer(second["id"], "payment_methods", type="card", card={"last4": "4242"})
    (row,) = read_all(connector, "CustomerPaymentMethod").to_pylist()
    assert (row["id"], row["customer"], json.loads(row["card"])) == (
        method["id"],
        second["id"],
        {"last4": "4242"},
    )


def test_webhook_only_tables_read_nothing(stripe: FakeStripe, connector: StripeConnector) -> None:
    assert list(connector.read(CONFIG, ReadRequest(TABLES["Discount"].info()))) == []
    assert stripe.requests == []
    assert TABLES["Discount"].info().webhook_only and TABLES["Discount"].info().supports_webhooks


def test_invoice_items_sync_by_date(stripe: FakeStripe, connector: StripeConnector) -> None:
    old = stripe.add("invoiceitems", amount=1)
    new = stripe.add("invoiceitems", amount=2)
    table = read_all(connector, "InvoiceItem", incremental_field="date", cursor=old["date"])
    assert table.column("id").to_pylist() == [new["id"]]
    assert stripe.requests[-1].query["created[gt]"] == [str(old["date"])]


def test_endpoint_permissions_name_what_the_key_cannot_read(
    stripe: FakeStripe, connector: StripeConnector
) -> None:
    stripe.forbidden.update({"disputes", "customers"})
    answers = connector.endpoint_permissions(
        CONFIG, ["Dispute", "Charge", "CustomerBalanceTransaction", "Discount"]
    )
    assert answers["Charge"] is None and answers["Discount"] is None
    assert "rak_disputes_read" in (answers["Dispute"] or "")
    assert "rak_customers_read" in (answers["CustomerBalanceTransaction"] or ""), "probed through customers"
    assert all(DEFAULT_KEY not in (answer or "") for answer in answers.values())
