"""Use cases of the notify domain: write an email into the outbox (delivery is in notify.delivery)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.notify.emails import render
from carlink.notify.models import OutboxEmail


async def send_email(
    session: AsyncSession,
    *,
    to: str,
    language: str,
    template: str,
    context: dict[str, Any],
    dedupe_key: str,
    account_id: int | None = None,
) -> OutboxEmail:
    """Renders the mail now (it records what the person was told) and queues it; idempotent per key."""
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
    await session.flush()
    return row
