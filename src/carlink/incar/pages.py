"""/account/in-car in the portal: the service settings that follow the ID into any car, the stored seat and
climate profile, and the cars the ID is logged in to (VEH-7, VEH-8)."""

from __future__ import annotations

from typing import Any

from babel.numbers import format_decimal
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import CarlinkError
from carlink.i18n import N_, _
from carlink.identity.access import Caller, platform_of
from carlink.incar import rules, service
from carlink.store.portal import (
    current_caller,
    form_caller,
    refused,
    render,
    see_other,
    to_signin,
)

router = APIRouter(include_in_schema=False)

KIND_TITLES = {
    rules.FAVOURITES: N_("Favourites"),
    rules.RADIO_STATIONS: N_("Radio stations"),
    rules.WEATHER_PLACES: N_("Weather places"),
}


async def _page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **context: Any
) -> HTMLResponse:
    account_id = caller.account.id
    profile = await service.profile_of(session, account_id)
    temperature = profile.climate_temperature_c
    return render(
        request,
        "incar/settings.html",
        caller,
        status=status,
        section="account",
        profile=profile,
        # One decimal, as the car sets it in half degrees: 21.5 / 21,5.
        climate_temperature=(
            None
            if temperature is None
            else format_decimal(temperature, format="0.0", locale=i18n.babel_locale())
        ),
        profile_updated_at=await service.profile_updated_at(session, account_id),
        services=await service.service_settings(session, account_id),
        limits=rules.SERVICE_LIMITS,
        names={kind: _(name) for kind, name in rules.SERVICE_NAMES.items()},
        titles={kind: _(title) for kind, title in KIND_TITLES.items()},
        label_max=rules.LABEL_MAX,
        cars=await service.logged_in_cars(session, account_id),
        **context,
    )


@router.get("/account/in-car", response_model=None)
async def in_car(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        return await _page(request, session, caller, done=done)


@router.post("/account/in-car/services", response_model=None)
async def add_item(
    request: Request, kind: str = Form(""), label: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: VEH-7 — a favourite, radio station or weather place added here appears in the car at its next
    login or resume."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await service.add_service_item(session, caller.account.id, kind, label)
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _page(
                request,
                session,
                caller,
                **refused(error),
            )
    return see_other("/account/in-car?done=added")


@router.post("/account/in-car/services/remove", response_model=None)
async def remove_item(
    request: Request, kind: str = Form(""), label: str = Form(""), csrf_token: str = Form("")
) -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await service.remove_service_item(session, caller.account.id, kind, label)
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _page(
                request,
                session,
                caller,
                **refused(error),
            )
    return see_other("/account/in-car?done=removed")


@router.post("/account/in-car/cars/{vin}/logout", response_model=None)
async def log_out_of_car(request: Request, vin: str, csrf_token: str = Form("")) -> Response:
    """Ends the ID's login in that car; the car falls back to guest mode at its next start."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await service.log_out_of_car(session, caller.account.id, vin[:17])
    except CarlinkError as error:
        async with platform.db.transaction() as session:
            return await _page(
                request,
                session,
                caller,
                **refused(error),
            )
    return see_other("/account/in-car?done=logged_out")
