"""Car security in the portal over HTTP with signed-in browser sessions (SEC-1, SEC-3, SEC-4): the store
asking for the SOC's number, Services > Car security for each kind of user, the public certificate check
and its throttle, and service or transport mode set from the dealer console for served cars only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from carlink.catalog.models import Offer
from carlink.demo import world
from carlink.security import activations
from tests.integration.test_security_activation import activate, buy_tracking
from tests.support.portal import Browser
from tests.support.stack import TAYCAN, Stack

PAGE = f"/vehicles/{TAYCAN}/security"


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[dict[str, Browser]]:
    opened: dict[str, Browser] = {}
    for email in (world.OWNER, world.FAMILY, world.STRANGER, world.DEALER, world.OTHER_DEALER):
        opened[email] = await Browser(stack).sign_in(email)
    try:
        yield opened
    finally:
        for browser in opened.values():
            await browser.close()


async def tracking_offer(stack: Stack) -> int:
    async with stack.db.session() as session:
        found = await session.scalar(
            select(Offer.id).where(
                Offer.service_code == "tracking",
                Offer.country == "DE",
                Offer.term == "P1Y",
                Offer.retired_at.is_(None),
            )
        )
    assert found is not None
    return int(found)


def result_of(page: httpx.Response) -> str:
    """The verification's answer as shown, without the form that repeats what was typed."""
    found = re.search(r'<section class="card" role="status" id="verify-result".*?</section>', page.text, re.S)
    assert found is not None, page.text
    return found.group(0)


async def test_the_store_asks_for_the_socs_number_and_the_car_security_page_follows_the_activation(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    owner, family, stranger = browsers[world.OWNER], browsers[world.FAMILY], browsers[world.STRANGER]
    # Before any package: the SOC's contacts, and the way to it from the car's Services.
    services = await owner.http.get(f"/vehicles/{TAYCAN}/services")
    assert f'href="{PAGE}"' in services.text
    empty = await owner.http.get(PAGE)
    assert empty.status_code == 200 and 'data-state="none"' in empty.text
    assert "+49 69 555 0190" in empty.text and "soc.de@example.com" in empty.text

    store = await owner.http.get(f"/vehicles/{TAYCAN}/store")
    offer = await tracking_offer(stack)
    assert f'id="phone-{offer}" name="phone"' in store.text
    missing = await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer)})
    assert missing.status_code == 422 and "phone number our security centre calls" in missing.text
    wrong = await owner.post(f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer), "phone": "0711 CALL"})
    assert wrong.status_code == 422 and "7 to 15 digits" in wrong.text and 'value="0711 CALL"' in wrong.text
    added = await owner.post(
        f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer), "phone": "0711 555 0199"}
    )
    assert added.status_code == 303
    assert "Our security centre calls 07115550199" in (await owner.http.get(f"/vehicles/{TAYCAN}/cart")).text
    await owner.post(f"/vehicles/{TAYCAN}/cart/remove", {"service_code": "tracking"})

    api = await stack.as_user(world.OWNER)
    try:
        await buy_tracking(api, TAYCAN)
    finally:
        await api.aclose()
    page = await owner.http.get(PAGE)
    assert 'data-package="tracking"' in page.text and 'data-step="ordered" data-done' in page.text
    assert 'id="phone-form"' in page.text and 'id="mode-form"' in page.text
    seen = await family.http.get(PAGE)
    assert seen.status_code == 200 and 'data-package="tracking"' in seen.text
    assert 'id="phone-form"' not in seen.text and 'id="mode-form"' not in seen.text
    assert "+497115550199" not in seen.text  # the number is the main user's
    assert (await stranger.http.get(PAGE)).status_code == 404

    # REQ: SEC-1 — one package at a time: the store says how to change it instead of offering it again.
    store = await owner.http.get(f"/vehicles/{TAYCAN}/store")
    assert 'data-code="tracking_package_running"' in store.text and "withdraw within 14 days" in store.text
    assert f'id="phone-{offer}"' not in store.text
    again = await owner.post(
        f"/vehicles/{TAYCAN}/cart/add", {"offer_id": str(offer), "phone": "0711 555 0199"}
    )
    assert again.status_code == 409 and "End the running package first" in again.text

    # The number and the modes, through the forms; a refusal shows the page again with the reason.
    refused = await owner.post(f"{PAGE}/phone", {"phone": "12"})
    assert refused.status_code == 422 and 'id="security-error"' in refused.text
    assert (await owner.post(f"{PAGE}/phone", {"phone": "+49 30 555 0101"})).headers["location"] == (
        f"{PAGE}?done=phone"
    )
    for hours in ("0", "abc", "999"):
        bad = await owner.post(f"{PAGE}/mode", {"kind": "service", "hours": hours})
        assert bad.status_code == 400 and "hours" in bad.text, hours
    assert (await family.post(f"{PAGE}/mode", {"kind": "service", "hours": "4"})).status_code == 403
    assert (await stranger.post(f"{PAGE}/mode", {"kind": "service", "hours": "4"})).status_code == 404
    done = await owner.post(f"{PAGE}/mode", {"kind": "service", "hours": "48"})
    assert done.headers["location"] == f"{PAGE}?done=mode_set"
    assert 'id="mode-in-force" data-mode="service"' in (await family.http.get(PAGE)).text
    assert (await owner.post(f"{PAGE}/mode/end")).headers["location"] == f"{PAGE}?done=mode_ended"
    assert 'id="recent-modes"' in (await owner.http.get(PAGE)).text

    confirmed = await activate(stack, TAYCAN)
    active = await owner.http.get(PAGE)
    assert 'id="certificate-link"' in active.text and str(confirmed.certificate_number) in active.text
    assert 'id="certificate-link"' not in (await family.http.get(PAGE)).text
    pdf = await owner.http.get(f"{PAGE}/certificate.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert (await family.http.get(f"{PAGE}/certificate.pdf")).status_code == 403


async def test_the_public_check_says_valid_or_not_and_nothing_more_and_slows_guessing(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    api = await stack.as_user(world.OWNER)
    try:
        await buy_tracking(api, TAYCAN)
    finally:
        await api.aclose()
    confirmed = await activate(stack, TAYCAN)
    number, code = str(confirmed.certificate_number), str(confirmed.verification_code)
    public = stack.http  # no session: insurers do not sign in

    form = await public.get("/certificates/verify")
    assert form.status_code == 200 and 'id="verify-form"' in form.text and "verify-result" not in form.text
    valid = await public.post("/certificates/verify", data={"number": number, "code": code})
    shown = result_of(valid)
    assert 'data-result="valid"' in shown and "Vehicle tracking" in shown and TAYCAN[-6:] in shown
    assert TAYCAN not in valid.text and "owner@example.com" not in valid.text
    # As typed from the paper: grouped, lower case, in a link's query.
    typed = activations.grouped_code(code).lower()
    linked = await public.get("/certificates/verify", params={"number": f" {number} ", "code": typed})
    assert 'data-result="valid"' in result_of(linked)

    wrong_code = await public.post("/certificates/verify", data={"number": number, "code": "ABCDEFGHJKMN"})
    unknown = await public.post("/certificates/verify", data={"number": "CL-0000000001", "code": code})
    assert wrong_code.status_code == unknown.status_code == 200
    assert result_of(wrong_code) == result_of(unknown) and 'data-result="invalid"' in result_of(unknown)

    # Ten wrong pairs from one address in ten minutes, then the page waits (the right pair too).
    for _ in range(activations.VERIFY_FAILURES_PER_WINDOW - 2):
        await public.post("/certificates/verify", data={"number": "CL-0000000002", "code": "X"})
    slowed = await public.post("/certificates/verify", data={"number": number, "code": code})
    assert slowed.status_code == 429 and "Too many" in slowed.text and slowed.headers["retry-after"]
    assert "verify-result" not in slowed.text


async def test_dealers_set_and_end_modes_only_for_the_cars_they_serve(
    stack: Stack, browsers: dict[str, Browser]
) -> None:
    dealer, berlin, owner = browsers[world.DEALER], browsers[world.OTHER_DEALER], browsers[world.OWNER]
    assert (await owner.http.get("/dealer/security-modes")).status_code == 403
    console = await dealer.http.get("/dealer/security-modes")
    assert console.status_code == 200 and f'data-vin="{TAYCAN}" data-mode="none"' in console.text
    assert TAYCAN not in (await berlin.http.get("/dealer/security-modes")).text

    refused = await dealer.post(
        "/dealer/security-modes", {"vin": TAYCAN, "kind": "transport", "hours": "100"}
    )
    assert refused.status_code == 400 and "transport mode lasts 1 to 72 hours" in refused.text
    foreign = await berlin.post("/dealer/security-modes", {"vin": TAYCAN, "kind": "service", "hours": "8"})
    assert foreign.status_code == 400 and f"no vehicle {TAYCAN}" in foreign.text
    set_mode = await dealer.post("/dealer/security-modes", {"vin": TAYCAN, "kind": "service", "hours": "48"})
    assert set_mode.headers["location"] == "/dealer/security-modes?done=set"
    listed = await dealer.http.get("/dealer/security-modes?done=set")
    assert f'data-vin="{TAYCAN}" data-mode="service"' in listed.text
    assert "(set by your dealer)" in (await owner.http.get(PAGE)).text

    assert (await berlin.post("/dealer/security-modes/end", {"vin": TAYCAN})).status_code == 400
    ended = await dealer.post("/dealer/security-modes/end", {"vin": TAYCAN})
    assert ended.headers["location"] == "/dealer/security-modes?done=ended"
    again = await dealer.post("/dealer/security-modes/end", {"vin": TAYCAN})
    assert again.headers["location"] == "/dealer/security-modes?done=none"
