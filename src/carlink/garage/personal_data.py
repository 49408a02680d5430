"""The garage's data about a person, for the export and the erasure of an ID (PRV-5): their cars, their role
on each and their pairing codes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage.models import Vehicle, VehicleUser
from carlink.garage.service import leave_all_vehicles
from carlink.identity.models import Account


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    rows = await session.execute(
        select(VehicleUser, Vehicle)
        .join(Vehicle, Vehicle.id == VehicleUser.vehicle_id)
        .where(VehicleUser.account_id == account_id)
        .order_by(Vehicle.vin)
    )
    return {
        "vehicles": [
            {
                "vin": vehicle.vin,
                "name": vehicle.custom_name,
                "model": vehicle.model_key,
                "model_year": vehicle.model_year,
                "color": vehicle.color,
                "country": vehicle.country,
                "role": membership.role,
                "pairing_code": membership.pairing_code,
                "paired_at": membership.paired_at.isoformat() if membership.paired_at else None,
                "added_at": membership.created_at.isoformat(),
                "privacy_mode": vehicle.privacy_mode,
            }
            for membership, vehicle in rows
        ]
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """Removes the person from every car. The cars themselves stay: they belong to their owners (and the
    erasure is refused while the person is still a main user of a car with running contracts).

    Leaving goes through the garage's own use case first, so a car the person was main user of has its
    remote access reset (VEH-5) rather than left half-configured."""
    account = await session.get(Account, account_id)
    if account is not None:
        await leave_all_vehicles(session, account)
    await session.execute(delete(VehicleUser).where(VehicleUser.account_id == account_id))
    await session.flush()
