"""The store and the functions pages in German and Japanese (issue 8): the headings, the refusals with their
stable codes on the page and in the JSON API, prices in the currency format of the person's language, and
the terms' dates in the browser's language for a visitor who is not signed in."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from babel.dates import format_date
from sqlalchemy import select, update

from carlink import i18n
from carlink.catalog import service as catalog
from carlink.catalog.models import Offer
from carlink.catalog.money import format_money
from carlink.demo import world
from carlink.identity.models import Account
from tests.integration.test_fod_pages import permanent_offer, saved_card
from tests.integration.test_store_contracts import buy
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

STORE = f"/vehicles/{TAYCAN}/store"


async def speaks(stack: Stack, email: str, language: str) -> None:
    """The person's profile language, which the portal and the app API follow."""
    async with stack.db.transaction() as session:
        await session.execute(update(Account).where(Account.email == email).values(locale=language))


async def offer(stack: Stack, service: str, country: str, *, trial: bool = False) -> Offer:
    async with stack.db.session() as session:
        found = await session.scalar(
            select(Offer)
            .where(
                Offer.service_code == service,
                Offer.country == country,
                Offer.trial.is_(trial),
                Offer.retired_at.is_(None),
            )
            .order_by(Offer.term_months.desc())
            .limit(1)
        )
    assert found is not None, (service, country)
    return found


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, str(body["code"]), str(body["message"])


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[Browser]:
    browser = await Browser(stack).sign_in(world.OWNER)
    try:
        yield browser
    finally:
        await browser.close()


async def test_the_store_speaks_german_with_euro_prices_and_explains_a_refusal_with_its_code(
    stack: Stack, owner: Browser
) -> None:
    await speaks(stack, world.OWNER, "de")
    remote = await offer(stack, "remote-services", "DE")
    front = await owner.http.get(STORE)
    assert front.status_code == 200
    assert "<h1>Store für Ihren" in front.text and "In den Warenkorb" in front.text
    assert "Wir akzeptieren VISA · Mastercard" in front.text
    # The price in German format: comma decimals, the euro sign after the amount.
    price = format_money(remote.price_minor, remote.currency, "de")
    assert "," in price and price.endswith("€") and price in front.text

    # REQ: SEC-1 — a tracking package without the phone number the SOC calls: the page and the API refuse
    # it with the same stable code, in the profile's language.
    tracking = await offer(stack, "tracking", "DE")
    refused = await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(tracking.id)})
    assert refused.status_code == 422
    assert (
        'data-code="phone_required">Bitte geben Sie die Telefonnummer an, die unsere Sicherheitszentrale'
        in refused.text
    )
    api = await stack.as_user(world.OWNER)
    try:
        response = await api.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": tracking.id})
        assert error_of(response) == (
            422,
            "phone_required",
            "Bitte geben Sie die Telefonnummer an, die unsere Sicherheitszentrale bei einem möglichen "
            "Diebstahl Ihres Fahrzeugs anruft.",
        )
        added = await api.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": remote.id})
        assert added.status_code == 200
        assert added.json()["total"]["formatted"] == price
    finally:
        await api.aclose()

    cart = await owner.http.get(f"/vehicles/{TAYCAN}/cart")
    assert "<h1>Ihr Warenkorb</h1>" in cart.text and f"<strong data-total>{price}</strong>" in cart.text
    address = await owner.post(f"/vehicles/{TAYCAN}/checkout/address", {"name": "Alex Example"})
    assert address.status_code == 422 and "Bitte ausfüllen: Straße und Hausnummer, Postleitzahl, Ort" in (
        address.text
    )


async def test_the_japanese_owner_sees_the_store_in_japanese_with_prices_in_yen(stack: Stack) -> None:
    vin = world.JAPAN_CAR.vin
    remote = await offer(stack, "remote-services", "JP")
    browser = await Browser(stack).sign_in(world.JAPAN_OWNER)  # profile language ja
    try:
        front = await browser.http.get(f"/vehicles/{vin}/store")
        assert front.status_code == 200
        assert "のストア</h1>" in front.text and "カートに追加" in front.text
        price = format_money(remote.price_minor, "JPY", "ja")
        assert price.startswith("￥") and price in front.text
        services = await browser.http.get(f"/vehicles/{vin}/services")
        assert "のサービス</h1>" in services.text and "どのデータパッケージが合う？" in services.text
        plan = await browser.http.get(f"/vehicles/{vin}/services", params={"annual_km": "lots"})
        assert 'id="plan-error">走行距離は15000のような整数で入力してください。' in plan.text
    finally:
        await browser.close()

    # The app API: the same refusal code as in English, the message in Japanese.
    api = await stack.as_user(world.JAPAN_OWNER)
    try:
        response = await api.post(
            "/api/v1/store/payment-methods",
            json={"number": "4242 4242 4242 4241", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        )
        assert error_of(response) == (
            422,
            "card_number_invalid",
            "このカード番号は無効です。ご確認ください。",
        )
    finally:
        await api.aclose()


async def test_the_functions_page_and_its_refusal_in_japanese(stack: Stack, owner: Browser) -> None:
    await speaks(stack, world.OWNER, "ja")
    card = await saved_card(stack, owner)
    function = await permanent_offer(stack)
    page = await owner.http.get(f"/vehicles/{TAYCAN}/functions")
    assert page.status_code == 200
    assert "の機能とアップデート</h1>" in page.text and "この車両の国で利用できる機能" in page.text
    async with stack.db.session() as session:
        lifetime = await session.get(Offer, function)
    assert lifetime is not None
    assert f"一括 {format_money(lifetime.price_minor, lifetime.currency, 'ja')}" in page.text

    refused = await owner.post(
        f"/vehicles/{TAYCAN}/functions/order",
        {"offer_id": str(function), "payment_method_id": str(card), "function": "adaptive-cruise"},
    )
    assert refused.status_code == 422
    assert (
        'data-code="terms_not_accepted">この機能を注文するには、機能の規約に同意してください。'
        in refused.text
    )


@pytest.mark.parametrize(
    ("accept_language", "language", "heading"),
    [("de-DE,de;q=0.9", "de", "veröffentlicht am"), ("ja,en;q=0.5", "ja", "公開）")],
)
async def test_a_visitor_reads_a_terms_version_with_its_date_in_the_browsers_language(
    stack: Stack, accept_language: str, language: str, heading: str
) -> None:
    async with stack.db.session() as session:
        [terms] = await catalog.terms_in_force(session, ["general"], "en")
    visitor = httpx.AsyncClient(
        base_url=stack.base_url,
        timeout=30,
        headers={"Accept": "text/html", "Accept-Language": accept_language},
    )
    try:
        page = await visitor.get(f"/store/terms/versions/{terms.id}")
        assert page.status_code == 200 and heading in page.text
        published = format_date(
            terms.published_at.date(), format="medium", locale=i18n.BABEL_LOCALES[language]
        )
        assert published in page.text
        missing = await visitor.get(
            "/api/v1/store/countries/XX/services", headers={"Accept": "application/json"}
        )
        assert error_of(missing)[:2] == (404, "store_not_in_country")
        assert (
            error_of(missing)[2]
            == {
                "de": "Der Store ist in diesem Land nicht verfügbar.",
                "ja": "この国ではストアをご利用いただけません。",
            }[language]
        )
    finally:
        await visitor.aclose()


async def test_the_order_and_the_cars_services_show_german_dates_and_amounts(
    stack: Stack, owner: Browser
) -> None:
    await speaks(stack, world.OWNER, "de")
    api = await stack.as_user(world.OWNER)
    try:
        contract = await buy(api, TAYCAN, "remote-services", "P1Y")
        [order] = (await api.get("/api/v1/store/orders")).json()
    finally:
        await api.aclose()
    ends = dt.datetime.fromisoformat(contract["ends_at"])
    created = dt.datetime.fromisoformat(order["created_at"])

    page = await owner.http.get(f"/orders/{order['id']}")
    assert page.status_code == 200
    assert (
        f"<h1>Bestellung {order['number']}</h1>" in page.text
        and "Vielen Dank für Ihre Bestellung" in page.text
    )
    assert f"<strong>{order['total']['formatted']}</strong>" in page.text
    assert order["total"]["formatted"].endswith("€")  # the API speaks the profile's language too
    assert format_date(ends.date(), format="medium", locale="de_DE") in page.text
    assert format_date(created.date(), format="medium", locale="de_DE") in page.text

    services = await owner.http.get(f"/vehicles/{TAYCAN}/services")
    assert "<h1>Dienste Ihres" in services.text and "Restlaufzeit" in services.text
    assert f"{contract['remaining_days']} Tage, bis" in services.text
    assert "Widerruf" in services.text and contract["price"]["formatted"] in services.text
