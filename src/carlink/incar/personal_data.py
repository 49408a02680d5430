"""The in-car part of a person's data: for the self-service export and the erasure (PRV-5)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from carlink.incar import service


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    """The ID's in-car profile, service settings and the cars it is logged in to (never a token)."""
    updated_at = await service.profile_updated_at(session, account_id)
    return {
        "profile": (await service.profile_of(session, account_id)).as_dict(),
        "profile_updated_at": updated_at.isoformat() if updated_at else None,
        "service_settings": await service.service_settings(session, account_id),
        "logged_in_cars": [
            {
                "vin": car.vehicle.vin,
                "role": car.role,
                "since": car.since.isoformat(),
                "last_used_at": car.last_used_at.isoformat(),
            }
            for car in await service.logged_in_cars(session, account_id)
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """Erases every in-car record of the ID: profile, service settings and logins in cars."""
    await service.reset_for_account(session, account_id)
