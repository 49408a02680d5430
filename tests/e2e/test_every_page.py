"""Every page of the portal and the consoles, opened in Debian's chromium by the person who may see it:
axe-core finds no serious or critical accessibility problem, and at a phone's width nothing is wider than
the screen (issue 8, point 4).

A page the app serves that this table does not list fails the test, so a new page is checked from its
first day. Fragments, streams and downloads are listed apart, with the reason they are not pages.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import select

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
from tests.conftest import STACKS
from tests.e2e.accessibility import PHONE, describe, overflow, violations
from tests.e2e.conftest import TIMEOUT_MS
from tests.integration.test_soc_console import activate_package, raise_alarm
from tests.support.portal import account_id
from tests.support.stack import NINE_ELEVEN, TAYCAN, Stack

pytestmark = pytest.mark.e2e

OWNER, DEALER, OPERATOR, SOC = world.OWNER, world.DEALER, world.OPERATOR, world.SOC_OPERATOR
PUBLIC = None

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
    "/manuals": (PUBLIC, "/manuals"),
    "/manuals/{model_key}": (PUBLIC, "/manuals/taycan-1"),
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
# More states of some pages: empty ones and error pages.
STATES: list[tuple[str | None, str]] = [
    (world.STRANGER, "/vehicles"),  # an empty garage
    (world.STRANGER, "/notifications"),  # nothing to read
    (OWNER, "/vehicles/{nine_eleven}"),  # an older model
    (OWNER, "/vehicles/{nine_eleven}/connectivity"),  # its older menus
    (OWNER, "/help/search?q=zzzzqqq"),  # nothing found
    (OWNER, "/help"),  # the help centre signed in
    (OWNER, "/vehicles/WP0ZZZ00ZXX000000"),  # a car that is not yours: the 404 page
    (OWNER, "/no/such/page"),  # the 404 page of an unknown address
    (OWNER, "/operator"),  # a page for staff only: the 403 page
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


async def _values(stack: Stack) -> dict[str, str]:
    """Objects the pages show: an order, an alarm case, an invitation, a campaign…"""
    await activate_package(stack, TAYCAN)  # buys remote services in the store: an order
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


async def _signed_in(browser: Browser, stack: Stack, email: str | None) -> Page:
    context = await browser.new_context(base_url=stack.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    if email is not None:
        await page.goto("/signin")
        await page.get_by_label("Email address").fill(email)
        await page.get_by_label("Password", exact=True).fill(world.PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_load_state()
    return page


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_every_page_passes_axe_and_fits_a_phone(stack: Stack, browser: Browser) -> None:
    values = await _values(stack)
    visits = [*PAGES.values(), *STATES]
    pages: dict[str | None, Page] = {}
    problems: list[str] = []
    too_wide: list[str] = []
    for who, address in visits:
        if who not in pages:
            pages[who] = await _signed_in(browser, stack, who)
        page = pages[who]
        url = address.format(**values)
        response = await page.goto(url)
        assert response is not None
        expected_error = url.startswith(("/no/", "/vehicles/WP0ZZZ00")) or (
            who == OWNER and url == "/operator"
        )
        assert (response.status >= 400) == expected_error, f"{url} as {who}: {response.status}"
        await page.wait_for_load_state("networkidle")
        found = await violations(page)
        if found:
            problems.append(describe(f"{url} as {who}", found))
        await page.set_viewport_size(PHONE)
        wider, culprits = await overflow(page)
        if wider > 1:
            too_wide.append(f"{url} as {who}: {wider}px wider than a phone: {culprits}")
        await page.set_viewport_size({"width": 1280, "height": 900})
    for page in pages.values():
        await page.context.close()
    assert not problems, "\n".join(problems)
    assert not too_wide, "\n".join(too_wide)
