"""Car security in the export and the erasure of an ID (PRV-5): the number given for the SOC, the package's
activation and the modes a person set are in their export; erasure takes the number from the package and
from the order's lines, and the modes stay with the car without the person."""

from __future__ import annotations

from sqlalchemy import select

from carlink.db.base import utcnow
from carlink.demo import world
from carlink.security import modes
from carlink.security import personal_data as security_data
from carlink.security.models import SecurityModePeriod
from carlink.store import personal_data as store_data
from carlink.store.models import Order
from tests.integration.test_security_activation import SOC_PHONE, activation_of, buy_tracking
from tests.support.portal import account_id
from tests.support.stack import TAYCAN, Stack


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
    number = "+" + "".join(ch for ch in SOC_PHONE if ch.isdigit())

    async with stack.db.session() as session:
        exported = await security_data.export(session, person)
    [package] = exported["tracking_activations"]
    assert package["vin"] == TAYCAN and package["package"] == "tracking"
    assert package["soc_phone"] == number
    assert [(m["vin"], m["kind"]) for m in exported["security_modes"]] == [(TAYCAN, "service")]

    async with stack.db.transaction() as session:
        await security_data.erase(session, person)
        await store_data.erase(session, person)
    activation = await activation_of(stack, contract_id)
    assert activation.phone == "" and activation.state != "ended"  # the package stays with the car
    async with stack.db.session() as session:
        lines = [line for order in await session.scalars(select(Order)) for line in order.lines]
        mode = await modes.in_force(session, activation.vehicle_id, utcnow())
        setters = list(await session.scalars(select(SecurityModePeriod.set_by)))
    assert lines and all("soc_phone" not in line for line in lines)
    assert mode is not None and setters == [None]
    async with stack.db.session() as session:
        assert (await security_data.export(session, person))["tracking_activations"][0]["soc_phone"] is None
