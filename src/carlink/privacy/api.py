"""/api/v1/me/privacy and /api/v1/me/export: the person's privacy choices as JSON (PRV-1, PRV-2, PRV-5)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from carlink import i18n
from carlink.error_responses import errors
from carlink.identity.access import platform_of, require_caller
from carlink.privacy import erasure, export, service

# An erasure blocked by a car, a policy version not current …: 409.
router = APIRouter(prefix="/api/v1/me", tags=["privacy"], responses=errors(409))


class AcceptIn(BaseModel):
    # JSON types as declared: no true for 1, no "1" for 1 (a client bug shows, not a guess; issue 9)
    model_config = ConfigDict(strict=True)
    version: int


class ConsentIn(BaseModel):
    model_config = ConfigDict(strict=True)
    granted: bool


class ErasureIn(BaseModel):
    model_config = ConfigDict(strict=True)
    password: str


class AcceptedOut(BaseModel):
    version: int
    accepted_at: str | None


class ConsentOut(BaseModel):
    granted: bool
    partner_id: int | None
    channel: str
    at: str | None


class ErasureOut(BaseModel):
    id: int
    state: str
    requested_at: str | None


def _when(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@router.get("/privacy")
async def privacy(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        account = caller.account
        latest = await service.latest_policy(session)
        accepted = await service.latest_acceptance(session, account.id)
        consent = await service.consent_state(session, account.id)
        route = await service.revocation_route(session, account)
        open_request = await erasure.open_request(session, account.id)
        blockers = await erasure.blocking_vehicles(session, account.id)
        history = await service.consent_history(session, account.id)
    return {
        "policy": {
            "version": latest.version,
            "published_at": _when(latest.published_at),
            **service.policy_text(latest, i18n.current()),
        },
        "accepted": {"version": accepted.version, "accepted_at": _when(accepted.accepted_at)}
        if accepted
        else None,
        "needs_acceptance": accepted is None or accepted.version < latest.version,
        "consent": {
            "granted": consent.granted,
            "partner_id": consent.partner_id,
            "changed_at": _when(consent.changed_at),
            "channel": consent.channel,
        }
        if consent
        else None,
        "consent_history": [
            {"granted": e.granted, "channel": e.channel, "partner_id": e.partner_id, "at": _when(e.at)}
            for e in history
        ],
        "revocation": {
            "country": route.country,
            "contact_email": route.contact_email,
            "via_dealer": route.contact_email is None,
            "partner": {
                "name": route.partner.name,
                "phone": route.partner.phone,
                "email": route.partner.email,
            }
            if route.partner
            else None,
        },
        "erasure": {
            "open_request_id": open_request.id if open_request else None,
            "blocked_by": [{"vin": b.vin, "name": b.name} for b in blockers],
        },
    }


@router.post("/privacy/accept", response_model=AcceptedOut)
async def accept(body: AcceptIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        row = await service.accept_policy(session, caller.account.id, body.version)
    return {"version": row.version, "accepted_at": _when(row.accepted_at)}


@router.post("/privacy/consent", response_model=ConsentOut)
async def consent(body: ConsentIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        row = await service.record_consent(session, caller.account.id, granted=body.granted, channel="portal")
    return {"granted": row.granted, "partner_id": row.partner_id, "channel": row.channel, "at": _when(row.at)}


@router.post("/privacy/erasure", status_code=201, response_model=ErasureOut, responses=errors(429))
async def request_erasure(body: ErasureIn, request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        row = await erasure.request_erasure(session, caller.account, password=body.password)
    return {"id": row.id, "state": row.state, "requested_at": _when(row.requested_at)}


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"description": "the ZIP of the export", "content": {"application/zip": {}}}},
)
async def download(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        name, body = await export.export_for(session, caller.account.id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
