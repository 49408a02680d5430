"""Car security about a person, for the export and the erasure of an ID (PRV-5).

The person's data here is the number they gave the SOC (at a purchase, or as a car's new main user), the
packages they bought and the service or transport modes they set. A package's number is the person's who
gave it (`TrackingActivation.phone_account_id`), not the contract buyer's: after a change of hands the
buyer's package stays with the car (STO-9) and carries the new main user's number, which the seller must
neither receive nor erase.

Alarms, track points and the SOC's logs belong to the car's security case (SEC-1) and stay with the car; they
name no customer. The call log (`alarm_calls.number`) keeps the number the SOC dialled as it dialled it: it
is the record of what the SOC did in a theft case (for the police and the insurer), so an erasure leaves it.
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
    """REQ: PRV-5 — the numbers the person gave the SOC (with the package each is on), the packages they
    bought (without any number: the one there may be a later main user's), and the modes they set."""
    given = await _activations(session, TrackingActivation.phone_account_id == account_id)
    bought_ids = await contracts.bought_by(session, account_id)
    bought = await _activations(session, TrackingActivation.contract_id.in_(bought_ids)) if bought_ids else []
    modes = list(
        await session.scalars(
            select(SecurityModePeriod)
            .where(SecurityModePeriod.set_by == account_id)
            .order_by(SecurityModePeriod.id)
        )
    )
    vins = await _vins(session, {a.vehicle_id for a in given + bought} | {m.vehicle_id for m in modes})
    return {
        "soc_phone_numbers": [
            {**_activation_out(activation, vins), "soc_phone": activation.phone} for activation in given
        ],
        "tracking_activations": [_activation_out(activation, vins) for activation in bought],
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
    """REQ: PRV-5 — the SOC may no longer call the person: their number goes from every package where they
    gave it, and only there (a package they bought and sold keeps its new main user's number; the package
    stays with the car, STO-9, and its main user gives a number again). Modes they set stay with the car,
    without them."""
    await session.execute(
        update(TrackingActivation)
        .where(TrackingActivation.phone_account_id == account_id)
        .values(phone="", phone_account_id=None)
    )
    await session.execute(
        update(SecurityModePeriod).where(SecurityModePeriod.set_by == account_id).values(set_by=None)
    )


async def _activations(session: AsyncSession, condition: Any) -> list[TrackingActivation]:
    return list(
        await session.scalars(select(TrackingActivation).where(condition).order_by(TrackingActivation.id))
    )


async def _vins(session: AsyncSession, vehicle_ids: set[int]) -> dict[int, str]:
    rows = await session.execute(select(Vehicle.id, Vehicle.vin).where(Vehicle.id.in_(vehicle_ids)))
    return {vehicle_id: vin for vehicle_id, vin in rows.all()}


def _activation_out(activation: TrackingActivation, vins: dict[int, str]) -> dict[str, Any]:
    return {
        "vin": vins.get(activation.vehicle_id),
        "package": activation.package,
        "state": activation.state,
        "ordered_at": _at(activation.ordered_at),
        "activated_at": _at(activation.activated_at),
        "ended_at": _at(activation.ended_at),
        "certificate_number": activation.certificate_number,
    }
