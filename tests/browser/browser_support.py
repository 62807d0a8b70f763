"""Shared pieces of the browser tests: Chromium availability, filling the connect page, screenshots."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import CANARY_PASSWORD
from warehouse_mcp.settings import Settings

if TYPE_CHECKING:
    from mcp import Client
    from playwright.async_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS_ENV = "WAREHOUSE_MCP_SCREENSHOTS"
CONNECT_WAIT_SECONDS = 30.0

# Connect-page labels of the Postgres form, by config key (required ones carry a " *" marker).
POSTGRES_LABELS = {
    "host": "Host",
    "port": "Port",
    "database": "Database",
    "user": "User",
    "password": "Password",
    "schema": "Schema",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail under CI (the image must provide it), skip with the reason on a developer machine."""
    if in_ci():
        pytest.fail(f"CI: {reason}", pytrace=False)
    pytest.skip(reason)


def embedded_settings(home: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"run_scheduler": False, "connect_wait_seconds": CONNECT_WAIT_SECONDS}
    values.update(extra)
    return Settings(backend="embedded", home=home, **values)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; its answer must never carry the database password."""
    result = await client.call_tool(tool, arguments)
    text = "".join(getattr(block, "text", "") for block in result.content)
    assert not result.is_error, (tool, text)
    assert CANARY_PASSWORD not in result.model_dump_json()
    return result.structured_content or {}


def token_hash(connect_url: str) -> str:
    """The connect_tokens key of a link (the store keeps only the token's sha256)."""
    token = urlsplit(connect_url).path.rstrip("/").rsplit("/", 1)[-1]
    return hashlib.sha256(token.encode()).hexdigest()


def label(text: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(text)}( \*)?$")


async def fill_postgres_form(page: Page, config: dict[str, Any], *, password: str | None = None) -> None:
    """Type the connection details into the open Postgres connect page, as a user would (by label)."""
    for key, text in POSTGRES_LABELS.items():
        value = password if key == "password" and password is not None else config[key]
        await page.get_by_label(label(text)).fill(str(value))


async def submit(page: Page) -> int:
    """Press Connect; return the HTTP status of the page the form posted to."""
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Connect").click()
    response = await navigation.value
    assert response is not None
    return response.status


async def screenshot(page: Page, name: str) -> Path | None:
    """Save a full-page screenshot to $WAREHOUSE_MCP_SCREENSHOTS (when set); return its path."""
    directory = os.environ.get(SCREENSHOTS_ENV)
    if not directory:
        return None
    path = Path(directory) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path
