"""The store's data about a person, for the export and the erasure of an ID (PRV-5).

Cards appear as brand and last 4 digits only, never the gateway's token. On erasure, orders, contracts and
payments stay for the legal retention period of invoices, stripped of names and addresses; the saved cards,
the billing address and open carts go.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage.models import Vehicle
from carlink.store.models import BillingAddress, Cart, Contract, Order, Payment, PaymentMethod


def _card(method: PaymentMethod | None) -> dict[str, Any] | None:
    if method is None:
        return None
    return {
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
    }


async def _vins(session: AsyncSession, vehicle_ids: set[int]) -> dict[int, str]:
    if not vehicle_ids:
        return {}
    rows = await session.execute(select(Vehicle.id, Vehicle.vin).where(Vehicle.id.in_(vehicle_ids)))
    return {vehicle_id: vin for vehicle_id, vin in rows}


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    address = await session.get(BillingAddress, account_id)
    methods = list(await session.scalars(select(PaymentMethod).where(PaymentMethod.account_id == account_id)))
    by_id = {method.id: method for method in methods}
    orders = list(
        await session.scalars(select(Order).where(Order.account_id == account_id).order_by(Order.id))
    )
    vins = await _vins(session, {o.vehicle_id for o in orders})
    contracts = list(
        await session.scalars(
            select(Contract).where(Contract.buyer_account_id == account_id).order_by(Contract.id)
        )
    )
    numbers = {contract.id: contract.number for contract in contracts}
    # The orders' charges and refunds, and the renewals charged on the person's contracts.
    payments = list(
        await session.scalars(
            select(Payment)
            .where(Payment.order_id.in_([o.id for o in orders]) | Payment.contract_id.in_(list(numbers)))
            .order_by(Payment.id)
        )
    )
    contract_vins = await _vins(session, {c.vehicle_id for c in contracts})
    return {
        "billing_address": address.as_dict() if address is not None else None,
        "saved_cards": [
            {**(_card(method) or {}), "holder": method.holder, "default": method.is_default}
            for method in methods
            if method.removed_at is None
        ],
        "orders": [
            {
                "number": order.number,
                "vin": vins.get(order.vehicle_id),
                "state": order.state,
                "total_minor": order.total_minor,
                "currency": order.currency,
                "lines": [
                    {key: line.get(key) for key in ("service_code", "service_name", "term", "price_minor")}
                    for line in order.lines
                ],
                "billing_address": order.billing,
                "card": _card(by_id.get(order.payment_method_id or 0)),
                "created_at": order.created_at.isoformat(),
                "confirmed_at": order.confirmed_at.isoformat() if order.confirmed_at else None,
            }
            for order in orders
        ],
        "contracts": [
            {
                "number": contract.number,
                "vin": contract_vins.get(contract.vehicle_id),
                "service": contract.service_name,
                "term": contract.term,
                "trial": contract.trial,
                "auto_renew": contract.auto_renew,
                "price_minor": contract.price_minor,
                "currency": contract.currency,
                "state": contract.state,
                "starts_at": contract.starts_at.isoformat(),
                "ends_at": contract.ends_at.isoformat(),
            }
            for contract in contracts
        ],
        "payments": [
            {
                "kind": payment.kind,
                "amount_minor": payment.amount_minor,
                "currency": payment.currency,
                "order_id": payment.order_id,
                "contract": numbers.get(payment.contract_id or 0),
                "at": payment.created_at.isoformat(),
            }
            for payment in payments
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    for order in await session.scalars(select(Order).where(Order.account_id == account_id)):
        if order.billing:
            # The country stays: it decides the tax of an invoice that must be kept.
            order.billing = {"country": order.billing.get("country", "")}
        if any("soc_phone" in line for line in order.lines):
            # The number given for the SOC (SEC-1) is no part of the invoice.
            order.lines = [{k: v for k, v in line.items() if k != "soc_phone"} for line in order.lines]
    await session.execute(delete(BillingAddress).where(BillingAddress.account_id == account_id))
    await session.execute(delete(Cart).where(Cart.account_id == account_id))
    await session.execute(delete(PaymentMethod).where(PaymentMethod.account_id == account_id))
    await session.flush()
