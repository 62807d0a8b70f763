"""A local stand-in for Stripe's REST API, on loopback, speaking the documented protocol.

What it does like Stripe: bearer (or basic) key auth with Stripe's 401 error JSON; list endpoints
newest first with `limit` (1..100), `starting_after`/`ending_before`, `has_more` and `created[...]`
filters; subscriptions leave out cancelled ones unless `status=all`; per-customer lists
(`/v1/customers/{id}/balance_transactions`, `/v1/customers/{id}/payment_methods`); form-encoded
`/v1/webhook_endpoints` (create returns the `whsec_` secret once; list, retrieve, update, delete);
`Idempotency-Key` replays on POST; `Stripe-Account` accepted (and recorded). Test switches: answer
the next N requests with an error (429 + Retry-After by default), forbid a resource (403), and
`emit()` an event to every matching webhook endpoint, signed the way Stripe signs.

    with FakeStripe() as stripe:
        stripe.add("customers", email="a@example.com")
        connector = StripeConnector(stripe.url)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx

DEFAULT_KEY = "rk_test_51FakeKeyForWarehouseMcpTests0123"
# PostHog's 16 Stripe resources, under PostHog's names (its stripe/settings.py ENDPOINTS), in its order.
POSTHOG_STRIPE_TABLES = [
    "BalanceTransaction",
    "Charge",
    "Coupon",
    "CreditNote",
    "Customer",
    "CustomerBalanceTransaction",
    "CustomerPaymentMethod",
    "Discount",
    "Dispute",
    "Invoice",
    "InvoiceItem",
    "Payout",
    "Price",
    "Product",
    "Refund",
    "Subscription",
]

# table (list endpoint) → (object type, id prefix)
RESOURCES: dict[str, tuple[str, str]] = {
    "balance_transactions": ("balance_transaction", "txn"),
    "charges": ("charge", "ch"),
    "coupons": ("coupon", "co"),
    "credit_notes": ("credit_note", "cn"),
    "customers": ("customer", "cus"),
    "disputes": ("dispute", "dp"),
    "invoiceitems": ("invoiceitem", "ii"),
    "invoices": ("invoice", "in"),
    "payment_intents": ("payment_intent", "pi"),
    "payouts": ("payout", "po"),
    "prices": ("price", "price"),
    "products": ("product", "prod"),
    "refunds": ("refund", "re"),
    "subscriptions": ("subscription", "sub"),
}
# lists under one customer (`/v1/customers/{id}/<name>`) → (object type, id prefix)
CUSTOMER_RESOURCES: dict[str, tuple[str, str]] = {
    "balance_transactions": ("customer_balance_transaction", "cbtxn"),
    "payment_methods": ("payment_method", "pm"),
}
# The resources whose objects carry their creation time as `date` (and are filtered as `created`).
DATED = frozenset({"invoiceitems"})

FILTER_OPS = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    form: dict[str, list[str]] = field(default_factory=dict)


class Poster(Protocol):
    """What `post_event` needs of a client: httpx.Client, or Starlette's TestClient for an in-process app."""

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Any: ...


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"message": message, "type": "invalid_request_error"}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """`Stripe-Signature` for `payload`: `t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def make_event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An event envelope as Stripe sends it."""
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


def post_event(
    url: str,
    event: dict[str, Any],
    secret: str | None,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    client: Poster | None = None,
) -> Any:
    """POST `event` to a receiver the way Stripe does. `signature` overrides the header (None + no secret = unsigned)."""
    payload = json.dumps(event, indent=2).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    if signature is not None:
        headers["Stripe-Signature"] = signature
    elif secret is not None:
        headers["Stripe-Signature"] = signature_header(payload, secret, timestamp)
    if client is not None:
        return client.post(url, content=payload, headers=headers)
    with httpx.Client(timeout=10) as own:
        return own.post(url, content=payload, headers=headers)


class FakeStripe:
    def __init__(self, api_key: str = DEFAULT_KEY) -> None:
        self.api_key = api_key
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in RESOURCES}
        self.customer_objects: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in CUSTOMER_RESOURCES
        }
        self.webhook_endpoints: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.forbidden: set[str] = set()  # resources answered with 403
        self._failures: deque[tuple[int, str | None]] = deque()
        self._idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self._sequence = itertools.count(1)
        self._order: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeStripe is not running: call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeStripe:
        fake = self

        class Handler(_Handler):
            stripe = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # test switches and data

    def fail_next(self, count: int, status: int = 429, retry_after: str | None = "0") -> None:
        """Answer the next `count` requests with `status` (429 + `Retry-After` by default)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def add(self, table: str, **fields: Any) -> dict[str, Any]:
        """Create an object in `table` (id and `created` generated unless given); returns it."""
        with self._lock:
            obj = self._new(*RESOURCES[table], fields)
            if table in DATED:
                obj.setdefault("date", obj["created"])
            self.objects[table][obj["id"]] = obj
            return dict(obj)

    def add_to_customer(self, customer_id: str, table: str, **fields: Any) -> dict[str, Any]:
        """Create an object listed under a customer (`table` of CUSTOMER_RESOURCES); returns it."""
        with self._lock:
            obj = self._new(*CUSTOMER_RESOURCES[table], {"customer": customer_id, **fields})
            self.customer_objects[table][obj["id"]] = obj
            return dict(obj)

    def _new(self, object_type: str, prefix: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new object with the next id and `created` (the caller holds the lock)."""
        number = next(self._sequence)
        obj = {
            "id": f"{prefix}_{number:06d}{secrets.token_hex(4)}",
            "object": object_type,
            "created": 1_700_000_000 + number,
            "livemode": False,
            "metadata": {},
            **fields,
        }
        self._order[obj["id"]] = number
        return obj

    def update(self, table: str, object_id: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self.objects[table][object_id].update(fields)
            return dict(self.objects[table][object_id])

    def remove(self, table: str, object_id: str) -> dict[str, Any]:
        with self._lock:
            return self.objects[table].pop(object_id)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == path]

    def emit(
        self, event_type: str, obj: dict[str, Any], *, event_id: str | None = None
    ) -> list[httpx.Response]:
        """Deliver one event to every enabled endpoint subscribed to it, as Stripe would."""
        event = make_event(event_type, obj, event_id=event_id)
        with self._lock:
            targets = [
                endpoint
                for endpoint in self.webhook_endpoints.values()
                if endpoint["status"] == "enabled"
                and ("*" in endpoint["enabled_events"] or event_type in endpoint["enabled_events"])
            ]
        return [post_event(endpoint["url"], event, endpoint["secret"]) for endpoint in targets]

    # request handling (called by the HTTP handler thread)

    def handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append(request)
            if self._failures:
                status, retry_after = self._failures.popleft()
                headers = {"Retry-After": retry_after} if retry_after is not None else {}
                kind = "Too many requests hit the API too quickly." if status == 429 else "An error occurred."
                return status, {"error": {"message": kind, "type": "api_error"}}, headers
            try:
                self._authenticate(request.headers.get("authorization", ""))
                idempotency_key = request.headers.get("idempotency-key")
                if request.method == "POST" and idempotency_key in self._idempotent:
                    status, body = self._idempotent[idempotency_key]
                    return status, body, {"Idempotent-Replayed": "true"}
                status, body = self._route(request)
                if request.method == "POST" and idempotency_key:
                    self._idempotent[idempotency_key] = (status, body)
                return status, body, {}
            except StripeError as exc:
                return exc.status, exc.body, {}

    def _authenticate(self, authorization: str) -> None:
        scheme, _, credential = authorization.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            key = base64.b64decode(credential).decode().split(":", 1)[0]
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
            )
        if not hmac.compare_digest(key, self.api_key):
            masked = f"{key[:8]}{'*' * max(len(key) - 12, 0)}{key[-4:]}"
            raise StripeError(401, f"Invalid API Key provided: {masked}")

    def _route(self, request: RecordedRequest) -> tuple[int, dict[str, Any]]:
        parts = request.path.strip("/").split("/")
        if parts[:1] != ["v1"] or len(parts) < 2:
            raise StripeError(404, f"Unrecognized request URL ({request.method}: {request.path}).")
        resource = parts[1]
        if resource in self.forbidden:
            raise self._forbidden(resource)
        if resource == "balance" and request.method == "GET":
            return 200, {
                "object": "balance",
                "available": [{"amount": 0, "currency": "usd"}],
                "livemode": False,
            }
        if resource in RESOURCES and len(parts) == 2 and request.method == "GET":
            return 200, self._list(resource, request)
        if resource == "customers" and len(parts) == 4 and parts[3] in CUSTOMER_RESOURCES:
            if request.method != "GET":
                raise StripeError(405, f"Unrecognized request URL ({request.method}: {request.path}).")
            if parts[3] in self.forbidden:
                raise self._forbidden(parts[3])
            self._retrieve(self.objects["customers"], "customer", parts[2])
            listed = [o for o in self.customer_objects[parts[3]].values() if o["customer"] == parts[2]]
            return 200, self._page(
                listed, f"/v1/customers/{parts[2]}/{parts[3]}", CUSTOMER_RESOURCES[parts[3]][0], request
            )
        if resource in RESOURCES and len(parts) == 3 and request.method == "GET":
            return 200, self._retrieve(self.objects[resource], RESOURCES[resource][0], parts[2])
        if resource == "webhook_endpoints":
            return self._webhook_endpoints(request, parts[2] if len(parts) > 2 else None)
        raise StripeError(404, f"Unrecognized request URL ({request.method}: {request.path}).")

    def _forbidden(self, resource: str) -> StripeError:
        return StripeError(
            403,
            f"The provided key '{self.api_key[:8]}***{self.api_key[-4:]}' does not have the required "
            f"permissions for this endpoint. Having the 'rak_{resource}_read' permission would allow this "
            "request to continue.",
        )

    def _list(self, resource: str, request: RecordedRequest) -> dict[str, Any]:
        query = {key: values[-1] for key, values in request.query.items()}
        objects = list(self.objects[resource].values())
        if resource == "subscriptions" and query.get("status") != "all":
            wanted = query.get("status")
            objects = [
                o for o in objects if (o.get("status") == wanted if wanted else o.get("status") != "canceled")
            ]
        return self._page(objects, f"/v1/{resource}", RESOURCES[resource][0], request)

    def _page(
        self, found: list[dict[str, Any]], url: str, object_type: str, request: RecordedRequest
    ) -> dict[str, Any]:
        """One page of a list, newest first, with Stripe's `limit`, cursor and `created` filters."""
        query = {key: values[-1] for key, values in request.query.items()}
        limit = _int_param(query, "limit", 10)
        if not 1 <= limit <= 100:
            raise StripeError(
                400, "This value must be greater than or equal to 1 and less than 100.", param="limit"
            )
        objects = sorted(found, key=lambda o: (o["created"], self._order[o["id"]]), reverse=True)
        if "created" in query:
            objects = [o for o in objects if o["created"] == _int_param(query, "created", 0)]
        for op, test in FILTER_OPS.items():
            if f"created[{op}]" in query:
                bound = _int_param(query, f"created[{op}]", 0)
                objects = [o for o in objects if test(o["created"], bound)]
        ids = [o["id"] for o in objects]
        if "ending_before" in query:
            before = objects[: self._position(ids, query["ending_before"], object_type)]
            page, has_more = before[-limit:], len(before) > limit
        else:
            if "starting_after" in query:
                objects = objects[self._position(ids, query["starting_after"], object_type) + 1 :]
            page, has_more = objects[:limit], len(objects) > limit
        return {"object": "list", "url": url, "has_more": has_more, "data": page}

    @staticmethod
    def _position(ids: list[str], object_id: str, object_type: str) -> int:
        try:
            return ids.index(object_id)
        except ValueError:
            raise StripeError(400, f"No such {object_type}: '{object_id}'", code="resource_missing") from None

    @staticmethod
    def _retrieve(objects: dict[str, dict[str, Any]], object_type: str, object_id: str) -> dict[str, Any]:
        if object_id not in objects:
            raise StripeError(404, f"No such {object_type}: '{object_id}'", code="resource_missing")
        return objects[object_id]

    def _webhook_endpoints(
        self, request: RecordedRequest, endpoint_id: str | None
    ) -> tuple[int, dict[str, Any]]:
        if endpoint_id is None and request.method == "GET":
            listed = [_public_endpoint(e) for e in reversed(self.webhook_endpoints.values())]
            return 200, {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False, "data": listed}
        if endpoint_id is None and request.method == "POST":
            url = _form_value(request.form, "url")
            events = request.form.get("enabled_events[]") or []
            if not url:
                raise StripeError(400, "Missing required param: url.", param="url")
            if not events:
                raise StripeError(400, "Missing required param: enabled_events.", param="enabled_events")
            endpoint: dict[str, Any] = {
                "id": f"we_{secrets.token_hex(12)}",
                "object": "webhook_endpoint",
                "api_version": _form_value(request.form, "api_version"),
                "created": int(time.time()),
                "description": _form_value(request.form, "description"),
                "enabled_events": events,
                "livemode": False,
                "metadata": {},
                "secret": f"whsec_{secrets.token_urlsafe(24)}",
                "status": "enabled",
                "url": url,
            }
            self.webhook_endpoints[endpoint["id"]] = endpoint
            return 200, dict(endpoint)
        endpoint = self._retrieve(self.webhook_endpoints, "webhook endpoint", endpoint_id or "")
        if request.method == "GET":
            return 200, _public_endpoint(endpoint)
        if request.method == "POST":
            if "enabled_events[]" in request.form:
                endpoint["enabled_events"] = request.form["enabled_events[]"]
            if "url" in request.form:
                endpoint["url"] = request.form["url"][-1]
            if "disabled" in request.form:
                endpoint["status"] = "disabled" if request.form["disabled"][-1] == "true" else "enabled"
            return 200, _public_endpoint(endpoint)
        if request.method == "DELETE":
            del self.webhook_endpoints[endpoint["id"]]
            return 200, {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
        raise StripeError(405, f"Unrecognized request URL ({request.method}: {request.path}).")


def _public_endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    """Stripe shows the signing secret only in the create response."""
    return {key: value for key, value in endpoint.items() if key != "secret"}


def _form_value(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[-1] if values else None


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    if name not in query:
        return default
    try:
        return int(query[name])
    except ValueError:
        raise StripeError(400, f"Invalid integer: {query[name]}", param=name) from None


class _Handler(BaseHTTPRequestHandler):
    stripe: FakeStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `stripe.requests`
        pass

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            form=parse_qs(body, keep_blank_values=True),
        )
        status, payload, headers = self.stripe.handle(request)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _serve
