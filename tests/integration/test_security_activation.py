"""Buying a tracking package and following its activation through the app API (SEC-1, SEC-3, SEC-4): the
phone number the SOC calls, the activation's states up to the insurer's certificate, who may see and change
what, service and transport mode bounds, and what ends or clears it (withdrawal, a change of hands)."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from carlink.demo import world
from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.security import activations
from carlink.security.models import TrackingActivation
from carlink.store import contracts
from tests.integration.test_store_contracts import (
    ADDRESS,
    checkout,
    choose_card,
    error_code,
    offer_id,
    past,
)
from tests.support.portal import account_id
from tests.support.stack import PANAMERA, TAYCAN, Stack

SOC_PHONE = "+49 711-555 0199"
NORMALISED = "+497115550199"


@pytest.fixture
async def clients(stack: Stack) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    opened = {email: await stack.as_user(email) for email in (world.OWNER, world.FAMILY, world.STRANGER)}
    try:
        yield opened
    finally:
        for client in opened.values():
            await client.aclose()


async def add_tracking(
    client: httpx.AsyncClient, vin: str, phone: str | None, package: str = "tracking"
) -> httpx.Response:
    body: dict[str, Any] = {"offer_id": await offer_id(client, vin, package, "P1Y")}
    if phone is not None:
        body["phone"] = phone
    return await client.post(f"/api/v1/vehicles/{vin}/cart/lines", json=body)


async def buy_tracking(client: httpx.AsyncClient, vin: str, package: str = "tracking") -> int:
    """Buys the package with the SOC's number through the API; answers the contract id."""
    response = await add_tracking(client, vin, SOC_PHONE, package)
    assert response.status_code == 200, response.text
    assert (await client.put(f"/api/v1/vehicles/{vin}/cart/billing", json=ADDRESS)).status_code == 200
    cart = await choose_card(client, vin)
    done = await checkout(client, vin, cart["revision"])
    assert done.status_code == 201 and done.json()["state"] == "confirmed", done.text
    contracts = (await client.get(f"/api/v1/vehicles/{vin}/contracts")).json()
    return int(next(c["id"] for c in contracts if c["service_code"] == package))


async def activation_of(stack: Stack, contract_id: int) -> TrackingActivation:
    async with stack.db.session() as session:
        found = await session.scalar(
            select(TrackingActivation).where(TrackingActivation.contract_id == contract_id)
        )
    assert found is not None
    return found


async def activate(stack: Stack, vin: str) -> TrackingActivation:
    """The car applies its set and raises its test alarm; the SOC confirms. The simulated car may have
    moved it along already: each step is a no-op once passed."""
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, vin)
        assert vehicle is not None
        live = await activations.live(session, vehicle.id)
        assert live is not None
        await activations.car_applied(session, vehicle.id, live.package)
        await activations.test_alarm_received(session, vehicle.id)
        assert live.state == "test_passed" and live.installing_at and live.test_passed_at
    soc = await account_id(stack, world.SOC_OPERATOR)
    async with stack.db.transaction() as session:
        confirmed = await activations.confirm(session, live.id, soc)
        assert confirmed.state == "active" and confirmed.activated_by == soc
    return confirmed


async def test_tracking_needs_the_socs_number_which_the_conclusion_copies_into_the_activation(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    owner = clients[world.OWNER]
    assert error_code(await add_tracking(owner, TAYCAN, None)) == (422, "phone_required")
    for wrong in ("12ab5678", "+49 (711) 5550", "+49 12", "+1234567890123456", "++4971155501", "-4971155501"):
        assert error_code(await add_tracking(owner, TAYCAN, wrong)) == (422, "invalid_phone"), wrong
    cart = (await add_tracking(owner, TAYCAN, SOC_PHONE)).json()
    assert [line["soc_phone"] for line in cart["lines"]] == [NORMALISED]
    # Another term of the same package keeps the number; services other than tracking never ask for one.
    cart = (await add_tracking(owner, TAYCAN, None)).json()
    assert [line["soc_phone"] for line in cart["lines"]] == [NORMALISED]
    nav = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/cart/lines",
        json={"offer_id": await offer_id(owner, TAYCAN, "navigation-plus", "P1Y")},
    )
    assert nav.status_code == 200 and {line["soc_phone"] for line in nav.json()["lines"]} == {
        NORMALISED,
        None,
    }

    assert (await owner.put(f"/api/v1/vehicles/{TAYCAN}/cart/billing", json=ADDRESS)).status_code == 200
    cart = await choose_card(owner, TAYCAN)
    done = await checkout(owner, TAYCAN, cart["revision"])
    assert done.json()["state"] == "confirmed", done.text
    contracts = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    tracking = next(c for c in contracts if c["service_code"] == "tracking")
    activation = await activation_of(stack, tracking["id"])
    assert (activation.package, activation.phone) == ("tracking", NORMALISED)
    assert activation.state in ("ordered", "installing", "test_passed")  # the car may be quick

    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()
    assert status["can_change"] is True and status["activation"]["phone"] == NORMALISED
    assert [step["state"] for step in status["activation"]["steps"]] == [
        "ordered",
        "installing",
        "test_passed",
        "active",
    ]
    assert status["activation"]["steps"][0]["at"] is not None
    assert status["soc"]["phone"] == "+49 69 555 0190" and status["soc"]["email"].endswith("@example.com")


async def test_the_activation_runs_to_the_certificate_which_only_the_main_user_downloads(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    owner, family, stranger = clients[world.OWNER], clients[world.FAMILY], clients[world.STRANGER]
    await buy_tracking(owner, TAYCAN)
    certificate = f"/api/v1/vehicles/{TAYCAN}/security/certificate.pdf"
    assert error_code(await owner.get(certificate)) == (409, "not_active")

    # Every user of the car follows the states; the number is the main user's; strangers learn nothing.
    seen = (await family.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()
    assert seen["can_change"] is False and seen["activation"]["package"] == "tracking"
    assert seen["activation"]["phone"] is None and seen["soc"]["phone"]
    assert error_code(await stranger.get(f"/api/v1/vehicles/{TAYCAN}/security")) == (404, "vehicle_not_found")
    assert error_code(await stranger.get(certificate)) == (404, "vehicle_not_found")
    phone = f"/api/v1/vehicles/{TAYCAN}/security/phone"
    assert error_code(await family.put(phone, json={"phone": "+49 30 555 0101"})) == (403, "owner_only")
    assert error_code(await owner.put(phone, json={"phone": "call me"})) == (422, "invalid_phone")
    changed = await owner.put(phone, json={"phone": "+49 30 555 0101"})
    assert changed.status_code == 200 and changed.json()["activation"]["phone"] == "+49305550101"

    confirmed = await activate(stack, TAYCAN)
    assert re.fullmatch(r"CL-[0-9]{10}", confirmed.certificate_number or "")
    code = confirmed.verification_code or ""
    assert re.fullmatch(f"[{activations.CODE_ALPHABET}]{{12}}", code)
    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()["activation"]
    assert status["state"] == "active" and status["certificate_available"] is True
    assert all(step["at"] for step in status["steps"])
    assert error_code(await family.get(certificate)) == (403, "owner_only")

    pdf = await owner.get(certificate)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert confirmed.certificate_number in pdf.headers["content-disposition"]
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for expected in (
        TAYCAN,
        confirmed.certificate_number,
        activations.grouped_code(code),
        "Vehicle tracking",
    ):
        assert expected in text, expected
    assert f"{stack.base_url}/certificates/verify" in text.replace("\n", "") and "carlink" in text
    assert confirmed.activated_at is not None and confirmed.activated_at.strftime("%d %B %Y") in text

    # Confirming twice keeps the certificate: the paper the owner holds stays valid.
    async with stack.db.transaction() as session:
        again = await activations.confirm(session, confirmed.id, await account_id(stack, world.SOC_OPERATOR))
        assert (again.certificate_number, again.verification_code) == (confirmed.certificate_number, code)


async def test_modes_are_bounded_and_only_the_main_user_sets_or_ends_them(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    owner, family, stranger = clients[world.OWNER], clients[world.FAMILY], clients[world.STRANGER]
    mode = f"/api/v1/vehicles/{TAYCAN}/security/mode"
    cases = [
        ({"kind": "service", "hours": 0}, (400, "invalid_mode_duration")),
        ({"kind": "service", "hours": -5}, (400, "invalid_mode_duration")),
        ({"kind": "service", "hours": 14 * 24 + 1}, (400, "invalid_mode_duration")),
        ({"kind": "transport", "hours": 3 * 24 + 1}, (400, "invalid_mode_duration")),
        ({"kind": "party", "hours": 2}, (400, "invalid_mode")),
        ({"kind": "service", "hours": 2**40}, (422, "invalid_request")),
        ({"kind": "service"}, (422, "invalid_request")),
    ]
    for body, expected in cases:
        assert error_code(await owner.post(mode, json=body)) == expected, body
    assert error_code(await family.post(mode, json={"kind": "service", "hours": 2})) == (403, "owner_only")
    assert error_code(await stranger.post(mode, json={"kind": "service", "hours": 2})) == (
        404,
        "vehicle_not_found",
    )
    assert error_code(await family.delete(mode)) == (403, "owner_only")

    # SOC contacts and modes work without a package too (SEC-1: the customer can call at any time).
    made = await owner.post(mode, json={"kind": "transport", "hours": 72})
    assert made.status_code == 201, made.text
    assert made.json()["mode"]["kind"] == "transport" and made.json()["activation"] is None
    replaced = (await owner.post(mode, json={"kind": "service", "hours": 336})).json()
    assert replaced["mode"]["kind"] == "service"
    assert [m["kind"] for m in replaced["recent_modes"]] == ["service", "transport"]
    seen = (await family.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()
    assert seen["mode"]["kind"] == "service" and seen["mode"]["in_force"] is True
    ended = (await owner.delete(mode)).json()
    assert ended["ended"] is True and ended["mode"] is None
    assert (await owner.delete(mode)).json()["ended"] is False


async def test_withdrawal_ends_the_activation_and_a_change_of_hands_clears_the_number(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    owner = clients[world.OWNER]
    contract_id = await buy_tracking(owner, PANAMERA)
    withdrawn = await owner.post(f"/api/v1/store/contracts/{contract_id}/withdrawal")
    assert withdrawn.status_code == 200, withdrawn.text
    ended = await activation_of(stack, contract_id)
    assert ended.state == "ended" and ended.ended_at is not None
    status = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/security")).json()["activation"]
    assert status["state"] == "ended" and status["certificate_available"] is False
    phone = {"phone": "+49 30 555 0101"}
    assert error_code(await owner.put(f"/api/v1/vehicles/{PANAMERA}/security/phone", json=phone)) == (
        409,
        "no_package",
    )

    # The Taycan's package stays with the car when it is sold; the seller's number does not (SEC-1).
    taycan_contract = await buy_tracking(owner, TAYCAN)
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, TAYCAN)
        buyer = await identity.find_account(session, world.STRANGER)
        assert vehicle is not None and buyer is not None
        await garage.hand_over(session, vehicle, buyer)
    kept = await activation_of(stack, taycan_contract)
    assert kept.ended_at is None and kept.phone == ""
    new_owner = clients[world.STRANGER]
    status = (await new_owner.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()
    assert status["can_change"] is True and status["activation"]["phone_missing"] is True
    given = await new_owner.put(f"/api/v1/vehicles/{TAYCAN}/security/phone", json=phone)
    assert given.json()["activation"]["phone_missing"] is False
    assert (await activation_of(stack, taycan_contract)).phone == "+49305550101"

    # At the end of its term the contract expires, and the activation with it.
    seen = (await new_owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    past(next(c["ends_at"] for c in seen if c["id"] == taycan_contract))
    assert await contracts.expire_due(stack.platform) == 1
    expired = await activation_of(stack, taycan_contract)
    assert expired.state == "ended" and expired.ended_at is not None
