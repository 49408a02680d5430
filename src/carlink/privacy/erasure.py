"""The erasure request (PRV-5, ACC-5): the person asks, a dealer (for their own customers) or an operator
completes it, and completing really removes or anonymises the person's data in every domain.

requested -> completed | rejected (carlink.privacy.rules). Each step writes a PrivacyAuditEntry that
names ids only, so the trail survives the erasure without keeping what was erased.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from babel.dates import format_date
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound
from carlink.fod import personal_data as fod_data
from carlink.garage import personal_data as garage_data
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.i18n import N_
from carlink.identity import personal_data as identity_data
from carlink.identity import service as identity
from carlink.identity.models import Account, StaffRole
from carlink.incar import personal_data as incar_data
from carlink.notify import personal_data as notify_data
from carlink.notify.service import notify, send_email
from carlink.partners import personal_data as partners_data
from carlink.partners import service as partners
from carlink.privacy import personal_data as privacy_data
from carlink.privacy import rules
from carlink.privacy.models import ErasureRequest
from carlink.privacy.service import audit, lock_account
from carlink.remote import personal_data as remote_data
from carlink.security import personal_data as security_data
from carlink.store import personal_data as store_data
from carlink.store.models import Contract
from carlink.store.rules import ENTITLED

Eraser = Callable[[AsyncSession, int], Awaitable[None]]


# Every domain's erase, in an order that works: mails and unlinked sales are found by the old address, so
# the identity (which changes the address) comes last.
ERASERS: tuple[tuple[str, Eraser], ...] = (
    ("notify", notify_data.erase),
    ("store", store_data.erase),
    ("fod", fod_data.erase),
    ("security", security_data.erase),
    ("partners", partners_data.erase),
    ("incar", incar_data.erase),
    ("remote", remote_data.erase),
    ("garage", garage_data.erase),
    ("privacy", privacy_data.erase),
    ("identity", identity_data.erase),
)


@dataclass(frozen=True)
class BlockingVehicle:
    """A car the person is still the main user of, with contracts running (STO-9): hand it over first."""

    vin: str
    name: str


async def blocking_vehicles(session: AsyncSession, account_id: int) -> list[BlockingVehicle]:
    now = utcnow()
    main_of = await garage.main_user_vehicle_ids(session, {account_id})
    if not main_of:
        return []
    rows = await session.scalars(
        select(Vehicle)
        .where(
            Vehicle.id.in_(main_of),
            Vehicle.id.in_(
                select(Contract.vehicle_id).where(Contract.state.in_(list(ENTITLED)), Contract.ends_at > now)
            ),
        )
        .order_by(Vehicle.vin)
    )
    return [BlockingVehicle(vin=v.vin, name=v.custom_name or v.model_key) for v in rows]


def blocked_error(blockers: list[BlockingVehicle]) -> CarlinkError:
    cars = ", ".join(f"{b.name} ({b.vin})" for b in blockers)
    return Conflict(
        "You are still the main user of %(cars)s, which has services running. Services stay with the car, "
        "so first remove the car from your profile or hand it over; then ask for the erasure again.",
        code="erasure_blocked_by_vehicle",
        cars=cars,
    )


async def open_request(session: AsyncSession, account_id: int) -> ErasureRequest | None:
    return await session.scalar(
        select(ErasureRequest).where(
            ErasureRequest.account_id == account_id, ErasureRequest.state == rules.REQUESTED
        )
    )


async def request_erasure(session: AsyncSession, account: Account, *, password: str) -> ErasureRequest:
    """The person asks for their ID and data to be erased (PRV-5); the password confirms it is them."""
    await identity.confirm_password(
        session, account, password, Forbidden("that is not your password", code="password_wrong")
    )
    return await _open(session, account, actor_id=account.id, actor_role="person")


async def request_after_deletion(session: AsyncSession, account: Account) -> ErasureRequest:
    """REQ: ACC-5, PRV-5 — the person deleting their ID ticked "Also erase my data": the request opens in
    the same unit of work. The caller (identity.delete_id) has just checked the password."""
    return await _open(
        session, account, actor_id=account.id, actor_role="person", detail={"with_deletion": True}
    )


async def open_for_address(session: AsyncSession, staff: StaffRole, email: str) -> ErasureRequest:
    """An operator opens the request of an ID by its address: for a person who deleted their ID (and can no
    longer sign in to ask) and wrote to the privacy contact."""
    try:
        address = identity.normalise_email(email)
    except CarlinkError:
        address = ""
    account = await session.scalar(select(Account).where(Account.email == address)) if address else None
    if account is None or address.endswith("@erased.invalid"):
        raise CarlinkError(
            "No ID has this email address (an erased ID no longer has one). Check the address in the mail.",
            code="erasure_address_unknown",
        )
    return await _open(session, account, actor_id=staff.account_id, actor_role=staff.role)


async def _open(
    session: AsyncSession,
    account: Account,
    *,
    actor_id: int,
    actor_role: str,
    detail: dict[str, Any] | None = None,
) -> ErasureRequest:
    """The person's open request, or a new one. Two submits at once give one request: the person's row is
    held (PostgreSQL; SQLite's units of work take turns anyway) until this unit of work ends."""
    await lock_account(session, account.id)
    blockers = await blocking_vehicles(session, account.id)
    if blockers:
        raise blocked_error(blockers)
    existing = await open_request(session, account.id)
    if existing is not None:
        return existing
    preferred = await partners.preferred_partner(session, account.id)
    row = ErasureRequest(account_id=account.id, partner_id=preferred.id if preferred else None)
    session.add(row)
    await session.flush()
    if account.deleted_at is None:
        # A deleted ID can no longer sign in to read its notification centre.
        await notify(
            session,
            account_id=account.id,
            kind="erasure_requested",
            # Stored as text, in the person's profile language (an operator may be the one asking).
            title=i18n.translate(account.locale, N_("We received your request to erase your ID")),
            body=i18n.translate(
                account.locale, N_("Your dealer or our team will complete it and confirm by email.")
            ),
            link="/privacy#erasure",
            dedupe_key=f"erasure-{row.id}-requested",
        )
    await audit(
        session,
        actor_id=actor_id,
        actor_role=actor_role,
        action="erasure.requested",
        subject_account_id=account.id,
        erasure_request_id=row.id,
        detail=detail,
    )
    return row


async def _dealer_sees(session: AsyncSession, partner_id: int, request: ErasureRequest) -> bool:
    # Only the partner the person had chosen when asking: a sale recorded later by another dealer must
    # not give that dealer the power to erase the person.
    return request.partner_id == partner_id


async def requests_for(
    session: AsyncSession, staff: StaffRole, *, state: str | None = None
) -> list[ErasureRequest]:
    """Operators see every request; a dealer those of the people who chose it as their partner."""
    query = select(ErasureRequest).order_by(ErasureRequest.requested_at.desc(), ErasureRequest.id.desc())
    if state:
        query = query.where(ErasureRequest.state == state)
    if staff.role == identity.OPERATOR:
        return list(await session.scalars(query.limit(500)))
    assert staff.partner_id is not None
    query = query.where(ErasureRequest.partner_id == staff.partner_id)
    return list(await session.scalars(query.limit(500)))


async def request_for(
    session: AsyncSession, staff: StaffRole, request_id: int, *, lock: bool = False
) -> ErasureRequest:
    """One request, if this staff member may see it; another dealer's customer is a plain 404.

    `lock` holds the row (PostgreSQL) so that two people completing it at once take turns."""
    found = (
        await session.get(ErasureRequest, request_id, with_for_update=lock)
        if 0 < request_id < 2**31
        else None
    )
    if (
        found is not None
        and staff.role != identity.OPERATOR
        and (staff.partner_id is None or not await _dealer_sees(session, staff.partner_id, found))
    ):
        found = None
    if found is None:
        raise NotFound("no such erasure request", code="erasure_request_not_found")
    return found


async def complete(session: AsyncSession, staff: StaffRole, request_id: int) -> ErasureRequest:
    """Erases the person's data in every domain and tells them at their old address. Completing a
    completed request again changes nothing."""
    request = await request_for(session, staff, request_id, lock=True)
    if request.state == rules.COMPLETED:
        return request
    rules.check_move(request.state, rules.COMPLETED)
    # A car may have come back into the profile since the request: the rule holds at completion too.
    blockers = await blocking_vehicles(session, request.account_id)
    if blockers:
        raise blocked_error(blockers)
    account = await session.get(Account, request.account_id)
    old_email = account.email if account is not None else ""
    language = account.locale if account is not None else "en"
    # All or nothing: a domain refusing (a CarlinkError, which the unit of work commits) must not leave
    # half an erasure behind, so the domains run in a savepoint that a refusal rolls back. The attempt is
    # written first, outside it: a refused attempt stays in the trail, and the write opens the transaction
    # on SQLite, whose driver starts one only at a write and would otherwise commit at the savepoint's end.
    await _audit_step(session, staff, request, "erasure.started", {})
    async with session.begin_nested():
        for domain, erase in ERASERS:
            await erase(session, request.account_id)
            await _audit_step(session, staff, request, "erasure.domain_erased", {"domain": domain})
    request.state = rules.COMPLETED
    request.decided_at = utcnow()
    request.decided_by = staff.account_id
    request.decided_role = staff.role
    await _audit_step(session, staff, request, "erasure.completed", {})
    if old_email and not old_email.endswith("@erased.invalid"):
        # Written after the erasure (which deletes the person's mails) and without the account id, so
        # nothing ties the mail to the anonymous account.
        await send_email(
            session,
            to=old_email,
            language=language,
            template="erasure_completed",
            context={
                "requested_on": _day(request.requested_at, language),
                "request_number": request_number(request),
            },
            dedupe_key=f"erasure-{request.id}-completed",
        )
    await session.flush()
    return request


async def reject(session: AsyncSession, staff: StaffRole, request_id: int, *, reason: str) -> ErasureRequest:
    request = await request_for(session, staff, request_id, lock=True)
    if request.state == rules.REJECTED:
        return request
    rules.check_move(request.state, rules.REJECTED)
    reason = reason.strip()[:500]
    if not reason:
        raise CarlinkError("say why the request is rejected", code="erasure_reason_missing")
    request.state = rules.REJECTED
    request.reason = reason
    request.decided_at = utcnow()
    request.decided_by = staff.account_id
    request.decided_role = staff.role
    await _audit_step(session, staff, request, "erasure.rejected", {})
    return request


async def _audit_step(
    session: AsyncSession, staff: StaffRole, request: ErasureRequest, action: str, detail: dict[str, Any]
) -> None:
    await audit(
        session,
        actor_id=staff.account_id,
        actor_role=staff.role,
        action=action,
        subject_account_id=request.account_id,
        erasure_request_id=request.id,
        detail=detail,
    )


def request_number(request: ErasureRequest) -> str:
    return f"ER-{request.id:06d}"


def _day(moment: dt.datetime, language: str) -> str:
    """The day as the mail's reader writes dates (the mail is in the person's language)."""
    return format_date(moment.date(), format="medium", locale=i18n.babel_locale(language))
