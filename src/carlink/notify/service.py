"""Use cases of the notify domain: write an email into the outbox (delivery is in notify.delivery) and an
entry into the person's notification centre (ACC-8)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
