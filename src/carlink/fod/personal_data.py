"""Functions on demand and update consents about a person, for the export and the erasure of an ID (PRV-5).

Orders that became contracts live on in the store (its own retention rules); an order still waiting for the
car is cancelled on erasure, as nothing may be charged to a person who is gone. Consent records stay with
the car without the person.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.fod import deliveries
from carlink.fod.models import Delivery, FunctionOrder, UpdateConsent
from carlink.fod.rules import FunctionOrderState
from carlink.garage.models import Vehicle


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    orders = list(
        await session.scalars(
            select(FunctionOrder).where(FunctionOrder.account_id == account_id).order_by(FunctionOrder.id)
        )
    )
    consents = list(
        await session.scalars(
            select(UpdateConsent).where(UpdateConsent.account_id == account_id).order_by(UpdateConsent.id)
        )
    )
    ids = {o.vehicle_id for o in orders} | {c.vehicle_id for c in consents}
    vins = dict((await session.execute(select(Vehicle.id, Vehicle.vin).where(Vehicle.id.in_(ids)))).all())
    return {
        "function_orders": [
            {
                "number": order.number,
                "vin": vins.get(order.vehicle_id),
                "function": order.service_name,
                "term": order.term,
                "price_minor": order.price_minor,
                "currency": order.currency,
                "state": order.state,
                "reason": order.reason,
                "ordered_at": order.created_at.isoformat(),
                "download_by": order.download_by.isoformat(),
                "activated_at": order.activated_at.isoformat() if order.activated_at else None,
            }
            for order in orders
        ],
        "software_update_consents": [
            {
                "vin": vins.get(consent.vehicle_id),
                "enabled": consent.enabled,
                "policy_version": consent.policy_version,
                "at": consent.at.isoformat(),
            }
            for consent in consents
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    waiting = list(
        await session.scalars(
            select(FunctionOrder).where(
                FunctionOrder.account_id == account_id, FunctionOrder.state == FunctionOrderState.ORDERED
            )
        )
    )
    for order in waiting:
        order.state, order.reason, order.ended_at = FunctionOrderState.CANCELLED.value, "erased", clock.now()
    if waiting:
        rows = await session.scalars(
            select(Delivery).where(Delivery.function_order_id.in_([o.id for o in waiting]))
        )
        await deliveries.cancel(session, list(rows), "erased")  # the jobs role publishes the cars' sets
    await session.execute(
        update(FunctionOrder).where(FunctionOrder.account_id == account_id).values(account_id=None)
    )
    await session.execute(
        update(UpdateConsent).where(UpdateConsent.account_id == account_id).values(account_id=None)
    )
