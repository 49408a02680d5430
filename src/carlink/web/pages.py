"""The portal: server-rendered pages (Jinja2 + htmx) over the domains' services.

Remote services are sent from the page's script (static/carlink.js) through the JSON API and followed on
the vehicle's event stream; the one portal-only command route is the unlock, where the server answers the
single-use PIN challenge for the person (RMT-1).
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import CarlinkError, Unauthorised, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.service import GarageEntry
from carlink.i18n import N_, _
from carlink.identity import service as identity
from carlink.identity.access import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Caller,
    check_csrf,
    client_address,
    cookie_caller,
    delete_cookie,
    platform_of,
    set_cookie,
)
from carlink.identity.captcha import new_captcha
from carlink.identity.oidc import captcha_needed, set_session_cookie
from carlink.protocol.messages import CommandType
from carlink.remote import service as remote
from carlink.remote.schemas import CommandOut, command_out
from carlink.telemetry import service as telemetry
from carlink.web.readings import label as reading_label
from carlink.web.readings import overview_lines
from carlink.web.templating import page

LOGIN_COOKIE = "carlink_signin"
router = APIRouter(include_in_schema=False)

HOME = "/vehicles"
MAX_ROW_ID = 2**63 - 1  # larger ids cannot exist, and SQLite refuses to even look them up
COMMAND_LABELS = {
    CommandType.LOCK: N_("Lock"),
    CommandType.UNLOCK: N_("Unlock"),
    CommandType.HONK_FLASH: N_("Honk and flash"),
    CommandType.CLIMATE_START: N_("Start climate"),
    CommandType.CLIMATE_STOP: N_("Stop climate"),
    CommandType.DIRECT_CHARGING_START: N_("Start direct charging"),
    CommandType.DIRECT_CHARGING_STOP: N_("Stop direct charging"),
    CommandType.CHARGE_TARGET: N_("Set charge target"),
    CommandType.WAKE: N_("Wake up"),
}
# The words for a command's state (remote.rules.CommandState) on the page and in its script.
COMMAND_STATES = {
    "accepted": N_("accepted"),
    "delivered": N_("delivered"),
    "performed": N_("performed"),
    "error": N_("error"),
    "expired": N_("expired"),
}
ERROR_TITLES = {
    404: N_("Not found"),
    403: N_("Not allowed"),
    423: N_("Locked for now"),
    429: N_("Please wait a moment"),
}
ACCOUNT_NOTICES = {
    "password": N_("Your password is changed."),
    "pin": N_("Your security PIN is set."),
    "language": N_("The language is changed."),
}
DELETED_NOTICE = N_(
    "Your ID is deleted. You are signed out everywhere, and we have sent you a confirmation by email."
)


def labels_by_type() -> dict[str, str]:
    """For the page and its script, in the request's language, keyed by the plain type name a command row
    and the event stream carry."""
    return {kind.value: _(text) for kind, text in COMMAND_LABELS.items()}


def error_page(request: Request, error: CarlinkError) -> HTMLResponse:
    caller: Caller | None = getattr(request.state, "caller", None)
    title = _(ERROR_TITLES.get(error.status, N_("Something is not right")))
    response = _render(
        request,
        "message.html",
        caller,
        status=error.status,
        title=title,
        message=error.message,
        code=error.code,
    )
    response.headers.update(error.headers)
    return response


def _render(
    request: Request, name: str, caller: Caller | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    csrf = caller.web_session.csrf_token if caller and caller.web_session else ""
    account = caller.account if caller else None
    return page(request, name, status=status, account=account, csrf_token=csrf, **context)


async def _caller(request: Request, session: AsyncSession) -> Caller | None:
    """The signed-in person of this browser; remembered on the request so an error page keeps the menu."""
    caller = await cookie_caller(request, session)
    request.state.caller = caller
    return caller


async def _signed_in(request: Request, session: AsyncSession, csrf_token: str | None = None) -> Caller:
    """For fragments and form posts: a person must be signed in, and a post must carry the form's token."""
    caller = await _caller(request, session)
    if caller is None:
        raise Unauthorised("your session has ended; sign in again", code="unauthorised")
    if csrf_token is not None:
        check_csrf(caller, csrf_token)
    return caller


def _to_signin(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/signin?next={quote(request.url.path)}", status_code=303)


def _local(target: str) -> str:
    """Only paths on this site are followed after sign-in, never another host."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return HOME


async def _entry(session: AsyncSession, caller: Caller, vin: str) -> GarageEntry:
    try:
        return await garage.garage_entry(session, caller.account, vin)
    except CarlinkError as error:
        if error.code == "invalid_vin":  # a malformed VIN in the address is just another unknown page
            raise vehicle_not_found(vin[:17]) from error
        raise


def _form_status(error: CarlinkError) -> int:
    # A wrong password or an unknown email address typed into a form is a refused form (400), not a missing
    # sign-in (401) or a missing page (404); throttling and locks keep their own status (429, 423).
    return 400 if error.status in (401, 404) else error.status


# --- start, sign-in and sign-out (ACC-1, ACC-7) ------------------------------------------------------------


@router.get("/", response_model=None)
async def start(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
    if caller is not None:
        return RedirectResponse(HOME, status_code=303)
    return _render(request, "start.html", None)


@router.get("/signin", response_model=None)
async def signin_form(request: Request, next: str = HOME) -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        if await _caller(request, session) is not None:
            return RedirectResponse(_local(next), status_code=303)
        captcha = await captcha_needed(session, platform.settings, client_address(request), None)
    return _signin_page(request, next=next, captcha=captcha)


def _signin_page(
    request: Request,
    *,
    status: int = 200,
    error: str | None = None,
    error_code: str = "",
    email: str = "",
    next: str = HOME,
    captcha: bool = False,
) -> HTMLResponse:
    challenge = None
    if captcha:
        image, token = new_captcha(platform_of(request).settings.secret_key)
        challenge = {"image": image, "token": token}
    login_token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
    response = _render(
        request,
        "signin.html",
        None,
        status=status,
        error=error,
        error_code=error_code,
        email=email,
        next=_local(next),
        captcha=challenge,
        login_token=login_token,
    )
    # Double-submit token: another site cannot post a sign-in into this browser (login CSRF).
    set_cookie(
        response, platform_of(request).settings, LOGIN_COOKIE, login_token, max_age=3600, path="/signin"
    )
    return response


@router.post("/signin", response_model=None)
async def signin(
    request: Request,
    email: str = Form(""),
    password: str = Form(""),
    captcha: str = Form(""),
    captcha_token: str = Form(""),
    next: str = Form(HOME),
    login_token: str = Form(""),
) -> Response:
    platform = platform_of(request)
    settings = platform.settings
    source = client_address(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    # Bytes: compare_digest refuses text with non-ASCII characters, and any text may arrive here.
    if not expected or not secrets.compare_digest(
        expected.encode(errors="replace"), login_token.encode(errors="replace")
    ):
        message = _("This sign-in form is out of date; please try again.")
        return _signin_page(request, status=400, error=message, email=email, next=next)
    async with platform.db.transaction() as session:
        if await captcha_needed(session, settings, source, email) and not await identity.spend_captcha(
            session, settings.secret_key, captcha_token, captcha
        ):
            # REQ: ACC-7 — after repeated failures the password is checked only with the picture solved.
            message = _("Those characters were not right; try this picture.")
            if not captcha:
                message = _("Type the characters in the picture, then sign in.")
            return _signin_page(request, status=400, error=message, email=email, next=next, captcha=True)
        try:
            account = await identity.authenticate(
                session, settings, email=email, password=password, source=source
            )
        except CarlinkError as error:
            captcha_now = await captcha_needed(session, settings, source, email)
            response = _signin_page(
                request,
                status=_form_status(error),
                error=error.message,
                error_code=error.code,
                email=email,
                next=next,
                captcha=captcha_now,
            )
            response.headers.update(error.headers)
            return response
        token, _web_session = await identity.start_web_session(session, account)
    signed_in = RedirectResponse(_local(next), status_code=303)
    set_session_cookie(signed_in, token, settings)
    return signed_in


@router.post("/signout")
async def signout(request: Request, csrf_token: str = Form("")) -> RedirectResponse:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is not None:
            check_csrf(caller, csrf_token)
            await identity.end_web_session(session, request.cookies[SESSION_COOKIE])
    response = RedirectResponse("/", status_code=303)
    delete_cookie(response, platform_of(request).settings, SESSION_COOKIE, path="/", samesite="lax")
    return response


# --- vehicles (VEH-2, VEH-3, VEH-9) and their status (RMT-2, RMT-3) ----------------------------------------


@router.get("/vehicles", response_model=None)
async def vehicles(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        entries = await garage.garage(session, caller.account)
        dealer = await identity.staff_role(session, caller.account, identity.DEALER)
        operator = await identity.staff_role(session, caller.account, identity.OPERATOR)
    return _render(
        request,
        "vehicles.html",
        caller,
        section="vehicles",
        entries=entries,
        is_dealer=dealer is not None,
        is_operator=operator is not None,
        done=request.query_params.get("done", ""),
    )


@router.get("/vehicles/{vin}", response_model=None)
async def vehicle(request: Request, vin: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
        if caller is None:
            return _to_signin(request)
        return await _vehicle_page(request, session, caller, vin)


async def _vehicle_page(
    request: Request, session: AsyncSession, caller: Caller, vin: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    entry = await _entry(session, caller, vin)
    readings = await telemetry.stored_overview(session, entry.vehicle)
    main_user = entry.is_main_user
    return _render(
        request,
        "vehicle.html",
        caller,
        status=status,
        section="vehicles",
        entry=entry,
        lines=overview_lines(readings),
        commands=_remote_services(entry),
        measurements=sorted(reading_label(key) for key in entry.model.measurements(entry.variant.engine)),
        users=await garage.users_of(session, entry.vehicle) if main_user else [],
        recent=await remote.recent_commands(session, entry, limit=8) if main_user else [],
        labels=labels_by_type(),
        states={state: _(text) for state, text in COMMAND_STATES.items()},
        **context,
    )


def _remote_services(entry: GarageEntry) -> list[CommandType]:
    """The model's remote services in the order the page offers them."""
    supported = entry.model.commands(entry.variant.engine)
    return [kind for kind in COMMAND_LABELS if kind in supported and kind is not CommandType.WAKE]


@router.get("/vehicles/{vin}/status", response_class=HTMLResponse)
async def vehicle_status(request: Request, vin: str) -> HTMLResponse:
    """The status block alone, fetched again by htmx when the event stream reports new values."""
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session)
        entry = await _entry(session, caller, vin)
        readings = await telemetry.stored_overview(session, entry.vehicle)
    return _render(request, "_status.html", caller, entry=entry, lines=overview_lines(readings))


@router.post("/vehicles/{vin}/people", response_model=None)
async def add_person(
    request: Request, vin: str, email: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """The main user adds a secondary user by the email address of their ID (VEH-2)."""
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        entry = await _entry(session, caller, vin)
        try:
            await garage.add_secondary_user(session, entry, email)
        except CarlinkError as error:
            return await _vehicle_page(
                request,
                session,
                caller,
                vin,
                status=_form_status(error),
                people_error=error.message,
                error_code=error.code,
                people_email=email,
            )
    return RedirectResponse(f"/vehicles/{entry.vehicle.vin}#people", status_code=303)


@router.post("/vehicles/{vin}/people/{account_id}/remove", response_model=None)
async def remove_person(
    request: Request,
    vin: str,
    account_id: int = Path(ge=1, le=MAX_ROW_ID),
    csrf_token: str = Form(""),
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        entry = await _entry(session, caller, vin)
        try:
            await garage.remove_user(session, entry, account_id)
        except CarlinkError as error:
            return await _vehicle_page(
                request,
                session,
                caller,
                vin,
                status=_form_status(error),
                people_error=error.message,
                error_code=error.code,
            )
    return RedirectResponse(f"/vehicles/{entry.vehicle.vin}#people", status_code=303)


class UnlockIn(BaseModel):
    pin: str = Field(max_length=8)


@router.post("/vehicles/{vin}/unlock", response_model=CommandOut, status_code=202)
async def unlock(request: Request, vin: str, body: UnlockIn) -> dict[str, Any]:
    """Unlock with the security PIN typed into the page (RMT-1); answers like the command API."""
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await _signed_in(request, session, request.headers.get(CSRF_HEADER, ""))
        entry = await garage.garage_entry(session, caller.account, vin)
        row = await remote.unlock_with_pin(
            session, platform.settings, platform.signer, entry, caller.account, body.pin, channel="portal"
        )
    await platform.dispatch(row)
    return command_out(row)


# --- Login & security ------------------------------------------------------------------------------------


@router.get("/account", response_model=None)
async def account(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _caller(request, session)
    if caller is None:
        return _to_signin(request)
    return _account_page(request, caller, notice=ACCOUNT_NOTICES.get(done))


def _account_page(request: Request, caller: Caller, *, status: int = 200, **context: Any) -> HTMLResponse:
    return _render(request, "account.html", caller, status=status, section="account", **context)


@router.post("/account/password", response_model=None)
async def change_password(
    request: Request,
    current: str = Form(""),
    new: str = Form(""),
    repeat: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        try:
            if new != repeat:
                raise CarlinkError("the two new passwords are not the same", code="passwords_differ")
            await identity.change_password(
                session, caller.account, current=current, new=new, keep=caller.web_session
            )
        except CarlinkError as error:
            return _account_page(
                request,
                caller,
                status=_form_status(error),
                password_error=error.message,
                error_code=error.code,
            )
    return RedirectResponse("/account?done=password", status_code=303)


@router.post("/account/language", response_model=None)
async def set_language(request: Request, language: str = Form(""), csrf_token: str = Form("")) -> Response:
    """The language of the portal and of carlink's mails for this ID; before it is set, the browser's."""
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        if language not in i18n.LANGUAGES:
            raise CarlinkError("choose one of the languages listed", code="unsupported_language")
        caller.account.locale = language
    return RedirectResponse("/account?done=language", status_code=303)


@router.post("/account/pin", response_model=None)
async def set_pin(
    request: Request, password: str = Form(""), pin: str = Form(""), csrf_token: str = Form("")
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        try:
            await garage.change_security_pin(session, caller.account, password=password, pin=pin)
        except CarlinkError as error:
            return _account_page(
                request, caller, status=_form_status(error), pin_error=error.message, error_code=error.code
            )
    return RedirectResponse("/account?done=pin", status_code=303)


# --- the end of an ID (ACC-5) and removing a car from the profile (ACC-6) ----------------------------------


@router.post("/account/delete", response_model=None)
async def delete_id(
    request: Request, password: str = Form(""), erase: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """REQ: ACC-5 — Delete my ID, confirmed with the password; the browser is signed out at once. Ticking
    "also erase my data" files the erasure request of PRV-5 in the same step."""
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        try:
            await identity.delete_id(session, caller.account, password=password, request_erasure=bool(erase))
        except CarlinkError as error:
            return _account_page(
                request, caller, status=_form_status(error), delete_error=error.message, error_code=error.code
            )
    response = _render(
        request, "message.html", None, title=_("Your ID is deleted"), message=_(DELETED_NOTICE)
    )
    delete_cookie(response, platform_of(request).settings, SESSION_COOKIE, path="/", samesite="lax")
    return response


@router.post("/vehicles/{vin}/remove", response_model=None)
async def remove_vehicle(request: Request, vin: str, csrf_token: str = Form("")) -> Response:
    """REQ: ACC-6 — the car leaves the profile (for the main user: with its secondary users); the ID stays."""
    async with platform_of(request).db.transaction() as session:
        caller = await _signed_in(request, session, csrf_token)
        entry = await _entry(session, caller, vin)
        await garage.leave_vehicle(session, entry)
    return RedirectResponse(f"{HOME}?done=removed", status_code=303)
