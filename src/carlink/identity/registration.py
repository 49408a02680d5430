"""The registration pages: from the dealer's invitation (/register/{token}), asking for the mail again
(/register/resend) and self-registration where the country allows it (/register) — ACC-2, ACC-3, ACC-4.

A successful registration signs the person in and shows their car. A link that was used, replaced or has
run out answers 410 with the form to ask for a new one.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import CarlinkError
from carlink.i18n import N_, _
from carlink.identity import invitations
from carlink.identity import service as identity
from carlink.identity.access import platform_of, set_cookie
from carlink.identity.models import Account
from carlink.identity.oidc import set_session_cookie
from carlink.partners import service as partners
from carlink.partners.models import Partner
from carlink.privacy import service as privacy
from carlink.store.portal import (
    current_caller,
    form_caller,
    form_number,
    refused,
    render,
    see_other,
)

router = APIRouter(include_in_schema=False)
HOME = "/vehicles"
# Double-submit token of the registration forms, as on the sign-in form: a registration signs the browser in,
# so another site must not be able to post one into this browser (login CSRF).
FORM_COOKIE = "carlink_register"
STALE_FORM = N_("This form is out of date; please try again.")


def _form_token(request: Request) -> str:
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


def _with_form_token(request: Request, response: HTMLResponse, token: str) -> HTMLResponse:
    set_cookie(response, platform_of(request).settings, FORM_COOKIE, token, max_age=3600, path="/register")
    return response


def _form_token_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(FORM_COOKIE, "")
    # Bytes: compare_digest refuses text with non-ASCII characters, and any text may arrive here.
    return bool(expected) and secrets.compare_digest(
        expected.encode(errors="replace"), sent.encode(errors="replace")
    )


def _choices(
    display_name: str,
    password: str,
    password_again: str,
    partner_id: str,
    policy: str,
    consent: str,
    policy_version: str = "",
) -> invitations.Choices:
    return invitations.Choices(
        display_name=display_name,
        password=password,
        password_again=password_again,
        partner_id=form_number(partner_id),
        policy_accepted=bool(policy),
        consent=bool(consent),
        policy_version=form_number(policy_version) if policy_version else None,
    )


def _signed_in(account: Account, token: str, target: str, request: Request) -> Response:
    response = see_other(target)
    set_session_cookie(response, token, platform_of(request).settings)
    return response


# --- asking for the mail again (ACC-4) ---------------------------------------------------------------------


def _resend_page(request: Request, *, status: int = 200, **context: Any) -> HTMLResponse:
    return render(request, "register/resend.html", None, status=status, section="", **context)


@router.get("/register/resend", response_model=None)
async def resend_form(request: Request) -> Response:
    return _resend_page(request)


@router.post("/register/resend", response_model=None)
async def resend(request: Request, email: str = Form("")) -> Response:
    platform = platform_of(request)
    try:
        async with platform.db.transaction() as session:
            await invitations.ask_again(session, platform.settings, email)
    except CarlinkError as error:
        response = _resend_page(request, **refused(error), email=email)
        response.headers.update(error.headers)
        return response
    return _resend_page(request, notice=_(invitations.RESEND_ANSWER))


# --- self-registration (ACC-3) -----------------------------------------------------------------------------


async def _self_page(
    request: Request, session: AsyncSession, *, status: int = 200, **context: Any
) -> HTMLResponse:
    settings = platform_of(request).settings
    groups: list[tuple[str, list[Partner]]] = [
        (code, await partners.partners_in(session, code)) for code in settings.self_registration_countries
    ]
    token = _form_token(request)
    page = render(
        request,
        "register/self.html",
        None,
        status=status,
        section="",
        countries=settings.self_registration_countries,
        partner_groups=[(code, found) for code, found in groups if found],
        entered=context.pop("entered", {}),
        form_token=token,
        policy_version=(await privacy.latest_policy(session)).version,
        **context,
    )
    return _with_form_token(request, page, token)


@router.get("/register", response_model=None)
async def self_form(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        if await current_caller(request, session) is not None:
            return see_other(HOME)
        return await _self_page(request, session)


@router.post("/register", response_model=None)
async def self_register(
    request: Request,
    email: str = Form(""),
    country: str = Form(""),
    display_name: str = Form(""),
    password: str = Form(""),
    password_again: str = Form(""),
    partner_id: str = Form(""),
    policy: str = Form(""),
    consent: str = Form(""),
    policy_version: str = Form(""),
    form_token: str = Form(""),
) -> Response:
    platform = platform_of(request)
    choices = _choices(display_name, password, password_again, partner_id, policy, consent, policy_version)
    async with platform.db.transaction() as session:
        try:
            if not _form_token_ok(request, form_token):
                raise CarlinkError(STALE_FORM, code="form_expired")
            account = await invitations.register_self(
                session,
                platform.settings,
                email=email,
                country=country,
                language=i18n.current(),  # the language the page was in
                choices=choices,
            )
        except CarlinkError as error:
            entered = {
                "email": email,
                "country": country,
                "display_name": display_name,
                "partner_id": choices.partner_id,
                "consent": choices.consent,
            }
            return await _self_page(
                request,
                session,
                **refused(error),
                entered=entered,
            )
        token, _ = await identity.start_web_session(session, account)
    return _signed_in(account, token, HOME, request)


# --- registering from the invitation (ACC-2, ACC-3) --------------------------------------------------------


def _gone_page(request: Request, error: CarlinkError) -> HTMLResponse:
    """REQ: ACC-4 — a used, replaced or expired link: say so, and offer to send a new one."""
    return render(
        request,
        "register/gone.html",
        None,
        status=error.status,
        section="",
        message=error.message,
        code=error.code,
    )


async def _invitation_page(
    request: Request, session: AsyncSession, token: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    welcome = await invitations.open_invitation(session, token)
    if await identity.find_account(session, welcome.invitation.email) is not None:
        # The address has an ID already: the person signs in with it and adds the car (no second ID).
        caller = await current_caller(request, session)
        return render(
            request,
            "register/add_car.html",
            caller,
            status=status,
            section="",
            welcome=welcome,
            token=token,
            vehicle_name=invitations.vehicle_name(welcome.vehicle),
            signed_in_as=caller.account.email if caller else None,
            **{key: value for key, value in context.items() if key == "error"},
        )
    form = _form_token(request)
    page = render(
        request,
        "register/invitation.html",
        None,
        status=status,
        section="",
        welcome=welcome,
        token=token,
        vehicle_name=invitations.vehicle_name(welcome.vehicle),
        entered=context.pop(
            "entered", {"partner_id": welcome.dealer.id, "display_name": welcome.sale.buyer_name}
        ),
        form_token=form,
        policy_version=(await privacy.latest_policy(session)).version,
        **context,
    )
    return _with_form_token(request, page, form)


@router.get("/register/{token}", response_model=None)
async def invitation_form(request: Request, token: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        try:
            return await _invitation_page(request, session, token)
        except CarlinkError as error:
            return _gone_page(request, error)


@router.post("/register/{token}", response_model=None)
async def accept(
    request: Request,
    token: str,
    display_name: str = Form(""),
    password: str = Form(""),
    password_again: str = Form(""),
    partner_id: str = Form(""),
    policy: str = Form(""),
    consent: str = Form(""),
    policy_version: str = Form(""),
    form_token: str = Form(""),
) -> Response:
    choices = _choices(display_name, password, password_again, partner_id, policy, consent, policy_version)
    async with platform_of(request).db.transaction() as session:
        try:
            if not _form_token_ok(request, form_token):
                raise CarlinkError(STALE_FORM, code="form_expired")
            account, vehicle = await invitations.accept(session, token, choices)
        except invitations.InvitationGone as error:
            return _gone_page(request, error)
        except CarlinkError as error:
            if error.status == 404:
                return _gone_page(request, error)
            entered = {
                "display_name": display_name,
                "partner_id": choices.partner_id,
                "consent": choices.consent,
            }
            try:
                return await _invitation_page(
                    request,
                    session,
                    token,
                    **refused(error),
                    entered=entered,
                )
            except CarlinkError as gone:
                return _gone_page(request, gone)
        web_token, _ = await identity.start_web_session(session, account)
    return _signed_in(account, web_token, f"/vehicles/{vehicle.vin}", request)


@router.post("/register/{token}/add-car", response_model=None)
async def add_car(request: Request, token: str, csrf_token: str = Form("")) -> Response:
    """The invited address has an ID: signed in with it, the person takes the car into that ID."""
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            vehicle = await invitations.claim_with_id(session, token, caller.account)
        except invitations.InvitationGone as error:
            return _gone_page(request, error)
        except CarlinkError as error:
            if error.status == 404:
                return _gone_page(request, error)
            return await _invitation_page(request, session, token, **refused(error))
    return see_other(f"/vehicles/{vehicle.vin}")
