"""Fixtures for the browser tests: one headless Debian Chromium per module, a fresh context per test.

Playwright drives /usr/bin/chromium (it never downloads a browser). Its async API is bound to the
asyncio loop the anyio plugin shares between a module's tests and fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.browser_support import CHROMIUM, CHROMIUM_ARGS, unavailable

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # playwright's async API needs asyncio


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing; install Debian's chromium package (tools/test.sh does as root)")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        unavailable(f"the playwright package is missing ({exc}); pip install -e '.[test]'")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a fresh browser context (no cookies or storage shared between tests)."""
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield await context.new_page()
    finally:
        await context.close()
