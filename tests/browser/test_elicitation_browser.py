"""The connect flow through URL elicitation, in both protocol generations, with Chromium as the user.

The client's elicitation callback gets the URL-mode request, completes the connect page in the
browser and accepts. 2025-11-25 (`legacy`): the server asks mid-call and then sends
notifications/elicitation/complete. 2026-07-28 (`auto`): the call answers input_required, the client
fulfils it and retries. Either way the tool call ends "connected" with the new credential_id.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import pytest
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.types import ElicitCompleteNotification, ElicitRequestURLParams, ElicitResult, ErrorData

from tests.browser.browser_support import call, embedded_settings, fill_postgres_form, submit
from tests.conftest import CANARY_PASSWORD, Database
from warehouse_mcp.server import build_server

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.anyio

MODES = pytest.mark.parametrize("mode", ["legacy", "auto"])
PROTOCOL = {"legacy": "2025-11-25", "auto": "2026-07-28"}
CONNECT = "data-warehouse-source-connect-link"
SETUP = "data-warehouse-source-setup"
STORED = "data-warehouse-stored-credentials-list"


class BrowserUser:
    """An elicitation callback that plays the user: opens the URL in Chromium, fills the form, accepts.

    Failures inside the callback are kept and re-raised by `check()`, so they surface as themselves
    rather than as whatever the SDK makes of a raising callback.
    """

    def __init__(self, page: Page, config: dict[str, Any]) -> None:
        self.page = page
        self.config = config
        self.requests: list[Any] = []
        self.completions: list[ElicitCompleteNotification] = []
        self.completed = anyio.Event()
        self.failure: Exception | None = None

    async def elicit(self, context: Any, params: Any) -> ElicitResult | ErrorData:
        self.requests.append(params)
        try:
            assert params.mode == "url", params
            assert isinstance(params, ElicitRequestURLParams)
            assert params.url.startswith("http://127.0.0.1:") and "/connect/" in params.url
            assert "Postgres" in params.message
            opened = await self.page.goto(params.url)
            assert opened is not None and opened.status == 200
            await fill_postgres_form(self.page, self.config)
            assert await submit(self.page) == 200
            assert "connected" in (await self.page.get_by_role("heading", level=1).inner_text())
        except Exception as exc:
            self.failure = exc
            return ElicitResult(action="cancel")
        return ElicitResult(action="accept")

    async def on_message(self, message: Any) -> None:
        if isinstance(message, ElicitCompleteNotification):
            self.completions.append(message)
            self.completed.set()

    def check(self) -> None:
        if self.failure is not None:
            raise self.failure
        assert len(self.requests) == 1, self.requests


def answering(action: Literal["accept", "decline", "cancel"]) -> ElicitationFnT:
    async def elicit(context: Any, params: Any) -> ElicitResult:
        assert params.mode == "url"
        return ElicitResult(action=action)

    return elicit


@pytest.mark.browser
@pytest.mark.postgres
@MODES
async def test_connect_link_completes_through_url_elicitation(
    mode: str, page: Page, postgres_db: Database, home: Path
) -> None:
    user = BrowserUser(page, postgres_db.config)
    server = build_server(embedded_settings(home))
    async with Client(
        server, mode=mode, elicitation_callback=user.elicit, message_handler=user.on_message
    ) as client:
        assert client.protocol_version == PROTOCOL[mode]
        result = await call(client, CONNECT, {"source_type": "Postgres"})
        user.check()
        assert result["status"] == "connected", result
        credential_id = result["credential_id"]
        assert credential_id and "connect_url" not in result
        assert credential_id in result["next"]
        stored = await call(client, STORED, {"source_type": "Postgres"})
        assert [item["credential_id"] for item in stored["results"]] == [credential_id]
        if mode == "legacy":
            with anyio.fail_after(5):
                await user.completed.wait()
            (completion,) = user.completions
            assert completion.params.elicitation_id == user.requests[0].elicitation_id
    assert CANARY_PASSWORD not in user.requests[0].url


@pytest.mark.browser
@pytest.mark.postgres
@MODES
async def test_setup_without_payload_runs_the_connect_flow_and_creates_the_source(
    mode: str, page: Page, postgres_db: Database, home: Path
) -> None:
    postgres_db.execute("CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL)")
    user = BrowserUser(page, postgres_db.config)
    server = build_server(embedded_settings(home))
    async with Client(
        server, mode=mode, elicitation_callback=user.elicit, message_handler=user.on_message
    ) as client:
        created = await call(client, SETUP, {"source_type": "Postgres"})
        user.check()
        source = await call(client, "external-data-sources-retrieve", {"id": created["id"]})
        assert source["source_type"] == "Postgres"
        assert [schema["name"] for schema in source["schemas"]] == ["customers"]
        # setup consumed the credential the user stored
        stored = await call(client, STORED, {"source_type": "Postgres"})
        assert stored["results"] == []
        if mode == "legacy":
            with anyio.fail_after(5):
                await user.completed.wait()


@MODES
async def test_a_client_without_elicitation_gets_the_link_to_relay(mode: str, home: Path) -> None:
    async with Client(build_server(embedded_settings(home)), mode=mode) as client:
        result = await call(client, CONNECT, {"source_type": "Postgres"})
    assert result["status"] == "waiting_for_user"
    assert str(result["connect_url"]).startswith("http://127.0.0.1:")
    assert "credential_id" not in result
    assert "data-warehouse-stored-credentials-list" in result["next"]


@MODES
async def test_a_declined_elicitation_leaves_the_link_with_the_agent(mode: str, home: Path) -> None:
    async with Client(
        build_server(embedded_settings(home)), mode=mode, elicitation_callback=answering("decline")
    ) as client:
        result = await call(client, CONNECT, {"source_type": "Postgres"})
    assert result["status"] == "declined"
    assert str(result["connect_url"]).startswith("http://127.0.0.1:")
    assert "credential_id" not in result
