"""A real browser for the portal tests: Debian's chromium driven by Playwright, in the test's event loop."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from carlink.demo import world
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Two cores shared with other work: wait generously, never sleep.
TIMEOUT_MS = 20_000
# The journeys' screenshots go to test-results/ (git-ignored); `CARLINK_UPDATE_SCREENSHOTS=1 make test`
# renews the ones in docs/screenshots/ that the README shows.
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    _ROOT / ("docs" if os.environ.get("CARLINK_UPDATE_SCREENSHOTS") else "test-results") / "screenshots"
)

OpenPage = Callable[[], Awaitable[Page]]
SignIn = Callable[[str], Awaitable[Page]]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip("the end-to-end tests need Debian's chromium at /usr/bin/chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def open_page(stack: Stack, browser: Browser) -> OpenPage:
    """A page in a browser context of its own (own cookies), pointed at the stack."""

    async def opened() -> Page:
        context = await browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        return await context.new_page()

    return opened


@pytest.fixture
async def sign_in(stack: Stack, open_page: OpenPage) -> SignIn:
    """A fresh browser with the person signed in through the portal's form, on My vehicles."""

    async def signed_in(email: str) -> Page:
        page = await open_page()
        await page.goto("/signin")
        await page.get_by_label("Email address").fill(email)
        await page.get_by_label("Password", exact=True).fill(world.PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page).to_have_url(f"{stack.base_url}/vehicles")
        return page

    return signed_in
