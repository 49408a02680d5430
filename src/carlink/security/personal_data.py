"""Car security about a person, for the export and the erasure of an ID (PRV-5).

The person's data here is the number they gave the SOC when buying a tracking package, the package's
activation, and the service or transport modes they set. Alarms, track points and the SOC's logs belong to
the car's security case (SEC-1) and stay with the car; they name no customer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage.models import Vehicle
from carlink.security.models import SecurityModePeriod, TrackingActivation
from carlink.store import contracts


def _at(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    bought = await contracts.bought_by(session, account_id)
    activations = list(
        await session.scalars(
            select(TrackingActivation)
            .where(TrackingActivation.contract_id.in_(bought))
            .order_by(TrackingActivation.id)
        )
    )
    modes = list(
        await session.scalars(
            select(SecurityModePeriod)
            .where(SecurityModePeriod.set_by == account_id)
            .order_by(SecurityModePeriod.id)
        )
    )
    ids = {a.vehicle_id for a in activations} | {m.vehicle_id for m in modes}
    vins = dict((await session.execute(select(Vehicle.id, Vehicle.vin).where(Vehicle.id.in_(ids)))).all())
    return {
        "tracking_activations": [
            {
                "vin": vins.get(activation.vehicle_id),
                "package": activation.package,
                "soc_phone": activation.phone or None,
                "state": activation.state,
                "ordered_at": _at(activation.ordered_at),
                "activated_at": _at(activation.activated_at),
                "ended_at": _at(activation.ended_at),
                "certificate_number": activation.certificate_number,
            }
            for activation in activations
        ],
        "security_modes": [
            {
                "vin": vins.get(mode.vehicle_id),
                "kind": mode.kind,
                "from": _at(mode.starts_at),
                "until": _at(mode.until),
                "ended_at": _at(mode.ended_at),
            }
            for mode in modes
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """The SOC may no longer call the person: their number goes from every package they bought (the
    package stays with the car, STO-9; its next main user gives theirs). Modes they set stay with the car,
    without them."""
    bought = await contracts.bought_by(session, account_id)
    if bought:
        await session.execute(
            update(TrackingActivation).where(TrackingActivation.contract_id.in_(bought)).values(phone="")
        )
    await session.execute(
        update(SecurityModePeriod).where(SecurityModePeriod.set_by == account_id).values(set_by=None)
    )
