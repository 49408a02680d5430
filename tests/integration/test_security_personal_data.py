"""Car security in the export and the erasure of an ID (PRV-5): the number a person gave the SOC, the packages
they bought and the modes they set are in their export; erasure takes their number from the package and from
the order's lines, and the modes stay with the car without the person. A package's number is the person's
who gave it, not the buyer's: after a change of hands the seller neither receives nor erases the new main
user's."""

from __future__ import annotations

from sqlalchemy import select

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.garage import service as garage
from carlink.identity import service as identity
from carlink.security import modes
from carlink.security import personal_data as security_data
from carlink.security.models import SecurityModePeriod
from carlink.store import personal_data as store_data
from carlink.store.models import Order
from tests.integration.test_security_activation import SOC_PHONE, activation_of, buy_tracking
from tests.support.portal import account_id
from tests.support.stack import TAYCAN, Stack

NUMBER = "+" + "".join(ch for ch in SOC_PHONE if ch.isdigit())
BUYERS_NUMBER = "+49 30 555 0102"
BUYERS_NORMALISED = "+49305550102"


async def test_the_socs_number_and_modes_are_exported_and_the_number_erased(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    try:
        contract_id = await buy_tracking(owner, TAYCAN)
        assert (
            await owner.post(f"/api/v1/vehicles/{TAYCAN}/security/mode", json={"kind": "service", "hours": 5})
        ).status_code in (200, 201)
    finally:
        await owner.aclose()
    person = await account_id(stack, world.OWNER)

    async with stack.db.session() as session:
        exported = await security_data.export(session, person)
    [given] = exported["soc_phone_numbers"]
    assert (given["vin"], given["package"], given["soc_phone"]) == (TAYCAN, "tracking", NUMBER)
    [bought] = exported["tracking_activations"]
    assert (bought["vin"], bought["package"]) == (TAYCAN, "tracking") and "soc_phone" not in bought
    assert [(m["vin"], m["kind"]) for m in exported["security_modes"]] == [(TAYCAN, "service")]

    async with stack.db.transaction() as session:
        await security_data.erase(session, person)
        await store_data.erase(session, person)
    activation = await activation_of(stack, contract_id)
    assert activation.phone == "" and activation.phone_account_id is None
    assert activation.state != "ended"  # the package stays with the car
    async with stack.db.session() as session:
        lines = [line for order in await session.scalars(select(Order)) for line in order.lines]
        mode = await modes.in_force(session, activation.vehicle_id, utcnow())
        setters = list(await session.scalars(select(SecurityModePeriod.set_by)))
    assert lines and all("soc_phone" not in line for line in lines)
    assert mode is not None and setters == [None]
    async with stack.db.session() as session:
        again = await security_data.export(session, person)
    assert again["soc_phone_numbers"] == [] and len(again["tracking_activations"]) == 1


async def test_after_a_change_of_hands_the_number_is_the_new_main_users(stack: Stack) -> None:
    """REQ: PRV-5 — the seller bought the package, the buyer of the car gave their number for it: only the
    buyer's export shows it and only the buyer's erasure takes it (the SOC must still reach the buyer)."""
    seller_client = await stack.as_user(world.OWNER)
    try:
        contract_id = await buy_tracking(seller_client, TAYCAN)
    finally:
        await seller_client.aclose()
    async with stack.db.transaction() as session:
        vehicle = await garage.vehicle_by_vin(session, TAYCAN)
        new_owner = await identity.find_account(session, world.STRANGER)
        assert vehicle is not None and new_owner is not None
        await garage.hand_over(session, vehicle, new_owner)
    buyer_client = await stack.as_user(world.STRANGER)
    try:
        given = await buyer_client.put(
            f"/api/v1/vehicles/{TAYCAN}/security/phone", json={"phone": BUYERS_NUMBER}
        )
        assert given.status_code == 200, given.text
    finally:
        await buyer_client.aclose()
    seller, buyer = await account_id(stack, world.OWNER), await account_id(stack, world.STRANGER)
    assert (await activation_of(stack, contract_id)).phone_account_id == buyer

    async with stack.db.session() as session:
        sellers = await security_data.export(session, seller)
        buyers = await security_data.export(session, buyer)
    assert sellers["soc_phone_numbers"] == [] and BUYERS_NORMALISED not in str(sellers)
    assert [(a["vin"], a["package"]) for a in sellers["tracking_activations"]] == [(TAYCAN, "tracking")]
    assert [(a["vin"], a["soc_phone"]) for a in buyers["soc_phone_numbers"]] == [(TAYCAN, BUYERS_NORMALISED)]
    assert buyers["tracking_activations"] == []  # the package is not theirs: they did not buy it

    async with stack.db.transaction() as session:
        await security_data.erase(session, seller)
    assert (await activation_of(stack, contract_id)).phone == BUYERS_NORMALISED
    async with stack.db.transaction() as session:
        await security_data.erase(session, buyer)
    erased = await activation_of(stack, contract_id)
    assert (erased.phone, erased.phone_account_id, erased.ended_at) == ("", None, None)
