"""The notify domain's data about a person, for the export and the erasure of an ID (PRV-5): the
notification centre and the emails sent to them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.identity.models import Account
from carlink.notify.models import Notification, OutboxEmail


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    notifications = await session.scalars(
        select(Notification)
        .where(Notification.account_id == account_id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
    )
    account = await session.get(Account, account_id)
    # Mails bound to no ID (an invitation, a mail to the address before the ID existed) by the address.
    to_person = OutboxEmail.account_id == account_id
    if account is not None:
        to_person = to_person | (OutboxEmail.to_address == account.email)
    mails = await session.scalars(
        select(OutboxEmail).where(to_person).order_by(OutboxEmail.created_at.desc(), OutboxEmail.id.desc())
    )
    return {
        "notifications": [
            {
                "title": n.title,
                "kind": n.kind,
                "link": n.link,
                "created_at": n.created_at.isoformat(),
                "read_at": n.read_at.isoformat() if n.read_at else None,
            }
            for n in notifications
        ],
        "emails": [
            {
                "to": m.to_address,
                "subject": m.subject,
                "template": m.template,
                "state": m.state,
                "created_at": m.created_at.isoformat(),
                "sent_at": m.sent_at.isoformat() if m.sent_at else None,
                "text": m.body_text,
            }
            for m in mails
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """Deletes the notification centre and every mail to the person, sent or waiting (by ID or address)."""
    account = await session.get(Account, account_id)
    await session.execute(delete(Notification).where(Notification.account_id == account_id))
    await session.execute(delete(OutboxEmail).where(OutboxEmail.account_id == account_id))
    if account is not None:
        await session.execute(delete(OutboxEmail).where(OutboxEmail.to_address == account.email))
    await session.flush()
