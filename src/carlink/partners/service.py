"""Use cases of the partners domain: the directory per country and the person's preferred partner (PAR-1)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import NotFound
from carlink.partners.models import Country, Partner, PartnerStaff, PreferredPartner


async def country(session: AsyncSession, code: str) -> Country | None:
    """The country of an ISO 3166 alpha-2 code; None for anything else."""
    code = code.strip().upper()
    if len(code) != 2 or not (code.isascii() and code.isalpha()):
        return None
    return await session.get(Country, code)


async def countries(session: AsyncSession) -> list[Country]:
    return list(await session.scalars(select(Country).order_by(Country.code)))


async def partners_in(session: AsyncSession, country_code: str) -> list[Partner]:
    rows = await session.scalars(
        select(Partner)
        .where(Partner.country == country_code.strip().upper())
        .order_by(Partner.city, Partner.name)
    )
    return list(rows)


async def partner(session: AsyncSession, partner_id: int) -> Partner:
    found = await session.get(Partner, partner_id) if 0 < partner_id < 2**31 else None
    if found is None:
        raise NotFound("no such partner", code="partner_not_found")
    return found


async def staff_of(session: AsyncSession, partner_id: int) -> list[PartnerStaff]:
    rows = await session.scalars(
        select(PartnerStaff).where(PartnerStaff.partner_id == partner_id).order_by(PartnerStaff.name)
    )
    return list(rows)


async def preferred_partner(session: AsyncSession, account_id: int) -> Partner | None:
    chosen = await session.get(PreferredPartner, account_id)
    return await session.get(Partner, chosen.partner_id) if chosen is not None else None


async def choose_partner(session: AsyncSession, account_id: int, partner_id: int) -> Partner:
    """Sets (or changes) the person's preferred partner (PAR-1)."""
    chosen_partner = await partner(session, partner_id)
    row = await session.get(PreferredPartner, account_id)
    if row is None:
        session.add(PreferredPartner(account_id=account_id, partner_id=partner_id))
    else:
        row.partner_id = partner_id
        row.chosen_at = utcnow()
    await session.flush()
    return chosen_partner
