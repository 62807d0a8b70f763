"""Stripe: API objects read through Stripe's list protocol, and webhook endpoints that push changes.

The tables are PostHog's 16 Stripe resources under PostHog's names (`Charge`, `Customer`, ...). Each is
one Stripe list endpoint (`GET /v1/charges`, ...; `CustomerBalanceTransaction` and
`CustomerPaymentMethod` are listed per customer, `Discount` only arrives by webhook), newest first,
paged with `limit` + `starting_after` while `has_more`. Incremental reads filter server-side with
`created[gt]=<cursor>` (`created`, or an invoice item's `date`, is a unix timestamp). The column set per table is fixed: the
main scalar fields as themselves, nested objects and arrays as JSON, so a table lands with the
same shape whether it came from a poll or from a webhook (`object_row` serves both).

Requests carry `Stripe-Version` (the column set is written against that version's shapes) and,
when the source names a connected account, `Stripe-Account`. `429` and `5xx` are retried a bounded
number of times with exponential backoff and jitter, honouring `Retry-After`.

The API base URL is `https://api.stripe.com` unless the constructor or the environment variable
`WAREHOUSE_MCP_STRIPE_API_BASE` says otherwise; it is deliberately not a job input, so a source's
config can never send its key to some other host.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import httpx

from warehouse_mcp.embedded.connectors.base import (
    ColumnInfo,
    IncrementalCandidate,
    ReadRequest,
    SourceError,
    TableInfo,
    WebhookRegistration,
)

if TYPE_CHECKING:
    import pyarrow as pa

logger = logging.getLogger(__name__)

DEFAULT_API_BASE = "https://api.stripe.com"
API_BASE_ENV = "WAREHOUSE_MCP_STRIPE_API_BASE"
STRIPE_VERSION = "2024-06-20"
PAGE_SIZE = 100  # Stripe's maximum `limit`
ROWS_PER_BATCH = 1_000  # at most this many rows per record batch (cancel is checked between batches)
MAX_ATTEMPTS = 5
MAX_RETRY_DELAY_SECONDS = 30.0
TIMEOUT_SECONDS = 30.0
INCREMENTAL_FIELD = "created"

# Stripe keys (secret, restricted, publishable), whole or masked as Stripe echoes them in errors.
_KEY_PATTERN = re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9*]+")

# Stripe's own type names, and the DuckDB type each lands as.
_WAREHOUSE_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "object": "JSON",
    "array": "JSON",
}


@dataclass(frozen=True)
class StripeTable:
    """One synced Stripe resource, under PostHog's name: where it is listed, its object type, its fixed columns.

    `path` is the list endpoint; `/v1/customers/{id}/...` resources are listed per customer (`nested`), and a
    resource with no list endpoint (`path` None) is filled by webhooks only. `incremental_field` is the
    creation timestamp the list filters on (`created[gt]`), None for resources read whole every time.
    """

    name: str
    path: str | None
    object_type: str
    description: str
    columns: tuple[tuple[str, str], ...]  # (field, Stripe type); `id` first
    events: tuple[str, ...] = ()  # webhook events that carry this object
    list_params: Mapping[str, str] = field(default_factory=dict)
    incremental_field: str | None = INCREMENTAL_FIELD
    nested: bool = False

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def webhook_only(self) -> bool:
        return self.path is None

    def info(self) -> TableInfo:
        cursor = self.incremental_field
        # PostHog's label and type for Stripe's creation timestamps (stripe/settings.py INCREMENTAL_FIELDS).
        label = "created_at" if cursor == INCREMENTAL_FIELD else cursor
        return TableInfo(
            name=self.name,
            columns=[
                ColumnInfo(
                    name=name,
                    data_type=stripe_type,
                    is_nullable=name not in ("id", cursor),
                    warehouse_type=_WAREHOUSE_TYPES[stripe_type],
                )
                for name, stripe_type in self.columns
            ],
            primary_keys=["id"],
            incremental_fields=[
                IncrementalCandidate(cursor, "integer", nullable=False, label=label, display_type="datetime")
            ]
            if cursor
            else [],
            supports_incremental=cursor is not None,
            supports_append=cursor is not None,
            supports_webhooks=bool(self.events),
            webhook_only=self.webhook_only,
            description=self.description,
        )


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """`"id:string created:integer ..."` → ((name, type), ...): keeps the table definitions readable."""
    return tuple((name, kind) for name, kind in (item.split(":") for item in spec.split()))


_COMMON = "id:string created:integer livemode:boolean"

TABLES: dict[str, StripeTable] = {
    table.name: table
    for table in (
        StripeTable(
            "BalanceTransaction",
            "/v1/balance_transactions",
            "balance_transaction",
            "Movements of funds through the Stripe balance: charges, refunds, fees, payouts.",
            _cols(
                "id:string created:integer amount:integer fee:integer net:integer currency:string "
                "type:string status:string reporting_category:string available_on:integer "
                "description:string source:string exchange_rate:number fee_details:array"
            ),
        ),
        StripeTable(
            "Charge",
            "/v1/charges",
            "charge",
            "Attempts to move money from a card or other payment method.",
            _cols(
                f"{_COMMON} amount:integer amount_captured:integer amount_refunded:integer currency:string "
                "customer:string description:string invoice:string payment_intent:string status:string "
                "paid:boolean captured:boolean refunded:boolean disputed:boolean failure_code:string "
                "failure_message:string balance_transaction:string receipt_email:string "
                "billing_details:object outcome:object payment_method_details:object metadata:object"
            ),
            events=(
                "charge.captured",
                "charge.expired",
                "charge.failed",
                "charge.pending",
                "charge.refunded",
                "charge.succeeded",
                "charge.updated",
            ),
        ),
        StripeTable(
            "Coupon",
            "/v1/coupons",
            "coupon",
            "Discounts that can be applied to customers, subscriptions and invoices.",
            _cols(
                f"{_COMMON} name:string amount_off:integer percent_off:number currency:string duration:string "
                "duration_in_months:integer max_redemptions:integer redeem_by:integer times_redeemed:integer "
                "valid:boolean metadata:object"
            ),
            events=("coupon.created", "coupon.deleted", "coupon.updated"),
        ),
        StripeTable(
            "CreditNote",
            "/v1/credit_notes",
            "credit_note",
            "Adjustments that reduce the amount of a finalized invoice.",
            _cols(
                f"{_COMMON} amount:integer currency:string customer:string invoice:string memo:string "
                "number:string reason:string status:string type:string subtotal:integer total:integer "
                "voided_at:integer lines:object metadata:object"
            ),
            events=("credit_note.created", "credit_note.updated", "credit_note.voided"),
        ),
        StripeTable(
            "Customer",
            "/v1/customers",
            "customer",
            "The people and companies you charge, with their contact and billing details.",
            _cols(
                f"{_COMMON} email:string name:string description:string phone:string currency:string "
                "balance:integer delinquent:boolean default_source:string invoice_prefix:string "
                "tax_exempt:string address:object shipping:object invoice_settings:object "
                "preferred_locales:array metadata:object"
            ),
            events=("customer.created", "customer.deleted", "customer.updated"),
        ),
        StripeTable(
            "CustomerBalanceTransaction",
            "/v1/customers/{customer}/balance_transactions",
            "customer_balance_transaction",
            "Changes to customers' credit balances, listed per customer.",
            _cols(
                f"{_COMMON} amount:integer currency:string customer:string credit_note:string "
                "description:string ending_balance:integer invoice:string type:string metadata:object"
            ),
            incremental_field=None,
            nested=True,
        ),
        StripeTable(
            "CustomerPaymentMethod",
            "/v1/customers/{customer}/payment_methods",
            "payment_method",
            "The payment methods attached to customers, listed per customer.",
            _cols(
                f"{_COMMON} customer:string type:string billing_details:object card:object metadata:object"
            ),
            incremental_field=None,
            nested=True,
        ),
        StripeTable(
            "Discount",
            None,
            "discount",
            "Coupons applied to customers and subscriptions; Stripe lists them nowhere, so only webhooks fill it.",
            _cols(
                "id:string customer:string subscription:string invoice:string invoice_item:string "
                "promotion_code:string checkout_session:string start:integer end:integer coupon:object"
            ),
            events=("customer.discount.created", "customer.discount.deleted", "customer.discount.updated"),
            incremental_field=None,
        ),
        StripeTable(
            "Dispute",
            "/v1/disputes",
            "dispute",
            "Customers' challenges of charges with their card issuers.",
            _cols(
                f"{_COMMON} amount:integer currency:string charge:string payment_intent:string reason:string "
                "status:string is_charge_refundable:boolean balance_transactions:array evidence:object "
                "evidence_details:object metadata:object"
            ),
            events=(
                "charge.dispute.closed",
                "charge.dispute.created",
                "charge.dispute.funds_reinstated",
                "charge.dispute.funds_withdrawn",
                "charge.dispute.updated",
            ),
        ),
        StripeTable(
            "Invoice",
            "/v1/invoices",
            "invoice",
            "Statements of amounts owed by a customer, one-off or generated by subscriptions.",
            _cols(
                f"{_COMMON} customer:string subscription:string status:string number:string currency:string "
                "amount_due:integer amount_paid:integer amount_remaining:integer subtotal:integer "
                "total:integer tax:integer billing_reason:string collection_method:string paid:boolean "
                "attempted:boolean period_start:integer period_end:integer due_date:integer "
                "hosted_invoice_url:string charge:string payment_intent:string lines:object "
                "discounts:array status_transitions:object metadata:object"
            ),
            events=(
                "invoice.created",
                "invoice.deleted",
                "invoice.finalization_failed",
                "invoice.finalized",
                "invoice.marked_uncollectible",
                "invoice.paid",
                "invoice.payment_action_required",
                "invoice.payment_failed",
                "invoice.payment_succeeded",
                "invoice.sent",
                "invoice.updated",
                "invoice.voided",
            ),
        ),
        StripeTable(
            "InvoiceItem",
            "/v1/invoiceitems",
            "invoiceitem",
            "Line items added to a customer's upcoming or draft invoice.",
            _cols(
                "id:string date:integer livemode:boolean amount:integer currency:string customer:string "
                "description:string discountable:boolean invoice:string subscription:string "
                "proration:boolean quantity:integer unit_amount:integer period:object price:object "
                "metadata:object"
            ),
            events=("invoiceitem.created", "invoiceitem.deleted"),
            # Invoice items carry their creation time as `date` (PostHog's cursor), filtered as `created`.
            incremental_field="date",
        ),
        StripeTable(
            "Payout",
            "/v1/payouts",
            "payout",
            "Transfers of funds from the Stripe balance to bank accounts or cards.",
            _cols(
                f"{_COMMON} amount:integer currency:string arrival_date:integer automatic:boolean "
                "balance_transaction:string description:string destination:string failure_code:string "
                "failure_message:string method:string status:string type:string "
                "statement_descriptor:string metadata:object"
            ),
            events=(
                "payout.canceled",
                "payout.created",
                "payout.failed",
                "payout.paid",
                "payout.reconciliation_completed",
                "payout.updated",
            ),
        ),
        StripeTable(
            "Price",
            "/v1/prices",
            "price",
            "How much and how often to charge for products.",
            _cols(
                f"{_COMMON} product:string active:boolean currency:string unit_amount:integer "
                "unit_amount_decimal:string type:string billing_scheme:string nickname:string "
                "lookup_key:string tax_behavior:string recurring:object metadata:object"
            ),
            events=("price.created", "price.deleted", "price.updated"),
        ),
        StripeTable(
            "Product",
            "/v1/products",
            "product",
            "The goods and services you sell.",
            _cols(
                f"{_COMMON} updated:integer name:string description:string active:boolean type:string "
                "default_price:string unit_label:string url:string images:array metadata:object"
            ),
            events=("product.created", "product.deleted", "product.updated"),
        ),
        StripeTable(
            "Refund",
            "/v1/refunds",
            "refund",
            "Money returned to customers for previous charges.",
            _cols(
                "id:string created:integer amount:integer currency:string charge:string payment_intent:string "
                "reason:string status:string balance_transaction:string receipt_number:string metadata:object"
            ),
            events=("charge.refund.updated", "refund.created", "refund.failed", "refund.updated"),
        ),
        StripeTable(
            "Subscription",
            "/v1/subscriptions",
            "subscription",
            "Recurring charges of customers for prices, including cancelled ones.",
            _cols(
                f"{_COMMON} customer:string status:string currency:string cancel_at_period_end:boolean "
                "cancel_at:integer canceled_at:integer ended_at:integer start_date:integer "
                "current_period_start:integer current_period_end:integer trial_start:integer "
                "trial_end:integer collection_method:string latest_invoice:string "
                "default_payment_method:string items:object plan:object discount:object metadata:object"
            ),
            events=(
                "customer.subscription.created",
                "customer.subscription.deleted",
                "customer.subscription.paused",
                "customer.subscription.pending_update_applied",
                "customer.subscription.pending_update_expired",
                "customer.subscription.resumed",
                "customer.subscription.trial_will_end",
                "customer.subscription.updated",
            ),
            # Stripe leaves cancelled subscriptions out of the list unless asked for every status.
            list_params={"status": "all"},
        ),
    )
}

TABLE_FOR_OBJECT: dict[str, StripeTable] = {table.object_type: table for table in TABLES.values()}


def api_base() -> str:
    return (os.environ.get(API_BASE_ENV) or DEFAULT_API_BASE).rstrip("/")


def object_row(
    table: StripeTable, obj: Mapping[str, Any], columns: list[str] | None = None
) -> dict[str, Any]:
    """One Stripe object as a row of `table`: scalars as themselves, nested values as JSON text."""
    kinds = dict(table.columns)
    return {name: _cell(obj.get(name), kinds[name]) for name in columns or table.column_names}


def arrow_schema(table: StripeTable, columns: list[str] | None = None) -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "boolean": pa.bool_(),
        "object": pa.json_(),
        "array": pa.json_(),
    }
    kinds = dict(table.columns)
    return pa.schema(
        [pa.field(name, types[kinds[name]], nullable=name != "id") for name in columns or table.column_names]
    )


def record_batch(
    table: StripeTable, rows: list[dict[str, Any]], columns: list[str] | None = None
) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_pylist(rows, schema=arrow_schema(table, columns))


def _cell(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind in ("object", "array"):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if kind == "string":
        # An expanded reference (`customer: {...}`) lands as the id it stands for.
        if isinstance(value, Mapping):
            return value.get("id")
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, bool) and kind in ("integer", "number"):
        return None
    if kind == "integer":
        return int(value) if isinstance(value, int | float) else None
    if kind == "number":
        return float(value) if isinstance(value, int | float) else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    return value


def redact(text: str, secret: str | None = None) -> str:
    """`text` with the key (whole or as Stripe masks it) removed."""
    if secret:
        text = text.replace(secret, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)


class StripeConnector:
    source_type = "Stripe"

    def __init__(
        self,
        api_base: str | None = None,
        *,
        page_size: int = PAGE_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._api_base = api_base.rstrip("/") if api_base else None
        self.page_size = page_size
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._timeout = timeout

    @property
    def api_base(self) -> str:
        # Read per call, not at construction: the registry may build the connector before a test
        # (or the operator) sets the variable.
        return self._api_base or api_base()

    # Connector protocol

    def validate(self, config: Mapping[str, Any]) -> None:
        with self._client(config) as client:
            self._request(client, config, "GET", "/v1/customers", params={"limit": 1})

    def discover(self, config: Mapping[str, Any]) -> list[TableInfo]:
        _secret_key(config)
        return [TABLES[name].info() for name in sorted(TABLES)]

    def read(self, config: Mapping[str, Any], request: ReadRequest) -> Iterator[pa.RecordBatch]:
        table = TABLES.get(request.table.name)
        if table is None:
            raise SourceError(
                f"Stripe has no table '{request.table.name}'. Tables: {', '.join(sorted(TABLES))}."
            )
        columns = request.columns or table.column_names
        unknown = sorted(set(columns) - set(table.column_names))
        if unknown:
            raise SourceError(f"Unknown columns for Stripe table '{table.name}': {', '.join(unknown)}")
        if table.path is None:
            return  # webhook-only: Stripe lists these nowhere, so a backfill finds nothing to read
        params: dict[str, Any] = {"limit": self.page_size, **table.list_params}
        if request.incremental_field and request.cursor is not None:
            if request.incremental_field != table.incremental_field:
                raise SourceError(
                    f"Stripe's {table.name} syncs incrementally only by "
                    f"'{table.incremental_field or 'nothing'}', not '{request.incremental_field}'."
                )
            params["created[gt]"] = _cursor_seconds(request.cursor)
        batch_rows = max(1, min(request.batch_rows, ROWS_PER_BATCH))
        rows: list[dict[str, Any]] = []
        with self._client(config) as client:
            for page in self._table_pages(client, config, table, params):
                rows.extend(object_row(table, obj, columns) for obj in page)
                while len(rows) >= batch_rows:
                    yield record_batch(table, rows[:batch_rows], columns)
                    rows = rows[batch_rows:]
        if rows:
            yield record_batch(table, rows, columns)

    def endpoint_permissions(self, config: Mapping[str, Any], names: list[str]) -> dict[str, str | None]:
        """Per table, why the key cannot read it (Stripe's 403), else None — PostHog's per-endpoint probe.

        Tables listed per customer are probed through the customers list; webhook-only ones need no read.
        Other failures are not permission problems: the table is reported readable.
        """
        answers: dict[str, str | None] = {}
        with self._client(config) as client:
            for name in names:
                table = TABLES.get(name)
                answers[name] = None
                if table is None or table.path is None:
                    continue
                path = "/v1/customers" if table.nested else table.path
                try:
                    self._request(client, config, "GET", path, params={"limit": 1})
                except _Forbidden as exc:
                    answers[name] = str(exc)
                except SourceError:
                    pass
        return answers

    # WebhookConnector protocol

    def register_webhook(self, config: Mapping[str, Any], url: str, tables: list[str]) -> WebhookRegistration:
        events = webhook_events(tables)
        if not events:
            return WebhookRegistration(
                success=False,
                webhook_url=url,
                error=f"None of these Stripe tables can sync via webhooks: {', '.join(tables) or '(none)'}.",
            )
        form = [("url", url), ("api_version", STRIPE_VERSION), ("description", "warehouse-mcp data sync")]
        form += [("enabled_events[]", event) for event in events]
        try:
            with self._client(config) as client:
                endpoint = self._request(
                    client,
                    config,
                    "POST",
                    "/v1/webhook_endpoints",
                    data=form,
                    idempotency_key=str(uuid.uuid4()),
                )
        except SourceError as exc:
            return WebhookRegistration(
                success=False,
                webhook_url=url,
                error=(
                    f"Could not register the Stripe webhook: {exc} Give the key write access to Webhook "
                    "Endpoints, or add this URL as an endpoint in Stripe's dashboard and enter its signing "
                    "secret with update_webhook_inputs."
                ),
                pending_inputs=["signing_secret"],
            )
        logger.info("registered Stripe webhook endpoint %s for %d events", endpoint.get("id"), len(events))
        return WebhookRegistration(
            success=True,
            webhook_url=url,
            external_id=endpoint.get("id"),
            signing_secret=endpoint.get("secret"),
        )

    def delete_webhook(self, config: Mapping[str, Any], external_id: str) -> bool:
        """Delete the endpoint; True when it is gone (also when Stripe no longer had it).

        Raises SourceError when Stripe refuses (bad key, missing permission, outage).
        """
        with self._client(config) as client:
            try:
                self._request(client, config, "DELETE", f"/v1/webhook_endpoints/{external_id}")
            except _NotFound:
                return True
        return True

    def webhook_status(
        self, config: Mapping[str, Any], external_id: str, tables: list[str]
    ) -> dict[str, Any]:
        """`{external_status, missing_events}` of an endpoint as Stripe reports it.

        `external_status` has the fields of PostHog's ExternalWebhookInfo; a gone endpoint or a
        failed lookup is `exists: false` (with the `error`), and then no events are reported missing.
        """
        try:
            with self._client(config) as client:
                endpoint = self._request(client, config, "GET", f"/v1/webhook_endpoints/{external_id}")
        except _NotFound:
            return {"external_status": _external_status(exists=False), "missing_events": []}
        except SourceError as exc:
            return {"external_status": _external_status(exists=False, error=str(exc)), "missing_events": []}
        enabled = list(endpoint.get("enabled_events") or [])
        missing = (
            [] if "*" in enabled else [event for event in webhook_events(tables) if event not in enabled]
        )
        created = endpoint.get("created")
        status = _external_status(
            exists=True,
            url=endpoint.get("url"),
            enabled_events=enabled,
            status=endpoint.get("status"),
            description=endpoint.get("description"),
            created_at=datetime.fromtimestamp(created, UTC).isoformat() if isinstance(created, int) else None,
        )
        return {"external_status": status, "missing_events": missing}

    # HTTP

    def _client(self, config: Mapping[str, Any]) -> httpx.Client:
        headers = {
            "Authorization": f"Bearer {_secret_key(config)}",
            "Stripe-Version": STRIPE_VERSION,
            "User-Agent": "warehouse-mcp",
        }
        account = str(config.get("stripe_account_id") or "").strip()
        if account:
            headers["Stripe-Account"] = account
        return httpx.Client(base_url=self.api_base, headers=headers, timeout=self._timeout)

    def _table_pages(
        self, client: httpx.Client, config: Mapping[str, Any], table: StripeTable, params: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        assert table.path is not None
        if not table.nested:
            yield from self._pages(client, config, table.path, params)
            return
        for customers in self._pages(client, config, "/v1/customers", {"limit": self.page_size}):
            for customer in customers:
                path = table.path.format(customer=customer["id"])
                for page in self._pages(client, config, path, params):
                    # Listed under a customer: the objects name it (payment methods may not).
                    yield [{"customer": customer["id"], **obj} for obj in page]

    def _pages(
        self, client: httpx.Client, config: Mapping[str, Any], path: str, params: dict[str, Any]
    ) -> Iterator[list[dict[str, Any]]]:
        params = dict(params)
        while True:
            page = self._request(client, config, "GET", path, params=params)
            objects = page.get("data") or []
            if objects:
                yield objects
            if not page.get("has_more") or not objects:
                return
            params["starting_after"] = objects[-1]["id"]

    def _request(
        self,
        client: httpx.Client,
        config: Mapping[str, Any],
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: list[tuple[str, str]] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        key = _secret_key(config)
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = client.request(
                    method,
                    path,
                    params=params,
                    content=urlencode(data) if data is not None else None,
                    headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
                    if data
                    else headers,
                )
            except httpx.TransportError as exc:
                if last:
                    raise SourceError(
                        f"Could not reach Stripe at {self.api_base} after {attempt} attempts: {redact(str(exc), key)}"
                    ) from None
                self._sleep(_backoff(attempt))
                continue
            if response.is_success:
                return response.json()
            if not last and _should_retry(response):
                delay = _retry_after(response)
                self._sleep(delay if delay is not None else _backoff(attempt))
                logger.info("Stripe answered %s on %s %s; retrying", response.status_code, method, path)
                continue
            raise _error(response, key, attempt)
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt


class _NotFound(SourceError):
    pass


class _Forbidden(SourceError):
    pass


def _external_status(
    *,
    exists: bool,
    url: str | None = None,
    enabled_events: list[str] | None = None,
    status: str | None = None,
    description: str | None = None,
    created_at: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    return {
        "exists": exists,
        "url": url,
        "enabled_events": enabled_events,
        "status": status,
        "description": description,
        "created_at": created_at,
        "error": error,
    }


def webhook_events(tables: list[str]) -> list[str]:
    """The Stripe events that carry objects of `tables`, sorted and unique."""
    return sorted({event for name in tables if name in TABLES for event in TABLES[name].events})


def _secret_key(config: Mapping[str, Any]) -> str:
    """The API key, from PostHog's nested `auth_method: {selection, stripe_secret_key}` or the flat legacy shape."""
    auth = config.get("auth_method")
    nested = auth if isinstance(auth, Mapping) else {}
    selection = nested.get("selection") if isinstance(auth, Mapping) else auth
    if selection == "oauth":
        raise SourceError(
            "Stripe OAuth connections are not supported by the embedded backend: choose auth_method "
            "'api_key' and enter a restricted API key (rk_live_...)."
        )
    key = str(nested.get("stripe_secret_key") or config.get("stripe_secret_key") or "").strip()
    if not key:
        raise SourceError("Invalid source config: Required field 'stripe_secret_key' is missing")
    return key


def _cursor_seconds(cursor: Any) -> int:
    try:
        return int(cursor)
    except (TypeError, ValueError):
        raise SourceError(
            f"The saved cursor {cursor!r} is not a unix timestamp; resync the table to start over."
        ) from None


def _should_retry(response: httpx.Response) -> bool:
    verdict = response.headers.get("Stripe-Should-Retry")
    if verdict in ("true", "false"):
        return verdict == "true"
    return response.status_code == 429 or response.status_code >= 500


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_DELAY_SECONDS)


def _backoff(attempt: int) -> float:
    """0.5 s, 1 s, 2 s, ... capped, each scaled by a random factor in [0.5, 1] (jitter)."""
    return min(MAX_RETRY_DELAY_SECONDS, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _error(response: httpx.Response, key: str, attempts: int) -> SourceError:
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:200] or response.reason_phrase
    message = redact(message, key)
    status = response.status_code
    if status == 401:
        return SourceError(f"Invalid credentials: {message}")
    if status == 403:
        return _Forbidden(
            f"The Stripe key lacks a permission: {message} Grant it in Stripe's dashboard (Developers → API keys)."
        )
    if status == 404:
        return _NotFound(f"Stripe has no such object: {message}")
    if status == 429:
        return SourceError(f"Stripe kept rate-limiting after {attempts} attempts: {message} Try again later.")
    if status >= 500:
        return SourceError(f"Stripe answered {status} after {attempts} attempts: {message}")
    return SourceError(f"Stripe refused the request ({status}): {message}")
