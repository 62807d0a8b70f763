"""Faults between the server and a PostHog host: rate limits, outages, slowness, dropped connections, bad bodies.

Each fault is played by a real loopback HTTP server (RecordingApi) against ApiClient directly and through
the MCP tools. The rule under test (client.py): a request is repeated only when repeating it cannot do
something twice, and every failure ends as an ApiError / isError text that says what happened.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from tests.fakes.recording_api import RecordingApi, Reply
from tests.reliability.support import crash_reason, result_text
from warehouse_mcp import client as client_module
from warehouse_mcp.client import ApiClient, ApiError
from warehouse_mcp.server import build_server
from warehouse_mcp.settings import Settings

pytestmark = [pytest.mark.reliability, pytest.mark.anyio]

SID = "0b6f2f3e-4c1d-4a51-9c55-2a4b7c6f0a11"
SOURCE = {"id": SID, "status": "Completed", "schemas": []}
PATH = f"/api/projects/42/external_data_sources/{SID}/"
RELOAD = PATH + "reload/"


@pytest.fixture
def api() -> Iterator[RecordingApi]:
    with RecordingApi() as server:
        yield server


def client_for(api: RecordingApi, **options: Any) -> ApiClient:
    values: dict[str, Any] = {"api_key": "phx_faults", "timeout": 5.0, "max_retries": 3, "backoff_base": 0.01}
    values.update(options)
    return ApiClient(api.url, **values)


def settings_for(api: RecordingApi, **changes: Any) -> Settings:
    env = {"POSTHOG_PERSONAL_API_KEY": "phx_faults", "POSTHOG_HOST": api.url, "POSTHOG_PROJECT_ID": "42"}
    return Settings.from_env(env).with_(**changes)


async def get(client: ApiClient) -> Any:
    try:
        return (await client.request("GET", PATH, idempotent=True)).data
    finally:
        await client.aclose()


async def post(client: ApiClient, *, idempotent: bool = False) -> Any:
    try:
        return (await client.request("POST", RELOAD, json={}, idempotent=idempotent)).data
    finally:
        await client.aclose()


# --- 429: retried, Retry-After honoured --------------------------------------------------------------------


async def test_429_is_retried_after_the_retry_after_seconds(api: RecordingApi) -> None:
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": "1"}), Reply(200, SOURCE))
    started = time.monotonic()
    assert await get(client_for(api)) == SOURCE
    assert time.monotonic() - started >= 0.95
    assert len(api.requests) == 2


async def test_429_retry_after_as_an_http_date_is_honoured(api: RecordingApi) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1 to 2 s
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": when}), Reply(200, SOURCE))
    started = time.monotonic()
    assert await get(client_for(api)) == SOURCE
    assert time.monotonic() - started >= 0.9


async def test_429_on_a_post_is_retried_because_the_server_did_not_act(api: RecordingApi) -> None:
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"}), Reply(200, None))
    await post(client_for(api))
    assert [request.path for request in api.requests] == [RELOAD, RELOAD]


async def test_a_huge_retry_after_is_capped(api: RecordingApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module, "MAX_RETRY_AFTER", 0.2)
    api.reply(
        Reply(429, {"detail": "come back tomorrow"}, headers={"Retry-After": "86400"}), Reply(200, SOURCE)
    )
    started = time.monotonic()
    assert await get(client_for(api)) == SOURCE
    assert time.monotonic() - started < 5


async def test_429_through_the_tool_is_transparent_then_explained(api: RecordingApi) -> None:
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"}), Reply(200, SOURCE))
    api.reply(*[Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"})] * 4)
    async with Client(build_server(settings_for(api, max_retries=3))) as client:
        first = await client.call_tool("external-data-sources-retrieve", {"id": SID})
        second = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    assert not first.is_error and first.structured_content["status"] == "Completed"
    assert second.is_error
    assert "HTTP 429" in result_text(second) and "rate limiting" in result_text(second)
    assert len(api.requests) == 2 + 4


async def test_guard_without_retries_the_429_surfaces(api: RecordingApi) -> None:
    """Break the guarantee (no retries): the same 429 that was absorbed above must now surface."""
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": "0"}), Reply(200, SOURCE))
    with pytest.raises(ApiError) as raised:
        await get(client_for(api, max_retries=0))
    assert raised.value.status == 429
    assert len(api.requests) == 1


async def test_an_unparseable_retry_after_falls_back_to_backoff(api: RecordingApi) -> None:
    api.reply(Reply(429, {"detail": "slow down"}, headers={"Retry-After": "soon"}), Reply(200, SOURCE))
    assert await get(client_for(api)) == SOURCE


async def test_an_unparseable_retry_after_through_the_tool(api: RecordingApi) -> None:
    api.reply(*[Reply(429, {"detail": "slow down"}, headers={"Retry-After": "soon"})] * 5)
    async with Client(build_server(settings_for(api))) as client:
        result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    assert crash_reason("external-data-sources-retrieve", result) is None, result_text(result)


# --- 503: GET retried, a non-idempotent POST never replayed ------------------------------------------------


async def test_503_on_get_is_retried(api: RecordingApi) -> None:
    api.reply(Reply(503, {"detail": "unavailable"}), Reply(502, raw=b"bad gateway"), Reply(200, SOURCE))
    assert await get(client_for(api)) == SOURCE
    assert len(api.requests) == 3


async def test_503_on_a_post_is_not_replayed(api: RecordingApi) -> None:
    api.reply(Reply(503, {"detail": "unavailable"}), Reply(200, None))
    with pytest.raises(ApiError) as raised:
        await post(client_for(api))
    assert raised.value.status == 503 and "unavailable" in raised.value.message
    assert len(api.requests) == 1


async def test_guard_a_post_treated_as_idempotent_is_replayed(api: RecordingApi) -> None:
    """Break the guarantee (call the POST idempotent): the replay must be visible to the same count."""
    api.reply(Reply(503, {"detail": "unavailable"}), Reply(200, None))
    await post(client_for(api), idempotent=True)
    assert len(api.requests) == 2


async def test_503_through_the_tools(api: RecordingApi) -> None:
    api.reply(
        Reply(503, {"detail": "unavailable"}), Reply(200, SOURCE), Reply(503, {"detail": "unavailable"})
    )
    async with Client(build_server(settings_for(api))) as client:
        read = await client.call_tool("external-data-sources-retrieve", {"id": SID})
        write = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert not read.is_error
    assert write.is_error and "HTTP 503" in result_text(write) and "unavailable" in result_text(write)
    assert [request.method for request in api.requests] == ["GET", "GET", "POST"]


# --- slow answers past the timeout ---------------------------------------------------------------------------


async def test_a_slow_get_times_out_then_is_retried(api: RecordingApi) -> None:
    api.reply(Reply(200, SOURCE, delay=1.5), Reply(200, SOURCE))
    started = time.monotonic()
    assert await get(client_for(api, timeout=0.3)) == SOURCE
    assert time.monotonic() - started < 1.4  # did not wait for the slow answer
    assert len(api.requests) == 2


async def test_a_get_that_stays_slow_ends_in_a_clear_timeout_error(api: RecordingApi) -> None:
    api.reply(*[Reply(200, SOURCE, delay=1.0)] * 3)
    with pytest.raises(ApiError) as raised:
        await get(client_for(api, timeout=0.2, max_retries=2))
    assert raised.value.status is None
    assert "did not answer in time" in raised.value.message and "ReadTimeout" in raised.value.message
    assert len(api.requests) == 3


async def test_a_slow_post_is_not_replayed(api: RecordingApi) -> None:
    api.reply(Reply(200, None, delay=1.0), Reply(200, None))
    with pytest.raises(ApiError, match="did not answer in time"):
        await post(client_for(api, timeout=0.2))
    assert len(api.requests) == 1


async def test_timeouts_through_the_tools(api: RecordingApi) -> None:
    api.reply(Reply(200, SOURCE, delay=1.0), Reply(200, SOURCE), Reply(200, None, delay=1.0))
    async with Client(build_server(settings_for(api, timeout_seconds=0.3))) as client:
        read = await client.call_tool("external-data-sources-retrieve", {"id": SID})
        write = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert not read.is_error
    assert write.is_error
    assert "no answer" in result_text(write) and "did not answer in time" in result_text(write)
    assert [request.method for request in api.requests] == ["GET", "GET", "POST"]


# --- dropped connections ---------------------------------------------------------------------------------


async def test_a_dropped_connection_on_get_is_retried(api: RecordingApi) -> None:
    api.reply(Reply(drop=True), Reply(drop=True), Reply(200, SOURCE))
    assert await get(client_for(api)) == SOURCE
    assert len(api.requests) == 3


async def test_a_dropped_connection_on_post_is_not_replayed(api: RecordingApi) -> None:
    api.reply(Reply(drop=True), Reply(200, None))
    with pytest.raises(ApiError) as raised:
        await post(client_for(api))
    assert raised.value.status is None and "Could not reach the API" in raised.value.message
    assert len(api.requests) == 1


async def test_dropped_connections_through_the_tools(api: RecordingApi) -> None:
    api.reply(Reply(drop=True), Reply(200, SOURCE), Reply(drop=True))
    async with Client(build_server(settings_for(api))) as client:
        read = await client.call_tool("external-data-sources-retrieve", {"id": SID})
        write = await client.call_tool("external-data-sources-reload-create", {"id": SID})
    assert not read.is_error
    assert write.is_error and "Could not reach the API" in result_text(write)
    assert len(api.requests) == 3


async def test_an_unreachable_host_is_retried_even_for_a_post_then_explained() -> None:
    """A refused connection never reached the server, so even a POST may be retried; then a clear error."""
    from tests.reliability.support import free_port

    client = ApiClient(f"http://127.0.0.1:{free_port()}", timeout=1.0, max_retries=2, backoff_base=0.01)
    with pytest.raises(ApiError) as raised:
        await post(client)
    assert raised.value.status is None and "Check POSTHOG_HOST" in raised.value.message


# --- bodies that are not what they claim ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"id": "cut off', b"<html><body>Login</body></html>", b"\xff\xfe\x00garbage"],
    ids=["broken", "truncated", "html", "binary"],
)
async def test_malformed_json_on_a_200_is_a_clear_error(api: RecordingApi, body: bytes) -> None:
    api.reply(Reply(200, raw=body))
    with pytest.raises(ApiError) as raised:
        await get(client_for(api))
    assert raised.value.status == 200
    assert "not JSON" in raised.value.message and "POSTHOG_HOST" in raised.value.message


async def test_malformed_json_through_the_tool(api: RecordingApi) -> None:
    api.reply(Reply(200, raw=b"<html>captive portal</html>"))
    async with Client(build_server(settings_for(api))) as client:
        result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    assert result.is_error and "not JSON" in result_text(result)
    assert crash_reason("external-data-sources-retrieve", result) is None


async def test_a_5xx_html_page_is_reported_without_the_html(api: RecordingApi) -> None:
    api.reply(*[Reply(502, raw=b"<html><h1>502 Bad Gateway</h1></html>")] * 4)
    async with Client(build_server(settings_for(api))) as client:
        result = await client.call_tool("external-data-sources-retrieve", {"id": SID})
    assert result.is_error and "HTTP 502" in result_text(result) and "<html" not in result_text(result)


@pytest.mark.parametrize(
    "body",
    [[SOURCE], {"count": "many", "results": []}, {"results": 5}, "a string"],
    ids=["bare-list", "string-count", "results-not-a-list", "scalar"],
)
async def test_a_paged_answer_of_an_unexpected_shape_never_breaks_the_tool(
    api: RecordingApi, body: Any
) -> None:
    """Found by the hostile-answer fuzz: these once broke the outputSchema or crashed the tool."""
    api.reply(Reply(200, body))
    async with Client(build_server(settings_for(api))) as client:
        result = await client.call_tool("external-data-sources-list", {})  # the client checks outputSchema
    assert crash_reason("external-data-sources-list", result) is None, result_text(result)
