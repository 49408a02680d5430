"""/api/v1/vehicles/{vin}/security: car security in the app API (SEC-1, SEC-3, SEC-4).

Every user of the car reads the package, its activation states, the mode in force and the SOC's contacts;
the main user changes the SOC's number, sets and ends service or transport mode and downloads the
certificate (secondary users: 403 `owner_only`); anyone else gets the 404 of a VIN that does not exist.
A change of the car's security set is published after its unit of work commits.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from carlink.error_responses import errors
from carlink.identity.access import platform_of
from carlink.security import config, owner
from carlink.store.api import _caller

# A mode or a package in the wrong state is 409; too many phone verifications are 429.
router = APIRouter(
    prefix="/api/v1/vehicles/{vin}/security", tags=["car security"], responses=errors(409, 429)
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneIn(_Strict):
    phone: str = Field(max_length=40)


class ModeIn(_Strict):
    """Bounds and kinds are the domain's (`invalid_mode`, `invalid_mode_duration`), so the API and the
    portal refuse alike; the schema only keeps the number a number."""

    kind: str = Field(max_length=20)
    hours: int = Field(ge=-(2**31), le=2**31 - 1)


@router.get("")
async def security_status(vin: str, request: Request) -> dict[str, Any]:
    """REQ: SEC-1, SEC-4 — the activation with its dated states, the mode and the SOC's contacts."""
    async with platform_of(request).db.session() as session:
        caller, _ = await _caller(request, session)
        return owner.view_out(await owner.security_view(session, caller.account, vin))


@router.put("/phone")
async def change_phone(vin: str, body: PhoneIn, request: Request) -> dict[str, Any]:
    """REQ: SEC-1 — the number the SOC calls on a suspected theft (`invalid_phone`, `no_package`)."""
    async with platform_of(request).db.transaction() as session:
        caller, _ = await _caller(request, session)
        await owner.change_phone(session, caller.account, vin, body.phone)
    async with platform_of(request).db.session() as session:
        return owner.view_out(await owner.security_view(session, caller.account, vin))


@router.post("/mode", status_code=201)
async def set_mode(vin: str, body: ModeIn, request: Request) -> dict[str, Any]:
    """REQ: SEC-3 — service mode (at most 14 days) or transport mode (at most 3 days), in hours."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, _ = await _caller(request, session)
        vehicle_id = await owner.set_mode(session, caller.account, vin, body.kind, body.hours)
    await config.publish(platform, vehicle_id)
    async with platform.db.session() as session:
        return owner.view_out(await owner.security_view(session, caller.account, vin))


@router.delete("/mode")
async def end_mode(vin: str, request: Request) -> dict[str, Any]:
    """REQ: SEC-3 — ends the mode in force before its time; `ended` is false when none was in force."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller, _ = await _caller(request, session)
        vehicle_id, ended = await owner.end_mode(session, caller.account, vin)
    if ended:
        await config.publish(platform, vehicle_id)
    async with platform.db.session() as session:
        return {"ended": ended} | owner.view_out(await owner.security_view(session, caller.account, vin))


@router.get(
    "/certificate.pdf",
    response_class=Response,
    responses={200: {"description": "the certificate", "content": {"application/pdf": {}}}},
)
async def certificate(vin: str, request: Request) -> Response:
    """REQ: SEC-4 — the insurer's certificate, once the package is active (409 `not_active` before)."""
    platform = platform_of(request)
    async with platform.db.session() as session:
        caller, _ = await _caller(request, session)
        name, pdf = await owner.certificate(session, caller.account, vin, platform.settings.base_url)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
