"""The secret-free connect flow: a connect link, opened by the client through URL elicitation when it can.

Works the same against PostHog and the embedded backend: the only signal used is the API's own
stored-credentials list (a new entry for the source type appears once the user has finished the page).

- 2025-11-25 sessions: `elicitation/create` (mode url) in the middle of the call; once the credential is
  stored, `notifications/elicitation/complete`, and the call returns with the credential id.
- 2026-07-28 sessions: the call answers `input_required` with the URL request; the client opens it and
  retries; the retried call waits for the credential and returns it.
- Clients without URL elicitation (or without a back channel) get the link and instructions to relay.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import anyio
from mcp.types import ElicitRequest, ElicitRequestURLParams, InputRequiredResult

from .operation_requests import project_of, send
from .operations import BY_TOOL, Args, Operation, SetupPayload

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from .runtime import Runtime

log = logging.getLogger(__name__)

CONNECT = BY_TOOL["data-warehouse-source-connect-link"]
STORED = BY_TOOL["data-warehouse-stored-credentials-list"]
MODERN = "2026-07-28"
POLL_SECONDS = 0.5


async def connect_or_setup(op: Operation, args: Args, ctx: Context, runtime: Runtime) -> Any:
    if op is CONNECT:
        return await connect(args, ctx, runtime)
    payload = getattr(args, "payload", None)
    if payload is not None and payload.model_dump(exclude_none=True):
        return await send(op, args, runtime)
    # Setup without credentials: run the connect flow first, then set up with what the user stored.
    outcome = await connect(args, ctx, runtime)
    if isinstance(outcome, InputRequiredResult) or not outcome.get("credential_id"):
        return outcome
    with_credential = args.model_copy(
        update={"payload": SetupPayload(credential_id=outcome["credential_id"])}
    )
    return await send(op, with_credential, runtime)


async def connect(args: Args, ctx: Context, runtime: Runtime) -> InputRequiredResult | dict[str, Any]:
    source_type = str(args.source_type)  # type: ignore[attr-defined]
    project = project_of(args, runtime)
    state = _read_state(ctx.request_state)
    if state is not None:  # a 2026-07-28 retry: the client has shown the user the page
        return await _finish(state, _accepted(ctx), ctx, runtime, project, elicitation_id=None)

    link = await send(CONNECT, CONNECT.model(source_type=source_type), runtime, project)  # type: ignore[call-arg]
    link = {**link, "source_type": link.get("source_type") or source_type}
    url = link.get("connect_url")
    if not url or not _client_opens_urls(ctx):
        return _relay(link)
    state = {"link": link, "known": await _credential_ids(runtime, project, source_type)}
    message = f"Connect {source_type}: enter the credentials on this page (they never pass through the chat)."
    if (ctx.protocol_version or "") >= MODERN:
        request = ElicitRequest(params=ElicitRequestURLParams(message=message, url=url))
        return InputRequiredResult(input_requests={"connect": request}, request_state=json.dumps(state))
    elicitation_id = uuid.uuid4().hex
    try:
        answer = await ctx.elicit_url(message, url, elicitation_id)
    except Exception as exc:  # no back channel (stateless HTTP), or the client refused the request
        log.info("URL elicitation unavailable (%s); relaying the link instead", type(exc).__name__)
        return _relay(link)
    return await _finish(state, answer.action == "accept", ctx, runtime, project, elicitation_id)


async def _finish(
    state: dict[str, Any],
    accepted: bool,
    ctx: Context,
    runtime: Runtime,
    project: str,
    elicitation_id: str | None,
) -> dict[str, Any]:
    link = state["link"]
    if not accepted:
        return {**_relay(link), "status": "declined"}
    credential = await _await_credential(ctx, runtime, project, link["source_type"], set(state["known"]))
    if credential is None:
        return {**_relay(link), "status": "waiting_for_user"}
    if elicitation_id is not None:
        await ctx.session.send_elicit_complete(elicitation_id)
    return {
        **{key: value for key, value in link.items() if key != "connect_url"},
        "status": "connected",
        "credential_id": credential["credential_id"],
        "expires_at": credential.get("expires_at"),
        "next": f"Call data-warehouse-source-setup with payload={{'credential_id': '{credential['credential_id']}'}}.",
    }


def _relay(link: dict[str, Any]) -> dict[str, Any]:
    return {
        **link,
        "status": "waiting_for_user",
        "next": (
            "Give the user the connect_url to open in their browser (it works once). When they say they are "
            "done, call data-warehouse-stored-credentials-list, then data-warehouse-source-setup with "
            "payload={'credential_id': <id>}. Never ask for the password in the chat."
        ),
    }


def _client_opens_urls(ctx: Context) -> bool:
    capabilities = ctx.client_capabilities
    elicitation = capabilities.elicitation if capabilities else None
    return elicitation is not None and elicitation.url is not None


def _accepted(ctx: Context) -> bool:
    responses = ctx.input_responses or {}
    answer = responses.get("connect")
    return getattr(answer, "action", None) == "accept"


def _read_state(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) and "link" in state else None


async def _stored(runtime: Runtime, project: str, source_type: str) -> list[dict[str, Any]]:
    listed = await send(STORED, STORED.model(source_type=source_type), runtime, project)  # type: ignore[call-arg]
    return [
        item
        for item in listed["results"]
        if isinstance(item, dict) and isinstance(item.get("credential_id"), str)
    ]


async def _credential_ids(runtime: Runtime, project: str, source_type: str) -> list[str]:
    return [item["credential_id"] for item in await _stored(runtime, project, source_type)]


async def _await_credential(
    ctx: Context, runtime: Runtime, project: str, source_type: str, known: set[str]
) -> dict[str, Any] | None:
    """Poll the stored-credentials list until a new credential of this type shows up, or time runs out."""
    deadline = anyio.current_time() + runtime.settings.connect_wait_seconds
    waited = 0
    while True:
        for item in await _stored(runtime, project, source_type):
            if item["credential_id"] not in known:
                return dict(item)
        if anyio.current_time() >= deadline:
            return None
        waited += 1
        if waited % 10 == 0:
            await ctx.report_progress(
                waited * POLL_SECONDS, None, "Waiting for the user to finish the connect page"
            )
        await anyio.sleep(POLL_SECONDS)
