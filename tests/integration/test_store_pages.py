"""The store's portal pages over HTTP with a signed-in browser session: every form needs the session's CSRF
token, the price comes from the offer alone whatever the form says, and a cart the catalogue changed under
it gets a clear message at confirm (issue 4: bad input and faults)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from carlink.catalog import service as catalog
from carlink.catalog.models import Offer
from carlink.db.base import utcnow
from carlink.demo import world
from carlink.garage import service as garage
from carlink.store import pages as store_pages
from carlink.store import services_pages
from carlink.store.models import BillingAddress, CartLine, Contract, Order, PaymentMethod
from carlink.store.payments import SandboxCharge
from carlink.telemetry.models import Measurement
from tests.support.portal import Browser
from tests.support.purchases import ADDRESS
from tests.support.stack import TAYCAN, Stack

VISA = {"number": "4242 4242 4242 4242", "exp_month": "12", "exp_year": "2031", "cvc": "123"}


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[Browser]:
    browser = Browser(stack)
    await browser.sign_in(world.OWNER)
    try:
        yield browser
    finally:
        await browser.http.aclose()


async def offer_of(stack: Stack, service: str, term: str) -> Offer:
    async with stack.db.session() as session:
        offer = await session.scalar(
            select(Offer).where(
                Offer.service_code == service,
                Offer.country == "DE",
                Offer.term == term,
                Offer.retired_at.is_(None),
            )
        )
    assert offer is not None
    return offer


async def count(stack: Stack, model: type[object]) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def ready_for_review(stack: Stack, browser: Browser, service: str = "remote-services") -> int:
    """Cart, address and card through the pages; answers the cart revision the review page shows."""
    offer = await offer_of(stack, service, "P1Y")
    assert (
        await browser.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer.id)})
    ).status_code == 303
    address = await browser.post(f"/vehicles/{TAYCAN}/checkout/address", {**ADDRESS, "remember": "1"})
    assert address.headers["location"] == f"/vehicles/{TAYCAN}/checkout/payment"
    card = await browser.post(f"/vehicles/{TAYCAN}/checkout/payment", VISA)
    assert card.status_code == 303 and card.headers["location"] == f"/vehicles/{TAYCAN}/checkout/review"
    review = await browser.http.get(f"/vehicles/{TAYCAN}/checkout/review")
    assert review.status_code == 200
    revision = re.search(r'name="revision" value="([0-9]+)"', review.text)
    assert revision is not None
    return int(revision.group(1))


async def test_every_store_form_refuses_a_post_without_the_sessions_token(
    stack: Stack, owner: Browser
) -> None:
    offer = await offer_of(stack, "remote-services", "P1Y")
    forms = {
        "/vehicles/{vin}/cart/add": {"offer_id": str(offer.id)},
        "/vehicles/{vin}/cart/remove": {"service_code": "remote-services"},
        "/vehicles/{vin}/cart/express": {},
        "/vehicles/{vin}/checkout/address": ADDRESS,
        "/vehicles/{vin}/checkout/payment": VISA,
        "/vehicles/{vin}/checkout/confirm": {"revision": "1"},
        "/orders/{order_id}/challenge": {"code": "123456"},
        "/vehicles/{vin}/services/{contract_id}/withdraw": {},
        "/vehicles/{vin}/services/{contract_id}/cancel": {"back": "services"},
        "/account/payment": VISA,
        "/account/payment/remove": {"method_id": "1"},
        "/account/payment/address": ADDRESS,
    }
    posted = {
        route.path
        for route in (*store_pages.router.routes, *services_pages.router.routes)
        if isinstance(route, APIRoute) and "POST" in (route.methods or ())
    }
    assert posted == set(forms), "every form of the store pages is in this test"
    for template, data in forms.items():
        path = template.format(vin=TAYCAN, order_id=1, contract_id=1)
        for token in ("", "not-the-token"):
            response = await owner.http.post(path, data={**data, "csrf_token": token})
            assert response.status_code == 403, (path, response.status_code)
            assert "the form is out of date" in response.text
    assert await count(stack, CartLine) == 0
    assert await count(stack, PaymentMethod) == 0
    assert await count(stack, BillingAddress) == 0
    assert await count(stack, Order) == 0
    # The same form with the page's token goes through.
    added = await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer.id)})
    assert added.status_code == 303 and await count(stack, CartLine) == 1


async def test_a_tampered_price_or_quantity_in_the_forms_is_ignored(stack: Stack, owner: Browser) -> None:
    offer = await offer_of(stack, "remote-services", "P1Y")
    tampered = {
        "offer_id": str(offer.id),
        "price_minor": "1",
        "price": "0.01",
        "quantity": "5",
        "currency": "JPY",
        "term": "P3Y",
        "term_months": "36",
    }
    assert (await owner.post(f"/vehicles/{TAYCAN}/cart/add", tampered)).status_code == 303
    cart = await owner.http.get(f"/vehicles/{TAYCAN}/cart")
    assert cart.status_code == 200
    assert cart.text.count('data-service="remote-services"') == 1
    total = re.search(r"data-total>([^<]+)<", cart.text)
    assert total is not None and total.group(1) == "€99.00"

    revision = await ready_for_review(stack, owner, "remote-services")
    confirm = await owner.post(
        f"/vehicles/{TAYCAN}/checkout/confirm",
        {"revision": str(revision), "total_minor": "1", "amount": "1", "quantity": "3"},
    )
    assert confirm.status_code == 303 and confirm.headers["location"].startswith("/orders/")
    async with stack.db.session() as session:
        order = await session.scalar(select(Order))
        charge = await session.scalar(select(SandboxCharge))
        contracts = list(await session.scalars(select(Contract)))
    assert order is not None and order.total_minor == offer.price_minor == 9900 and order.state == "confirmed"
    assert charge is not None and charge.amount_minor == 9900
    assert [(c.service_code, c.term, c.price_minor) for c in contracts] == [("remote-services", "P1Y", 9900)]


async def test_a_stale_cart_gets_a_clear_message_at_confirm_and_takes_the_new_price(
    stack: Stack, owner: Browser
) -> None:
    old = await offer_of(stack, "navigation-plus", "P1Y")
    revision = await ready_for_review(stack, owner, "navigation-plus")
    async with stack.db.transaction() as session:  # the operator changes the price meanwhile
        new = await catalog.revise_offer(session, old.id, price_minor=10900)

    confirm = await owner.post(f"/vehicles/{TAYCAN}/checkout/confirm", {"revision": str(revision)})
    assert confirm.status_code == 409
    assert "The store changed since you chose this" in confirm.text
    assert "It now costs €109.00" in confirm.text and "Take the new price" in confirm.text
    assert await count(stack, Order) == 0 and await count(stack, SandboxCharge) == 0
    review = await owner.http.get(f"/vehicles/{TAYCAN}/checkout/review")
    assert review.status_code == 200 and 'name="revision"' not in review.text
    assert "Check your cart" in review.text

    taken = await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(new.id)})
    assert taken.status_code == 303
    review = await owner.http.get(f"/vehicles/{TAYCAN}/checkout/review")
    assert "Confirm and pay €109.00" in review.text
    fresh = re.search(r'name="revision" value="([0-9]+)"', review.text)
    assert fresh is not None
    confirm = await owner.post(f"/vehicles/{TAYCAN}/checkout/confirm", {"revision": fresh.group(1)})
    assert confirm.status_code == 303
    async with stack.db.session() as session:
        order = await session.scalar(select(Order))
    assert order is not None and order.state == "confirmed" and order.total_minor == 10900


async def test_only_the_main_user_buys_and_a_stranger_finds_nothing(stack: Stack) -> None:
    offer = await offer_of(stack, "remote-services", "P1Y")
    for email, status in ((world.FAMILY, 403), (world.STRANGER, 404)):
        browser = Browser(stack)
        try:
            await browser.sign_in(email)
            store = await browser.http.get(f"/vehicles/{TAYCAN}/store")
            assert store.status_code == (200 if email == world.FAMILY else 404)
            added = await browser.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer.id)})
            assert added.status_code == status
            assert (await browser.http.get(f"/vehicles/{TAYCAN}/checkout/review")).status_code == status
        finally:
            await browser.http.aclose()
    assert await count(stack, CartLine) == 0


async def test_services_show_hotspot_use_and_a_plan_and_the_handover_lists_what_to_cancel(
    stack: Stack, owner: Browser
) -> None:
    package = await offer_of(stack, "wifi-2gb", "P1M")
    assert (
        await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(package.id), "auto_renew": "1"})
    ).status_code == 303
    await owner.post(f"/vehicles/{TAYCAN}/checkout/address", ADDRESS)
    await owner.post(f"/vehicles/{TAYCAN}/checkout/payment", VISA)
    review = await owner.http.get(f"/vehicles/{TAYCAN}/checkout/review")
    revision = re.search(r'name="revision" value="([0-9]+)"', review.text)
    assert revision is not None and "renews every month until you cancel it" in review.text
    confirmed = await owner.post(f"/vehicles/{TAYCAN}/checkout/confirm", {"revision": revision.group(1)})
    assert confirmed.status_code == 303
    async with stack.db.transaction() as session:  # what the car reports of its hotspot (CON-3)
        vehicle = await garage.vehicle_by_vin(session, TAYCAN)
        assert vehicle is not None
        hotspot = {"sharing": True, "used_mb": 120, "package": "wifi-2gb", "volume_mb": 2048}
        await session.merge(
            Measurement(vehicle_id=vehicle.id, key="hotspot", value=hotspot, measured_at=utcnow())
        )

    store = await owner.http.get(f"/vehicles/{TAYCAN}/store")
    shelf = re.search(r'data-service="wifi-2gb">(.*?)</li>\s*</ul>', store.text, re.S)
    assert shelf is not None and "Active until" in shelf.group(1)
    services = await owner.http.get(f"/vehicles/{TAYCAN}/services")
    assert services.status_code == 200
    assert "2 GB a month" in services.text and "120 MB of 2 GB used this month" in services.text
    assert "sharing is on" in services.text and "Cancel subscription: In-car WiFi 2 GB" in services.text

    # REQ: CON-4 — 30,000 km a year: about 2 GB a month, the 2 GB package with its add-to-cart button.
    plan = await owner.http.get(f"/vehicles/{TAYCAN}/services", params={"annual_km": "30,000"})
    assert "about <strong>2 GB</strong> a month" in plan.text and 'data-package="wifi-2gb"' in plan.text
    assert "Add to cart: In-car WiFi 2 GB, Monthly" in plan.text
    heavy = await owner.http.get(
        f"/vehicles/{TAYCAN}/services", params={"annual_km": "60000", "streaming": "1"}
    )
    assert 'data-package="wifi-5gb"' in heavy.text
    wrong = await owner.http.get(f"/vehicles/{TAYCAN}/services", params={"annual_km": "a lot"})
    assert wrong.status_code == 200 and "Please give the kilometres as a whole number" in wrong.text

    # REQ: STO-9, STO-11 — the monthly package must be cancelled before the handover.
    handover = await owner.http.get(f"/vehicles/{TAYCAN}/handover")
    assert "cannot be moved to another car" in handover.text
    assert (
        "Cancel subscription: In-car WiFi 2 GB" in handover.text and "ready to hand over" not in handover.text
    )
    contract_id = re.search(r'/services/([0-9]+)/cancel"', handover.text)
    assert contract_id is not None
    cancelled = await owner.post(
        f"/vehicles/{TAYCAN}/services/{contract_id.group(1)}/cancel", {"back": "handover"}
    )
    assert cancelled.status_code == 303
    assert cancelled.headers["location"] == f"/vehicles/{TAYCAN}/handover?done=cancelled"
    handover = await owner.http.get(cancelled.headers["location"])
    assert "The subscription is cancelled." in handover.text and "ready to hand over" in handover.text
    again = await owner.post(
        f"/vehicles/{TAYCAN}/services/{contract_id.group(1)}/cancel", {"back": "services"}
    )
    assert again.status_code == 303  # cancelling twice finds it cancelled

    family = Browser(stack)
    try:
        await family.sign_in(world.FAMILY)
        seen = await family.http.get(f"/vehicles/{TAYCAN}/services")
        assert seen.status_code == 200 and "In-car WiFi 2 GB" in seen.text
        assert "Cancel subscription" not in seen.text and "Withdraw" not in seen.text
        assert (await family.http.get(f"/vehicles/{TAYCAN}/handover")).status_code == 403
    finally:
        await family.http.aclose()


async def test_terms_are_readable_in_force_and_by_version(stack: Stack, owner: Browser) -> None:
    general = await owner.http.get(f"/vehicles/{TAYCAN}/store/terms/general")
    assert general.status_code == 200
    assert (
        "carlink general terms" in general.text
        and "These terms apply to orders placed today." in general.text
    )
    assert "We accept VISA · Mastercard" in general.text
    empty = await owner.http.get(f"/vehicles/{TAYCAN}/checkout/review")  # nothing to review yet
    assert empty.status_code == 303 and empty.headers["location"] == f"/vehicles/{TAYCAN}/cart"
    assert (await owner.http.get(f"/vehicles/{TAYCAN}/store/terms/no-such-service")).status_code == 404
    async with stack.db.session() as session:
        terms = await catalog.terms_in_force(session, ["remote-services"], "en")
    anonymous = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    try:
        page = await anonymous.get(f"/store/terms/versions/{terms[0].id}")
        assert page.status_code == 200 and "Service terms: Remote services" in page.text
        for wrong in ("abc", "0", "99999999999", "-1"):
            assert (await anonymous.get(f"/store/terms/versions/{wrong}")).status_code == 404
    finally:
        await anonymous.aclose()


async def test_a_refused_card_is_explained_and_its_number_never_shown_again(
    stack: Stack, owner: Browser
) -> None:
    offer = await offer_of(stack, "remote-services", "P1Y")
    await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer.id)})
    await owner.post(f"/vehicles/{TAYCAN}/checkout/address", ADDRESS)
    amex = {**VISA, "number": "3782 8224 6310 005", "cvc": "1234", "holder": "Alex Example"}
    refused = await owner.post(f"/vehicles/{TAYCAN}/checkout/payment", amex)
    assert refused.status_code == 422
    assert "This card brand is not accepted in DE." in refused.text
    assert "3782" not in refused.text and "1234" not in refused.text
    assert 'value="Alex Example"' in refused.text  # the rest of the form stays filled in
    expired = {**VISA, "exp_year": "2020"}
    assert (
        "This card has expired." in (await owner.post(f"/vehicles/{TAYCAN}/checkout/payment", expired)).text
    )
    wrong = await owner.post(f"/vehicles/{TAYCAN}/checkout/payment", {"payment_method_id": "999999"})
    assert wrong.status_code == 400 and "There is no such card in your profile." in wrong.text
    assert await count(stack, PaymentMethod) == 0
    account = await owner.post("/account/payment", {**VISA, "number": "4242 4242 4242 4241"})
    assert account.status_code == 422 and "This card number is not valid." in account.text
    assert "4242 4242 4242 4241" not in account.text
