"""/api/v1/vehicles: the garage, its users and the stored or current status of each car."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from carlink.error_responses import errors
from carlink.errors import TooManyRequests
from carlink.garage import service as garage
from carlink.garage.schemas import (
    AddUserIn,
    StatusOut,
    UserOut,
    VehicleDetailOut,
    VehicleOut,
    connection_out,
    users_out,
    vehicle_out,
)
from carlink.identity.access import platform_of, require_caller
from carlink.protocol.catalogue import CATALOGUE
from carlink.remote import service as remote
from carlink.remote.api import wait_for_outcome
from carlink.telemetry import service as telemetry

# A car registered already, a second main user …: 409.
router = APIRouter(prefix="/api/v1/vehicles", tags=["vehicles"], responses=errors(409))
catalogue_router = APIRouter(prefix="/api/v1/catalogue", tags=["model catalogue"])


class CatalogueVariantOut(BaseModel):
    code: str
    name: str
    engine: str
    commands: list[str]
    measurements: list[str]


class CatalogueModelOut(BaseModel):
    key: str
    line: str
    generation: str
    generation_code: str
    years: dict[str, int | None] = Field(description="`from` and `to` (null while still built)")
    data_connections: list[str]
    esim_only: bool
    roaming: str
    data_switch_menu: str
    pairing_code_needed: bool
    in_car_id_login: bool
    privacy_scope: str
    connection_symbol: str
    remote_access_authorisation_required: bool
    variants: list[CatalogueVariantOut]


@catalogue_router.get("/models", response_model=list[CatalogueModelOut])
async def list_models() -> list[dict[str, Any]]:
    """The model catalogue (VEH-1): each model line and generation with its capability profile."""
    return [
        {
            "key": model.key,
            "line": model.line,
            "generation": model.generation,
            "generation_code": model.generation_code,
            "years": {"from": model.years[0], "to": model.years[1]},
            "data_connections": [c.value for c in model.data_connections],
            "esim_only": model.esim_only,
            "roaming": "automatic" if model.roaming_automatic else model.roaming_menu.value,
            "data_switch_menu": model.data_menu.value,
            "pairing_code_needed": model.pairing_code_needed,
            "in_car_id_login": model.in_car_id_login,
            "privacy_scope": model.privacy_scope.value,
            "connection_symbol": model.symbol_position.value,
            "remote_access_authorisation_required": model.remote_access_authorisation_required,
            "variants": [
                {
                    "code": variant.code,
                    "name": variant.name,
                    "engine": variant.engine.value,
                    "commands": model.remote_services(variant.engine),
                    "measurements": sorted(model.measurements(variant.engine)),
                }
                for variant in model.variants
            ],
        }
        for model in CATALOGUE
    ]


@router.get("", response_model=list[VehicleOut])
async def list_vehicles(request: Request) -> list[dict[str, Any]]:
    """The caller's vehicles with role, pairing code and connection status (VEH-2, VEH-3, VEH-9)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return [vehicle_out(entry) for entry in await garage.garage(session, caller.account)]


@router.get("/{vin}", response_model=VehicleDetailOut)
async def vehicle_detail(vin: str, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        body = vehicle_out(entry)
        if entry.is_main_user:
            body["users"] = users_out(await garage.users_of(session, entry.vehicle))
        return body


@router.post("/{vin}/users", response_model=UserOut, status_code=201)
async def add_user(vin: str, body: AddUserIn, request: Request) -> dict[str, Any]:
    """The main user adds a secondary user by the email address of their ID (VEH-2)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        membership = await garage.add_secondary_user(session, entry, body.email)
        return {
            "account_id": membership.account_id,
            "email": body.email.strip().lower(),
            "role": membership.role,
        }


@router.delete("/{vin}/users/{account_id}", status_code=204)
async def remove_user(vin: str, account_id: int, request: Request) -> None:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        await garage.remove_user(session, entry, account_id)


@router.get("/{vin}/status", response_model=StatusOut, responses=errors(409, 429))
async def vehicle_status(vin: str, request: Request, current: bool = False) -> dict[str, Any]:
    """The stored overview: last known values, each with its time (RMT-2). Location is hidden in privacy
    mode (RMT-3). With current=true the car is woken first (rate-limited) and the fresh state returned."""
    platform = platform_of(request)
    if current:
        await wake_and_wait(request, vin)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        readings = await telemetry.stored_overview(session, entry.vehicle)
        return {
            "vin": entry.vehicle.vin,
            "connection": connection_out(entry),
            "privacy_mode": entry.vehicle.privacy_mode,
            "values": {
                k: {"value": r.value, "measured_at": r.measured_at} for k, r in sorted(readings.items())
            },
        }


async def wake_and_wait(request: Request, vin: str, *, quiet: bool = False) -> bool:
    """Sends a wake-up and waits for the car to report; False when rate-limited (and quiet) or no answer."""
    platform = platform_of(request)
    try:
        async with platform.db.transaction() as session:
            caller = await require_caller(request, session)
            entry = await garage.garage_entry(session, caller.account, vin)
            command = await remote.request_wake(
                session, platform.settings, platform.signer, entry, caller.account
            )
    except TooManyRequests:
        if quiet:
            return False
        raise
    await platform.dispatch(command)
    final = await wait_for_outcome(platform, command, platform.settings.wake_wait_seconds)
    return final.state == "performed"


@router.delete("/{vin}/membership", status_code=204)
async def leave_vehicle(vin: str, request: Request) -> None:
    """Removes the vehicle from the caller's profile (ACC-6): the main user takes the secondary users with
    them (contracts stay with the car, STO-9); a secondary user removes only themself. The ID stays."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        await garage.leave_vehicle(session, entry)
