"""Which cars and customers a dealer serves (PAR-1, dealer console): the latest sale of a car or its main
user's chosen partner decides, answered by the database in one query per question."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.demo import world
from carlink.garage import service as garage
from carlink.garage.models import Vehicle, VehicleUser
from carlink.identity.models import Account
from carlink.partners import dealers
from carlink.partners.models import Partner, PreferredPartner, Sale
from carlink.protocol.vin import make_vin
from tests.integration.test_partners import signed_in
from tests.support.portal import account_id, partner_id
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack

NEW_CAR = make_vin("WP0", "ZZZ95", "M", "S", 400777)


@asynccontextmanager
async def statements(session: AsyncSession) -> AsyncIterator[list[str]]:
    """The SQL statements this session sends inside the block (the stack's jobs role queries the same
    database meanwhile, on its own connections)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    connection = (await session.connection()).sync_connection
    assert connection is not None
    event.listen(connection, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(connection, "before_cursor_execute", count)


async def _scene(stack: Stack) -> None:
    """Berlin sold the 911 later to the stranger; the family member (a secondary user) chose Berlin; the
    stranger owns a new car, unsold, and chose Yokohama."""
    stranger = await account_id(stack, world.STRANGER)
    async with stack.db.transaction() as session:
        nine_eleven = await garage.vehicle_by_vin(session, NINE_ELEVEN)
        assert nine_eleven is not None
        session.add(
            Sale(
                partner_id=await partner_id(stack, "DE-BER-01"),
                vehicle_id=nine_eleven.id,
                buyer_email=world.STRANGER,
                buyer_account_id=stranger,
            )
        )
        session.add(
            PreferredPartner(
                account_id=await account_id(stack, world.FAMILY),
                partner_id=await partner_id(stack, "DE-BER-01"),
            )
        )
        session.add(PreferredPartner(account_id=stranger, partner_id=await partner_id(stack, "JP-YOK-01")))
        car = await garage.register_vehicle(
            session, vin=NEW_CAR, model_key="macan-2", variant_code="95BBA1", model_year=2021
        )
        account = await session.get(Account, stranger)
        assert account is not None
        await garage.assign_user(session, car, account, garage.MAIN)


async def _reference(stack: Stack) -> tuple[dict[int, set[int]], dict[int, set[int]]]:
    """partner id -> served vehicle ids, and -> customer ids, worked out from every row in Python."""
    async with stack.db.session() as session:
        sales = list(await session.scalars(select(Sale).order_by(Sale.id)))
        mains = {
            row.vehicle_id: row.account_id
            for row in await session.scalars(select(VehicleUser).where(VehicleUser.role == garage.MAIN))
        }
        chosen = {row.account_id: row.partner_id for row in await session.scalars(select(PreferredPartner))}
        partner_ids = list(await session.scalars(select(Partner.id)))
    latest = {sale.vehicle_id: sale for sale in sales}
    served: dict[int, set[int]] = {}
    customers: dict[int, set[int]] = {}
    for pid in partner_ids:
        cars = {vid for vid, sale in latest.items() if sale.partner_id == pid}
        cars |= {vid for vid, owner in mains.items() if chosen.get(owner) == pid}
        served[pid] = cars
        customers[pid] = (
            {mains[vid] for vid in cars if vid in mains}
            | {account for account, partner in chosen.items() if partner == pid}
            | {sale.buyer_account_id for sale in sales if sale.partner_id == pid and sale.buyer_account_id}
        )
    return served, customers


async def test_a_dealer_serves_its_latest_sales_and_the_cars_whose_main_user_chose_it(stack: Stack) -> None:
    # REQ: PAR-1 — the latest sale names the dealer; a main user's choice adds a car; a secondary user's
    # choice makes them a customer but brings no car.
    await _scene(stack)
    ids = {}
    async with stack.db.session() as session:
        for vin in (TAYCAN, PANAMERA, NINE_ELEVEN, world.JAPAN_CAR.vin, NEW_CAR):
            vehicle = await garage.vehicle_by_vin(session, vin)
            assert vehicle is not None
            ids[vin] = vehicle.id
    stuttgart, berlin, yokohama = [
        await partner_id(stack, code) for code in ("DE-STR-01", "DE-BER-01", "JP-YOK-01")
    ]
    owner, family, stranger, hanako = [
        await account_id(stack, email)
        for email in (world.OWNER, world.FAMILY, world.STRANGER, world.JAPAN_OWNER)
    ]
    async with stack.db.session() as session:
        assert await dealers.served_vehicle_ids(session, stuttgart) == {ids[TAYCAN], ids[PANAMERA]}
        assert await dealers.served_vehicle_ids(session, berlin) == {ids[NINE_ELEVEN]}
        assert await dealers.served_vehicle_ids(session, yokohama) == {ids[world.JAPAN_CAR.vin], ids[NEW_CAR]}
        # The owner bought the 911 from Stuttgart once: still a buyer of Stuttgart's.
        assert await dealers.customer_ids(session, stuttgart) == {owner}
        assert await dealers.customer_ids(session, berlin) == {owner, family, stranger}
        assert await dealers.customer_ids(session, yokohama) == {hanako, stranger}
        latest = await dealers.latest_sales(session, {ids[NINE_ELEVEN], ids[TAYCAN], ids[NEW_CAR]})
        assert set(latest) == {ids[NINE_ELEVEN], ids[TAYCAN]}
        assert latest[ids[NINE_ELEVEN]].partner_id == berlin and latest[ids[TAYCAN]].partner_id == stuttgart
        assert await dealers.latest_sales(session, set()) == {}

        # Every answer agrees with the rule worked out row by row.
        served, customers = await _reference(stack)
        every_car = set(await session.scalars(select(Vehicle.id)))
        every_account = set(await session.scalars(select(Account.id)))
        for pid in served:
            assert await dealers.served_vehicle_ids(session, pid) == served[pid]
            assert await dealers.customer_ids(session, pid) == customers[pid]
            for vehicle_id in every_car:
                assert await dealers.serves_vehicle(session, pid, vehicle_id) == (vehicle_id in served[pid])
            for account in every_account:
                assert await dealers.serves_customer(session, pid, account) == (account in customers[pid])
            # The select forms filter the same rows.
            assert (
                set(await session.scalars(select(Account.id).where(Account.id.in_(dealers.customers(pid)))))
                == customers[pid]
            )
            assert (
                set(
                    await session.scalars(
                        select(Vehicle.id).where(Vehicle.id.in_(dealers.served_vehicles(pid)))
                    )
                )
                == served[pid]
            )


async def test_each_dealer_question_is_one_query(stack: Stack) -> None:
    # The console asks on every request: no question reads every sale into the process.
    await _scene(stack)
    berlin = await partner_id(stack, "DE-BER-01")
    owner = await account_id(stack, world.OWNER)
    async with stack.db.session() as session:
        nine_eleven = await garage.vehicle_by_vin(session, NINE_ELEVEN)
        assert nine_eleven is not None
        for question in (
            dealers.served_vehicle_ids(session, berlin),
            dealers.customer_ids(session, berlin),
            dealers.serves_vehicle(session, berlin, nine_eleven.id),
            dealers.serves_customer(session, berlin, owner),
        ):
            async with statements(session) as seen:
                assert await question
            assert len(seen) == 1, seen


async def test_the_dealer_appointments_page_offers_only_its_own_cars(stack: Stack) -> None:
    # PAR-2 — the served cars are loaded in one query for the booking form.
    await _scene(stack)
    berlin = await signed_in(stack, world.OTHER_DEALER)
    stuttgart = await signed_in(stack, world.DEALER)
    try:
        page = (await berlin.http.get("/dealer/appointments")).text
        assert f'<option value="{NINE_ELEVEN}">' in page and TAYCAN not in page
        page = (await stuttgart.http.get("/dealer/appointments")).text
        assert f'<option value="{TAYCAN}">' in page and f'<option value="{PANAMERA}">' in page
        assert f'<option value="{NINE_ELEVEN}">' not in page
    finally:
        await berlin.close()
        await stuttgart.close()
