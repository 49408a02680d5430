"""/api/v1/me/in-car-settings and /api/v1/me/in-car-logins: the in-car profile, the service settings that
follow the ID into any car, and the cars the ID is logged in to (VEH-7)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.identity.access import platform_of, require_caller
from carlink.incar import rules, service

router = APIRouter(prefix="/api/v1/me", tags=["in-car"])


class InCarSettingsIn(BaseModel):
    """Either part may be left out. Each service list given replaces that list; a profile setting left
    out keeps its value."""

    model_config = ConfigDict(extra="forbid")
    profile: dict[str, Any] | None = None
    service_settings: dict[str, Any] | None = None


class LoggedInCarOut(BaseModel):
    vin: str
    name: str
    role: str
    since: str
    last_used_at: str


class InCarSettingsOut(BaseModel):
    profile: dict[str, Any]
    profile_updated_at: str | None
    service_settings: dict[str, list[str]]
    limits: dict[str, int]
    logged_in_cars: list[LoggedInCarOut]


async def settings_out(session: AsyncSession, account_id: int) -> dict[str, Any]:
    updated_at = await service.profile_updated_at(session, account_id)
    return {
        "profile": (await service.profile_of(session, account_id)).as_dict(),
        "profile_updated_at": updated_at.isoformat() if updated_at else None,
        "service_settings": await service.service_settings(session, account_id),
        "limits": dict(rules.SERVICE_LIMITS),
        "logged_in_cars": [
            {
                "vin": car.vehicle.vin,
                "name": car.name,
                "role": car.role,
                "since": car.since.isoformat(),
                "last_used_at": car.last_used_at.isoformat(),
            }
            for car in await service.logged_in_cars(session, account_id)
        ],
    }


@router.get("/in-car-settings", response_model=InCarSettingsOut)
async def in_car_settings(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return await settings_out(session, caller.account.id)


@router.put("/in-car-settings", response_model=InCarSettingsOut)
async def change_in_car_settings(body: InCarSettingsIn, request: Request) -> dict[str, Any]:
    """Changes appear in every car with ID login at its next login or resume (VEH-7)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        if body.profile is not None:
            await service.save_profile(session, caller.account.id, rules.checked_profile(body.profile))
        if body.service_settings is not None:
            await service.replace_service_settings(session, caller.account.id, body.service_settings)
        return await settings_out(session, caller.account.id)


@router.delete("/in-car-logins/{vin}", status_code=204)
async def log_out_of_car(vin: str, request: Request) -> None:
    """Ends the ID's login in that car; the car falls back to guest mode at its next start."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        await service.log_out_of_car(session, caller.account.id, vin)
