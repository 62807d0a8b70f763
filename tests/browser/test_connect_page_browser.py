"""The connect page in a real browser (Debian Chromium via playwright), reached through the MCP tools.

The agent side asks data-warehouse-source-connect-link for a link, the "user" fills the Postgres form
in Chromium, and the agent sees the stored credential in data-warehouse-stored-credentials-list. The
refusals (wrong password, reused link, expired link, missing CSRF token) are checked the same way.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from mcp import Client

from tests.browser.browser_support import (
    call,
    embedded_settings,
    fill_postgres_form,
    label,
    screenshot,
    submit,
    token_hash,
)
from tests.conftest import CANARY_PASSWORD, Bastion, Database
from warehouse_mcp.embedded.store import iso, utcnow
from warehouse_mcp.server import build_server

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = [pytest.mark.anyio, pytest.mark.browser, pytest.mark.postgres]

CONNECT = "data-warehouse-source-connect-link"
STORED = "data-warehouse-stored-credentials-list"


async def new_link(client: Client) -> str:
    link = await call(client, CONNECT, {"source_type": "Postgres"})
    assert link["status"] == "waiting_for_user"  # this client cannot open URLs itself
    url = str(link["connect_url"])
    assert url.startswith("http://127.0.0.1:") and "/connect/" in url
    return url


async def stored_ids(client: Client) -> list[str]:
    listed = await call(client, STORED, {"source_type": "Postgres"})
    return [item["credential_id"] for item in listed["results"]]


async def heading(page: Page) -> str:
    return (await page.get_by_role("heading", level=1).inner_text()).strip()


async def test_user_connects_postgres_and_the_agent_sees_the_credential(
    page: Page, postgres_db: Database, home: Path
) -> None:
    async with Client(build_server(embedded_settings(home))) as client:
        url = await new_link(client)
        opened = await page.goto(url)
        assert opened is not None and opened.status == 200
        assert "default-src 'none'" in opened.headers["content-security-policy"]
        assert await heading(page) == "Connect Postgres"
        password = page.get_by_label(label("Password"))
        assert await password.get_attribute("type") == "password"
        # The SSH tunnel's fields stay hidden until the user asks for a tunnel (the page's nonce'd script ran).
        assert not await page.get_by_label(label("SSH host")).is_visible()

        await fill_postgres_form(page, postgres_db.config)
        await screenshot(page, "connect-form-postgres")
        assert await submit(page) == 200

        assert await heading(page) == "Postgres connected"
        assert "Connected. Return to your assistant" in await page.get_by_role("status").inner_text()
        shown_id = (await page.locator("code").inner_text()).strip()
        await screenshot(page, "connect-success-postgres")
        assert CANARY_PASSWORD not in await page.content()

        assert await stored_ids(client) == [shown_id]
        status = await page.request.get(url + "/status")
        assert await status.json() == {"state": "completed", "credential_id": shown_id}


async def test_wrong_password_shows_the_source_error_and_keeps_the_link(
    page: Page, postgres_db: Database, home: Path
) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    async with Client(build_server(embedded_settings(home))) as client:
        url = await new_link(client)
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config, password=wrong)
        assert await submit(page) == 400

        alert = await page.get_by_role("alert").inner_text()
        assert "Could not connect." in alert
        assert "Invalid credentials" in alert and "password authentication failed" in alert
        await screenshot(page, "connect-error-postgres")
        html = await page.content()
        assert wrong not in html and CANARY_PASSWORD not in html
        # Non-secret values are kept for the retry; the password is not.
        assert await page.get_by_label(label("Host")).input_value() == postgres_db.config["host"]
        assert await page.get_by_label(label("Database")).input_value() == postgres_db.config["database"]
        assert await page.get_by_label(label("Password")).input_value() == ""
        assert await stored_ids(client) == []

        # A refused attempt does not burn the link: the right password still connects.
        await page.get_by_label(label("Password")).fill(postgres_db.config["password"])
        assert await submit(page) == 200
        assert await heading(page) == "Postgres connected"
        assert len(await stored_ids(client)) == 1


async def test_a_used_link_is_refused(page: Page, postgres_db: Database, home: Path) -> None:
    async with Client(build_server(embedded_settings(home))) as client:
        url = await new_link(client)
        stale_tab = await page.context.new_page()
        await stale_tab.goto(url)  # the form is open in a second tab before the first one submits
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config)
        assert await submit(page) == 200

        await fill_postgres_form(stale_tab, postgres_db.config)
        assert await submit(stale_tab) == 410
        assert await heading(stale_tab) == "Link expired"
        assert "already used" in await stale_tab.locator("main").inner_text()

        reopened = await page.goto(url)
        assert reopened is not None and reopened.status == 410
        assert await heading(page) == "Link expired"
        assert len(await stored_ids(client)) == 1


async def test_an_expired_link_is_refused(page: Page, postgres_db: Database, home: Path) -> None:
    server = build_server(embedded_settings(home))
    async with Client(server) as client:
        url = await new_link(client)
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config)
        store = server.runtime.backend.store  # type: ignore[attr-defined]
        with store.transaction() as db:
            expired = db.execute(
                "UPDATE connect_tokens SET expires_at = ? WHERE token_hash = ?",
                (iso(utcnow() - timedelta(minutes=1)), token_hash(url)),
            )
            assert expired.rowcount == 1

        assert await submit(page) == 410  # the form was open before the link expired
        assert await heading(page) == "Link expired"
        reopened = await page.goto(url)
        assert reopened is not None and reopened.status == 410
        assert await stored_ids(client) == []
        status = await page.request.get(url + "/status")
        assert await status.json() == {"state": "expired"}


async def test_a_post_without_the_csrf_token_is_refused(
    page: Page, postgres_db: Database, home: Path
) -> None:
    async with Client(build_server(embedded_settings(home))) as client:
        url = await new_link(client)
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config)
        removed = await page.evaluate(
            "() => { const el = document.querySelector('input[name=csrf_token]'); el?.remove(); return !!el; }"
        )
        assert removed
        assert await submit(page) == 403
        assert (await page.title()).startswith("Form check failed")
        assert "security token is missing or wrong" in await page.locator("main").inner_text()
        assert CANARY_PASSWORD not in await page.content()

        # A forged post from outside the page (no token, or a guessed one) is refused the same way.
        fields: dict[str, Any] = {key: str(value) for key, value in postgres_db.config.items()}
        async with httpx.AsyncClient() as http:
            for extra in ({}, {"csrf_token": "guessed"}):
                forged = await http.post(url, data={**fields, **extra})
                assert forged.status_code == 403
                assert CANARY_PASSWORD not in forged.text
        assert await stored_ids(client) == []

        # The link itself is still good for the real form.
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config)
        assert await submit(page) == 200


async def test_user_connects_postgres_through_an_ssh_tunnel_with_a_key(
    page: Page, postgres_db: Database, home: Path, bastion: Bastion
) -> None:
    async with Client(build_server(embedded_settings(home))) as client:
        url = await new_link(client)
        await page.goto(url)
        await fill_postgres_form(page, postgres_db.config)
        await page.get_by_label(label("Connect through an SSH tunnel")).check()
        await page.get_by_label(label("SSH host")).fill(bastion.host)
        await page.get_by_label(label("SSH port")).fill(str(bastion.port))
        await page.get_by_label(label("SSH username")).fill(bastion.user)
        assert not await page.get_by_label(label("Private key")).is_visible()  # password is the default
        await page.get_by_label(label("Authentication")).select_option("keypair")
        assert not await page.get_by_label(label("SSH password")).is_visible()
        await page.get_by_label(label("Private key")).fill(bastion.encrypted_key)
        await page.get_by_label(label("Key passphrase (optional)")).fill(bastion.passphrase)
        await screenshot(page, "connect-form-postgres-ssh-tunnel")
        assert await submit(page) == 200

        assert await heading(page) == "Postgres connected"
        status_text = await page.get_by_role("status").inner_text()
        assert f"SSH host key: {bastion.fingerprint}" in status_text
        content = await page.content()
        for secret in (CANARY_PASSWORD, bastion.passphrase, bastion.encrypted_key.splitlines()[1]):
            assert secret not in content
        assert len(await stored_ids(client)) == 1
