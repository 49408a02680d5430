"""/app/connect/v1: the wire contract of reference/porsche-connect-wire-api.md, on carlink's services (RMT-4).

The routes stay thin: the vocabulary lives in `measurements`, `commands` and `vehicles`, the pictures in
`pictures`. Every answer is JSON (the clients call `.json()` on every 2xx), and every error carries a status
code the clients know (see `compat_error`). docs/compat.md describes the mapping.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, NotFound
from carlink.garage import service as garage
from carlink.garage.api import wake_and_wait
from carlink.identity.access import platform_of, require_caller
from carlink.protocol.messages import CommandType
from carlink.remote import service as remote
from carlink.telemetry import service as telemetry

from . import commands, measurements, pictures, vehicles
from . import schemas as wire

router = APIRouter(prefix="/app", tags=["compatibility"])
API = "/connect/v1/vehicles"
MAX_FILTER_KEYS = 256

# The status codes the community clients know (reference doc §1); each of our error codes is folded into one.
WIRE_STATUS_BY_CODE = {
    "vehicle_offline": 408,  # VEHICLE_UNAVAILABLE
    # MOBILE_ACCESS_DISABLED: remote access is off for this caller (privacy mode, not authorised in the
    # car, or not the main user)
    "privacy_mode": 405,
    "remote_access_not_authorised": 405,
    "main_user_only": 405,
    "pin_locked": 423,  # ACCOUNT_LOCKED
}
KNOWN_STATUSES = frozenset({400, 401, 404, 405, 408, 423, 429, 500, 503, 504})


def wire_status(error: CarlinkError) -> int:
    status = WIRE_STATUS_BY_CODE.get(error.code, error.status)
    if status in KNOWN_STATUSES:
        return status
    if status == 403:
        return 401
    return 500 if status >= 500 else 400


def compat_error(error: CarlinkError) -> JSONResponse:
    return JSONResponse(
        # The maker's wire contract speaks English whatever the caller's language (str() is the English text).
        {"error": error.code, "message": str(error)},
        status_code=wire_status(error),
        headers=error.headers,
    )


def _filter(request: Request, name: str, everything: tuple[str, ...]) -> list[str]:
    """Repeated `mf`/`cf` keys in order, each once; `*` stands for every key we know."""
    keys: dict[str, None] = {}
    for raw in request.query_params.getlist(name):
        for key in raw.split(","):
            key = key.strip().upper()
            if key == "*":
                keys.update(dict.fromkeys(everything))
            elif key:
                keys[key] = None
    if len(keys) > MAX_FILTER_KEYS:
        raise CarlinkError(f"at most {MAX_FILTER_KEYS} {name} keys per request", code="too_many_keys")
    return list(keys)


@router.get(API, response_model=None, responses={200: {"model": list[wire.VehicleItem]}})
async def list_vehicles(request: Request) -> list[dict[str, Any]]:
    """A1: the caller's vehicles (a JSON array, as the clients iterate it)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return [vehicles.vehicle_item(entry) for entry in await garage.garage(session, caller.account)]


@router.get(
    API + "/{vin}",
    response_model=None,
    responses={200: {"model": wire.Overview}},
    openapi_extra={"parameters": wire.OVERVIEW_PARAMETERS},
)
async def vehicle_overview(vin: str, request: Request) -> dict[str, Any]:
    """A2-A6: stored overview; with `wakeUpJob` the current one (the car is woken first, rate-limited:
    when it was woken moments ago the stored data is the answer, RMT-2); with `cf` also capabilities."""
    measurement_keys = _filter(request, "mf", measurements.KNOWN_KEYS)
    command_keys = _filter(request, "cf", commands.KNOWN_COMMANDS)
    if "wakeUpJob" in request.query_params:
        try:
            await wake_and_wait(request, vin, quiet=True)
        except CarlinkError as error:
            # A car in privacy mode is not woken; what the cloud has (without its position) is the answer.
            if error.code != "privacy_mode":
                raise
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        readings = await telemetry.stored_overview(session, entry.vehicle)
        return vehicles.overview(
            entry, readings, measurement_keys=measurement_keys, command_keys=command_keys, now=utcnow()
        )


@router.get(API + "/{vin}/pictures", response_model=None, responses={200: {"model": list[wire.Picture]}})
async def vehicle_pictures(vin: str, request: Request) -> list[dict[str, Any]]:
    """A7: the five views, served by carlink itself (see `pictures` for why the URLs need no token header)."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
    base = platform.settings.base_url.rstrip("/")
    secret = platform.settings.secret_key
    return [
        {
            "url": base + pictures.picture_path(secret, entry.vehicle, view),
            "view": view,
            "size": 2,
            "width": pictures.WIDTH,
            "height": pictures.HEIGHT,
            "transparent": True,
        }
        for view in pictures.VIEWS
    ]


@router.get(
    "/pictures/{vin}/{token}/{view}.png",
    response_class=Response,
    responses={200: {"description": "the picture", "content": {"image/png": {}}}},
)
async def picture(vin: str, token: str, view: str, request: Request) -> Response:
    platform = platform_of(request)
    async with platform.db.session() as session:
        vehicle = await garage.vehicle_by_vin(session, vin.strip().upper()[:17])
    if (
        vehicle is None
        or view not in pictures.VIEWS
        or not pictures.token_matches(platform.settings.secret_key, vehicle, token)
    ):
        raise NotFound("no such picture", code="picture_not_found")
    return Response(
        pictures.render(view, vehicle.color_hex),
        media_type="image/png",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.post(
    API + "/{vin}/commands",
    response_model=None,
    responses={200: {"model": wire.CommandStatus | wire.ChallengeAnswer}},
    openapi_extra={"requestBody": wire.COMMAND_REQUEST},
)
async def send_command(vin: str, request: Request) -> dict[str, Any]:
    """A8: a remote service; answers ACCEPTED with an id to poll. SPIN_CHALLENGE answers the challenge
    at once. Status 200 rather than 202: some clients of this API test for 200 exactly."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise CarlinkError("the request body is not valid JSON", code="invalid_json") from exc
    command = commands.parse(body)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        if command.key == commands.SPIN_CHALLENGE:
            challenge = await remote.issue_pin_challenge(session, platform.settings, entry, caller.account)
            return {"data": {"challenge": challenge.challenge}}
        kind = commands.command_type(command.key)
        row = await remote.send_remote_service(
            session,
            platform.settings,
            platform.signer,
            entry,
            caller.account,
            kind,
            commands.params(command),
            spin=commands.spin(command) if kind is CommandType.UNLOCK else None,
            channel="compat",
        )
    await platform.dispatch(row)
    return commands.status(row)


@router.get(
    API + "/{vin}/commands/{command_id}", response_model=None, responses={200: {"model": wire.CommandStatus}}
)
async def command_status(vin: str, command_id: str, request: Request) -> dict[str, Any]:
    """A9: polled every second by the clients until PERFORMED or ERROR."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        entry = await garage.garage_entry(session, caller.account, vin)
        row = await remote.get_command(session, entry, command_id)
        return commands.status(row)
