"""Every page of the portal and the consoles, in each language, opened in Debian's chromium by the person
who may see it: axe-core finds no serious or critical accessibility problem, and at a phone's width nothing
is wider than the screen (issue 8, point 4). Each visit must end on the page asked for, in the person's
language and, when signed in, with the menu; forms sent with a mistake are checked as well.

A page the app serves that this table does not list fails the test, so a new page is checked from its
first day. Fragments, streams and downloads are listed apart, with the reason they are not pages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.async_api import Browser, Page, Response, ViewportSize
from sqlalchemy import select

from carlink import i18n
from carlink.app import HTTP_MESSAGES
from carlink.catalog.models import TermsVersion
from carlink.demo import world
from carlink.demo.world_updates import ensure_demo_update
from carlink.fod.models import UpdateCampaign
from carlink.identity.invitations import SaleInput, record_sale
from carlink.identity.models import Account
from carlink.notify.models import OutboxEmail
from carlink.partners.models import Partner, Sale
from carlink.protocol.messages import AlarmTrigger
from carlink.store.models import Order
from carlink.web.pages import HOME
from tests.conftest import STACKS
from tests.e2e.accessibility import PHONE, describe, overflow, violations, watch_csp
from tests.e2e.conftest import TIMEOUT_MS
from tests.integration.test_soc_console import activate_package, raise_alarm
from tests.integration.test_store_contracts import ready_cart
from tests.support.portal import account_id
from tests.support.stack import NINE_ELEVEN, TAYCAN, Stack

pytestmark = pytest.mark.e2e

OWNER, DEALER, OPERATOR, SOC = world.OWNER, world.DEALER, world.OPERATOR, world.SOC_OPERATOR
PUBLIC = None
LANGUAGES = ("en", "de", "ja")
ACCEPT = {"en": "en-GB,en;q=0.9", "de": "de-DE,de;q=0.9", "ja": "ja-JP,ja;q=0.9"}
# axe at a phone's width (the menu reflows) in one language: a second axe run per page costs ~20 s.
PHONE_AXE = "de"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
SIGN_OUT = 'form[action="/signout"] button[type="submit"]'

# route -> (who opens it, the address with its placeholders filled from `values`)
PAGES: dict[str, tuple[str | None, str]] = {
    "/": (PUBLIC, "/"),
    "/signin": (PUBLIC, "/signin"),
    "/authorize": (PUBLIC, "{authorize}"),
    "/u/login/identifier": (PUBLIC, "{authorize}"),  # /authorize redirects to it with a fresh state
    "/register": (PUBLIC, "/register"),
    "/register/resend": (PUBLIC, "/register/resend"),
    "/register/{token}": (PUBLIC, "/register/{token}"),
    "/certificates/verify": (PUBLIC, "/certificates/verify"),
    "/availability": (PUBLIC, "/availability"),
    "/availability/{country}": (PUBLIC, "/availability/DE"),
    "/manuals": (OWNER, "/manuals"),  # for signed-in people (the route sends visitors to /signin)
    "/manuals/{model_key}": (OWNER, "/manuals/taycan-1"),
    "/vehicles": (OWNER, "/vehicles"),
    "/vehicles/{vin}": (OWNER, "/vehicles/{vin}"),
    "/account": (OWNER, "/account"),
    "/account/payment": (OWNER, "/account/payment"),
    "/account/in-car": (OWNER, "/account/in-car"),
    "/notifications": (OWNER, "/notifications"),
    "/contacts": (OWNER, "/contacts"),
    "/partners": (OWNER, "/partners"),
    "/privacy": (OWNER, "/privacy"),
    "/privacy/policy/{version}": (OWNER, "/privacy/policy/1"),
    "/vehicles/{vin}/store": (OWNER, "/vehicles/{vin}/store"),
    "/vehicles/{vin}/store/terms/{document}": (OWNER, "/vehicles/{vin}/store/terms/general"),
    "/store/terms/versions/{terms_id}": (OWNER, "/store/terms/versions/{terms_id}"),
    "/vehicles/{vin}/cart": (OWNER, "/vehicles/{vin}/cart"),
    "/vehicles/{vin}/checkout/address": (OWNER, "/vehicles/{vin}/checkout/address"),
    "/vehicles/{vin}/checkout/payment": (OWNER, "/vehicles/{vin}/checkout/payment"),
    "/vehicles/{vin}/checkout/review": (OWNER, "/vehicles/{vin}/checkout/review"),
    "/orders/{order_id}": (OWNER, "/orders/{order_id}"),
    "/vehicles/{vin}/services": (OWNER, "/vehicles/{vin}/services"),
    "/vehicles/{vin}/handover": (OWNER, "/vehicles/{vin}/handover"),
    "/vehicles/{vin}/service": (OWNER, "/vehicles/{vin}/service"),
    "/vehicles/{vin}/manual": (OWNER, "/vehicles/{vin}/manual"),
    "/vehicles/{vin}/functions": (OWNER, "/vehicles/{vin}/functions"),
    "/vehicles/{vin}/updates": (OWNER, "/vehicles/{vin}/updates"),
    "/vehicles/{vin}/security": (OWNER, "/vehicles/{vin}/security"),
    "/vehicles/{vin}/connectivity": (OWNER, "/vehicles/{vin}/connectivity"),
    "/help": (PUBLIC, "/help"),
    "/help/search": (PUBLIC, "/help/search?q=roaming"),
    "/help/{slug}": (PUBLIC, "/help/buying-a-service"),
    "/dealer": (DEALER, "/dealer"),
    "/dealer/customers/{account_id}": (DEALER, "/dealer/customers/{owner_id}"),
    "/dealer/sales/new": (DEALER, "/dealer/sales/new"),
    "/dealer/sales/{sale_id}": (DEALER, "/dealer/sales/{sale_id}"),
    "/dealer/driver-cards": (DEALER, "/dealer/driver-cards"),
    "/dealer/security-modes": (DEALER, "/dealer/security-modes"),
    "/dealer/appointments": (DEALER, "/dealer/appointments"),
    "/dealer/erasure-requests": (DEALER, "/dealer/erasure-requests"),
    "/operator": (OPERATOR, "/operator"),
    "/operator/recalls": (OPERATOR, "/operator/recalls"),
    "/operator/privacy-contacts": (OPERATOR, "/operator/privacy-contacts"),
    "/operator/policy": (OPERATOR, "/operator/policy"),
    "/operator/erasure-requests": (OPERATOR, "/operator/erasure-requests"),
    "/operator/functions": (OPERATOR, "/operator/functions"),
    "/operator/packages": (OPERATOR, "/operator/packages"),
    "/operator/keys": (OPERATOR, "/operator/keys"),
    "/operator/campaigns": (OPERATOR, "/operator/campaigns"),
    "/operator/campaigns/{campaign_id}": (OPERATOR, "/operator/campaigns/{campaign_id}"),
    "/soc": (SOC, "/soc"),
    "/soc/alarms/{alarm_id}": (SOC, "/soc/alarms/{alarm_id}"),
}
# The addresses that lead on to another page by design, and the page they lead to.
LEADS_TO = {
    "{authorize}": "/u/login/identifier",  # the app's sign-in, with a fresh state
    "/vehicles/{vin}/updates": "/vehicles/{vin}/functions",  # the updates live on the functions page
}
# More states of some pages: empty ones and error pages, with the status they answer.
STATES: list[tuple[str | None, str, int]] = [
    (world.STRANGER, "/vehicles", 200),  # an empty garage
    (world.STRANGER, "/notifications", 200),  # nothing to read
    (OWNER, "/vehicles/{nine_eleven}", 200),  # an older model
    (OWNER, "/vehicles/{nine_eleven}/connectivity", 200),  # its older menus
    (OWNER, "/help/search?q=zzzzqqq", 200),  # nothing found
    (OWNER, "/help", 200),  # the help centre signed in
    (OWNER, "/vehicles/WP0ZZZ00ZXX000000", 404),  # a car that is not yours: the 404 page
    (OWNER, "/no/such/page", 404),  # the 404 page of an unknown address, with the menu (finding 10)
    (OWNER, "/operator", 403),  # a page for staff only: the 403 page
]
NOT_PAGES = {
    "/openapi.json": "the API description",
    "/docs": "Swagger UI (a vendored tool page)",
    "/health": "probe",
    "/ready": "probe",
    "/metrics": "Prometheus text",
    "/.well-known/openid-configuration": "JSON",
    "/.well-known/jwks.json": "JSON",
    "/userinfo": "JSON",
    "/authorize/resume": "redirects back into the sign-in",
    "/vehicles/{vin}/status": "fragment of the vehicle page (htmx)",
    "/notifications/badge": "fragment of the menu (htmx)",
    "/vehicles/{vin}/connectivity/status": "fragment of the connectivity page (htmx)",
    "/privacy/export": "download (JSON and HTML summary)",
    "/vehicles/{vin}/security/certificate.pdf": "PDF download",
    "/soc/queue": "fragment of /soc (htmx)",
    "/soc/welcome-calls": "fragment of /soc (htmx)",
    "/soc/alarms/stream": "server-sent events",
}


def html_routes(app: Any) -> Iterator[str]:
    """The GET routes of the app that answer a browser (not /api, the compat facade or static files)."""

    def walk(routes: list[Any]) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "original_router"):
                yield from walk(route.original_router.routes)
            else:
                yield route

    for route in walk(app.routes):
        methods = getattr(route, "methods", None) or set()
        if "GET" in methods and not route.path.startswith(("/api/", "/app/", "/static", "/demo")):
            yield route.path


def test_every_page_is_listed(tmp_path: Path) -> None:
    """Checked apart from the browser run, so a missing entry is named at once."""
    from carlink.app import create_app
    from carlink.settings import Settings

    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/routes.db"), migrate=False)
    unlisted = sorted(set(html_routes(app)) - set(PAGES) - set(NOT_PAGES))
    assert not unlisted, f"pages without an entry in PAGES (or NOT_PAGES): {unlisted}"
    gone = sorted((set(PAGES) | set(NOT_PAGES)) - set(html_routes(app)))
    assert not gone, f"entries for routes that no longer exist: {gone}"


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_an_unknown_address_keeps_the_profile_language_and_the_menu(
    stack: Stack, browser: Browser
) -> None:
    """No route runs for an unknown address or a wrong method, yet the error page is the signed-in person's:
    Hanako's profile is Japanese, her browser asks for English."""
    context = await browser.new_context(
        base_url=stack.base_url, viewport=DESKTOP, extra_http_headers={"Accept-Language": ACCEPT["en"]}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto("/signin")
    await page.locator("#email").fill(world.JAPAN_OWNER)
    await page.locator("#password").fill(world.PASSWORD)
    async with page.expect_navigation():
        await page.locator("#password").press("Enter")
    assert urlparse(page.url).path == HOME
    japanese = i18n.translations("ja").ugettext
    for url, status, code in [("/no/such/page", 404, "not_found"), ("/signout", 405, "method_not_allowed")]:
        response = await page.goto(url)
        assert response is not None and response.status == status, url
        assert await page.locator("html").get_attribute("lang") == "ja", url
        message = japanese(HTTP_MESSAGES[code])
        assert message != HTTP_MESSAGES[code], f"{code}: no Japanese text to compare with"
        assert await page.locator(f'[data-code="{code}"] .message').inner_text() == message
        assert await page.locator(SIGN_OUT).count() == 1, f"{url}: no menu"
        menu = page.locator('header nav a[href="/vehicles"]')
        assert await menu.inner_text() == japanese("My vehicles"), url
    await context.close()


async def _values(stack: Stack) -> dict[str, str]:
    """Objects the pages show: an order, an alarm case, an invitation, a campaign, a cart at its last step…"""
    await activate_package(stack, TAYCAN)  # buys remote services in the store: an order
    owner = await stack.as_user(OWNER)
    try:  # a cart with a line, a billing address and a card: every checkout step is a page, not a redirect
        await ready_cart(owner, TAYCAN, "navigation-plus", "P1Y")
    finally:
        await owner.aclose()
    alarm_id = await raise_alarm(stack, TAYCAN, AlarmTrigger.TILT, dt.datetime.now(dt.UTC))
    async with stack.db.transaction() as session:
        order_id = await session.scalar(select(Order.id).order_by(Order.id.desc()).limit(1))
        terms_id = await session.scalar(select(TermsVersion.id).limit(1))
        partner = await session.scalar(select(Partner).where(Partner.code == world.DEMO_PARTNERS[0].code))
        dealer = await session.scalar(select(Account).where(Account.email == DEALER))
        assert partner is not None and dealer is not None
        sold = await record_sale(
            session,
            stack.settings,
            partner,
            dealer,
            SaleInput(
                vin="WP0ZZZY1ZPS777001",
                model_key="taycan-1",
                variant_code="Y1ADB1",
                model_year=2026,
                colour="Ice Grey",
                buyer_email="new.buyer@example.com",
                buyer_name="Noa Buyer",
                buyer_country="DE",
                language="en",
                delivery_date=None,
            ),
        )
        sale_id = await session.scalar(select(Sale.id).where(Sale.buyer_email == "new.buyer@example.com"))
    async with stack.db.session() as session:
        mail = await session.scalar(
            select(OutboxEmail.body_text)
            .where(OutboxEmail.template == "invitation")
            .order_by(OutboxEmail.id.desc())
        )
    token = re.search(r"/register/([A-Za-z0-9_-]+)", mail or "")
    assert token is not None and sold is not None
    async with stack.db.transaction() as session:  # the demo's update campaign (carlink demo runs it too)
        await ensure_demo_update(session, stack.settings, OPERATOR)
        campaign_id = await session.scalar(select(UpdateCampaign.id).limit(1))
    return {
        "vin": TAYCAN,
        "nine_eleven": NINE_ELEVEN,
        "order_id": str(order_id),
        "terms_id": str(terms_id),
        "sale_id": str(sale_id),
        "owner_id": str(await account_id(stack, OWNER)),
        "alarm_id": str(alarm_id),
        "campaign_id": str(campaign_id),
        "token": token.group(1),
        "authorize": "/authorize?client_id=carlink-app&redirect_uri=carlink://callback&response_type=code"
        "&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        "&code_challenge_method=S256",
    }


async def _wrong_password(page: Page, values: dict[str, str]) -> Response | None:
    await page.goto("/signin")
    await page.locator("#email").fill("nobody@example.com")
    await page.locator("#password").fill("not-the-password")
    async with page.expect_navigation() as answer:
        await page.locator("#password").press("Enter")
    return await answer.value


async def _checkout_without_street(page: Page, values: dict[str, str]) -> Response | None:
    """The browser's own check is turned off, so the server's refusal is the page shown."""
    await page.goto(f"/vehicles/{values['vin']}/checkout/address")
    form = page.locator('form[action$="/checkout/address"]')
    await form.evaluate("f => { f.noValidate = true; f.querySelector('#address-street').value = ''; }")
    async with page.expect_navigation() as answer:
        await form.locator('button[type="submit"]').click()
    return await answer.value


# Forms sent with a mistake: (who, the address of the answer, how). The answer shows its error as an alert.
FORMS: list[tuple[str | None, str, Callable[[Page, dict[str, str]], Awaitable[Response | None]]]] = [
    (PUBLIC, "/signin", _wrong_password),
    (OWNER, "/vehicles/{vin}/checkout/address", _checkout_without_street),
]


async def _sign_in(page: Page, email: str, language: str) -> None:
    """Through the form, then Login & security → Language; fails at once if either did not work (otherwise
    every page would silently be the sign-in page)."""
    await page.goto("/signin")
    await page.locator("#email").fill(email)
    await page.locator("#password").fill(world.PASSWORD)
    async with page.expect_navigation():
        await page.locator("#password").press("Enter")
    assert urlparse(page.url).path == HOME, f"{email} did not get in: {page.url}"
    assert await page.locator(SIGN_OUT).count() == 1, f"{email}: no sign-out control on {page.url}"
    await page.goto("/account")
    await page.locator("#language").select_option(language)
    async with page.expect_navigation():
        await page.locator('form[action="/account/language"] button[type="submit"]').click()
    assert await page.locator("html").get_attribute("lang") == language, f"{email}: language not saved"


async def _browser_for(
    browser: Browser, stack: Stack, who: str | None, language: str, blocked: list[str]
) -> Page:
    # A visitor's browser speaks the language. A signed-in person's browser speaks another one, so a page
    # that ignored the profile's language would show in the wrong one (and fail the lang check).
    accept = language if who is None else ("de" if language == "en" else "en")
    context = await browser.new_context(
        base_url=stack.base_url, viewport=DESKTOP, extra_http_headers={"Accept-Language": ACCEPT[accept]}
    )
    context.set_default_timeout(TIMEOUT_MS)
    await watch_csp(context, blocked)  # the strict Content-Security-Policy holds on every page (issue 9)
    page = await context.new_page()
    if who is not None:
        await _sign_in(page, who, language)
    return page


async def _check(page: Page, where: str, language: str, problems: list[str]) -> None:
    """axe at a desktop's width, nothing wider than a phone, and (in one language) axe at a phone's width."""
    await page.wait_for_load_state("networkidle")
    found = await violations(page)
    if found:
        problems.append(describe(where, found))
    await page.set_viewport_size(PHONE)
    wider, culprits = await overflow(page)
    if wider > 1:
        problems.append(f"{where}: {wider}px wider than a phone: {culprits}")
    if language == PHONE_AXE:
        found = await violations(page)
        if found:
            problems.append(describe(f"{where} at a phone's width", found))
    await page.set_viewport_size(DESKTOP)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_every_page_passes_axe_and_fits_a_phone(stack: Stack, browser: Browser, language: str) -> None:
    values = await _values(stack)
    visits = [(who, address, 200) for who, address in PAGES.values()] + STATES
    pages: dict[str | None, Page] = {}
    wrong: list[str] = []
    problems: list[str] = []
    blocked: list[str] = []
    for who, address, status in visits:
        if who not in pages:
            pages[who] = await _browser_for(browser, stack, who, language, blocked)
        page = pages[who]
        url = address.format(**values)
        response = await page.goto(url)
        # The page asked for, not a redirect to another (the sign-in page, the cart…).
        path = urlparse(LEADS_TO.get(address, address).format(**values)).path
        if found := await _landed(page, response, {status}, path, who, language):
            wrong.append(f"{url} as {who}: {found}")
        else:
            await _check(page, f"{url} as {who}", language, problems)
    for who, address, send in FORMS:
        page = pages[who]
        response = await send(page, values)
        path = address.format(**values)
        if found := await _landed(page, response, set(range(400, 500)), path, who, language):
            wrong.append(f"{send.__name__} as {who}: {found}")
        elif not await page.get_by_role("alert").count():
            wrong.append(f"{send.__name__} as {who}: no error shown")
        else:
            await _check(page, f"{send.__name__} as {who}", language, problems)
    for page in pages.values():
        await page.context.close()
    assert not wrong, "\n".join(wrong)
    assert not problems, "\n".join(problems)
    assert not blocked, "Content-Security-Policy violations:\n" + "\n".join(sorted(set(blocked)))


async def _landed(
    page: Page, response: Response | None, status: set[int], path: str, who: str | None, language: str
) -> str:
    """What is wrong with where the browser is: another status or page, another language than the person's
    (the profile's when signed in), no menu when signed in. Empty when all is right."""
    answered = response.status if response else None
    if answered not in status:
        return f"status {answered}"
    if urlparse(page.url).path != path:
        return f"ended on {page.url}"
    lang = await page.locator("html").get_attribute("lang")
    if lang != language:
        return f"lang={lang}"
    if who is not None and await page.locator(SIGN_OUT).count() != 1:
        return "no menu with the sign-out control"
    return ""
