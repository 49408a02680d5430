"""Car security in the portal (SEC-1, SEC-3, SEC-4): Services > Car security of one car, and the public page
on which an insurer checks an activation certificate.

The car's page calls the same use cases as the app API (security.owner) and behaves as it does: every user
of the car sees the package, its states, the mode and the SOC's contacts; only the main user changes the
SOC's number, sets or ends a mode and downloads the certificate; anyone else gets the 404 of a VIN that
does not exist. Every form carries the session's CSRF token and answers with a redirect; a refusal shows
the page again with the reason.
"""

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.errors import CarlinkError, TooManyRequests
from carlink.i18n import N_, _
from carlink.identity.access import Caller, client_address, platform_of
from carlink.security import activations, config, owner
from carlink.security.certificate import package_name
from carlink.security.rules import ActivationState
from carlink.store.portal import (
    current_caller,
    form_caller,
    path_vin,
    refused,
    render,
    see_other,
    to_signin,
)

router = APIRouter(include_in_schema=False)
# Translated where shown (security_page).
NOTICES = {
    "phone": N_("The security centre will call the new number."),
    "mode_set": N_("The mode is set. The car receives it when it is next online."),
    "mode_ended": N_("The mode has ended: every alarm counts again."),
    "no_mode": N_("No mode was in force."),
}


# The owner's words for the steps of an activation (rules.ActivationState), translated where shown.
ACTIVATION_STATES = {
    ActivationState.ORDERED: N_("Ordered"),
    ActivationState.INSTALLING: N_("Installing in the car"),
    ActivationState.TEST_PASSED: N_("Test alarm passed"),
    ActivationState.ACTIVE: N_("Active"),
    ActivationState.ENDED: N_("Ended"),
}


def _page_path(vin: str) -> str:
    return f"/vehicles/{vin}/security"


@router.get("/vehicles/{vin}/security", response_model=None)
async def security_page(request: Request, vin: str, done: str = "") -> Response:
    async with platform_of(request).db.session() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        notice = _(NOTICES[done]) if done in NOTICES else None
        return await _page(request, session, caller, path_vin(vin), notice=notice)


async def _page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    view = await owner.security_view(session, caller.account, vin)  # 404 for anyone not on the car
    return render(
        request,
        "security/car.html",
        caller,
        status=status,
        entry=view.entry,
        view=view,
        package_name=package_name,
        step_labels={state.value: _(label) for state, label in ACTIVATION_STATES.items()},
        mode_hours=owner.MODE_HOURS,
        **context,
    )


async def _refused(
    request: Request, caller: Caller, vin: str, error: CarlinkError, **context: Any
) -> Response:
    async with platform_of(request).db.session() as session:
        return await _page(
            request,
            session,
            caller,
            vin,
            **refused(error),
            **context,
        )


@router.post("/vehicles/{vin}/security/phone", response_model=None)
async def change_phone(
    request: Request, vin: str, phone: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: SEC-1 — the number the SOC calls; after a change of hands the new main user gives theirs."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            await owner.change_phone(session, caller.account, vin, phone)
    except CarlinkError as error:
        return await _refused(request, caller, vin, error, entered_phone=phone[:40])
    return see_other(f"{_page_path(vin)}?done=phone")


@router.post("/vehicles/{vin}/security/mode", response_model=None)
async def set_mode(
    request: Request, vin: str, kind: str = Form(""), hours: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: SEC-3 — service or transport mode for a number of hours; it ends by itself."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            vehicle_id = await owner.set_mode(session, caller.account, vin, kind[:20], _hours(hours))
    except CarlinkError as error:
        return await _refused(
            request, caller, vin, error, entered_mode={"kind": kind[:20], "hours": hours[:6]}
        )
    await config.publish(platform, vehicle_id)
    return see_other(f"{_page_path(vin)}?done=mode_set")


def _hours(raw: str) -> int:
    """A whole number of hours; anything else is refused like an hour count out of bounds."""
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise CarlinkError("Please give the number of hours as a whole number.", code="invalid_mode_duration")
    return int(text)


@router.post("/vehicles/{vin}/security/mode/end", response_model=None)
async def end_mode(request: Request, vin: str, csrf_token: str = Form("")) -> Response:
    """REQ: SEC-3 — ends the mode before its time."""
    vin = path_vin(vin)
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
    try:
        async with platform.db.transaction() as session:
            vehicle_id, ended = await owner.end_mode(session, caller.account, vin)
    except CarlinkError as error:
        return await _refused(request, caller, vin, error)
    if ended:
        await config.publish(platform, vehicle_id)
    return see_other(f"{_page_path(vin)}?done={'mode_ended' if ended else 'no_mode'}")


@router.get("/vehicles/{vin}/security/certificate.pdf", response_model=None)
async def certificate(request: Request, vin: str) -> Response:
    """REQ: SEC-4 — the insurer's certificate for the main user, once the package is active."""
    platform = platform_of(request)
    async with platform.db.session() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        name, pdf = await owner.certificate(
            session, caller.account, path_vin(vin), platform.settings.base_url
        )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


# --- the insurer's check (public) --------------------------------------------------------------------------


@router.get(owner.VERIFY_PATH, response_model=None)
async def verify_page(request: Request, number: str = "", code: str = "") -> Response:
    """REQ: SEC-4 — the form, or (with both fields in the query, as a link would carry them) the answer."""
    if not number and not code:
        async with platform_of(request).db.session() as session:
            caller = await current_caller(request, session)
        return render(request, "security/verify.html", caller, section="", result=None)
    return await _verify(request, number, code)


@router.post(owner.VERIFY_PATH, response_model=None)
async def verify_form(request: Request, number: str = Form(""), code: str = Form("")) -> Response:
    return await _verify(request, number, code)


async def _verify(request: Request, number: str, code: str) -> Response:
    """Says only valid or not and, when valid, the package, date and VIN's end. No CSRF token: the form
    changes nothing a visitor owns, and the throttle counts per source address, not per session."""
    platform = platform_of(request)
    entered = {"number": number.strip()[:20], "code": code.strip()[:20]}
    try:
        async with platform.db.transaction() as session:
            result = await activations.verify(session, number, code, source=client_address(request))
            caller = await current_caller(request, session)
    except TooManyRequests as error:
        async with platform.db.session() as session:
            caller = await current_caller(request, session)
        response = render(
            request,
            "security/verify.html",
            caller,
            status=429,
            section="",
            result=None,
            error=error.message,
            error_code=error.code,
        )
        response.headers.update(error.headers)
        return response
    return render(
        request,
        "security/verify.html",
        caller,
        section="",
        result=result,
        entered=entered,
        package_name=package_name,
    )
