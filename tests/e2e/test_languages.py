"""The main journey in Japanese, English and German, in Debian's chromium (issue 8): a visitor whose browser
speaks the language finds an answer in the help centre, signs in, gets the portal in their profile's
language (or chooses it under Login & security), reads how the car goes online, and sees the store's prices
in the language's format. Every page passes axe; the journey works by keyboard; screenshots go to
docs/screenshots/ (CARLINK_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from carlink import i18n
from carlink.demo import world
from tests.conftest import STACKS
from tests.e2e.accessibility import PHONE, assert_accessible, overflow
from tests.e2e.conftest import SCREENSHOTS, TIMEOUT_MS
from tests.support.stack import TAYCAN, Stack

pytestmark = pytest.mark.e2e

ARTICLES = Path(i18n.__file__).parent / "help" / "articles"
# language -> (the browser's Accept-Language, who signs in, their car, a help search, the article it finds,
#              how a price looks in the store)
JOURNEYS = {
    "ja": ("ja-JP,ja;q=0.9", world.JAPAN_OWNER, world.JAPAN_CAR.vin, "ローミング", r"￥\s?[\d,]+"),
    "en": ("en-GB,en;q=0.9", world.OWNER, TAYCAN, "roaming", r"€\d+\.\d{2}"),
    "de": ("de-DE,de;q=0.9,en;q=0.5", world.OWNER, TAYCAN, "Roaming", r"\d+,\d{2}\s€"),
}
ARTICLE = "roaming-and-live-traffic"


def tr(language: str, message: str, **values: str) -> str:
    text = i18n.translations(language).ugettext(message)
    return text % values if values else text


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.mark.parametrize("language", list(JOURNEYS))
@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_the_main_journey_in_each_language(stack: Stack, browser: Browser, language: str) -> None:
    accept, email, vin, query, price = JOURNEYS[language]
    context = await browser.new_context(
        base_url=stack.base_url,
        viewport={"width": 1280, "height": 900},
        extra_http_headers={"Accept-Language": accept},
        locale=accept.split(",")[0],
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()

    # A visitor: the start page and the help centre speak the browser's language.
    await page.goto("/")
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.get_by_role("heading", level=1)).to_have_text(tr(language, "Your car, connected"))
    await assert_accessible(page)
    await page.get_by_role("link", name=tr(language, "Help centre")).first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(tr(language, "Help centre"))
    await page.get_by_label(tr(language, "Search the help centre")).fill(query)
    await page.keyboard.press("Enter")  # the search form works by keyboard
    hit = page.locator(f'#help-results li[data-slug="{ARTICLE}"]')
    await expect(hit).to_be_visible()
    await expect(hit.locator("mark").first).to_be_visible()  # the words found are highlighted
    await assert_accessible(page)
    await shot(page, f"help-search-{language}")
    article = tomllib.loads((ARTICLES / f"{ARTICLE}.toml").read_text())[language]
    await hit.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(article["title"])
    await assert_accessible(page)

    # Signed in: the profile's language wins over the browser's (Hanako's is Japanese, the owner's English).
    await page.goto("/signin")
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(world.PASSWORD)
    await page.locator("#password").press("Enter")
    await expect(page).to_have_url(f"{stack.base_url}/vehicles")
    profile = "ja" if email == world.JAPAN_OWNER else "en"
    await expect(page.locator("html")).to_have_attribute("lang", profile)
    if profile != language:
        # Login & security → Language: from now on the portal (and the mails) speak it.
        await page.goto("/account")
        await page.get_by_role("combobox", name=tr(profile, "Language")).select_option(language)
        await page.get_by_role("button", name=tr(profile, "Save language")).click()
        await expect(page.get_by_role("status")).to_have_text(tr(language, "The language is changed."))
        await page.goto("/vehicles")
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await expect(page.get_by_role("heading", level=1)).to_have_text(tr(language, "My vehicles"))
    await assert_accessible(page)
    await shot(page, f"portal-vehicles-{language}")

    # Keyboard: the first Tab reaches the skip link, Enter moves the focus to the content.
    await page.keyboard.press("Tab")
    skip = page.get_by_role("link", name=tr(language, "Skip to the content"))
    await expect(skip).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()

    # How this car goes online, generated from its model (CON-1, CON-2, VEH-9).
    await page.goto(f"/vehicles/{vin}")
    await page.get_by_role("link", name=tr(language, "How this car goes online")).click()
    await expect(page).to_have_url(f"{stack.base_url}/vehicles/{vin}/connectivity")
    await expect(page.locator("html")).to_have_attribute("lang", language)
    await assert_accessible(page)
    await shot(page, f"connectivity-{language}")

    # The store: prices in the language's format (and the car's country's currency).
    await page.goto(f"/vehicles/{vin}/store")
    prices = page.locator(".price")
    await expect(prices.first).to_be_visible()
    texts = [text.strip() for text in await prices.all_inner_texts()]
    assert any(re.search(price, text) for text in texts), texts
    await assert_accessible(page)
    await shot(page, f"store-{language}")

    # A phone's width: the same page, nothing to scroll sideways.
    await page.set_viewport_size(PHONE)
    await page.goto(f"/vehicles/{vin}")
    wider, culprits = await overflow(page)
    assert wider <= 1, culprits
    if language == "ja":
        await shot(page, "phone-vehicle-ja")
    await context.close()
