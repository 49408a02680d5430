"""Ordering functions on demand on the real databases (FOD-1..3, FOD-7, docs/fod.md): what a car's model can
have, one order per double submit, nothing charged until the car reports the activation, one charge however
often it is reported, the 28-day window, a refused card, the order cancelled by the buyer, and a monthly
function withdrawn. The car over the broker is in test_fod_in_car.py."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from carlink.catalog.models import Offer
from carlink.catalog.seed import ensure_catalogue
from carlink.clock import clock
from carlink.db.base import Database
from carlink.demo import world
from carlink.errors import CarlinkError
from carlink.fod import functions, updates
from carlink.fod import personal_data as fod_data
from carlink.fod.models import Delivery, FunctionOrder, VehicleDeliveries
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.identity.models import Account
from carlink.notify.models import Notification, OutboxEmail
from carlink.partners.seed import ensure_countries
from carlink.platform import Platform
from carlink.protocol.messages import DeliveryReport
from carlink.settings import Settings
from carlink.store import contracts, entitlements
from carlink.store import service as store
from carlink.store.models import Contract, Order, Payment
from carlink.store.models import PaymentMethod as PaymentMethodRow
from carlink.store.payments import CardInput, SandboxCharge, SandboxGateway

TAYCAN, PANAMERA, NINE_ELEVEN = (car.vin for car in world.DEMO_CARS)
VISA = CardInput("4242424242424242", 12, 2030, "123")
DECLINED = CardInput("4000000000000002", 12, 2030, "123")


@dataclass
class World:
    platform: Platform
    owner: Account
    card_id: int

    @property
    def db(self) -> Database:
        return self.platform.db


async def account(db: Database, email: str) -> Account:
    async with db.session() as session:
        found = await session.scalar(select(Account).where(Account.email == email))
    assert found is not None
    return found


@pytest.fixture
async def fod(database_url: str, tmp_path: Path) -> AsyncIterator[World]:
    db = Database(database_url)
    settings = Settings(database_url=database_url, package_dir=str(tmp_path / "packages"))
    async with db.transaction() as session:
        await ensure_catalogue(session)
        await ensure_countries(session)
        await world.seed(session)
        await functions.ensure_function_packages(session, settings)
    platform = Platform(settings=settings, db=db, gateway=SandboxGateway(db))
    owner = await account(db, world.OWNER)
    card = await store.add_card(platform, owner, VISA, make_default=True)
    yield World(platform, owner, card.id)
    await db.dispose()


async def offer(w: World, code: str, term: str, country: str = "DE") -> int:
    async with w.db.session() as session:
        found = await session.scalar(
            select(Offer.id).where(Offer.service_code == code, Offer.term == term, Offer.country == country)
        )
    assert found is not None, (code, term)
    return int(found)


async def order(
    w: World, code: str = "adaptive-cruise", term: str = "LIFE", vin: str = TAYCAN, **changes: Any
) -> tuple[FunctionOrder, bool]:
    who = changes.pop("who", w.owner)
    values = {"offer_id": await offer(w, code, term), "payment_method_id": w.card_id, "accept_terms": True}
    async with w.db.transaction() as session:
        return await functions.order_function(session, who, vin, **(values | changes))


async def report(w: World, order_id: int, state: str) -> int | None:
    """The car's report as the gateway applies it; the order whose charge is now due, if any."""
    async with w.db.transaction() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == order_id))
        assert delivery is not None
        vehicle = await session.get(Vehicle, delivery.vehicle_id)
        assert vehicle is not None
        message = DeliveryReport(delivery=delivery.id, state=state, at=clock.now())  # type: ignore[arg-type]
        _, due = await functions.handle_report(session, vehicle, message)
        return due


async def activate(w: World, order_id: int) -> FunctionOrder:
    await report(w, order_id, "downloaded")
    due = await report(w, order_id, "activated")
    assert due == order_id
    return await functions.settle_activation(w.platform, order_id)


async def count(w: World, model: Any, *where: Any) -> int:
    async with w.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_an_order_charges_nothing_and_puts_the_package_into_the_cars_delivery_set(fod: World) -> None:
    placed, created = await order(fod)
    assert created and placed.state == "ordered" and placed.term == "LIFE"
    assert 27 < (placed.download_by - clock.now()).days + 1 <= 28  # REQ: FOD-3
    again, created_again = await order(fod)  # a double submit
    assert (again.id, created_again) == (placed.id, False)
    assert await count(fod, FunctionOrder) == 1 and await count(fod, SandboxCharge) == 0
    async with fod.db.session() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == placed.id))
        revision = await session.get(VehicleDeliveries, placed.vehicle_id)
        mail = await session.scalar(select(OutboxEmail).where(OutboxEmail.template == "function_ordered"))
    assert delivery is not None and (delivery.state, delivery.package) == (
        "offered",
        "function-adaptive-cruise",
    )
    assert revision is not None and revision.revision == 1
    assert mail is not None and mail.to_address == world.OWNER and placed.number in mail.body_text


REFUSED: list[tuple[str, str, str, str, dict[str, Any], str]] = [
    ("power-boost", "LIFE", NINE_ELEVEN, world.OWNER, {}, "service_not_available"),  # electric only
    ("remote-services", "P1Y", TAYCAN, world.OWNER, {}, "not_a_function"),
    ("adaptive-cruise", "LIFE", TAYCAN, world.OWNER, {"accept_terms": False}, "terms_not_accepted"),
    ("adaptive-cruise", "LIFE", TAYCAN, world.FAMILY, {}, "owner_only"),
    ("adaptive-cruise", "LIFE", TAYCAN, world.STRANGER, {}, "vehicle_not_found"),
    (
        "adaptive-cruise",
        "LIFE",
        TAYCAN,
        world.OWNER,
        {"payment_method_id": 999},
        "payment_method_not_found",
    ),
    ("adaptive-cruise", "LIFE", TAYCAN, world.OWNER, {"offer_id": 0}, "offer_not_found"),
]


async def test_orders_that_cannot_be_are_refused_with_a_stable_code(fod: World) -> None:
    for code, term, vin, who, changes, error in REFUSED:  # one world: nothing is written by a refusal
        with pytest.raises(CarlinkError) as refused:
            await order(fod, code, term, vin, who=await account(fod.db, who), **changes)
        assert refused.value.code == error, (code, who, changes)
    assert await count(fod, FunctionOrder) == 0


async def test_functions_are_not_sold_through_the_cart(fod: World) -> None:
    with pytest.raises(CarlinkError) as refused:
        async with fod.db.transaction() as session:
            await store.add_to_cart(session, fod.owner, TAYCAN, await offer(fod, "lane-assist", "LIFE"))
    assert refused.value.code == "function_not_in_cart"


async def test_the_activation_is_charged_once_however_often_the_car_reports_it(fod: World) -> None:
    placed, _ = await order(fod)
    assert await report(fod, placed.id, "activated") == placed.id  # straight from 'offered' counts too
    done = await functions.settle_activation(fod.platform, placed.id)
    assert done.state == "active" and done.contract_id is not None
    assert await report(fod, placed.id, "activated") is None  # repeated: nothing new is due
    await functions.settle_activation(fod.platform, placed.id)
    await functions.settle_due(fod.platform)
    assert await count(fod, SandboxCharge) == 1
    assert await count(fod, Payment, Payment.idempotency_key == f"fod-{placed.id}") == 1
    async with fod.db.session() as session:
        contract = await session.get(Contract, done.contract_id)
        store_order = await session.get(Order, done.store_order_id)
        granted = await entitlements.current(session, placed.vehicle_id)
        confirmation = await session.scalar(
            select(OutboxEmail).where(OutboxEmail.template == "order_confirmation")
        )
    assert contract is not None and (contract.kind, contract.term, contract.auto_renew) == (
        "function",
        "LIFE",
        False,
    )
    assert contract.ends_at.year >= clock.now().year + 99  # REQ: FOD-7 — for the car's life
    assert store_order is not None and store_order.state == "confirmed" and store_order.total_minor == 119000
    assert [(e.service, e.kind) for e in granted] == [("adaptive-cruise", "function")]
    assert confirmation is not None
    with pytest.raises(CarlinkError) as again:
        await order(fod)
    assert again.value.code == "function_already_active"


async def test_a_package_not_downloaded_within_28_days_cancels_the_order_free_of_charge(fod: World) -> None:
    late, _ = await order(fod)
    fetched, _ = await order(fod, "lane-assist", "P1M")
    await report(fod, fetched.id, "downloaded")  # this one the car has: it waits for the activation
    clock.advance(days=27)
    assert await functions.expire_windows(fod.platform) == 0
    clock.advance(days=1, seconds=1)
    assert await functions.expire_windows(fod.platform) == 1
    async with fod.db.session() as session:
        cancelled = await session.get(FunctionOrder, late.id)
        waiting = await session.get(FunctionOrder, fetched.id)
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == late.id))
        mail = await session.scalar(
            select(OutboxEmail).where(OutboxEmail.template == "function_order_cancelled")
        )
        note = await session.scalar(select(Notification).where(Notification.account_id == fod.owner.id))
    assert cancelled is not None and (cancelled.state, cancelled.reason) == (
        "cancelled",
        "download_window_passed",
    )
    assert waiting is not None and waiting.state == "ordered"
    assert delivery is not None and delivery.state == "cancelled"
    assert mail is not None and late.number in mail.body_text and note is not None
    assert await count(fod, SandboxCharge) == 0
    assert await report(fod, late.id, "downloaded") is None  # too late: the cancelled delivery stays so
    assert await functions.expire_windows(fod.platform) == 0


async def test_a_refused_card_at_activation_ends_the_order_unpaid(fod: World) -> None:
    declined = await store.add_card(fod.platform, fod.owner, DECLINED, make_default=False)
    placed, _ = await order(fod, payment_method_id=declined.id)
    done = await activate(fod, placed.id)
    assert (done.state, done.reason) == ("payment_failed", "card_declined")
    async with fod.db.session() as session:
        mail = await session.scalar(
            select(OutboxEmail).where(OutboxEmail.template == "function_payment_failed")
        )
        assert await entitlements.current(session, placed.vehicle_id) == []
    assert mail is not None and await count(fod, Contract) == 0


async def test_the_buyer_cancels_an_order_until_the_car_installs_it(fod: World) -> None:
    first, _ = await order(fod)
    async with fod.db.transaction() as session:
        cancelled = await functions.cancel_order(session, fod.owner, first.id)
    assert (cancelled.state, cancelled.reason) == ("cancelled", "cancelled_by_customer")
    second, created = await order(fod)  # ordering again is a new order
    assert created and second.id != first.id
    await report(fod, second.id, "downloaded")
    await report(fod, second.id, "installing")
    with pytest.raises(CarlinkError) as refused:
        async with fod.db.transaction() as session:
            await functions.cancel_order(session, fod.owner, second.id)
    assert refused.value.code == "function_order_state"
    stranger = await account(fod.db, world.STRANGER)
    with pytest.raises(CarlinkError) as hidden:
        async with fod.db.transaction() as session:
            await functions.cancel_order(session, stranger, second.id)
    assert hidden.value.code == "function_order_not_found"


async def test_a_monthly_function_renews_like_a_subscription_and_withdrawal_refunds_it(fod: World) -> None:
    placed, _ = await order(fod, "lane-assist", "P1M")
    done = await activate(fod, placed.id)
    assert done.contract_id is not None
    async with fod.db.session() as session:
        contract = await session.get(Contract, done.contract_id)
    assert contract is not None and (contract.term, contract.recurring, contract.auto_renew) == (
        "P1M",
        True,
        True,
    )
    withdrawn = await contracts.withdraw(fod.platform, fod.owner, done.contract_id)  # REQ: STO-10
    assert withdrawn.state == "withdrawn"
    async with fod.db.session() as session:
        refunds = list(await session.scalars(select(Payment).where(Payment.kind == "refund")))
        assert await entitlements.current(session, placed.vehicle_id) == []  # the car switches it off
    assert [(r.idempotency_key, r.amount_minor) for r in refunds] == [(f"withdraw-{contract.id}", 1200)]


async def test_the_catalogue_differs_by_model_and_country(fod: World) -> None:
    async with fod.db.session() as session:
        taycan = await functions.functions_of(session, await garage.garage_entry(session, fod.owner, TAYCAN))
        nine_eleven = await functions.functions_of(
            session, await garage.garage_entry(session, fod.owner, NINE_ELEVEN)
        )
    codes = {item.service.code for item in taycan}
    assert {"adaptive-cruise", "power-boost", "lane-assist", "matrix-lights"} <= codes
    assert "power-boost" not in {item.service.code for item in nine_eleven}
    assert all(item.state == "available" for item in taycan)
    terms = {item.service.code: sorted(o.term for o in item.offers) for item in taycan}
    assert terms["matrix-lights"] == ["LIFE"] and terms["adaptive-cruise"] == ["LIFE", "P1M"]


async def test_export_lists_the_orders_and_erasure_cancels_what_waits_for_the_car(fod: World) -> None:
    active, _ = await order(fod, "lane-assist", "LIFE")
    await activate(fod, active.id)
    waiting, _ = await order(fod)
    async with fod.db.transaction() as session:
        exported = await fod_data.export(session, fod.owner.id)
        await fod_data.erase(session, fod.owner.id)
    assert [o["number"] for o in exported["function_orders"]] == [active.number, waiting.number]
    async with fod.db.session() as session:
        rows = {row.id: row for row in await session.scalars(select(FunctionOrder))}
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == waiting.id))
    assert (rows[waiting.id].state, rows[waiting.id].reason) == ("cancelled", "erased")
    assert rows[active.id].state == "active"  # a concluded order lives on as the store's contract
    assert all(row.account_id is None for row in rows.values())
    assert delivery is not None and delivery.state == "cancelled"


async def test_the_cloud_dates_the_activation_whatever_the_cars_clock_says(fod: World) -> None:
    placed, _ = await order(fod, "lane-assist", "P1M")
    async with fod.db.transaction() as session:
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == placed.id))
        vehicle = await session.get(Vehicle, placed.vehicle_id)
        assert delivery is not None and vehicle is not None
        behind = clock.now() - dt.timedelta(days=365)  # a car whose clock is a year behind
        report_ = DeliveryReport(delivery=delivery.id, state="activated", at=behind)
        _, due = await functions.handle_report(session, vehicle, report_)
    assert due == placed.id
    done = await functions.settle_activation(fod.platform, placed.id)
    async with fod.db.session() as session:
        contract = await session.get(Contract, done.contract_id)
    assert contract is not None and abs((contract.starts_at - clock.now()).total_seconds()) < 60
    assert await contracts.renew_due(fod.platform) == 0  # not a year of monthly charges at once
    assert await count(fod, SandboxCharge) == 1


async def test_a_charge_taken_before_a_crash_is_concluded_not_refused(fod: World) -> None:
    placed, _ = await order(fod)
    await report(fod, placed.id, "activated")
    async with fod.db.session() as session:
        method = await session.get(PaymentMethodRow, fod.card_id)
    assert method is not None
    # The gateway charged, then the process died before the contract was written ...
    await fod.platform.payments.charge(
        token=method.token, amount_minor=119000, currency="EUR", idempotency_key=f"fod-{placed.id}"
    )
    async with fod.db.transaction() as session:  # ... and meanwhile the card was removed
        await store.remove_payment_method(session, fod.owner, fod.card_id)
    clock.advance(seconds=31)
    assert await functions.settle_due(fod.platform) == 1
    async with fod.db.session() as session:
        settled = await session.get(FunctionOrder, placed.id)
    assert settled is not None and settled.state == "active" and settled.contract_id is not None
    assert await count(fod, SandboxCharge) == 1


async def test_a_function_the_car_switched_off_before_the_charge_is_never_charged(fod: World) -> None:
    placed, _ = await order(fod)
    await report(fod, placed.id, "activated")
    await report(fod, placed.id, "deactivated")  # the charge was late; the car gave up on it
    done = await functions.settle_activation(fod.platform, placed.id)
    assert (done.state, done.reason) == ("payment_failed", "deactivated")
    assert await count(fod, SandboxCharge) == 0


async def test_a_refused_download_does_not_keep_the_window_open(fod: World) -> None:
    placed, _ = await order(fod)
    await report(fod, placed.id, "failed")  # say a tampered file: hash_mismatch
    clock.advance(days=28, seconds=1)
    assert await functions.expire_windows(fod.platform) == 1
    async with fod.db.session() as session:
        row = await session.get(FunctionOrder, placed.id)
    assert row is not None and (row.state, row.reason) == ("cancelled", "download_window_passed")


async def test_a_change_of_hands_ends_the_sellers_waiting_orders_and_update_consent(fod: World) -> None:
    placed, _ = await order(fod)
    async with fod.db.transaction() as session:
        await updates.set_consent(session, fod.owner, TAYCAN, True)
        buyer = await account(fod.db, world.STRANGER)
        vehicle = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
        assert vehicle is not None
        await garage.hand_over(session, vehicle, buyer)
    async with fod.db.session() as session:
        row = await session.get(FunctionOrder, placed.id)
        consent = await updates.consent(session, placed.vehicle_id)
        entry = await garage.garage_entry(session, buyer, TAYCAN)
        assert (
            await functions.orders_of_vehicle(session, placed.vehicle_id) == []
        )  # the seller's stay private
        assert all(item.order is None for item in await functions.functions_of(session, entry))
    assert row is not None and (row.state, row.reason) == ("cancelled", "owner_changed")
    assert consent is not None and consent.enabled is False and consent.account_id is None
    mine, created = await order(fod, who=buyer, payment_method_id=(await buyer_card(fod, buyer)))
    assert created and mine.id != placed.id


async def buyer_card(w: World, buyer: Account) -> int:
    return (await store.add_card(w.platform, buyer, VISA, make_default=True)).id


def test_a_delivery_report_without_a_time_zone_or_with_absurd_numbers_is_malformed() -> None:
    with pytest.raises(ValueError):
        DeliveryReport.model_validate({"delivery": 1, "state": "activated", "at": "2026-11-26T09:00:00"})
    with pytest.raises(ValueError):
        DeliveryReport.model_validate({"delivery": 2**40, "state": "activated", "at": "2026-11-26T09:00:00Z"})
