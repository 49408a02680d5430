"""Orders become contracts: settling the charge, concluding (STO-6, STO-7), withdrawal (STO-10),
cancelling subscriptions (STO-11), renewals and expiry run by the jobs role, and recovery after a crash.

The rule that holds across crashes: a paid order has its contracts, or its money goes back. A charge is
asked for with the order's idempotency key, so asking again after a crash finds the same charge.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from babel.dates import format_date
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import metrics
from carlink.catalog import service as catalog
from carlink.catalog.money import format_money
from carlink.db.base import utcnow
from carlink.errors import Conflict, Forbidden, NotFound
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import BABEL_LOCALES
from carlink.identity.models import Account
from carlink.notify import service as notify
from carlink.platform import Platform
from carlink.security import activations
from carlink.security import config as security_config
from carlink.store import entitlements
from carlink.store.models import Cart, CartLine, Contract, Order, Payment, PaymentMethod
from carlink.store.payments import ChargeResult, ChargeStatus
from carlink.store.rules import ENTITLED, ContractState, OrderState, order_may, require_contract_move
from carlink.store.service import MAX_ID, add_months, order_done, own_order

log = logging.getLogger("carlink.store")
WITHDRAWAL_DAYS = 14  # REQ: STO-10
PLACED_STALE = dt.timedelta(seconds=30)
CHALLENGE_STALE = dt.timedelta(minutes=30)
CLAIM = dt.timedelta(seconds=60)
# Subscriptions renew a day before their end, so the car receives the new term while the service still
# runs: a renewal applies at once, whereas a service that ended comes back only at the next restart (STO-7).
RENEWAL_LEAD = dt.timedelta(days=1)


# --- settling an order -------------------------------------------------------------------------------------


async def settle(platform: Platform, order_id: int) -> Order:
    """Charges a placed order once and concludes it; a confirmed, failed or waiting order is left as it is."""
    async with platform.db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        method = (
            await session.get(PaymentMethod, order.payment_method_id) if order.payment_method_id else None
        )
        running = await _tracking_running(session, order)
    if order.state != OrderState.PLACED:
        return order
    if running:  # REQ: SEC-1 — one tracking package per car: refused before anything is charged
        return await fail(platform, order_id, activations.PACKAGE_RUNNING)
    if order.total_minor == 0:  # REQ: STO-4 — trials are ordered free of charge
        return await conclude(platform, order_id, None)
    if method is None:
        return await fail(platform, order_id, "payment_method_removed")
    result = await platform.payments.charge(
        token=method.token,
        amount_minor=order.total_minor,
        currency=order.currency,
        idempotency_key=order.idempotency_key,
    )
    return await apply_charge(platform, order_id, result)


async def apply_charge(platform: Platform, order_id: int, result: ChargeResult) -> Order:
    if result.status == ChargeStatus.SUCCEEDED:
        order = await conclude(platform, order_id, result)
        if order.state != OrderState.CONFIRMED:  # it gave up meanwhile: the money must not stay with us
            # The buyer is told why: the car got its one tracking package meanwhile, or it gave up.
            reason = order.failure_code if order.failure_code == activations.PACKAGE_RUNNING else None
            order = await refund_order(platform, order_id, result, reason=reason or "order_not_concluded")
        return order
    async with platform.db.transaction() as session:
        order = await _locked_order(session, order_id)
        if result.status == ChargeStatus.REQUIRES_ACTION and order.state == OrderState.PLACED:
            order.state, order.charge_id = OrderState.REQUIRES_ACTION.value, result.id
        elif result.status == ChargeStatus.DECLINED and order_may(order.state, OrderState.FAILED):
            await _fail(session, order, result.decline_code or "card_declined")
        return order


async def _locked_order(session: AsyncSession, order_id: int) -> Order:
    order = await session.get(Order, order_id, with_for_update=True, populate_existing=True)
    assert order is not None
    return order


async def fail(platform: Platform, order_id: int, code: str) -> Order:
    async with platform.db.transaction() as session:
        order = await _locked_order(session, order_id)
        if order_may(order.state, OrderState.FAILED):
            await _fail(session, order, code)
        return order


async def _fail(session: AsyncSession, order: Order, code: str) -> None:
    order.state, order.failure_code = OrderState.FAILED.value, code
    metrics.ORDERS.labels(OrderState.FAILED.value).inc()
    cart = await session.get(Cart, order.cart_id) if order.cart_id else None
    if cart is not None and cart.revision == order.cart_revision:
        cart.revision += 1  # confirming again (another card, say) places a new order


async def answer_challenge(platform: Platform, account: Account, order_id: int, answer: str) -> Order:
    """The buyer's answer to the card issuer's question (3-D Secure-style)."""
    async with platform.db.session() as session:
        order = await own_order(session, account, order_id)
    if order.state != OrderState.REQUIRES_ACTION or order.charge_id is None:
        if order_done(order):
            return order
        raise Conflict("This order is not waiting for a confirmation code.", code="order_state")
    result = await platform.payments.answer_challenge(order.charge_id, answer[:32])
    return await apply_charge(platform, order_id, result)


async def _tracking_running(session: AsyncSession, order: Order) -> bool:
    """The order brings a tracking package while the car has one that has not ended (bought meanwhile)."""
    if not any(activations.needs_phone(line["service_code"]) for line in order.lines):
        return False
    return await activations.live(session, order.vehicle_id) is not None


class _NotConcluded(Exception):
    """Rolls a conclusion back whole: a CarlinkError would commit what the unit of work did so far."""


async def conclude(platform: Platform, order_id: int, charge: ChargeResult | None) -> Order:
    """REQ: STO-7 — contracts, the confirmation mail with the terms (STO-6) and the car's entitlements,
    all in one unit of work; concluding twice finds the order confirmed and does nothing.

    REQ: SEC-1 — an order bringing a tracking package while the car has one (two orders charged at the
    same moment, or a retry after one was bought) is not concluded: nothing of it stays, a free order fails
    and a charged one is left unconfirmed, which `apply_charge` refunds."""
    try:
        return await _conclude(platform, order_id, charge)
    except _NotConcluded:
        log.warning("order %s not concluded: the car has a tracking package already", order_id)
    if charge is None:
        return await fail(platform, order_id, activations.PACKAGE_RUNNING)
    async with platform.db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        return order


async def _conclude(platform: Platform, order_id: int, charge: ChargeResult | None) -> Order:
    async with platform.db.transaction() as session:
        order = await _locked_order(session, order_id)
        if order.state == OrderState.CONFIRMED or not order_may(order.state, OrderState.CONFIRMED):
            return order
        if await _tracking_running(session, order):
            raise _NotConcluded
        now = utcnow()
        contracts = [new_contract(order, line, now) for line in order.lines]
        session.add_all(contracts)
        if charge is not None:
            session.add(
                Payment(
                    idempotency_key=order.idempotency_key,
                    kind="charge",
                    order_id=order.id,
                    gateway_ref=charge.id,
                    amount_minor=charge.amount_minor,
                    currency=charge.currency,
                )
            )
            order.charge_id = charge.id
        order.state, order.confirmed_at = OrderState.CONFIRMED.value, now
        if order.cart_id is not None:
            await session.execute(
                delete(CartLine).where(
                    CartLine.cart_id == order.cart_id,
                    CartLine.service_code.in_([line["service_code"] for line in order.lines]),
                )
            )
            cart = await session.get(Cart, order.cart_id)
            if cart is not None:
                cart.revision += 1
        await session.flush()
        await mail_confirmation(session, order, contracts, platform.settings.base_url)
        await entitlements.bump(session, order.vehicle_id)
        try:
            tracking = await _start_activations(session, order, contracts)
        except Conflict as refused:  # PostgreSQL: another conclusion took the car's one package meanwhile
            if refused.code != activations.PACKAGE_RUNNING:
                raise
            raise _NotConcluded from refused
    metrics.ORDERS.labels(OrderState.CONFIRMED.value).inc()
    await entitlements.publish(platform, order.vehicle_id)
    if tracking:
        await security_config.publish(platform, order.vehicle_id)
    return order


async def _start_activations(session: AsyncSession, order: Order, contracts: list[Contract]) -> bool:
    """REQ: SEC-1, SEC-4 — a tracking contract starts its activation with the number given at the purchase;
    True when the car's security set changed (the caller publishes it after the commit)."""
    phones = {line["service_code"]: line.get("soc_phone") or "" for line in order.lines}
    started = False
    for contract in contracts:
        if activations.needs_phone(contract.service_code):
            await activations.order(
                session,
                vehicle_id=contract.vehicle_id,
                contract_id=contract.id,
                package=contract.service_code,
                phone=phones.get(contract.service_code, ""),
                account_id=order.account_id,  # PRV-5: the buyer typed the number into the cart
            )
            started = True
    return started


def new_contract(order: Order, line: dict[str, Any], now: dt.datetime) -> Contract:
    return Contract(
        vehicle_id=order.vehicle_id,
        order_id=order.id,
        buyer_account_id=order.account_id,
        service_code=line["service_code"],
        service_name=line["service_name"],
        kind=line["kind"],
        offer_id=line["offer_id"],
        term=line["term"],
        term_months=line["term_months"],
        trial=line["trial"],
        recurring=line["recurring"],
        auto_renew=line["auto_renew"],
        price_minor=line["price_minor"],
        currency=line["currency"],
        volume_mb=line["volume_mb"],
        terms_ids=line["terms_ids"],
        payment_method_id=order.payment_method_id,
        starts_at=now,
        ends_at=add_months(now, line["term_months"]),
    )


async def refund_order(platform: Platform, order_id: int, charge: ChargeResult, *, reason: str) -> Order:
    await platform.payments.refund(
        charge_id=charge.id, amount_minor=charge.amount_minor, idempotency_key=f"refund-order-{order_id}"
    )
    async with platform.db.transaction() as session:
        order = await _locked_order(session, order_id)
        if not order_may(order.state, OrderState.REFUNDED):
            return order
        order.state, order.charge_id, order.failure_code = OrderState.REFUNDED.value, charge.id, reason
        metrics.ORDERS.labels(OrderState.REFUNDED.value).inc()
        session.add(
            Payment(
                idempotency_key=f"refund-order-{order_id}",
                kind="refund",
                order_id=order.id,
                gateway_ref=charge.id,
                amount_minor=charge.amount_minor,
                currency=charge.currency,
            )
        )
        buyer = await session.get(Account, order.account_id)
        if buyer is not None:
            language = language_of(buyer)
            await notify.send_email(
                session,
                to=buyer.email,
                language=language,
                template="order_refunded",
                context={
                    "name": name_of(buyer),
                    "order_number": order.number,
                    "amount": format_money(charge.amount_minor, charge.currency, language),
                    "reason": reason,
                },
                dedupe_key=f"order-{order.id}-refunded",
                account_id=buyer.id,
                link=f"/orders/{order.id}",
            )
        return order


async def recover_orders(platform: Platform, limit: int = 50) -> int:
    """Jobs: orders a crash or a closed browser left half-way. A charge found under the order's key is
    concluded (or refunded); no charge means nothing happened, and the order fails."""
    now = utcnow()
    async with platform.db.session() as session:
        stale = list(
            await session.scalars(
                select(Order.id)
                .where(
                    or_(
                        (Order.state == OrderState.PLACED) & (Order.created_at < now - PLACED_STALE),
                        (Order.state == OrderState.REQUIRES_ACTION)
                        & (Order.created_at < now - CHALLENGE_STALE),
                    )
                )
                .limit(limit)
            )
        )
    for order_id in stale:
        async with platform.db.session() as session:
            order = await session.get(Order, order_id)
            assert order is not None
        charge = await platform.payments.find_charge(order.idempotency_key) if order.total_minor else None
        if order.total_minor == 0:
            await conclude(platform, order_id, None)
        elif charge is None:
            await fail(platform, order_id, "abandoned")
        elif charge.status == ChargeStatus.REQUIRES_ACTION:
            if order.state == OrderState.REQUIRES_ACTION:  # the buyer never answered the issuer
                await fail(platform, order_id, "authentication_abandoned")
            else:
                await apply_charge(platform, order_id, charge)
        else:
            await apply_charge(platform, order_id, charge)
    return len(stale)


# --- the contracts of a vehicle ----------------------------------------------------------------------------


async def vehicle_contract(
    session: AsyncSession, account: Account, contract_id: int, *, lock: bool = False
) -> tuple[Contract, bool]:
    """The contract if the person is on its vehicle (main user: True); otherwise the same 404 for all."""
    contract = (
        await session.get(Contract, contract_id, with_for_update=lock) if 0 < contract_id <= MAX_ID else None
    )
    if contract is not None:
        for entry in await garage.garage(session, account):
            if entry.vehicle.id == contract.vehicle_id:
                return contract, entry.is_main_user
    raise NotFound("There is no such contract.", code="contract_not_found")


def withdrawal_open(contract: Contract, now: dt.datetime) -> bool:
    """REQ: STO-10 — within 14 days of the order confirmation; a renewal period is not a new purchase."""
    return (
        contract.state in ENTITLED
        and contract.period == 0
        and now < contract.starts_at + dt.timedelta(days=WITHDRAWAL_DAYS)
    )


async def withdraw(platform: Platform, account: Account, contract_id: int) -> Contract:
    async with platform.db.session() as session:
        contract, main = await vehicle_contract(session, account, contract_id)
        order = await session.get(Order, contract.order_id)
        assert order is not None
    # Who may withdraw is asked before whether it is done already: a refused person is told so, not told
    # "withdrawn" because the buyer was quicker (issue 9, authorisation matrix).
    if not main or contract.buyer_account_id != account.id:
        raise Forbidden("Only the person who bought this service can withdraw from it.", code="buyer_only")
    if contract.state == ContractState.WITHDRAWN:
        return contract
    if not withdrawal_open(contract, utcnow()):
        raise Conflict(
            "The %(days)s-day withdrawal period of this contract has ended.",
            code="withdrawal_closed",
            days=WITHDRAWAL_DAYS,
        )
    refund_ref = None
    if contract.price_minor and order.charge_id:
        refund_ref = await platform.payments.refund(
            charge_id=order.charge_id,
            amount_minor=contract.price_minor,
            idempotency_key=f"withdraw-{contract.id}",
        )
    async with platform.db.transaction() as session:
        contract, _ = await vehicle_contract(session, account, contract_id, lock=True)
        if contract.state == ContractState.WITHDRAWN:
            return contract
        require_contract_move(contract.state, ContractState.WITHDRAWN)
        contract.state, contract.ended_at, contract.auto_renew = (
            ContractState.WITHDRAWN.value,
            utcnow(),
            False,
        )
        if refund_ref is not None:
            session.add(
                Payment(
                    idempotency_key=f"withdraw-{contract.id}",
                    kind="refund",
                    contract_id=contract.id,
                    order_id=contract.order_id,
                    gateway_ref=refund_ref,
                    amount_minor=contract.price_minor,
                    currency=contract.currency,
                )
            )
        language = language_of(account)
        await notify.send_email(
            session,
            to=account.email,
            language=language,
            template="withdrawal_confirmation",
            context={
                "name": name_of(account),
                "service_name": contract.service_name,
                "vin": await _vin(session, contract.vehicle_id),
                "contract_number": contract.number,
                "refund": format_money(contract.price_minor, contract.currency, language)
                if refund_ref
                else None,
            },
            dedupe_key=f"contract-{contract.id}-withdrawn",
            account_id=account.id,
            link=f"/vehicles/{await _vin(session, contract.vehicle_id)}/services",
        )
        await entitlements.bump(session, contract.vehicle_id)
        ended = await activations.end_for_contract(session, contract.id)  # REQ: SEC-1 — the SOC stops
    await entitlements.publish(platform, contract.vehicle_id)
    if ended:
        await security_config.publish(platform, contract.vehicle_id)
    return contract


async def cancel(platform: Platform, account: Account, contract_id: int) -> Contract:
    """REQ: STO-11 — a subscription (or an auto-renewing data package) stops renewing; it runs to the end
    of the period already paid."""
    async with platform.db.transaction() as session:
        contract, main = await vehicle_contract(session, account, contract_id, lock=True)
        if not main:  # asked first: a secondary user is refused even once the owner has cancelled
            raise Forbidden("Only the vehicle's main user can cancel its services.", code="owner_only")
        if contract.state == ContractState.CANCELLED:
            return contract
        if not contract.auto_renew:
            raise Conflict("This contract does not renew; it ends by itself.", code="not_renewing")
        await _stop_renewing(session, contract, account)
        return contract


async def _stop_renewing(session: AsyncSession, contract: Contract, account: Account) -> None:
    """The contract renews no more and runs to the end of the period paid; the person is told."""
    require_contract_move(contract.state, ContractState.CANCELLED)
    contract.state, contract.auto_renew, contract.cancelled_at = (
        ContractState.CANCELLED.value,
        False,
        utcnow(),
    )
    language = language_of(account)
    vin = await _vin(session, contract.vehicle_id)
    await notify.send_email(
        session,
        to=account.email,
        language=language,
        template="subscription_cancelled",
        context={
            "name": name_of(account),
            "service_name": contract.service_name,
            "vin": vin,
            "until": date_text(contract.ends_at, language),
        },
        dedupe_key=f"contract-{contract.id}-cancelled",
        account_id=account.id,
        link=f"/vehicles/{vin}/services",
    )


async def renewing_subscriptions(session: AsyncSession, vehicle_id: int) -> list[Contract]:
    """REQ: STO-11 — what the seller must cancel before handing the car over."""
    return list(
        await session.scalars(
            select(Contract).where(
                Contract.vehicle_id == vehicle_id,
                Contract.state == ContractState.ACTIVE,
                Contract.auto_renew.is_(True),
            )
        )
    )


# --- jobs: renewals and expiry -----------------------------------------------------------------------------


async def _claim(platform: Platform, renewing: bool, limit: int) -> list[Contract]:
    now = utcnow()
    async with platform.db.transaction() as session:
        query = select(Contract).where(
            Contract.state.in_([s.value for s in ENTITLED]),
            Contract.ends_at <= (now + RENEWAL_LEAD if renewing else now),
            or_(Contract.claimed_until.is_(None), Contract.claimed_until < now),
        )
        if renewing:
            query = query.where(Contract.state == ContractState.ACTIVE, Contract.auto_renew.is_(True))
        else:
            query = query.where(
                or_(Contract.auto_renew.is_(False), Contract.state == ContractState.CANCELLED)
            )
        rows = list(
            await session.scalars(
                query.order_by(Contract.ends_at).limit(limit).with_for_update(skip_locked=True)
            )
        )
        for row in rows:
            row.claimed_until = now + CLAIM
        return rows


async def renew_due(platform: Platform, limit: int = 50) -> int:
    """Charges the next period of each due subscription once (the key names contract and period) and moves
    the contract on by exactly one period; a refused card ends the subscription. So does a change of owner:
    the card on file is the seller's, who must never pay for the next owner's car (STO-9, STO-11)."""
    renewed = 0
    for contract in await _claim(platform, True, limit):
        key = f"renew-{contract.id}-{contract.period + 1}"
        async with platform.db.session() as session:
            method = (
                await session.get(PaymentMethod, contract.payment_method_id)
                if contract.payment_method_id
                else None
            )
            owner = await main_user(session, contract.vehicle_id)
        result: ChargeResult | None = None
        security_changed = False
        same_owner = owner is not None and owner.id == contract.buyer_account_id
        if same_owner and method is not None and method.removed_at is None:
            result = await platform.payments.charge(
                token=method.token,
                amount_minor=contract.price_minor,
                currency=contract.currency,
                idempotency_key=key,
            )
        async with platform.db.transaction() as session:
            row = await session.get(Contract, contract.id, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.period != contract.period:
                continue  # another jobs instance finished this period
            row.claimed_until = None
            if result is not None and result.status == ChargeStatus.SUCCEEDED:
                # Charged: the period is paid and added even if the person cancelled while the charge ran
                # (the contract then simply runs to the end of the paid period, and renews no more).
                row.period += 1
                row.ends_at = add_months(row.ends_at, row.term_months)
                session.add(
                    Payment(
                        idempotency_key=key,
                        kind="charge",
                        contract_id=row.id,
                        gateway_ref=result.id,
                        amount_minor=result.amount_minor,
                        currency=result.currency,
                    )
                )
                await _mail_owner(session, row, "subscription_renewed", f"renewed-{row.period}")
                metrics.RENEWALS.labels("renewed").inc()
                renewed += 1
            elif row.state != ContractState.ACTIVE:
                continue  # cancelled or withdrawn meanwhile, and nothing was charged
            else:
                if not same_owner:
                    reason = "owner_changed"
                elif result is None:
                    reason = "no_card"
                else:
                    reason = result.decline_code or "authentication_required"
                security_changed = await _end(session, row, "renewal_failed", reason=reason)
                metrics.RENEWALS.labels("failed").inc()
            await entitlements.bump(session, row.vehicle_id)
        await entitlements.publish(platform, contract.vehicle_id)
        if security_changed:
            await security_config.publish(platform, contract.vehicle_id)
    return renewed


async def expire_due(platform: Platform, limit: int = 200) -> int:
    """Ends contracts past their term that do not renew; the car loses the service (issue 4: expiry ends
    the entitlement in the car; an ended data package switches hotspot sharing off, CON-3)."""
    rows = await _claim(platform, False, limit)
    for contract in rows:
        async with platform.db.transaction() as session:
            row = await session.get(Contract, contract.id, with_for_update=True, populate_existing=True)
            assert row is not None
            if row.state not in ENTITLED:
                continue
            template = "data_package_expired" if row.kind == "data_package" else "contract_expired"
            security_changed = await _end(session, row, template)
            await entitlements.bump(session, row.vehicle_id)
        await entitlements.publish(platform, contract.vehicle_id)
        if security_changed:
            await security_config.publish(platform, contract.vehicle_id)
    return len(rows)


async def _end(session: AsyncSession, contract: Contract, template: str, *, reason: str = "") -> bool:
    """The contract expired; True when a tracking activation ended with it (its car's security set
    changed: the caller publishes it after the commit)."""
    require_contract_move(contract.state, ContractState.EXPIRED)
    contract.state, contract.ended_at, contract.claimed_until = ContractState.EXPIRED.value, utcnow(), None
    metrics.CONTRACTS_ENDED.labels("expired").inc()
    await _mail_owner(session, contract, template, "ended", reason=reason)
    return await activations.end_for_contract(session, contract.id)  # REQ: SEC-1 — the SOC stops with it


# --- mails -------------------------------------------------------------------------------------------------


def language_of(account: Account) -> str:
    return account.locale if account.locale in BABEL_LOCALES else "en"


def name_of(account: Account) -> str:
    return account.display_name or account.email


def date_text(when: dt.datetime, language: str) -> str:
    return format_date(when.date(), format="long", locale=BABEL_LOCALES[language])


async def _vin(session: AsyncSession, vehicle_id: int) -> str:
    vehicle = await session.get(Vehicle, vehicle_id)
    return vehicle.vin if vehicle else ""


async def main_user(session: AsyncSession, vehicle_id: int) -> Account | None:
    vehicle = await session.get(Vehicle, vehicle_id)
    if vehicle is None:
        return None
    users = await garage.users_of(session, vehicle)
    return next((account for user, account in users if user.role == garage.MAIN), None)


async def _mail_owner(
    session: AsyncSession, contract: Contract, template: str, event: str, *, reason: str = ""
) -> None:
    """Tells the vehicle's main user now (the contract belongs to the car, STO-9), not the first buyer."""
    vehicle = await session.get(Vehicle, contract.vehicle_id)
    owner = await main_user(session, contract.vehicle_id)
    if vehicle is None or owner is None:
        return
    language = language_of(owner)
    context: dict[str, Any] = {
        "name": name_of(owner),
        "service_name": contract.service_name,
        "vin": vehicle.vin,
    }
    if template == "subscription_renewed":
        context |= {
            "amount": format_money(contract.price_minor, contract.currency, language),
            "until": date_text(contract.ends_at, language),
        }
    if template == "renewal_failed":
        context["reason"] = reason
    await notify.send_email(
        session,
        to=owner.email,
        language=language,
        template=template,
        context=context,
        dedupe_key=f"contract-{contract.id}-{event}",
        account_id=owner.id,
        link=f"/vehicles/{vehicle.vin}/services",
    )


async def mail_confirmation(
    session: AsyncSession, order: Order, contracts: list[Contract], base_url: str
) -> None:
    """REQ: STO-6 — the order with the full text of every terms version that applies to it."""
    buyer = await session.get(Account, order.account_id)
    vehicle = await session.get(Vehicle, order.vehicle_id)
    if buyer is None or vehicle is None:
        return
    language = language_of(buyer)
    terms_ids = sorted({tid for line in order.lines for tid in line["terms_ids"]})
    terms = [await catalog.terms_version(session, tid) for tid in terms_ids]
    method = await session.get(PaymentMethod, order.payment_method_id) if order.payment_method_id else None
    await notify.send_email(
        session,
        to=buyer.email,
        language=language,
        template="order_confirmation",
        context={
            "name": name_of(buyer),
            "order_number": order.number,
            "vin": vehicle.vin,
            "vehicle_name": vehicle.custom_name or vehicle.model_key,
            "lines": [
                {
                    "service_name": c.service_name,
                    "term_label": catalog.term_label(c.term, c.term_months, language),
                    "price": format_money(c.price_minor, c.currency, language),
                    "trial": c.trial,
                    "starts": date_text(c.starts_at, language),
                    "ends": date_text(c.ends_at, language),
                }
                for c in contracts
            ],
            "total": format_money(order.total_minor, order.currency, language),
            "payment": f"{method.brand} •••• {method.last4}" if method else None,
            "terms": [{"title": t.title, "version": str(t.version), "body": t.body} for t in terms],
            "withdrawal_days": WITHDRAWAL_DAYS,
            "services_url": f"{base_url}/vehicles/{vehicle.vin}/services",
        },
        dedupe_key=f"order-{order.id}-confirmation",
        account_id=buyer.id,
        link=f"/orders/{order.id}",
    )


# --- a deleted ID (ACC-5) ----------------------------------------------------------------------------------


async def stop_renewals_of(session: AsyncSession, account: Account) -> list[Contract]:
    """REQ: ACC-5, STO-11 — running services stop: every subscription of the cars whose main user this
    person is stops renewing, as if cancelled (each runs to the end of the period already paid and stays
    with the car, STO-9). Call it before the person leaves the cars."""
    vehicle_ids = await garage.main_user_vehicle_ids(session, {account.id})
    stopped = []
    for vehicle_id in sorted(vehicle_ids):
        for contract in await renewing_subscriptions(session, vehicle_id):
            await _stop_renewing(session, contract, account)
            stopped.append(contract)
    return stopped


async def bought_by(session: AsyncSession, account_id: int) -> list[int]:
    """Ids of the contracts this person bought (for other domains' export and erasure, PRV-5)."""
    return list(await session.scalars(select(Contract.id).where(Contract.buyer_account_id == account_id)))
