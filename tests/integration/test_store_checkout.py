"""Buying for one VIN through the JSON API (STO-2..8): cart, address, card, review, confirm; with the real
database, the sandbox payment gateway and the car receiving its entitlements over the broker."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from carlink.demo import world
from carlink.notify.models import OutboxEmail
from carlink.store.models import Contract, Order
from carlink.store.payments import SandboxCharge
from tests.support.purchases import ADDRESS, VISA
from tests.support.stack import PANAMERA, TAYCAN, Stack, eventually


def offer_id(store: dict[str, Any], service: str, term: str) -> int:
    found = next(s for s in store["services"] if s["code"] == service)
    return int(next(o for o in found["offers"] if o["term"] == term)["id"])


async def ready_cart(
    client: httpx.AsyncClient, vin: str, service: str, term: str, card: dict[str, Any] = VISA
) -> dict[str, Any]:
    store = (await client.get(f"/api/v1/vehicles/{vin}/store")).json()
    response = await client.post(
        f"/api/v1/vehicles/{vin}/cart/lines", json={"offer_id": offer_id(store, service, term)}
    )
    assert response.status_code == 200, response.text
    assert (await client.put(f"/api/v1/vehicles/{vin}/cart/billing", json=ADDRESS)).status_code == 200
    method = await client.post("/api/v1/store/payment-methods", json=card)
    assert method.status_code == 201, method.text
    cart = await client.put(
        f"/api/v1/vehicles/{vin}/cart/payment-method", json={"payment_method_id": method.json()["id"]}
    )
    assert cart.status_code == 200, cart.text
    return dict(cart.json())


async def count(stack: Stack, model: Any) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_owner_buys_a_service_and_the_car_gets_it_after_restart(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    cart = await ready_cart(owner, TAYCAN, "remote-services", "P1Y")
    assert cart["next_step"] == "review" and cart["total"]["amount_minor"] == 9900
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/cart/checkout", json={"revision": cart["revision"]}
    )
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["state"] == "confirmed"
    contracts = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/contracts")).json()
    assert [c["service_code"] for c in contracts] == ["remote-services"]
    assert 364 <= contracts[0]["remaining_days"] <= 366 and contracts[0]["can_withdraw"]
    async with stack.db.session() as session:
        mail = await session.scalar(select(OutboxEmail).where(OutboxEmail.template == "order_confirmation"))
    assert mail is not None and mail.to_address == world.OWNER and "14" in mail.body_text
    car = stack.fleet.cars[TAYCAN]
    await eventually(lambda: "remote-services" in car.entitlements.pending)
    await car.restart()
    await eventually(lambda: "remote-services" in car.entitlements.applied)


async def test_fifty_duplicate_confirmations_make_one_order_and_one_charge(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    cart = await ready_cart(owner, PANAMERA, "navigation-plus", "P1Y")
    responses = await asyncio.gather(
        *(
            owner.post(f"/api/v1/vehicles/{PANAMERA}/cart/checkout", json={"revision": cart["revision"]})
            for _ in range(20)
        )
    )
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert {r.json()["id"] for r in responses} == {responses[0].json()["id"]}
    assert (
        await count(stack, Order) == 1
        and await count(stack, SandboxCharge) == 1
        and await count(stack, Contract) == 1
    )
