"""The buyer's way to an ID (ACC-2, ACC-3, ACC-4): the dealer records a sale, the invitation mail's link
registers the buyer with the car, links are single-use and expire, a resend replaces the old link, and
asking again is rate-limited and tells nobody whether an address is invited."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from carlink.clock import clock
from carlink.demo import world
from carlink.identity import service as identity
from carlink.identity.access import SESSION_COOKIE
from carlink.identity.invitations import RESEND_ANSWER
from carlink.identity.models import Account
from carlink.notify.models import OutboxEmail
from carlink.partners.models import PreferredPartner, Sale
from carlink.protocol.vin import make_vin
from tests.support.portal import Browser, partner_id
from tests.support.stack import Stack

NEW_VIN = make_vin("WP0", "ZZZY1", "R", "S", 810001)
BUYER = "new.buyer@example.com"


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[dict[str, Browser]]:
    opened: dict[str, Browser] = {}
    yield opened
    for browser in opened.values():
        await browser.http.aclose()


async def signed_in(stack: Stack, browsers: dict[str, Browser], email: str) -> Browser:
    if email not in browsers:
        browsers[email] = await Browser(stack).sign_in(email)
    return browsers[email]


def sale_form(vin: str, email: str, **changes: str) -> dict[str, str]:
    return {
        "vin": vin,
        "model": "taycan-1",
        "variant": "Y1ADB1",
        "model_year": "2024",
        "colour": "Ice Grey",
        "buyer_email": email,
        "buyer_name": "Nora Neu",
        "buyer_country": "DE",
        "language": "en",
        "delivery_date": "2030-05-01",
    } | changes


async def record_sale(dealer: Browser, vin: str, email: str, **changes: str) -> tuple[int, str]:
    """Records a sale in the console; answers the sale id and where the console went next."""
    response = await dealer.post("/dealer/sales", sale_form(vin, email, **changes))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    found = re.search(r"/dealer/sales/([0-9]+)\?done=(\w+)", location)
    assert found is not None, location
    return int(found.group(1)), found.group(2)


async def mails_to(stack: Stack, address: str, template: str) -> list[OutboxEmail]:
    async with stack.db.session() as session:
        rows = await session.scalars(
            select(OutboxEmail)
            .where(OutboxEmail.to_address == address, OutboxEmail.template == template)
            .order_by(OutboxEmail.id)
        )
        return list(rows)


async def latest_link(stack: Stack, address: str) -> str:
    """The registration link of the newest invitation mail to `address`, as a path."""
    mail = (await mails_to(stack, address, "invitation"))[-1]
    found = re.search(re.escape(stack.base_url) + r"(/register/[A-Za-z0-9_-]+)", mail.body_text)
    assert found is not None, mail.body_text
    return found.group(1)


def form_token_of(html: str) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', html)
    assert found is not None, "the registration form has no form token"
    return found.group(1)


def registration(partner: int, **changes: str) -> dict[str, str]:
    return {
        "display_name": "Nora Neu",
        "password": "a-new-secret-1",
        "password_again": "a-new-secret-1",
        "partner_id": str(partner),
        "policy": "1",
        "consent": "1",
    } | changes


async def test_a_sale_invites_the_buyer_who_registers_once_and_finds_the_car(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    # REQ: ACC-2 — the invitation goes out at once, before delivery.
    dealer = await signed_in(stack, browsers, world.DEALER)
    stuttgart = await partner_id(stack, "DE-STR-01")
    bad = await dealer.post("/dealer/sales", sale_form("WP0ZZZ", BUYER))
    assert bad.status_code == 400 and 'id="sale-error"' in bad.text
    sale_id, done = await record_sale(dealer, NEW_VIN, BUYER)
    assert done == "invited"
    page = await dealer.http.get(f"/dealer/sales/{sale_id}?done=invited")
    assert page.status_code == 200 and 'data-state="invited"' in page.text
    [mail] = await mails_to(stack, BUYER, "invitation")
    assert "Autohaus Example Stuttgart" in mail.body_text and NEW_VIN in mail.body_text
    link = await latest_link(stack, BUYER)
    about = (await stack.http.get(f"/api/v1/invitations/{link.rsplit('/', 1)[1]}")).json()
    assert about["email"] == BUYER and about["vin"] == NEW_VIN and about["dealer_id"] == stuttgart
    assert stuttgart in {partner["id"] for partner in about["partners"]}

    # REQ: ACC-3 — the email is fixed, the selling dealer preselected; a refused form keeps the link.
    buyer = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    try:
        form = await buyer.get(link)
        assert form.status_code == 200 and BUYER in form.text
        assert f'<option value="{stuttgart}" selected>' in form.text
        # A registration signs the browser in: a form posted without this browser's form token (from
        # another site) is refused.
        forged = await buyer.post(link, data=registration(stuttgart))
        assert forged.status_code == 400 and "out of date" in forged.text
        token = form_token_of(form.text)
        differ = await buyer.post(
            link, data=registration(stuttgart, password_again="something-else", form_token=token)
        )
        assert differ.status_code == 400 and "not the same" in differ.text
        no_policy = registration(stuttgart, form_token=token)
        del no_policy["policy"]
        assert (await buyer.post(link, data=no_policy)).status_code == 400
        foreign = await partner_id(stack, "JP-YOK-01")
        assert (await buyer.post(link, data=registration(foreign, form_token=token))).status_code == 400

        # A double submit (two clicks, a second tab) creates one ID: the link is claimed once.
        second_tab = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
        try:
            second_token = form_token_of((await second_tab.get(link)).text)
            answers = await asyncio.gather(
                buyer.post(link, data=registration(stuttgart, form_token=token)),
                second_tab.post(link, data=registration(stuttgart, form_token=second_token)),
            )
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses == [303, 410], [answer.text[:300] for answer in answers]
            winner, loser = sorted(
                zip(answers, (buyer, second_tab), strict=True), key=lambda a: a[0].status_code
            )
            assert winner[0].headers["location"] == f"/vehicles/{NEW_VIN}"
            assert 'data-code="invitation_used"' in loser[0].text
            signed_in_client = winner[1]
            assert signed_in_client.cookies.get(SESSION_COOKIE)
            car_page = await signed_in_client.get(f"/vehicles/{NEW_VIN}")
            assert car_page.status_code == 200 and NEW_VIN in car_page.text
            tokens = {id(buyer): token, id(second_tab): second_token}
            again = await loser[1].post(link, data=registration(stuttgart, form_token=tokens[id(loser[1])]))
            assert again.status_code == 410 and 'data-code="invitation_used"' in again.text
        finally:
            await second_tab.aclose()
    finally:
        await buyer.aclose()

    async with stack.db.session() as session:
        assert await session.scalar(select(func.count()).where(Account.email == BUYER)) == 1
        account = await identity.find_account(session, BUYER)
        assert account is not None and account.country == "DE" and account.display_name == "Nora Neu"
        sale = await session.get(Sale, sale_id)
        assert sale is not None and sale.buyer_account_id == account.id
        chosen = await session.get(PreferredPartner, account.id)
        assert chosen is not None and chosen.partner_id == stuttgart
        from carlink.privacy import service as privacy

        consent = await privacy.consent_state(session, account.id)
        assert consent is not None and consent.granted and consent.partner_id == stuttgart

    # The new ID sees its car through the app API too, as main user.
    token = await stack.token(BUYER, "a-new-secret-1")
    api = httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"})
    try:
        [car] = (await api.get("/api/v1/vehicles")).json()
        assert car["vin"] == NEW_VIN and car["role"] == "main"
    finally:
        await api.aclose()
    accepted_again = await stack.http.post(
        f"/api/v1/invitations/{link.rsplit('/', 1)[1]}/accept",
        json={"password": "a-new-secret-1", "partner_id": stuttgart, "accept_privacy_policy": True},
    )
    assert accepted_again.status_code == 410
    assert accepted_again.json()["error"]["code"] == "invitation_used"


@pytest.mark.stack_settings(invitation_days=2)
async def test_links_expire_a_resend_replaces_the_old_one_and_asking_again_is_limited(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    dealer = await signed_in(stack, browsers, world.DEALER)
    sale_id, _ = await record_sale(dealer, NEW_VIN, BUYER, language="de")
    first = await latest_link(stack, BUYER)
    [mail] = await mails_to(stack, BUYER, "invitation")
    assert mail.language == "de" and "Autohaus Example Stuttgart" in mail.subject + mail.body_text

    # REQ: ACC-4 — the dealer resends: a new link, and the old one stops working.
    resent = await dealer.post(f"/dealer/sales/{sale_id}/resend")
    assert resent.status_code == 303 and resent.headers["location"].endswith("done=resent")
    second = await latest_link(stack, BUYER)
    assert second != first
    old = await stack.http.get(first, headers={"Accept": "text/html"})
    assert old.status_code == 410 and 'data-code="invitation_expired"' in old.text
    assert 'action="/register/resend"' in old.text
    assert (await stack.http.get(second, headers={"Accept": "text/html"})).status_code == 200

    # Another dealer can neither see nor resend this dealer's sale: the same 404 as for no sale.
    berlin = await signed_in(stack, browsers, world.OTHER_DEALER)
    assert (await berlin.http.get(f"/dealer/sales/{sale_id}")).status_code == 404
    assert (await berlin.post(f"/dealer/sales/{sale_id}/resend")).status_code == 404
    assert (await berlin.post(f"/dealer/sales/{sale_id}/withdraw")).status_code == 404
    assert len(await mails_to(stack, BUYER, "invitation")) == 2

    # The person asks again: always the same answer, invited or not; a new link replaces the last one.
    asked = await stack.http.post("/register/resend", data={"email": BUYER.upper()})
    assert asked.status_code == 200 and RESEND_ANSWER in asked.text
    stranger = await stack.http.post("/register/resend", data={"email": "nobody@example.com"})
    assert stranger.status_code == 200 and RESEND_ANSWER in stranger.text
    third = await latest_link(stack, BUYER)
    assert third != second
    assert (await stack.http.get(second)).status_code == 410
    api_answer = await stack.http.post("/api/v1/invitations/resend", json={"email": BUYER})
    assert api_answer.status_code == 202 and api_answer.json()["message"] == RESEND_ANSWER
    fourth = await latest_link(stack, BUYER)
    # At most three asks an hour per address, with a clear 429 page; the unknown address is limited alike.
    assert (await stack.http.post("/register/resend", data={"email": BUYER})).status_code == 200
    limited = await stack.http.post(
        "/register/resend", data={"email": BUYER}, headers={"Accept": "text/html"}
    )
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert 'id="resend-error"' in limited.text
    for _ in range(2):
        await stack.http.post("/register/resend", data={"email": "nobody@example.com"})
    assert (
        await stack.http.post("/register/resend", data={"email": "nobody@example.com"})
    ).status_code == 429
    latest = await latest_link(stack, BUYER)
    assert latest != fourth

    # REQ: ACC-4 — links expire (14 days by default; 2 here): the page says so and offers a new link.
    clock.advance(days=3)
    expired = await stack.http.get(latest, headers={"Accept": "text/html"})
    assert expired.status_code == 410 and 'data-code="invitation_expired"' in expired.text
    token = latest.rsplit("/", 1)[1]
    api = await stack.http.post(
        f"/api/v1/invitations/{token}/accept",
        json={"password": "a-new-secret-1", "partner_id": 1, "accept_privacy_policy": True},
    )
    assert api.status_code == 410 and api.json()["error"]["code"] == "invitation_expired"
    console = await dealer.http.get(f"/dealer/sales/{sale_id}")
    assert 'data-state="expired"' in console.text
    # The dealer's resend after expiry gives a fresh link that works.
    assert (await dealer.post(f"/dealer/sales/{sale_id}/resend")).status_code == 303
    assert (await stack.http.get(await latest_link(stack, BUYER))).status_code == 200
    # An unknown link is simply not found.
    assert (await stack.http.get("/register/not-a-real-token")).status_code == 404


async def test_self_registration_only_where_the_country_allows_it(stack: Stack) -> None:
    # REQ: ACC-3 — without an invitation, only in the configured countries; the same choices (PRV-2).
    stuttgart = await partner_id(stack, "DE-STR-01")
    person = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    try:
        form = await person.get("/register")
        assert form.status_code == 200 and 'name="policy"' in form.text
        choices = registration(stuttgart, consent="", form_token=form_token_of(form.text))
        elsewhere = await person.post(
            "/register", data={"email": "ana@example.com", "country": "FR", **choices}
        )
        assert elsewhere.status_code == 403 and "dealer" in elsewhere.text
        taken = await person.post("/register", data={"email": world.OWNER, "country": "DE", **choices})
        assert taken.status_code == 409 and 'id="register-error"' in taken.text
        done = await person.post("/register", data={"email": "ana@example.com", "country": "DE", **choices})
        assert done.status_code == 303 and done.headers["location"] == "/vehicles"
        assert (await person.get("/vehicles")).status_code == 200
    finally:
        await person.aclose()
    async with stack.db.session() as session:
        account = await identity.find_account(session, "ana@example.com")
        assert account is not None
        chosen = await session.get(PreferredPartner, account.id)
        assert chosen is not None and chosen.partner_id == stuttgart
        from carlink.privacy import service as privacy

        consent = await privacy.consent_state(session, account.id)
        assert consent is not None and not consent.granted


async def test_an_id_registered_on_a_german_page_speaks_german(stack: Stack) -> None:
    # The profile's language wins over the browser's once signed in, so registering must keep the page's.
    stuttgart = await partner_id(stack, "DE-STR-01")
    headers = {"Accept": "text/html", "Accept-Language": "de-DE,de;q=0.9"}
    person = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers=headers)
    try:
        form = await person.get("/register")
        choices = registration(stuttgart, form_token=form_token_of(form.text))
        done = await person.post("/register", data={"email": "lena@example.com", "country": "DE", **choices})
        assert done.status_code == 303, done.text
        # Later, from an English browser: the ID's language, German.
        garage = await person.get("/vehicles", headers={"Accept-Language": "en"})
        assert '<html lang="de">' in garage.text and "Meine Fahrzeuge" in garage.text
    finally:
        await person.aclose()
    async with stack.db.session() as session:
        account = await identity.find_account(session, "lena@example.com")
        assert account is not None and account.locale == "de"
