"""Webhook handlers (docs/api-semantics.md: webhook_info, create_webhook, update_webhook_inputs, delete_webhook).

The rules (registering, recording and deleting a source's webhook) are in domain.webhooks.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from warehouse_mcp.embedded.domain import webhooks
from warehouse_mcp.embedded.domain.request_bodies import WebhookInputs
from warehouse_mcp.embedded.domain.webhooks import WebhookSource
from warehouse_mcp.embedded.http import request_context
from warehouse_mcp.embedded.store import source_records


def webhook_info(request: Request) -> Response:
    backend = request_context.backend(request)
    source = source_records.get(
        backend.store, request_context.team_id(request), request_context.path_id(request)
    )
    return request_context.json_response(webhooks.info(backend, source))


def create_webhook(request: Request) -> Response:
    return request_context.json_response(webhooks.create(request_context.backend(request), _target(request)))


def update_webhook_inputs(request: Request) -> Response:
    target = _target(request)  # before the body is read: a source without webhooks is refused first
    body = WebhookInputs.parse(request_context.body(request))
    webhooks.update_inputs(request_context.backend(request), target, body)
    return request_context.json_response({"success": True})


def delete_webhook(request: Request) -> Response:
    return request_context.json_response(webhooks.delete(request_context.backend(request), _target(request)))


def _target(request: Request) -> WebhookSource:
    return webhooks.webhook_source(
        request_context.backend(request).store,
        request_context.team_id(request),
        request_context.path_id(request),
    )
