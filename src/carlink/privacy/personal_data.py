"""The privacy domain's data about a person, for the export and the erasure of an ID (PRV-5): the policy
versions accepted, the consent decisions and the erasure requests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.partners.models import Partner
from carlink.privacy.models import ConsentEvent, ErasureRequest, PolicyAcceptance


async def export(session: AsyncSession, account_id: int) -> dict[str, Any]:
    acceptances = await session.scalars(
        select(PolicyAcceptance)
        .where(PolicyAcceptance.account_id == account_id)
        .order_by(PolicyAcceptance.accepted_at)
    )
    consents = list(
        await session.scalars(
            select(ConsentEvent).where(ConsentEvent.account_id == account_id).order_by(ConsentEvent.at)
        )
    )
    partner_ids = {c.partner_id for c in consents if c.partner_id is not None}
    names: dict[int, str] = {}
    if partner_ids:
        found = await session.execute(select(Partner.id, Partner.name).where(Partner.id.in_(partner_ids)))
        names = {found_id: name for found_id, name in found}
    requests = await session.scalars(
        select(ErasureRequest).where(ErasureRequest.account_id == account_id).order_by(ErasureRequest.id)
    )
    return {
        "policy_acceptances": [
            {"version": a.version, "accepted_at": a.accepted_at.isoformat(), "channel": a.channel}
            for a in acceptances
        ],
        "consents": [
            {
                "granted": c.granted,
                "partner": names.get(c.partner_id) if c.partner_id is not None else None,
                "channel": c.channel,
                "at": c.at.isoformat(),
            }
            for c in consents
        ],
        "erasure_requests": [
            {"id": r.id, "state": r.state, "requested_at": r.requested_at.isoformat()} for r in requests
        ],
    }


async def erase(session: AsyncSession, account_id: int) -> None:
    """Deletes acceptances and consent decisions; the erasure request itself stays (it names only the id)."""
    await session.execute(delete(PolicyAcceptance).where(PolicyAcceptance.account_id == account_id))
    await session.execute(delete(ConsentEvent).where(ConsentEvent.account_id == account_id))
    await session.flush()
