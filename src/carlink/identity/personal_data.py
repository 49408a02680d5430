"""The identity domain's data about a person, for the export and the erasure of an ID (PRV-5, ACC-5).

The export never holds a password or PIN hash, a session or token hash; the erasure keeps the account row
(orders and the audit trail point at its id) but makes it anonymous and unusable, and frees the address.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.identity.models import (
    Account,
    AuthorizationCode,
    Invitation,
    InvitationRequest,
    LoginTransaction,
    RefreshToken,
    StaffRole,
    WebSession,
)

# Not an argon2 hash: no password can ever match it (verify_secret answers False).
UNUSABLE_SECRET = "!erased"


def erased_email(account_id: int) -> str:
    return f"erased-{account_id}@erased.invalid"


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    account = await session.get(Account, account_id)
    if account is None:
        return {}
    roles = await session.scalars(select(StaffRole).where(StaffRole.account_id == account_id))
    sessions = await session.scalars(select(WebSession).where(WebSession.account_id == account_id))
    tokens = await session.scalars(select(RefreshToken).where(RefreshToken.account_id == account_id))
    invitations = await session.scalars(select(Invitation).where(Invitation.account_id == account_id))
    return {
        "id": {
            "account_id": account.id,
            "email": account.email,
            "name": account.display_name,
            "country": account.country,
            "language": account.locale,
            "security_pin_set": account.pin_hash is not None,
            "created_at": account.created_at.isoformat(),
        },
        "staff_roles": [{"role": r.role, "partner_id": r.partner_id} for r in roles],
        "signed_in_browsers": [
            {"since": s.created_at.isoformat(), "until": s.expires_at.isoformat()} for s in sessions
        ],
        "connected_apps": [
            {
                "client_id": t.client_id,
                "since": t.created_at.isoformat(),
                "last_used_at": t.last_used_at.isoformat() if t.last_used_at else None,
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in tokens
        ],
        "invitations": [
            {"partner_id": i.partner_id, "sent_at": i.created_at.isoformat(), "country": i.country}
            for i in invitations
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """Anonymises the account and ends every way in: sessions, apps, sign-ins in progress, staff roles."""
    account = await session.get(Account, account_id)
    if account is None:
        return
    old_email = account.email
    now = utcnow()
    new_email = erased_email(account_id)
    account.email = new_email
    account.display_name = ""
    account.password_hash = UNUSABLE_SECRET
    account.pin_hash = None
    account.login_failures = 0
    account.login_locked_until = None
    if account.deleted_at is None:
        account.deleted_at = now
    for table in (WebSession, RefreshToken, AuthorizationCode, LoginTransaction, StaffRole):
        await session.execute(delete(table).where(table.account_id == account_id))
    # A sign-in in progress names the address typed, before any account is known.
    await session.execute(
        delete(LoginTransaction).where(func.lower(LoginTransaction.username) == old_email.lower())
    )
    # An invitation names the address it went to: keep the record of the invitation, not the address. An
    # open one is withdrawn, so its link can no longer make an ID for the erased address.
    for invitation in await session.scalars(
        select(Invitation).where((Invitation.account_id == account_id) | (Invitation.email == old_email))
    ):
        invitation.email = new_email
        if invitation.used_at is None and invitation.replaced_at is None and invitation.cancelled_at is None:
            invitation.cancelled_at = now
    await session.execute(delete(InvitationRequest).where(InvitationRequest.email == old_email))
    await session.flush()
