"""The person's privacy page (PRV-1..3, PRV-5): the policy in force and which version they accepted, their
consent to data exchange with their partner and where else to revoke it, the export download and the
erasure request. The operator and dealer consoles' privacy pages are in privacy.console."""

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import CarlinkError
from carlink.i18n import N_, _
from carlink.identity.access import Caller, platform_of
from carlink.privacy import console, erasure, export, service
from carlink.store.portal import (
    current_caller,
    form_caller,
    form_number,
    form_status,
    render,
    see_other,
    to_signin,
)

router = APIRouter(include_in_schema=False)
router.include_router(console.router)

NOTICES = {
    "accepted": N_("Thank you: you accepted the current privacy policy."),
    "granted": N_("Your consent is recorded. Your partner may now exchange data with us about you."),
    "revoked": N_("Your consent is withdrawn. Your partner no longer receives data about you from us."),
    "erasure": N_(
        "Your erasure request is recorded. Your dealer or our team will complete it and write to you."
    ),
}


async def privacy_context(session: AsyncSession, caller: Caller) -> dict[str, Any]:
    """Everything /privacy shows; also used to show the page again with a refusal."""
    account = caller.account
    latest = await service.latest_policy(session)
    accepted = await service.latest_acceptance(session, account.id)
    return {
        "policy": latest,
        "text": service.policy_text(latest, i18n.current()),
        "accepted": accepted,
        "needs_acceptance": accepted is None or accepted.version < latest.version,
        "consent": await service.consent_state(session, account.id),
        "history": await service.consent_history(session, account.id),
        "route": await service.revocation_route(session, account),
        "open_erasure": await erasure.open_request(session, account.id),
        "blockers": await erasure.blocking_vehicles(session, account.id),
    }


async def _privacy_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    context = await privacy_context(session, caller)
    context.update(extra)
    return render(request, "privacy/index.html", caller, status=status, section="privacy", **context)


@router.get("/privacy", response_model=None)
async def privacy(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        notice = _(NOTICES[done]) if done in NOTICES else ""
        return await _privacy_page(request, session, caller, notice=notice)


@router.get("/privacy/policy/{version}", response_model=None)
async def policy(request: Request, version: str) -> Response:
    """Any published version, readable by anyone (earlier versions stay readable, PRV-1)."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        shown = await service.policy_version(session, form_number(version))
        latest = await service.latest_policy(session)
        language = i18n.current()
        versions = await service.policy_versions(session)
    return render(
        request,
        "privacy/policy.html",
        caller,
        section="privacy",
        policy=shown,
        text=service.policy_text(shown, language),
        latest=latest,
        versions=versions,
    )


@router.post("/privacy/accept", response_model=None)
async def accept(request: Request, version: str = Form(""), csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await service.accept_policy(session, caller.account.id, form_number(version))
        except CarlinkError as error:
            return await _privacy_page(
                request,
                session,
                caller,
                status=form_status(error),
                policy_error=error.message,
                error_code=error.code,
            )
    return see_other("/privacy?done=accepted")


@router.post("/privacy/consent", response_model=None)
async def consent(request: Request, decision: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Grants or revokes the consent to data exchange with the chosen partner (PRV-2), channel "portal"."""
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        if decision not in ("grant", "revoke"):
            return await _privacy_page(
                request,
                session,
                caller,
                status=400,
                consent_error=_("Choose to give or to withdraw your consent."),
            )
        await service.record_consent(
            session, caller.account.id, granted=decision == "grant", channel="portal"
        )
    return see_other(f"/privacy?done={'granted' if decision == 'grant' else 'revoked'}#consent")


@router.get("/privacy/export", response_model=None)
async def download(request: Request) -> Response:
    """The ZIP of everything about the person (PRV-5), as a download."""
    async with platform_of(request).db.transaction() as session:
        caller = await current_caller(request, session)
        if caller is None:
            return to_signin(request)
        name, body = await export.export_for(session, caller.account.id)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@router.post("/privacy/erasure", response_model=None)
async def request_erasure(request: Request, password: str = Form(""), csrf_token: str = Form("")) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = await form_caller(request, session, csrf_token)
        try:
            await erasure.request_erasure(session, caller.account, password=password)
        except CarlinkError as error:
            return await _privacy_page(
                request,
                session,
                caller,
                status=form_status(error),
                erasure_error=error.message,
                erasure_code=error.code,
            )
    return see_other("/privacy?done=erasure#erasure")
