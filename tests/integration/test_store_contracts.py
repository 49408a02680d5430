"""Orders and contracts through the store API on the running stack (STO-2..12, CON-3): bad input with its
stable error codes, trials, 3-D Secure, declines, withdrawal, renewals and expiry, hotspot data packages,
contracts that stay with the car, and recovery after a crash between charge and contract.

The jobs loop of the stack runs in the background too; a test that calls a jobs step itself therefore
checks what happened (charges, rows, mails), never how many rows its own call touched.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from carlink.catalog import service as catalog
from carlink.clock import clock
from carlink.demo import world
from carlink.garage import service as garage
from carlink.garage.models import Vehicle, VehicleUser
from carlink.identity import service as identity
from carlink.identity.models import Account
from carlink.jobs.scheduler import run_store
from carlink.notify.models import OutboxEmail
from carlink.protocol.vin import make_vin
from carlink.store import contracts
from carlink.store import service as store
from carlink.store.models import Contract, Order, Payment, PaymentMethod
from carlink.store.payments import ChargeResult, ChargeStatus, SandboxCharge, SandboxRefund
from carlink.store.service import add_months
from tests.support.purchases import ADDRESS
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack, eventually

VISA = "4242 4242 4242 4242"
VISA_CHALLENGE = "4000 0000 0000 3220"
VISA_DECLINED = "4000 0000 0000 0002"
JCB = "3530 1113 3330 0000"
AMEX = "3782 8224 6310 005"
SOC_PHONE = "+49 711 555 0199"  # the number the SOC calls (SEC-1), for the tracking packages
JP_VIN = make_vin("WP0", "ZZZY1", "P", "S", 700001)
JAPAN_BUYER = world.JAPAN_OWNER  # lives in Japan, language ja


# --- helpers -----------------------------------------------------------------------------------------------


class Logins:
    """API clients per person; after the clock moved past the token's life, ask for a fresh one."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.clients: list[httpx.AsyncClient] = []

    async def __call__(self, email: str, *, fresh: bool = False) -> httpx.AsyncClient:
        if fresh:
            self.stack.tokens.pop(email, None)
        client = await self.stack.as_user(email)
        self.clients.append(client)
        return client


@pytest.fixture
async def login(stack: Stack) -> AsyncIterator[Logins]:
    logins = Logins(stack)
    try:
        yield logins
    finally:
        for client in logins.clients:
            await client.aclose()


def error_code(response: httpx.Response) -> tuple[int, str]:
    assert response.status_code < 500, response.text
    return response.status_code, str(response.json()["error"]["code"])


async def offer_id(client: httpx.AsyncClient, vin: str, service: str, term: str) -> int:
    store_page = (await client.get(f"/api/v1/vehicles/{vin}/store")).json()
    found = next(s for s in store_page["services"] if s["code"] == service)
    return int(next(o for o in found["offers"] if o["term"] == term)["id"])


async def catalogue_offer(client: httpx.AsyncClient, country: str, service: str, term: str) -> int:
    page = (await client.get(f"/api/v1/store/countries/{country}/services")).json()
    found = next(s for s in page["services"] if s["code"] == service)
    return int(next(o for o in found["offers"] if o["term"] == term)["id"])


async def add_card(client: httpx.AsyncClient, number: str = VISA) -> int:
    response = await client.post(
        "/api/v1/store/payment-methods",
        json={"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def choose_card(client: httpx.AsyncClient, vin: str, number: str = VISA) -> dict[str, Any]:
    response = await client.put(
        f"/api/v1/vehicles/{vin}/cart/payment-method",
        json={"payment_method_id": await add_card(client, number)},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def ready_cart(
    client: httpx.AsyncClient,
    vin: str,
    service: str,
    term: str,
    *,
    card: str | None = VISA,
    auto_renew: bool = False,
) -> dict[str, Any]:
    line: dict[str, Any] = {"offer_id": await offer_id(client, vin, service, term), "auto_renew": auto_renew}
    if service.startswith("tracking"):  # REQ: SEC-1 — the number the SOC calls comes with the package
        line["phone"] = SOC_PHONE
    response = await client.post(f"/api/v1/vehicles/{vin}/cart/lines", json=line)
    assert response.status_code == 200, response.text
    response = await client.put(f"/api/v1/vehicles/{vin}/cart/billing", json=ADDRESS)
    assert response.status_code == 200, response.text
    cart = dict(response.json())
    if card is not None:
        cart = await choose_card(client, vin, card)
    assert cart["next_step"] == "review", cart
    return cart


async def checkout(client: httpx.AsyncClient, vin: str, revision: int) -> httpx.Response:
    return await client.post(f"/api/v1/vehicles/{vin}/cart/checkout", json={"revision": revision})


async def buy(
    client: httpx.AsyncClient, vin: str, service: str, term: str, *, auto_renew: bool = False
) -> dict[str, Any]:
    """Buys one offer with a VISA that pays; returns the car's contract for the service."""
    cart = await ready_cart(client, vin, service, term, auto_renew=auto_renew)
    response = await checkout(client, vin, cart["revision"])
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "confirmed", response.text
    found = (await client.get(f"/api/v1/vehicles/{vin}/contracts")).json()
    return dict(next(c for c in found if c["service_code"] == service and c["state"] == "active"))


async def count(stack: Stack, model: Any, *where: Any) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def mails(stack: Stack, template: str) -> list[OutboxEmail]:
    async with stack.db.session() as session:
        return list(await session.scalars(select(OutboxEmail).where(OutboxEmail.template == template)))


async def contract_row(stack: Stack, contract_id: int) -> Contract:
    async with stack.db.session() as session:
        row = await session.get(Contract, contract_id, populate_existing=True)
    assert row is not None
    return row


async def order_row(stack: Stack, order_id: int) -> Order:
    async with stack.db.session() as session:
        row = await session.get(Order, order_id, populate_existing=True)
    assert row is not None
    return row


async def account(stack: Stack, email: str) -> Account:
    async with stack.db.session() as session:
        found = await identity.find_account(session, email)
    assert found is not None
    return found


async def register_japanese_car(stack: Stack, owner_email: str = world.OWNER) -> None:
    """A Taycan sold in Japan, owned by `owner_email`; no simulated car runs it, so it is never online."""
    async with stack.db.transaction() as session:
        owner = await identity.find_account(session, owner_email)
        assert owner is not None
        vehicle = await garage.register_vehicle(
            session, vin=JP_VIN, model_key="taycan-1", variant_code="Y1ADB1", model_year=2023, country="JP"
        )
        await garage.assign_user(session, vehicle, owner, garage.MAIN)


async def hand_over(stack: Stack, vin: str, seller_email: str, buyer_email: str) -> None:
    """The car is sold: the seller leaves it and the buyer becomes its main user (STO-9)."""
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, vin)
        seller = await identity.find_account(session, seller_email)
        buyer = await identity.find_account(session, buyer_email)
        assert vehicle is not None and seller is not None and buyer is not None
        await session.execute(
            delete(VehicleUser).where(
                VehicleUser.vehicle_id == vehicle.id, VehicleUser.account_id == seller.id
            )
        )
        await garage.assign_user(session, vehicle, buyer, garage.MAIN)


def past(ends_at: str, **extra: float) -> None:
    """Moves the fake clock just past an API timestamp."""
    when = dt.datetime.fromisoformat(ends_at)
    clock.advance(seconds=(when - clock.now()).total_seconds() + 60, **extra)


# --- bad input: a stable error code, never a 500 ------------------------------------------------------------


async def test_cards_that_cannot_pay_are_refused_with_their_reason(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    cases: list[tuple[dict[str, Any], tuple[int, str]]] = [
        ({"number": "4242 4242 4242 4241"}, (422, "card_number_invalid")),
        ({"number": VISA, "exp_month": 1, "exp_year": clock.now().year - 1}, (422, "card_expired")),
        ({"number": JCB}, (422, "card_brand_not_accepted")),  # JCB: Japan only, the owner lives in DE
        ({"number": AMEX}, (422, "card_brand_not_accepted")),
        ({"number": VISA, "exp_month": 13}, (422, "invalid_request")),
    ]
    for change, expected in cases:
        card: dict[str, Any] = {"number": VISA, "exp_month": 12, "exp_year": 2030, "cvc": "123"} | change
        response = await owner.post("/api/v1/store/payment-methods", json=card)
        assert error_code(response) == expected, (change, response.text)
    assert (await owner.get("/api/v1/store/payment-methods")).json() == []


async def test_a_japanese_buyer_pays_in_yen_with_jcb(stack: Stack, login: Logins) -> None:
    await register_japanese_car(stack, JAPAN_BUYER)
    buyer = await login(JAPAN_BUYER)
    cart = await ready_cart(buyer, JP_VIN, "remote-services", "P1Y", card=JCB)
    assert cart["total"]["amount_minor"] == 13200 and cart["total"]["currency"] == "JPY"
    assert cart["payment_method"]["brand"] == "JCB"
    response = await checkout(buyer, JP_VIN, cart["revision"])
    assert response.status_code == 201 and response.json()["state"] == "confirmed", response.text
    async with stack.db.session() as session:
        charge = await session.scalar(select(SandboxCharge))
    assert charge is not None and (charge.amount_minor, charge.currency) == (13200, "JPY")
    [mail] = await mails(stack, "order_confirmation")
    assert mail.language == "ja" and "13,200" in mail.body_text


async def test_only_the_main_user_of_the_vehicle_may_buy_for_it(stack: Stack, login: Logins) -> None:
    owner, family, stranger = await login(world.OWNER), await login(world.FAMILY), await login(world.STRANGER)
    offer = await offer_id(owner, TAYCAN, "remote-services", "P1Y")
    unknown_vin = make_vin("WP0", "ZZZY1", "P", "S", 999999)

    front = (await family.get(f"/api/v1/vehicles/{TAYCAN}/store")).json()
    assert front["can_buy"] is False and front["services"]  # secondary users see the services
    response = await family.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": offer})
    assert error_code(response) == (403, "owner_only")

    foreign = await stranger.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": offer})
    unknown = await stranger.post(f"/api/v1/vehicles/{unknown_vin}/cart/lines", json={"offer_id": offer})
    assert error_code(foreign) == error_code(unknown) == (404, "vehicle_not_found")
    assert foreign.json()["error"]["message"].replace(TAYCAN, "VIN") == unknown.json()["error"][
        "message"
    ].replace(unknown_vin, "VIN")
    assert error_code(await stranger.get(f"/api/v1/vehicles/{TAYCAN}/store")) == (404, "vehicle_not_found")
    response = await stranger.post(f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": 1})
    assert error_code(response) == (404, "vehicle_not_found")
    assert await count(stack, Order) == 0


async def test_an_offer_must_exist_and_fit_the_car_and_its_country(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    japanese = await catalogue_offer(owner, "JP", "remote-services", "P1Y")
    charging = await catalogue_offer(owner, "DE", "charging-planner", "P1Y")
    cases: list[tuple[str, int, tuple[int, str]]] = [
        (TAYCAN, japanese, (422, "service_not_available")),  # another country's offer
        (NINE_ELEVEN, charging, (422, "service_not_available")),  # a combustion 911 does not charge
        (TAYCAN, 2**31 - 1, (404, "offer_not_found")),
        (TAYCAN, 0, (422, "invalid_request")),
    ]
    for vin, offer, expected in cases:
        response = await owner.post(f"/api/v1/vehicles/{vin}/cart/lines", json={"offer_id": offer})
        assert error_code(response) == expected, (vin, offer, response.text)
    front = (await owner.get(f"/api/v1/vehicles/{NINE_ELEVEN}/store")).json()
    assert "charging-planner" not in {s["code"] for s in front["services"]}
    assert (await owner.get(f"/api/v1/vehicles/{TAYCAN}/cart")).json()["lines"] == []


async def test_tampered_fields_are_refused_and_the_price_comes_from_the_catalogue(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    offer = await offer_id(owner, TAYCAN, "remote-services", "P1Y")
    for extra in ({"price_minor": 1}, {"quantity": 3}, {"currency": "JPY"}):
        response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": offer} | extra)
        assert error_code(response) == (422, "invalid_request"), extra
    cart = await ready_cart(owner, TAYCAN, "remote-services", "P1Y")
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": cart["revision"], "total_minor": 1}
    )
    assert error_code(response) == (422, "invalid_request")
    assert await count(stack, Order) == 0
    order = (await checkout(owner, TAYCAN, cart["revision"])).json()
    assert order["total"]["amount_minor"] == 9900 and order["state"] == "confirmed"
    async with stack.db.session() as session:
        charge = await session.scalar(select(SandboxCharge))
    assert charge is not None and charge.amount_minor == 9900


async def test_checkout_refuses_a_stale_empty_or_incomplete_cart(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    empty = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/cart")).json()
    assert error_code(await checkout(owner, PANAMERA, empty["revision"])) == (422, "cart_empty")

    response = await owner.post(
        f"/api/v1/vehicles/{PANAMERA}/cart/lines",
        json={"offer_id": await offer_id(owner, PANAMERA, "navigation-plus", "P1Y")},
    )
    without_address = response.json()
    assert without_address["next_step"] == "address"
    assert error_code(await checkout(owner, PANAMERA, without_address["revision"])) == (
        422,
        "checkout_incomplete",
    )
    cart = await ready_cart(owner, PANAMERA, "car-security", "P1Y")  # another line: a new revision
    assert error_code(await checkout(owner, PANAMERA, cart["revision"] - 1)) == (409, "cart_changed")
    assert error_code(await checkout(owner, PANAMERA, cart["revision"] + 5)) == (409, "cart_changed")
    assert await count(stack, Order) == 0
    assert (await checkout(owner, PANAMERA, cart["revision"])).json()["state"] == "confirmed"


async def test_a_new_price_stops_a_checkout_of_the_old_one_and_never_changes_a_contract(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, TAYCAN, "car-security", "P1Y")
    assert contract["price"]["amount_minor"] == 5900
    bought_offer = (await contract_row(stack, contract["id"])).offer_id
    cart = await ready_cart(owner, TAYCAN, "navigation-plus", "P1Y")
    carted_offer = cart["lines"][0]["offer"]["id"]
    async with stack.db.transaction() as session:
        await catalog.revise_offer(session, bought_offer, price_minor=6900)
        await catalog.revise_offer(session, carted_offer, price_minor=10900)

    assert error_code(await checkout(owner, TAYCAN, cart["revision"])) == (409, "offer_changed")
    assert await count(stack, Order) == 1 and await count(stack, SandboxCharge) == 1
    response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": carted_offer})
    assert error_code(response) == (409, "offer_changed")
    assert await offer_id(owner, TAYCAN, "navigation-plus", "P1Y") != carted_offer  # the new price is shown

    [after] = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    assert after["price"]["amount_minor"] == 5900 and after["ends_at"] == contract["ends_at"]
    [order] = (await owner.get("/api/v1/store/orders")).json()
    assert order["total"]["amount_minor"] == 5900
    assert (await contract_row(stack, contract["id"])).offer_id == bought_offer


async def test_a_trial_is_free_and_can_be_used_once_per_vehicle(stack: Stack, login: Logins) -> None:
    """REQ: STO-4."""
    owner = await login(world.OWNER)
    trial = await offer_id(owner, TAYCAN, "remote-services", "trial")
    cart = await ready_cart(owner, TAYCAN, "remote-services", "trial", card=None)
    assert cart["total"]["amount_minor"] == 0 and cart["payment_method"] is None
    response = await checkout(owner, TAYCAN, cart["revision"])
    assert response.status_code == 201 and response.json()["state"] == "confirmed", response.text
    [contract] = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    assert contract["trial"] and contract["price"]["amount_minor"] == 0
    assert 360 <= contract["remaining_days"] <= 366  # a 12-month trial
    assert await count(stack, SandboxCharge) == 0 and await count(stack, Payment) == 0
    assert len(await mails(stack, "order_confirmation")) == 1

    response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/cart/lines", json={"offer_id": trial})
    assert error_code(response) == (409, "trial_used")
    front = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/store")).json()
    remote = next(s for s in front["services"] if s["code"] == "remote-services")
    assert all(not o["trial"] for o in remote["offers"])
    # The trial belongs to this car: another car of the owner still has it.
    assert await offer_id(owner, PANAMERA, "remote-services", "trial")


async def test_the_carrier_service_needs_the_cars_data_connection_after_its_trial(
    stack: Stack, login: Logins
) -> None:
    """REQ: STO-12 — a Japanese car that has never been online has no data connection."""
    await register_japanese_car(stack)
    owner = await login(world.OWNER)
    front = (await owner.get(f"/api/v1/vehicles/{JP_VIN}/store")).json()
    assert "carrier-connect" in {s["code"] for s in front["services"]}
    german = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/store")).json()
    assert "carrier-connect" not in {s["code"] for s in german["services"]}
    paid = await offer_id(owner, JP_VIN, "carrier-connect", "P1Y")
    response = await owner.post(f"/api/v1/vehicles/{JP_VIN}/cart/lines", json={"offer_id": paid})
    assert error_code(response) == (422, "no_data_connection")
    trial = await offer_id(owner, JP_VIN, "carrier-connect", "trial")
    response = await owner.post(f"/api/v1/vehicles/{JP_VIN}/cart/lines", json={"offer_id": trial})
    assert response.status_code == 200, response.text
    assert response.json()["total"]["currency"] == "JPY"


# --- payment: 3-D Secure and declines -----------------------------------------------------------------------


async def test_a_wrong_challenge_code_fails_the_order_and_the_right_one_confirms_the_next(
    stack: Stack, login: Logins
) -> None:
    owner, stranger = await login(world.OWNER), await login(world.STRANGER)
    cart = await ready_cart(owner, TAYCAN, "tracking", "P1Y", card=VISA_CHALLENGE)
    order = (await checkout(owner, TAYCAN, cart["revision"])).json()
    assert order["state"] == "requires_action"
    path = f"/api/v1/store/orders/{order['id']}/challenge"
    assert error_code(await stranger.post(path, json={"code": "123456"})) == (404, "order_not_found")
    response = await owner.post(path, json={"code": "000000"})
    assert (response.json()["state"], response.json()["failure_code"]) == ("failed", "authentication_failed")
    late = await owner.post(path, json={"code": "123456"})  # too late: the order failed
    assert late.json()["state"] == "failed"
    assert await count(stack, SandboxCharge, SandboxCharge.status == "succeeded") == 0
    assert await count(stack, Contract) == 0 and await count(stack, Payment) == 0

    cart = await choose_card(owner, TAYCAN, VISA_CHALLENGE)  # try again: a new revision, a new order
    second = (await checkout(owner, TAYCAN, cart["revision"])).json()
    assert second["id"] != order["id"] and second["state"] == "requires_action"
    path = f"/api/v1/store/orders/{second['id']}/challenge"
    response = await owner.post(path, json={"code": "123456"})
    assert response.status_code == 200 and response.json()["state"] == "confirmed", response.text
    again = await owner.post(path, json={"code": "123456"})
    assert again.json()["state"] == "confirmed"
    assert await count(stack, SandboxCharge, SandboxCharge.status == "succeeded") == 1
    assert await count(stack, Contract) == 1 and await count(stack, Payment) == 1


async def test_a_declined_card_fails_the_order_and_another_card_makes_a_new_order(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    cart = await ready_cart(owner, TAYCAN, "tracking", "P1Y", card=VISA_DECLINED)
    response = await checkout(owner, TAYCAN, cart["revision"])
    failed = response.json()
    assert (failed["state"], failed["failure_code"]) == ("failed", "card_declined"), response.text
    again = await checkout(owner, TAYCAN, cart["revision"])  # the same confirmation: the same order
    assert (again.status_code, again.json()["id"]) == (200, failed["id"])

    fresh = await choose_card(owner, TAYCAN, VISA)
    assert fresh["revision"] > cart["revision"] and len(fresh["lines"]) == 1
    response = await checkout(owner, TAYCAN, fresh["revision"])
    assert response.status_code == 201, response.text
    paid = response.json()
    assert paid["id"] != failed["id"] and paid["state"] == "confirmed"
    assert await count(stack, SandboxCharge, SandboxCharge.status == "succeeded") == 1
    assert await count(stack, Payment) == 1 and await count(stack, Contract) == 1
    assert (await order_row(stack, failed["id"])).state == "failed"


# --- withdrawal (STO-10) ------------------------------------------------------------------------------------


async def test_withdrawal_refunds_within_fourteen_days_and_is_closed_after(
    stack: Stack, login: Logins
) -> None:
    """REQ: STO-10 — one order of two services; withdrawing from one refunds its price only."""
    owner, family, stranger = await login(world.OWNER), await login(world.FAMILY), await login(world.STRANGER)
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/cart/lines",
        json={"offer_id": await offer_id(owner, TAYCAN, "car-security", "P1Y")},
    )
    assert response.status_code == 200, response.text
    cart = await ready_cart(owner, TAYCAN, "remote-services", "P1Y")
    assert cart["total"]["amount_minor"] == 9900 + 5900
    assert (await checkout(owner, TAYCAN, cart["revision"])).json()["state"] == "confirmed"
    bought = {c["service_code"]: c for c in (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()}
    remote, security = bought["remote-services"], bought["car-security"]
    car = stack.fleet.cars[TAYCAN]
    await eventually(lambda: "remote-services" in car.entitlements.pending)
    await car.restart()
    await eventually(lambda: "remote-services" in car.entitlements.applied)
    assert remote["can_withdraw"]

    path = f"/api/v1/store/contracts/{remote['id']}/withdrawal"
    assert error_code(await family.post(path)) == (403, "buyer_only")
    assert error_code(await stranger.post(path)) == (404, "contract_not_found")
    clock.advance(days=13)
    owner = await login(world.OWNER, fresh=True)
    response = await owner.post(path)
    assert response.status_code == 200 and response.json()["state"] == "withdrawn", response.text
    assert response.json()["can_withdraw"] is False

    async with stack.db.session() as session:
        refunds = list(await session.scalars(select(SandboxRefund)))
    assert [r.amount_minor for r in refunds] == [9900]
    assert await count(stack, Payment, Payment.kind == "refund") == 1
    [mail] = await mails(stack, "withdrawal_confirmation")
    assert mail.to_address == world.OWNER
    await eventually(lambda: "remote-services" not in car.entitlements.applied)  # without a restart
    assert "car-security" in car.entitlements.applied
    again = await owner.post(path)  # a second click changes nothing
    assert again.json()["state"] == "withdrawn" and await count(stack, SandboxRefund) == 1

    clock.advance(days=1, minutes=1)
    owner = await login(world.OWNER, fresh=True)
    response = await owner.post(f"/api/v1/store/contracts/{security['id']}/withdrawal")
    assert error_code(response) == (409, "withdrawal_closed")
    assert (await contract_row(stack, security["id"])).state == "active"
    assert await count(stack, SandboxRefund) == 1


# --- subscriptions: renewal, cancellation, expiry (STO-11) --------------------------------------------------


async def test_a_monthly_subscription_renews_once_when_due(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, PANAMERA, "navigation-plus", "P1M")
    assert contract["auto_renew"] and contract["recurring"]
    first_end = (await contract_row(stack, contract["id"])).ends_at
    past(contract["ends_at"])
    await asyncio.gather(contracts.renew_due(stack.platform), contracts.renew_due(stack.platform))

    async def renewed() -> bool:
        return bool((await contract_row(stack, contract["id"])).period == 1)

    await eventually(renewed)
    await contracts.renew_due(stack.platform)
    row = await contract_row(stack, contract["id"])
    assert (row.state, row.period, row.ends_at) == ("active", 1, add_months(first_end, 1))
    assert await count(stack, SandboxCharge) == 2  # the order and one renewal
    assert await count(stack, Payment, Payment.contract_id == row.id) == 1
    [mail] = await mails(stack, "subscription_renewed")
    assert mail.to_address == world.OWNER
    assert not await mails(stack, "contract_expired")


async def test_a_subscription_renews_before_its_end_so_the_car_keeps_the_service_without_a_restart(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, TAYCAN, "navigation-plus", "P1M")
    car = stack.fleet.cars[TAYCAN]
    await eventually(lambda: "navigation-plus" in car.entitlements.pending)
    await car.restart()
    await eventually(lambda: "navigation-plus" in car.entitlements.applied)

    past(contract["ends_at"], hours=-2)  # two hours before the end
    await contracts.renew_due(stack.platform)
    row = await contract_row(stack, contract["id"])
    assert row.period == 1

    def car_has_new_term() -> bool:
        applied = car.entitlements.applied.get("navigation-plus")
        return applied is not None and applied.until == row.ends_at

    await eventually(car_has_new_term)
    assert "navigation-plus" not in car.entitlements.pending


async def test_a_cancelled_subscription_does_not_renew_and_expires_at_its_end(
    stack: Stack, login: Logins
) -> None:
    owner, family = await login(world.OWNER), await login(world.FAMILY)
    yearly = await buy(owner, TAYCAN, "car-security", "P1Y")
    response = await owner.post(f"/api/v1/store/contracts/{yearly['id']}/cancellation")
    assert error_code(response) == (409, "not_renewing")
    monthly = await buy(owner, TAYCAN, "navigation-plus", "P1M")
    response = await family.post(f"/api/v1/store/contracts/{monthly['id']}/cancellation")
    assert error_code(response) == (403, "owner_only")

    contract = await buy(owner, PANAMERA, "navigation-plus", "P1M")
    handover = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/handover")).json()
    assert handover["ready"] is False
    assert [c["id"] for c in handover["cancel_first"]] == [contract["id"]]

    response = await owner.post(f"/api/v1/store/contracts/{contract['id']}/cancellation")
    assert response.status_code == 200, response.text
    assert (response.json()["state"], response.json()["auto_renew"]) == ("cancelled", False)
    assert len(await mails(stack, "subscription_cancelled")) == 1
    handover = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/handover")).json()
    assert handover == {"vin": PANAMERA, "ready": True, "cancel_first": []}

    past(contract["ends_at"])
    await contracts.renew_due(stack.platform)
    await contracts.expire_due(stack.platform)

    async def expired() -> bool:
        return bool((await contract_row(stack, contract["id"])).state == "expired")

    await eventually(expired)
    async with stack.db.session() as session:
        charged = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .where(Payment.order_id == (await contract_row(stack, contract["id"])).order_id)
        )
    assert charged == 1 and await count(stack, Payment, Payment.contract_id == contract["id"]) == 0
    [mail] = await mails(stack, "contract_expired")
    assert mail.to_address == world.OWNER


# --- hotspot data packages (CON-3) --------------------------------------------------------------------------


async def test_a_data_package_without_auto_renewal_expires_and_switches_sharing_off(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, TAYCAN, "wifi-1gb", "P1M", auto_renew=False)
    assert (contract["kind"], contract["auto_renew"], contract["volume_mb"]) == ("data_package", False, 1024)
    car = stack.fleet.cars[TAYCAN]
    await eventually(lambda: "wifi-1gb" in car.entitlements.pending)
    assert await car.set_hotspot_sharing(True) is False  # not applied yet: no package, no sharing
    await car.restart()
    assert "wifi-1gb" in car.entitlements.applied
    assert await car.set_hotspot_sharing(True) is True and car.state.hotspot_sharing

    past(contract["ends_at"])
    await contracts.expire_due(stack.platform)

    async def expired() -> bool:
        return bool((await contract_row(stack, contract["id"])).state == "expired")

    await eventually(expired)
    await eventually(lambda: not car.state.hotspot_sharing)  # the car follows without a restart
    assert "wifi-1gb" not in car.entitlements.applied
    [mail] = await mails(stack, "data_package_expired")
    assert mail.to_address == world.OWNER
    assert await count(stack, SandboxCharge) == 1


async def test_an_auto_renewing_data_package_renews_and_after_cancelling_expires(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, TAYCAN, "wifi-1gb", "P1M", auto_renew=True)
    assert contract["auto_renew"] and contract["can_cancel"]
    car = stack.fleet.cars[TAYCAN]
    await eventually(lambda: "wifi-1gb" in car.entitlements.pending)
    await car.restart()
    assert await car.set_hotspot_sharing(True)

    past(contract["ends_at"])
    await contracts.renew_due(stack.platform)
    await contracts.expire_due(stack.platform)

    async def renewed() -> bool:
        return bool((await contract_row(stack, contract["id"])).period == 1)

    await eventually(renewed)
    row = await contract_row(stack, contract["id"])
    assert row.state == "active" and row.ends_at > clock.now()

    def renewed_in_the_car() -> bool:
        applied = car.entitlements.applied.get("wifi-1gb")
        return applied is not None and applied.until == row.ends_at

    await eventually(renewed_in_the_car)  # the new term at once, without a restart
    assert car.state.hotspot_sharing
    assert await count(stack, SandboxCharge) == 2
    assert not await mails(stack, "data_package_expired")

    owner = await login(world.OWNER, fresh=True)
    response = await owner.post(f"/api/v1/store/contracts/{contract['id']}/cancellation")
    assert response.json()["state"] == "cancelled", response.text
    clock.advance(seconds=(row.ends_at - clock.now()).total_seconds() + 60)
    await contracts.renew_due(stack.platform)
    await contracts.expire_due(stack.platform)
    await eventually(lambda: not car.state.hotspot_sharing)
    assert (await contract_row(stack, contract["id"])).state == "expired"
    assert "wifi-1gb" not in car.entitlements.applied
    [mail] = await mails(stack, "data_package_expired")
    assert mail.to_address == world.OWNER
    assert await count(stack, SandboxCharge) == 2


# --- contracts belong to the vehicle (STO-9) ----------------------------------------------------------------


async def test_a_contract_stays_with_the_car_when_it_changes_hands(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, PANAMERA, "tracking", "P1Y")
    vehicle_id = (await contract_row(stack, contract["id"])).vehicle_id
    await hand_over(stack, PANAMERA, world.OWNER, world.STRANGER)

    buyer = await login(world.STRANGER)
    [seen] = (await buyer.get(f"/api/v1/vehicles/{PANAMERA}/contracts")).json()
    assert (seen["id"], seen["state"], seen["service_code"]) == (contract["id"], "active", "tracking")
    assert 364 <= seen["remaining_days"] <= 366 and seen["ends_at"] == contract["ends_at"]
    # Withdrawal is the first buyer's right, not the next owner's: refused (and, below, not offered).
    response = await buyer.post(f"/api/v1/store/contracts/{contract['id']}/withdrawal")
    assert error_code(response) == (403, "buyer_only")

    response = await owner.get(f"/api/v1/vehicles/{PANAMERA}/contracts")
    assert error_code(response) == (404, "vehicle_not_found")
    assert (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json() == []
    assert error_code(await owner.post(f"/api/v1/store/contracts/{contract['id']}/withdrawal")) == (
        404,
        "contract_not_found",
    )
    row = await contract_row(stack, contract["id"])
    assert row.vehicle_id == vehicle_id and row.state == "active"
    async with stack.db.session() as session:
        others = await session.scalar(
            select(func.count()).select_from(Contract).where(Contract.vehicle_id != vehicle_id)
        )
        assert await session.get(Vehicle, vehicle_id) is not None
    assert others == 0


async def test_a_subscription_the_seller_forgot_to_cancel_never_charges_the_seller_again(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, PANAMERA, "navigation-plus", "P1M")
    assert [
        c["id"] for c in (await owner.get(f"/api/v1/vehicles/{PANAMERA}/handover")).json()["cancel_first"]
    ] == [contract["id"]]
    await hand_over(stack, PANAMERA, world.OWNER, world.STRANGER)
    past(contract["ends_at"])
    await contracts.renew_due(stack.platform)

    row = await contract_row(stack, contract["id"])
    assert (row.state, row.period) == ("expired", 0)
    assert await count(stack, SandboxCharge) == 1  # only the seller's order, no renewal
    [mail] = await mails(stack, "renewal_failed")
    assert mail.to_address == world.STRANGER and "new owner" in mail.body_text


async def test_the_next_owner_is_not_offered_a_withdrawal_that_only_the_buyer_may_make(
    stack: Stack, login: Logins
) -> None:
    owner = await login(world.OWNER)
    contract = await buy(owner, PANAMERA, "tracking", "P1Y")
    assert contract["can_withdraw"] is True
    await hand_over(stack, PANAMERA, world.OWNER, world.STRANGER)
    buyer = await login(world.STRANGER)
    [seen] = (await buyer.get(f"/api/v1/vehicles/{PANAMERA}/contracts")).json()
    response = await buyer.post(f"/api/v1/store/contracts/{contract['id']}/withdrawal")
    assert error_code(response) == (403, "buyer_only")
    assert (seen["can_withdraw"], seen["withdrawal_until"]) == (False, None)


# --- a crash between charge and contract --------------------------------------------------------------------


async def _placed_order(stack: Stack, login: Logins, vin: str = TAYCAN) -> Order:
    """An order recorded as the checkout would, but the process 'dies' before settling it."""
    owner = await login(world.OWNER)
    cart = await ready_cart(owner, vin, "tracking", "P1Y")
    buyer = await account(stack, world.OWNER)
    async with stack.db.transaction() as session:
        order, created = await store.place_order(session, buyer, vin, cart["revision"])
    assert created and order.state == "placed"
    return order


async def _charge_directly(stack: Stack, order: Order) -> ChargeResult:
    async with stack.db.session() as session:
        method = await session.get(PaymentMethod, order.payment_method_id)
    assert method is not None
    return await stack.platform.payments.charge(
        token=method.token,
        amount_minor=order.total_minor,
        currency=order.currency,
        idempotency_key=order.idempotency_key,
    )


async def test_an_order_charged_just_before_a_crash_is_concluded_on_recovery(
    stack: Stack, login: Logins
) -> None:
    order = await _placed_order(stack, login)
    charge = await _charge_directly(stack, order)
    assert charge.status is ChargeStatus.SUCCEEDED
    assert await count(stack, Contract) == 0
    clock.advance(seconds=31)
    await contracts.recover_orders(stack.platform)

    async def confirmed() -> bool:
        return bool((await order_row(stack, order.id)).state == "confirmed")

    await eventually(confirmed)
    assert (await order_row(stack, order.id)).charge_id == charge.id
    assert await count(stack, Contract, Contract.order_id == order.id) == 1
    assert await count(stack, SandboxCharge) == 1 and await count(stack, Payment) == 1
    assert await count(stack, SandboxRefund) == 0
    assert len(await mails(stack, "order_confirmation")) == 1


async def test_an_order_left_without_a_charge_is_abandoned_on_recovery(stack: Stack, login: Logins) -> None:
    order = await _placed_order(stack, login)
    await contracts.recover_orders(stack.platform)  # too young: the checkout may still be settling it
    assert (await order_row(stack, order.id)).state == "placed"
    clock.advance(seconds=31)
    await contracts.recover_orders(stack.platform)

    async def failed() -> bool:
        return bool((await order_row(stack, order.id)).state == "failed")

    await eventually(failed)
    assert (await order_row(stack, order.id)).failure_code == "abandoned"
    assert await count(stack, SandboxCharge) == 0 and await count(stack, Contract) == 0


async def test_a_charge_that_arrives_after_the_order_failed_is_refunded(stack: Stack, login: Logins) -> None:
    order = await _placed_order(stack, login)
    await contracts.fail(stack.platform, order.id, "abandoned")
    charge = await _charge_directly(stack, order)  # a slow issuer: the money arrives after all
    result = await contracts.apply_charge(stack.platform, order.id, charge)
    assert (result.state, result.failure_code) == ("refunded", "order_not_concluded")
    async with stack.db.session() as session:
        refunds = list(await session.scalars(select(SandboxRefund)))
    assert [(r.charge_id, r.amount_minor) for r in refunds] == [(charge.id, order.total_minor)]
    assert await count(stack, Contract) == 0
    assert await count(stack, Payment, Payment.kind == "refund") == 1
    assert len(await mails(stack, "order_refunded")) == 1
    again = await contracts.apply_charge(stack.platform, order.id, charge)  # told twice: refunded once
    assert again.state == "refunded" and await count(stack, SandboxRefund) == 1


# --- several jobs instances ---------------------------------------------------------------------------------


async def test_two_jobs_rounds_at_once_renew_and_mail_once(stack: Stack, login: Logins) -> None:
    owner = await login(world.OWNER)
    renewing = await buy(owner, PANAMERA, "navigation-plus", "P1M")
    ending = await buy(owner, TAYCAN, "navigation-plus", "P1M")
    response = await owner.post(f"/api/v1/store/contracts/{ending['id']}/cancellation")
    assert response.status_code == 200, response.text
    past(max(renewing["ends_at"], ending["ends_at"]))
    await asyncio.gather(run_store(stack.platform), run_store(stack.platform))

    async def settled() -> bool:
        renewed = await contract_row(stack, renewing["id"])
        ended = await contract_row(stack, ending["id"])
        return bool(renewed.period == 1 and ended.state == "expired")

    await eventually(settled)
    await asyncio.gather(run_store(stack.platform), run_store(stack.platform))
    assert (await contract_row(stack, renewing["id"])).period == 1
    assert await count(stack, SandboxCharge) == 3  # two orders and one renewal
    assert len(await mails(stack, "subscription_renewed")) == 1
    assert len(await mails(stack, "contract_expired")) == 1
    async with stack.db.session() as session:
        keys = list(await session.scalars(select(OutboxEmail.dedupe_key)))
    assert len(keys) == len(set(keys))
