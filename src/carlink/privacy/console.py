"""The privacy pages of the consoles: the operator's overview, country contact addresses and email
revocations (PRV-2, PRV-3), policy publishing (PRV-1) and erasure requests (PRV-5); the dealer's erasure
requests of their own customers. Included into privacy.pages' router."""

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.errors import CarlinkError, NotFound
from carlink.i18n import N_, _
from carlink.identity import service as identity
from carlink.identity.access import Caller, platform_of
from carlink.identity.models import Account, StaffRole
from carlink.partners import service as partners
from carlink.privacy import erasure, rules, service
from carlink.privacy.models import ErasureRequest
from carlink.store.portal import (
    form_number,
    form_status,
    render,
    see_other,
    staff_caller,
    to_signin,
)

router = APIRouter(include_in_schema=False)

OPERATOR_NOTICES = {
    "contact": N_("The contact address is saved."),
    "revoked": N_("The revocation by email is recorded."),
    "published": N_("The new version is published; every ID was told in its notification centre."),
    "completed": N_("Erased: the person's data is removed and a confirmation mail is on its way."),
    "rejected": N_("The request is rejected."),
    "opened": N_("The erasure request is open; complete it once you have checked the mail."),
}


def _notice(done: str) -> str:
    """The notice a redirect's ``done`` names, in the reader's language ("" for none)."""
    return _(OPERATOR_NOTICES[done]) if done in OPERATOR_NOTICES else ""


async def _staff(
    request: Request, session: AsyncSession, role: str, csrf_token: str | None
) -> tuple[Caller, StaffRole]:
    found = await staff_caller(request, session, role, csrf_token)
    if found is None:
        raise _SignIn()
    return found


class _SignIn(Exception):
    """A console page asked for by someone not signed in: send them to the sign-in page."""


# --- the operator's overview ------------------------------------------------------------------------------


@router.get("/operator", response_model=None)
async def overview(request: Request) -> Response:
    async with platform_of(request).db.transaction() as session:
        try:
            caller = (await _staff(request, session, identity.OPERATOR, None))[0]
        except _SignIn:
            return to_signin(request)
        open_requests = await session.scalar(
            select(func.count()).select_from(ErasureRequest).where(ErasureRequest.state == rules.REQUESTED)
        )
        without_contact = await service.countries_without_contact(session)
        latest = await service.latest_policy(session)
    return render(
        request,
        "operator/index.html",
        caller,
        section="",
        console_section="home",
        open_requests=int(open_requests or 0),
        without_contact=without_contact,
        latest=latest,
    )


# --- country contacts and email revocations (PRV-2, PRV-3) ------------------------------------------------


async def _contacts_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    return render(
        request,
        "operator/privacy_contacts.html",
        caller,
        status=status,
        section="",
        console_section="contacts",
        countries=await partners.countries(session),
        **extra,
    )


@router.get("/operator/privacy-contacts", response_model=None)
async def contacts(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        try:
            caller = (await _staff(request, session, identity.OPERATOR, None))[0]
        except _SignIn:
            return to_signin(request)
        return await _contacts_page(request, session, caller, notice=_notice(done))


@router.post("/operator/privacy-contacts/revocations", response_model=None)
async def record_email_revocation(
    request: Request, email: str = Form(""), csrf_token: str = Form("")
) -> Response:
    """An operator records a revocation that arrived at a country's contact address (channel "email")."""
    async with platform_of(request).db.transaction() as session:
        caller = (await _staff(request, session, identity.OPERATOR, csrf_token))[0]
        person = await identity.find_account(session, email)
        if person is None:
            return await _contacts_page(
                request,
                session,
                caller,
                status=400,
                revocation_error=_("No ID has this email address. Check the address in the mail."),
                revocation_email=email[:254],
            )
        await service.record_consent(
            session, person.id, granted=False, channel="email", recorded_by=caller.account.id
        )
        await service.audit(
            session,
            actor_id=caller.account.id,
            actor_role=identity.OPERATOR,
            action="consent.revoked_by_email",
            subject_account_id=person.id,
        )
    return see_other("/operator/privacy-contacts?done=revoked")


@router.post("/operator/privacy-contacts/{code}", response_model=None)
async def set_contact(
    request: Request, code: str, contact: str = Form(""), csrf_token: str = Form("")
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = (await _staff(request, session, identity.OPERATOR, csrf_token))[0]
        try:
            await service.set_privacy_contact(
                session, code, contact, actor_id=caller.account.id, actor_role=identity.OPERATOR
            )
        except NotFound:
            raise  # an unknown country in the address is a missing page, not a refused form
        except CarlinkError as error:
            return await _contacts_page(
                request,
                session,
                caller,
                status=form_status(error),
                contact_error=error.message,
                error_code=error.code,
                error_country=code.strip().upper()[:2],
                error_value=contact[:254],
            )
    return see_other(f"/operator/privacy-contacts?done=contact#country-{code.strip().upper()[:2]}")


# --- the policy (PRV-1) -----------------------------------------------------------------------------------


async def _policy_page(
    request: Request, session: AsyncSession, caller: Caller, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    latest = await service.latest_policy(session)
    text = service.policy_text(latest, "en")
    rows = "\n".join(
        " | ".join(row.get(k, "") for k in ("data", "purpose", "basis", "kept")) for row in text["rows"]
    )
    form = {"title": text.get("title", ""), "summary": text.get("summary", ""), "rows": rows}
    form.update(extra.pop("form", {}))
    return render(
        request,
        "operator/policy.html",
        caller,
        status=status,
        section="",
        console_section="policy",
        latest=latest,
        versions=await service.policy_versions(session),
        form=form,
        **extra,
    )


@router.get("/operator/policy", response_model=None)
async def policy(request: Request, done: str = "") -> Response:
    async with platform_of(request).db.transaction() as session:
        try:
            caller = (await _staff(request, session, identity.OPERATOR, None))[0]
        except _SignIn:
            return to_signin(request)
        return await _policy_page(request, session, caller, notice=_notice(done))


@router.post("/operator/policy", response_model=None)
async def publish(
    request: Request,
    title: str = Form(""),
    summary: str = Form(""),
    rows: str = Form(""),
    based_on: str = Form(""),
    csrf_token: str = Form(""),
) -> Response:
    async with platform_of(request).db.transaction() as session:
        caller = (await _staff(request, session, identity.OPERATOR, csrf_token))[0]
        try:
            await service.publish_policy(
                session,
                caller.account,
                based_on=form_number(based_on),
                title=title,
                summary=summary,
                rows=rules.parse_policy_rows(rows),
            )
        except CarlinkError as error:
            return await _policy_page(
                request,
                session,
                caller,
                status=form_status(error),
                policy_error=error.message,
                error_code=error.code,
                form={"title": title, "summary": summary, "rows": rows},
            )
    return see_other("/operator/policy?done=published")


# --- erasure requests (PRV-5): operators all, dealers their own customers' -------------------------------


async def _erasure_page(
    request: Request,
    session: AsyncSession,
    caller: Caller,
    staff: StaffRole,
    *,
    state: str = "",
    status: int = 200,
    **extra: Any,
) -> HTMLResponse:
    chosen = state if state in rules.ERASURE_STATES else ""
    rows = await erasure.requests_for(session, staff, state=chosen or None)
    ids = {row.account_id for row in rows}
    emails: dict[int, str] = {}
    if ids:
        found = await session.execute(select(Account.id, Account.email).where(Account.id.in_(ids)))
        emails = {found_id: email for found_id, email in found}
    dealer = staff.role == identity.DEALER
    return render(
        request,
        "dealer/erasure_requests.html" if dealer else "operator/erasure_requests.html",
        caller,
        status=status,
        section="",
        console_section="erasure",
        requests=rows,
        emails=emails,
        state=chosen,
        base_path="/dealer/erasure-requests" if dealer else "/operator/erasure-requests",
        number=erasure.request_number,
        **extra,
    )


async def _list(request: Request, role: str, state: str, done: str) -> Response:
    async with platform_of(request).db.transaction() as session:
        try:
            caller, staff = await _staff(request, session, role, None)
        except _SignIn:
            return to_signin(request)
        return await _erasure_page(request, session, caller, staff, state=state, notice=_notice(done))


async def _decide(
    request: Request, role: str, request_id: str, csrf_token: str, action: str, reason: str
) -> Response:
    base = "/dealer/erasure-requests" if role == identity.DEALER else "/operator/erasure-requests"
    async with platform_of(request).db.transaction() as session:
        caller, staff = await _staff(request, session, role, csrf_token)
        number = form_number(request_id)
        try:
            if action == "complete":
                await erasure.complete(session, staff, number)
            else:
                await erasure.reject(session, staff, number, reason=reason)
        except NotFound:
            raise
        except CarlinkError as error:
            return await _erasure_page(
                request,
                session,
                caller,
                staff,
                status=form_status(error),
                erasure_error=error.message,
                error_code=error.code,
            )
    return see_other(f"{base}?done={'completed' if action == 'complete' else 'rejected'}")


@router.get("/operator/erasure-requests", response_model=None)
async def operator_requests(request: Request, state: str = "", done: str = "") -> Response:
    return await _list(request, identity.OPERATOR, state, done)


@router.post("/operator/erasure-requests/open", response_model=None)
async def operator_open(request: Request, email: str = Form(""), csrf_token: str = Form("")) -> Response:
    """Opens the request of an ID by its address, for a person who deleted the ID and wrote to the privacy
    contact (they can no longer sign in to ask); audit-logged like a request the person makes."""
    async with platform_of(request).db.transaction() as session:
        caller, staff = await _staff(request, session, identity.OPERATOR, csrf_token)
        try:
            await erasure.open_for_address(session, staff, email)
        except CarlinkError as error:
            return await _erasure_page(
                request,
                session,
                caller,
                staff,
                status=form_status(error),
                open_error=error.message,
                error_code=error.code,
                open_email=email[:254],
            )
    return see_other("/operator/erasure-requests?done=opened")


@router.post("/operator/erasure-requests/{request_id}/complete", response_model=None)
async def operator_complete(request: Request, request_id: str, csrf_token: str = Form("")) -> Response:
    return await _decide(request, identity.OPERATOR, request_id, csrf_token, "complete", "")


@router.post("/operator/erasure-requests/{request_id}/reject", response_model=None)
async def operator_reject(
    request: Request, request_id: str, reason: str = Form(""), csrf_token: str = Form("")
) -> Response:
    return await _decide(request, identity.OPERATOR, request_id, csrf_token, "reject", reason)


@router.get("/dealer/erasure-requests", response_model=None)
async def dealer_requests(request: Request, state: str = "", done: str = "") -> Response:
    return await _list(request, identity.DEALER, state, done)


@router.post("/dealer/erasure-requests/{request_id}/complete", response_model=None)
async def dealer_complete(request: Request, request_id: str, csrf_token: str = Form("")) -> Response:
    return await _decide(request, identity.DEALER, request_id, csrf_token, "complete", "")


@router.post("/dealer/erasure-requests/{request_id}/reject", response_model=None)
async def dealer_reject(
    request: Request, request_id: str, reason: str = Form(""), csrf_token: str = Form("")
) -> Response:
    return await _decide(request, identity.DEALER, request_id, csrf_token, "reject", reason)
