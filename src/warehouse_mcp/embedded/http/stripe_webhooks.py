"""The Stripe webhook receiver's route: `POST /webhooks/stripe/{source_id}/` (with and without the slash).

What a delivery must be and what it changes is domain/stripe_webhook_events.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from warehouse_mcp.embedded.domain.stripe_webhook_events import StripeWebhookReceiver

if TYPE_CHECKING:
    from warehouse_mcp.embedded.backend import EmbeddedBackend


def routes(backend: EmbeddedBackend) -> list[Route]:
    """The receiver's routes (with and without the trailing slash: Stripe does not follow redirects)."""
    # `backend.sync` is resolved per request: building the app must not load the sync service (DuckDB).
    receiver = StripeWebhookReceiver(backend.store, backend.vault, lambda: backend.sync.warehouse_writer())

    async def receive(request: Request) -> JSONResponse:
        payload = await request.body()
        outcome = await run_in_threadpool(
            receiver.receive,
            request.path_params["source_id"],
            payload,
            request.headers.get("stripe-signature"),
        )
        return JSONResponse(outcome.body, status_code=outcome.status, headers=outcome.headers)

    return [
        Route("/webhooks/stripe/{source_id}/", receive, methods=["POST"]),
        Route("/webhooks/stripe/{source_id}", receive, methods=["POST"]),
    ]
