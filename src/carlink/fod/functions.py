"""Functions on demand (FOD-1..8): the catalogue per car, orders with their 28-day delivery window, the
charge on activation, and what the jobs role does about windows that passed and charges still due.

An order is not a store order yet: nothing is charged (FOD-2). When the car reports the function
activated, the order is charged once (key `fod-{id}`) and concluded into a store order with a contract, in
one unit of work; from then on it lives like any contract (STO-6..11): a monthly one renews and can be
cancelled, a permanent one runs for the car's life and stays with the VIN (FOD-7).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.catalog import service as catalog
from carlink.catalog.countries import CardBrand
from carlink.catalog.models import Offer, Service
from carlink.catalog.money import format_money
from carlink.catalog.rules import FUNCTION
from carlink.clock import clock
from carlink.db.base import add_unique
from carlink.errors import CarlinkError, Conflict, NotFound
from carlink.fod import deliveries, updates
from carlink.fod import service as packages
from carlink.fod.models import Delivery, FunctionOrder
from carlink.fod.rules import OPEN, DeliveryState, FunctionOrderState
from carlink.garage import service as garage
from carlink.garage.models import Vehicle, VehicleUser
from carlink.garage.service import GarageEntry
from carlink.identity.models import Account
from carlink.notify import service as notify
from carlink.partners import availability
from carlink.platform import Platform
from carlink.protocol.messages import DeliveryReport
from carlink.settings import Settings
from carlink.store import contracts as store_contracts
from carlink.store import entitlements
from carlink.store.cards import check_accepted
from carlink.store.models import Contract, Order, Payment, PaymentMethod
from carlink.store.payments import ChargeResult, ChargeStatus
from carlink.store.rules import ENTITLED, OrderState
from carlink.store.service import MAX_ID, buyer_entry, check_offer, country_of, own_payment_method

log = logging.getLogger("carlink.fod")
DOWNLOAD_DAYS = 28  # REQ: FOD-3
ROLLOUT_EVERY = 5.0  # seconds between the jobs role's rollout steps
_last_rollout: dict[int, float] = {}  # id(platform) -> when this process last advanced the rollouts
PACKAGE_BYTES = 256 * 1024


def package_name(service_code: str) -> str:
    return f"function-{service_code}"


def _package_bytes(service_code: str) -> bytes:
    """The function's data package: a small manifest and deterministic calibration data (the simulator's
    stand-in for the real unlock code and parameter set)."""
    manifest = json.dumps({"format": 1, "function": service_code}, sort_keys=True).encode() + b"\n"
    block = hashlib.sha256(service_code.encode()).digest()
    return (manifest + block * (PACKAGE_BYTES // len(block)))[:PACKAGE_BYTES]


async def ensure_function_packages(session: AsyncSession, settings: Settings) -> None:
    """Every function of the catalogue has its signed package: the missing ones are added under one new
    targets version; with all there, nothing is signed."""
    existing = {row.name for row in await packages.list_packages(session)}
    missing = [
        (package_name(service.code), _package_bytes(service.code), {"function": service.code})
        for service in await session.scalars(select(Service).where(Service.kind == FUNCTION))
        if package_name(service.code) not in existing
    ]
    if missing:
        await packages.add_packages(session, settings, missing)


# --- what a car can have ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionStatus:
    """One function of the catalogue as one car has it: its offers, any open order and delivery, and the
    contract that makes it the car's."""

    service: Service
    offers: list[Offer]
    order: FunctionOrder | None
    delivery: Delivery | None
    contract: Contract | None

    @property
    def state(self) -> str:
        """available | ordered | downloading | downloaded | installing | failed | active | ending"""
        if self.contract is not None:
            return "active" if self.contract.state == "active" else "ending"
        if self.order is not None and self.delivery is not None:
            if self.order.state == FunctionOrderState.ACTIVATED:
                return "active"
            return "ordered" if self.delivery.state == DeliveryState.OFFERED else self.delivery.state
        return "available"


async def functions_of(session: AsyncSession, entry: GarageEntry) -> list[FunctionStatus]:
    vehicle = entry.vehicle
    items = await catalog.services_for(
        session,
        country=vehicle.country,
        model_key=vehicle.model_key,
        engine=entry.variant.engine.value,
        functions=True,
    )
    orders = {
        row.service_code: row
        for row in await session.scalars(
            select(FunctionOrder).where(
                FunctionOrder.vehicle_id == vehicle.id,
                FunctionOrder.state.in_([FunctionOrderState.ORDERED, FunctionOrderState.ACTIVATED]),
            )
        )
    }
    by_order = {
        row.function_order_id: row
        for row in await session.scalars(
            select(Delivery).where(Delivery.function_order_id.in_([o.id for o in orders.values()]))
        )
    }
    running = await _entitled_contracts(session, vehicle.id)
    return [
        FunctionStatus(
            item.service,
            item.offers,
            orders.get(item.service.code),
            by_order.get(orders[item.service.code].id) if item.service.code in orders else None,
            running.get(item.service.code),
        )
        for item in items
    ]


async def _entitled_contracts(session: AsyncSession, vehicle_id: int) -> dict[str, Contract]:
    rows = await session.scalars(
        select(Contract)
        .where(
            Contract.vehicle_id == vehicle_id,
            Contract.kind == FUNCTION,
            Contract.state.in_([s.value for s in ENTITLED]),
            Contract.ends_at > clock.now(),
        )
        .order_by(Contract.ends_at)
    )
    return {row.service_code: row for row in rows}


async def orders_of_vehicle(session: AsyncSession, vehicle_id: int, limit: int = 50) -> list[FunctionOrder]:
    """The car's function orders placed by its current people (a previous owner's stay private)."""
    people = select(VehicleUser.account_id).where(VehicleUser.vehicle_id == vehicle_id)
    return list(
        await session.scalars(
            select(FunctionOrder)
            .where(FunctionOrder.vehicle_id == vehicle_id, FunctionOrder.account_id.in_(people))
            .order_by(FunctionOrder.id.desc())
            .limit(limit)
        )
    )


async def forget_previous_owner(session: AsyncSession, vehicle_id: int, leavers: list[int]) -> None:
    """A change of hands: the leavers' orders still waiting for the car end unpaid (the new owner orders
    for themself), and online updates are off until the new main user switches them on (OTA-1)."""
    waiting = list(
        await session.scalars(
            select(FunctionOrder).where(
                FunctionOrder.vehicle_id == vehicle_id,
                FunctionOrder.account_id.in_(leavers),
                FunctionOrder.state == FunctionOrderState.ORDERED,
            )
        )
    )
    for order in waiting:
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == order.id))
        await _cancel(session, order, delivery, "owner_changed")
    await updates.reset_consent(session, vehicle_id)


# --- ordering (FOD-1..3) ---------------------------------------------------------------------------------


async def order_function(
    session: AsyncSession,
    account: Account,
    vin: str,
    *,
    offer_id: int,
    payment_method_id: int,
    accept_terms: bool,
    language: str = "en",
) -> tuple[FunctionOrder, bool]:
    """Records the order and puts the function's package into the car's delivery set; (order, created).

    A second order for a function that is already on its way finds the first (a double submit is one order).
    """
    entry = await buyer_entry(session, account, vin)
    vehicle = entry.vehicle
    await availability.require_store_open(session, vehicle.country, account.country)  # CON-6
    offer, service = await check_offer(
        session, entry, await catalog.offer(session, offer_id) if 0 < offer_id <= MAX_ID else None
    )
    if service.kind != FUNCTION:
        raise CarlinkError(
            "This is a service of the store, not a function: add it to the cart there.",
            code="not_a_function",
            status=422,
        )
    open_order = await _open_order(session, vehicle.id, service.code)
    if open_order is not None:
        return open_order, False
    if service.code in await _entitled_contracts(session, vehicle.id):
        raise Conflict("This function is already active in this car.", code="function_already_active")
    if not accept_terms:
        raise CarlinkError(
            "Please accept the terms of the function to order it.", code="terms_not_accepted", status=422
        )
    method = await own_payment_method(session, account, payment_method_id)
    check_accepted(CardBrand(method.brand), country_of(account).brands, account.country)
    terms = await catalog.terms_in_force(session, ["general", service.code], language)
    now = clock.now()
    order = FunctionOrder(
        vehicle_id=vehicle.id,
        account_id=account.id,
        service_code=service.code,
        service_name=catalog.service_name(service, language),
        offer_id=offer.id,
        term=offer.term,
        price_minor=offer.price_minor,
        currency=offer.currency,
        line={
            "service_code": service.code,
            "service_name": catalog.service_name(service, language),
            "kind": service.kind,
            "offer_id": offer.id,
            "offer_version": offer.version,
            "term": offer.term,
            "term_months": offer.term_months,
            "trial": False,
            "recurring": offer.recurring,
            "auto_renew": offer.recurring,
            "price_minor": offer.price_minor,
            "currency": offer.currency,
            "volume_mb": None,
            "terms_ids": [t.id for t in terms],
        },
        payment_method_id=method.id,
        language=language,
        download_by=now + dt.timedelta(days=DOWNLOAD_DAYS),
        created_at=now,
    )
    if not await add_unique(session, order):  # the same order submitted twice at once: the first stands
        winner = await _open_order(session, vehicle.id, service.code)
        assert winner is not None
        return winner, False
    session.add(
        Delivery(
            vehicle_id=vehicle.id,
            kind="function",
            package=package_name(service.code),
            function_order_id=order.id,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    await deliveries.bump(session, [vehicle.id])
    await _mail(session, account, order, vehicle.vin, "function_ordered")
    return order, True


async def _open_order(session: AsyncSession, vehicle_id: int, service_code: str) -> FunctionOrder | None:
    order: FunctionOrder | None = await session.scalar(
        select(FunctionOrder).where(
            FunctionOrder.vehicle_id == vehicle_id,
            FunctionOrder.service_code == service_code,
            FunctionOrder.state.in_([FunctionOrderState.ORDERED, FunctionOrderState.ACTIVATED]),
        )
    )
    return order


async def own_order(session: AsyncSession, account: Account, order_id: int) -> tuple[FunctionOrder, Vehicle]:
    """An order of a car this person is on; the same 404 for anything else."""
    order = await session.get(FunctionOrder, order_id) if 0 < order_id <= MAX_ID else None
    if order is not None:
        for entry in await garage.garage(session, account):
            if entry.vehicle.id == order.vehicle_id:
                return order, entry.vehicle
    raise NotFound("There is no such function order.", code="function_order_not_found")


async def cancel_order(session: AsyncSession, account: Account, order_id: int) -> FunctionOrder:
    """The buyer changes their mind before the car installs the function: nothing was charged."""
    order, _ = await own_order(session, account, order_id)
    # The delivery first, then the order: the same order as the car's reports take them (no deadlock).
    delivery = await session.scalar(
        select(Delivery).where(Delivery.function_order_id == order.id).with_for_update()
    )
    await session.refresh(order, with_for_update=True)
    if order.account_id != account.id:  # asked first: others are refused even once the buyer cancelled
        raise CarlinkError("Only the person who ordered it can cancel it.", code="buyer_only", status=403)
    if order.state == FunctionOrderState.CANCELLED:
        return order
    if order.state != FunctionOrderState.ORDERED or (
        delivery is not None and delivery.state == DeliveryState.INSTALLING
    ):
        raise Conflict(
            "The car is installing or has activated this function; it can no longer be cancelled here.",
            code="function_order_state",
        )
    await _cancel(session, order, delivery, "cancelled_by_customer")
    return order


async def _cancel(
    session: AsyncSession, order: FunctionOrder, delivery: Delivery | None, reason: str
) -> None:
    order.state, order.reason, order.ended_at = FunctionOrderState.CANCELLED.value, reason, clock.now()
    if delivery is not None:
        await deliveries.cancel(session, [delivery], reason)


# --- the car's reports (FOD-2, FOD-4, FOD-7) -------------------------------------------------------------


async def handle_report(
    session: AsyncSession, vehicle: Vehicle, report: DeliveryReport
) -> tuple[deliveries.ReportOutcome, int | None]:
    """Applies a car's report; returns it with the function order whose charge is now due (if any)."""
    outcome = await deliveries.record_report(session, vehicle, report)
    delivery = outcome.delivery
    if delivery is None or delivery.function_order_id is None:
        return outcome, None
    order = await session.get(FunctionOrder, delivery.function_order_id, with_for_update=True)
    if order is None:
        return outcome, None
    if outcome.moved_to == DeliveryState.ACTIVE and order.state == FunctionOrderState.ORDERED:
        # The cloud's clock, not the car's: the contract's term and withdrawal period start now.
        order.state, order.activated_at = FunctionOrderState.ACTIVATED.value, clock.now()
        return outcome, order.id
    if outcome.moved_to == DeliveryState.DEACTIVATED and order.ended_at is None:
        order.ended_at = clock.now()
    return outcome, None


async def settle_activation(platform: Platform, order_id: int) -> FunctionOrder:
    """REQ: FOD-2 — charges an activated order once and concludes it into a store order and contract.

    Safe to call again (the gateway after a report, the jobs role after a crash): the charge is asked for
    with the order's key, a charge taken before a crash is found again, and concluding finds the order
    already active.
    """
    async with platform.db.session() as session:
        order = await session.get(FunctionOrder, order_id)
        assert order is not None
        method = await session.get(PaymentMethod, order.payment_method_id or 0)
        owner = await store_contracts.main_user(session, order.vehicle_id)
        delivery = await session.scalar(select(Delivery).where(Delivery.function_order_id == order_id))
    if order.state != FunctionOrderState.ACTIVATED:
        return order
    taken = await platform.payments.find_charge(order.idempotency_key)
    if taken is not None and taken.status == ChargeStatus.SUCCEEDED:
        return await _conclude(platform, order_id, taken)  # paid before a crash: the car has its function
    if delivery is not None and delivery.state == DeliveryState.DEACTIVATED:
        return await _refuse(platform, order_id, "deactivated")  # already off in the car: never charged
    if owner is None or owner.id != order.account_id:
        # The car changed hands since the order: the seller's card is never charged for it (STO-9).
        return await _refuse(platform, order_id, "owner_changed")
    if order.price_minor == 0:
        return await _conclude(platform, order_id, None)  # a free offer: nothing to charge
    if method is None or method.removed_at is not None:
        return await _refuse(platform, order_id, "no_card")
    result = await platform.payments.charge(
        token=method.token,
        amount_minor=order.price_minor,
        currency=order.currency,
        idempotency_key=order.idempotency_key,
    )
    if result.status != ChargeStatus.SUCCEEDED:
        # Nobody is at hand for a card issuer's question at activation time: that counts as refused.
        return await _refuse(platform, order_id, result.decline_code or "authentication_required")
    return await _conclude(platform, order_id, result)


async def _conclude(platform: Platform, order_id: int, charge: ChargeResult | None) -> FunctionOrder:
    """The paid (or free) activation becomes a confirmed store order and its contract, in one unit of work."""
    async with platform.db.transaction() as session:
        order = await _locked(session, order_id)
        if order.state != FunctionOrderState.ACTIVATED:
            return order
        now = clock.now()
        store_order = Order(
            account_id=order.account_id,
            vehicle_id=order.vehicle_id,
            cart_id=None,
            cart_revision=0,
            state=OrderState.CONFIRMED.value,
            currency=order.currency,
            total_minor=order.price_minor,
            language=order.language,
            payment_method_id=order.payment_method_id,
            lines=[order.line],
            charge_id=charge.id if charge else None,
            created_at=order.created_at,
            confirmed_at=now,
        )
        session.add(store_order)
        await session.flush()
        contract = store_contracts.new_contract(store_order, order.line, order.activated_at or now)
        session.add(contract)
        if charge is not None:
            session.add(
                Payment(
                    idempotency_key=order.idempotency_key,
                    kind="charge",
                    order_id=store_order.id,
                    gateway_ref=charge.id,
                    amount_minor=charge.amount_minor,
                    currency=charge.currency,
                )
            )
        await session.flush()
        order.state, order.store_order_id, order.contract_id = (
            FunctionOrderState.ACTIVE.value,
            store_order.id,
            contract.id,
        )
        await store_contracts.mail_confirmation(session, store_order, [contract], platform.settings.base_url)
        await entitlements.bump(session, order.vehicle_id)
    await entitlements.publish(platform, order.vehicle_id)
    return order


async def after_report(platform: Platform, vehicle_id: int, set_changed: bool, order_id: int | None) -> None:
    """The gateway, after a delivery report: the car's set goes out again, an activation is charged."""
    if order_id is not None:
        await settle_activation(platform, order_id)
    if set_changed:
        await deliveries.publish(platform, [vehicle_id])


async def _locked(session: AsyncSession, order_id: int) -> FunctionOrder:
    order = await session.get(FunctionOrder, order_id, with_for_update=True, populate_existing=True)
    assert order is not None
    return order


async def _refuse(platform: Platform, order_id: int, reason: str) -> FunctionOrder:
    """The activation cannot be charged: the order ends unpaid; the car switches the function off again
    (it is in neither its entitlements nor its delivery set) and the buyer is told."""
    async with platform.db.transaction() as session:
        order = await _locked(session, order_id)
        if order.state != FunctionOrderState.ACTIVATED:
            return order
        order.state, order.reason, order.ended_at = (
            FunctionOrderState.PAYMENT_FAILED.value,
            reason,
            clock.now(),
        )
        buyer = await session.get(Account, order.account_id) if order.account_id else None
        vehicle = await session.get(Vehicle, order.vehicle_id)
        if buyer is not None and vehicle is not None and reason != "owner_changed":
            await _mail(session, buyer, order, vehicle.vin, "function_payment_failed", reason=reason)
        await entitlements.bump(session, order.vehicle_id)
    await entitlements.publish(platform, order.vehicle_id)
    return order


# --- jobs ------------------------------------------------------------------------------------------------


async def expire_windows(platform: Platform, limit: int = 200) -> int:
    """REQ: FOD-3 — an order whose package the car did not download within 28 days is cancelled, nothing
    is charged, and the buyer is told by mail and in the notification centre."""
    now = clock.now()
    async with platform.db.transaction() as session:
        rows = (
            await session.execute(
                select(FunctionOrder, Delivery)
                .join(Delivery, Delivery.function_order_id == FunctionOrder.id)
                .where(
                    FunctionOrder.state == FunctionOrderState.ORDERED,
                    FunctionOrder.download_by <= now,
                    Delivery.downloaded_at.is_(None),  # a refused download ('failed') counts as none
                    Delivery.state.in_([s.value for s in OPEN]),
                )
                .order_by(FunctionOrder.download_by)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        vehicles = []
        for order, delivery in rows:
            await _cancel(session, order, delivery, "download_window_passed")
            buyer = await session.get(Account, order.account_id) if order.account_id else None
            vehicle = await session.get(Vehicle, order.vehicle_id)
            if buyer is not None and vehicle is not None:
                await _mail(session, buyer, order, vehicle.vin, "function_order_cancelled")
            vehicles.append(order.vehicle_id)
    if vehicles:
        await deliveries.publish(platform, vehicles)
    return len(rows)


async def settle_due(platform: Platform, limit: int = 50) -> int:
    """Activations whose charge a crash interrupted (the gateway settles at once; this catches the rest)."""
    stale = clock.now() - dt.timedelta(seconds=30)
    async with platform.db.session() as session:
        due = list(
            await session.scalars(
                select(FunctionOrder.id)
                .where(
                    FunctionOrder.state == FunctionOrderState.ACTIVATED,
                    FunctionOrder.activated_at <= stale,
                )
                .limit(limit)
            )
        )
    for order_id in due:
        try:
            await settle_activation(platform, order_id)
        except Exception:  # the card provider is away, say: the others still settle; this one next round
            log.exception("settling the activation of function order %s failed", order_id)
    return len(due)


async def run_due(platform: Platform) -> None:
    await expire_windows(platform)
    await settle_due(platform)
    now = time.monotonic()
    if now - _last_rollout.get(id(platform), -ROLLOUT_EVERY) >= ROLLOUT_EVERY:
        # Rollouts read every car of a campaign's model: every few seconds is soon enough.
        _last_rollout[id(platform)] = now
        await updates.run_rollouts(platform)
    await deliveries.publish_due(platform)


# --- mail ------------------------------------------------------------------------------------------------


async def _mail(
    session: AsyncSession,
    account: Account,
    order: FunctionOrder,
    vin: str,
    template: str,
    *,
    reason: str = "",
) -> None:
    language = store_contracts.language_of(account)
    await notify.send_email(
        session,
        to=account.email,
        language=language,
        template=template,
        context={
            "name": store_contracts.name_of(account),
            "order_number": order.number,
            "service_name": order.service_name,
            "vin": vin,
            "term_label": catalog.term_label(order.term, order.line["term_months"], language),
            "price": format_money(order.price_minor, order.currency, language),
            "download_by": store_contracts.date_text(order.download_by, language),
            "download_days": DOWNLOAD_DAYS,
            "reason": reason,
        },
        dedupe_key=f"function-order-{order.id}-{template}",
        account_id=account.id,
        link=f"/vehicles/{vin}/functions",
    )
