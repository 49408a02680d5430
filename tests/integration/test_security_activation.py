"""Buying a tracking package and following its activation through the app API (SEC-1, SEC-3, SEC-4): the
phone number the SOC calls, the activation's states up to the insurer's certificate, who may see and change
what, service and transport mode bounds, and what ends or clears it (withdrawal, a change of hands)."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from carlink.demo import world
from carlink.errors import Conflict
from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.identity.models import Account, StaffRole
from carlink.security import activations
from carlink.security import service as cards
from carlink.security.models import TrackingActivation
from carlink.security.rules import PACKAGES
from carlink.store import contracts
from carlink.store import service as store
from carlink.store.models import Contract, Order, PaymentMethod
from carlink.store.payments import SandboxCharge
from tests.integration.test_security_alarms import tracking_bought
from tests.integration.test_store_contracts import (
    ADDRESS,
    checkout,
    choose_card,
    count,
    error_code,
    offer_id,
    order_row,
    past,
)
from tests.support.portal import Browser, account_id
from tests.support.stack import PANAMERA, TAYCAN, Stack

SOC_PHONE = "+49 711-555 0199"
NORMALISED = "+497115550199"
WRONG_PHONES = ("12ab5678", "+49 (711) 5550", "+49 12", "+1234567890123456", "++4971155501", "-4971155501")
RUNNING = (409, "tracking_package_running")


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
        await activations.car_applied(session, vehicle.id, live.package, live.id)
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
    for wrong in WRONG_PHONES:
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
    for wrong in ("call me", *WRONG_PHONES):  # REQ: SEC-1 — one check, the store's (checked_phone)
        assert error_code(await owner.put(phone, json={"phone": wrong})) == (422, "invalid_phone"), wrong
    changed = await owner.put(phone, json={"phone": "+49 30 555 0101"})
    assert changed.status_code == 200 and changed.json()["activation"]["phone"] == "+49305550101"

    confirmed = await activate(stack, TAYCAN)
    number = confirmed.certificate_number or ""
    assert re.fullmatch(r"CL-[0-9]{10}", number)
    code = confirmed.verification_code or ""
    assert re.fullmatch(f"[{activations.CODE_ALPHABET}]{{12}}", code)
    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/security")).json()["activation"]
    assert status["state"] == "active" and status["certificate_available"] is True
    assert all(step["at"] for step in status["steps"])
    assert error_code(await family.get(certificate)) == (403, "owner_only")

    pdf = await owner.get(certificate)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert number in pdf.headers["content-disposition"]
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for expected in (
        TAYCAN,
        number,
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
    # REQ: SEC-4 — without a number there is no welcome call: the SOC cannot confirm yet.
    async with stack.db.transaction() as session:
        await activations.test_alarm_received(session, kept.vehicle_id)
    soc = await account_id(stack, world.SOC_OPERATOR)
    with pytest.raises(Conflict) as refused:
        async with stack.db.transaction() as session:
            await activations.confirm(session, kept.id, soc)
    assert refused.value.code == "phone_missing" and "Car security page" in refused.value.message
    given = await new_owner.put(f"/api/v1/vehicles/{TAYCAN}/security/phone", json=phone)
    assert given.json()["activation"]["phone_missing"] is False
    assert (await activation_of(stack, taycan_contract)).phone == "+49305550101"
    async with stack.db.transaction() as session:
        assert (await activations.confirm(session, kept.id, soc)).state == "active"

    # At the end of its term the contract expires, and the activation with it.
    seen = (await new_owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    past(next(c["ends_at"] for c in seen if c["id"] == taycan_contract))
    assert await contracts.expire_due(stack.platform) == 1
    expired = await activation_of(stack, taycan_contract)
    assert expired.state == "ended" and expired.ended_at is not None


async def test_a_car_has_one_tracking_package_at_a_time(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    """REQ: SEC-1 — buying a package again, or the other one, while one runs would end a paid package (and
    its certificate) or leave a contract paying for nothing: refused in the cart, at checkout, before the
    charge, and at the conclusion of an order charged at the same moment as another (refunded)."""
    owner = clients[world.OWNER]
    await buy_tracking(owner, TAYCAN)
    for package in PACKAGES:
        refused = await add_tracking(owner, TAYCAN, SOC_PHONE, package)
        assert error_code(refused) == RUNNING, package
        assert "withdraw within 14 days" in refused.json()["error"]["message"]

    # One per cart; another term of the same package replaces its line as for any service.
    assert (await add_tracking(owner, PANAMERA, SOC_PHONE)).status_code == 200
    assert error_code(await add_tracking(owner, PANAMERA, SOC_PHONE, "tracking-plus")) == RUNNING
    assert (await add_tracking(owner, PANAMERA, None)).status_code == 200
    assert (await owner.put(f"/api/v1/vehicles/{PANAMERA}/cart/billing", json=ADDRESS)).status_code == 200
    revision = (await choose_card(owner, PANAMERA))["revision"]

    # Placed, then a package came meanwhile: the order fails before anything is charged.
    placed = await place(stack, revision)
    running = await tracking_bought(stack, PANAMERA, "tracking-plus")
    failed = await contracts.settle(stack.platform, placed.id)
    assert (failed.state, failed.failure_code) == ("failed", "tracking_package_running")
    assert await count(stack, SandboxCharge, SandboxCharge.idempotency_key == placed.idempotency_key) == 0
    cart = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/cart")).json()
    assert error_code(await checkout(owner, PANAMERA, cart["revision"])) == RUNNING

    # Two orders charged at once: the one that concludes second concludes nothing, and its money goes back.
    await end_activation(stack, running)
    placed = await place(stack, cart["revision"])
    running = await tracking_bought(stack, PANAMERA, "tracking-plus")
    async with stack.db.session() as session:
        method = await session.get(PaymentMethod, placed.payment_method_id)
    assert method is not None
    charge = await stack.platform.payments.charge(
        token=method.token,
        amount_minor=placed.total_minor,
        currency=placed.currency,
        idempotency_key=placed.idempotency_key,
    )
    refunded = await contracts.apply_charge(stack.platform, placed.id, charge)
    assert (refunded.state, refunded.failure_code) == ("refunded", "order_not_concluded")
    assert await count(stack, Contract, Contract.order_id == placed.id) == 0
    async with stack.db.session() as session:
        live = await activations.live(session, placed.vehicle_id)
    assert live is not None and (live.id, live.package) == (running, "tracking-plus")
    assert (await order_row(stack, placed.id)).state == "refunded"


async def place(stack: Stack, revision: int) -> Order:
    """The owner's order for the cart's revision, placed but not settled (as between two requests)."""
    async with stack.db.transaction() as session:
        owner = await identity.find_account(session, world.OWNER)
        assert owner is not None
        order, created = await store.place_order(session, owner, PANAMERA, revision)
    assert created and order.state == "placed"
    return order


async def end_activation(stack: Stack, activation_id: int) -> None:
    async with stack.db.transaction() as session:
        ended = await session.get(TrackingActivation, activation_id)
        assert ended is not None
        assert await activations.end_for_contract(session, ended.contract_id)


async def test_a_test_alarm_from_before_the_order_counts_only_once_the_car_reported_the_package(
    stack: Stack,
) -> None:
    """REQ: SEC-4 — before the car reported the set, a test alarm raised before the order (a re-send from an
    earlier package) does not move the new activation; the car's clock may lag the cloud's by a few minutes.
    Once the car reported applying this activation, its test alarm counts however slow its clock is (here an
    hour). (The set is not published here, so the simulated car raises no test alarm of its own.)"""
    async with stack.db.session() as session:
        ordered = await session.get(TrackingActivation, await tracking_bought(stack, PANAMERA, "tracking"))
        lagging = await session.get(TrackingActivation, await tracking_bought(stack, TAYCAN, "tracking"))
    assert ordered is not None and ordered.state == "ordered"
    assert lagging is not None and lagging.state == "ordered"
    late = ordered.ordered_at - activations.TEST_CLOCK_TOLERANCE - dt.timedelta(seconds=1)
    async with stack.db.transaction() as session:
        assert await activations.test_alarm_received(session, ordered.vehicle_id, at=late) is None
    assert (await activation_of(stack, ordered.contract_id)).state == "ordered"
    async with stack.db.transaction() as session:
        at = lagging.ordered_at - dt.timedelta(minutes=4)
        counted = await activations.test_alarm_received(session, lagging.vehicle_id, at=at)
        assert counted is not None and counted.state == "test_passed"

    # The car reports the set of this activation; its clock runs an hour slow.
    async with stack.db.transaction() as session:
        await activations.car_applied(session, ordered.vehicle_id, ordered.package, ordered.id)
    assert (await activation_of(stack, ordered.contract_id)).state == "installing"
    slow = ordered.ordered_at - dt.timedelta(hours=1)
    async with stack.db.transaction() as session:
        counted = await activations.test_alarm_received(session, ordered.vehicle_id, at=slow)
        assert counted is not None and counted.state == "test_passed" and counted.id == ordered.id


async def test_the_owner_is_asked_to_have_driver_cards_registered_for_tracking_plus(
    stack: Stack, clients: dict[str, httpx.AsyncClient]
) -> None:
    """REQ: SEC-2 — with no card registered the car raises no `no_driver_card` alarm (nobody to recognise),
    so the Car security page asks for the cards until a dealer registered one."""
    owner = clients[world.OWNER]
    status = f"/api/v1/vehicles/{PANAMERA}/security"
    await tracking_bought(stack, PANAMERA, "tracking-plus")
    assert (await owner.get(status)).json()["activation"]["driver_cards_missing"] is True
    browser = await Browser(stack).sign_in(world.OWNER)
    try:
        assert 'id="cards-missing"' in (await browser.http.get(f"/vehicles/{PANAMERA}/security")).text
    finally:
        await browser.close()
    async with stack.db.transaction() as session:
        dealer = await session.scalar(
            select(StaffRole.partner_id)
            .join(Account, Account.id == StaffRole.account_id)
            .where(Account.email == world.DEALER, StaffRole.role == "dealer")
        )
        assert dealer is not None
        await cards.register_card(
            session, dealer, vin=PANAMERA, serial="ZX81ZX81", label="", registered_by=None
        )
    assert (await owner.get(status)).json()["activation"]["driver_cards_missing"] is False
