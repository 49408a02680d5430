"""Use cases of the notify domain: write an email into the outbox (delivery is in notify.delivery) and an
entry into the person's notification centre (ACC-8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import NotFound
from carlink.notify.emails import render
from carlink.notify.models import Notification, OutboxEmail


async def send_email(
    session: AsyncSession,
    *,
    to: str,
    language: str,
    template: str,
    context: dict[str, Any],
    dedupe_key: str,
    account_id: int | None = None,
    link: str = "",
) -> OutboxEmail:
    """Renders the mail now (it records what the person was told) and queues it; idempotent per key.

    A mail to an ID also appears in that person's notification centre (ACC-8), with `link` to the page
    it is about."""
    existing = await session.scalar(select(OutboxEmail).where(OutboxEmail.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    mail = render(template, language, context)
    row = OutboxEmail(
        dedupe_key=dedupe_key,
        account_id=account_id,
        to_address=to,
        language=mail.language,
        template=template,
        subject=mail.subject,
        body_text=mail.text,
    )
    session.add(row)
    if account_id is not None:
        await notify(
            session,
            account_id=account_id,
            kind=template,
            title=mail.subject,
            body=mail.text,
            link=link,
            dedupe_key=dedupe_key,
        )
    await session.flush()
    return row


async def notify(
    session: AsyncSession,
    *,
    account_id: int,
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    dedupe_key: str,
) -> Notification:
    """Adds an entry to the person's notification centre; idempotent per key."""
    existing = await session.scalar(select(Notification).where(Notification.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    row = Notification(
        account_id=account_id, kind=kind, title=title[:300], body=body, link=link[:300], dedupe_key=dedupe_key
    )
    session.add(row)
    await session.flush()
    return row


# --- the notification centre (ACC-8) ------------------------------------------------------------------------

PAGE_SIZE = 200


async def notifications_of(
    session: AsyncSession, account_id: int, *, unread_only: bool = False, limit: int = PAGE_SIZE
) -> list[Notification]:
    """Newest first."""
    query = select(Notification).where(Notification.account_id == account_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    query = query.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def unread_count(session: AsyncSession, account_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.account_id == account_id, Notification.read_at.is_(None))
    )
    return int(count or 0)


async def mark_read(session: AsyncSession, account_id: int, notification_id: int) -> Notification:
    found = await session.get(Notification, notification_id) if 0 < notification_id < 2**31 else None
    if found is None or found.account_id != account_id:
        raise NotFound("no such notification", code="notification_not_found")
    if found.read_at is None:
        found.read_at = utcnow()
        await session.flush()
    return found


async def mark_all_read(session: AsyncSession, account_id: int) -> int:
    """One UPDATE, however many there are; answers how many were unread."""
    result = await session.execute(
        update(Notification)
        .where(Notification.account_id == account_id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
