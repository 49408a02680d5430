"""What exists in each country (CON-6): connected services at all, the store's services, booking of
appointments and recalls, and where a person revokes consent. The store refuses where nothing is offered."""

from __future__ import annotations

from dataclasses import dataclass

from babel import Locale
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.catalog import service as catalog
from carlink.errors import Forbidden, NotFound
from carlink.partners import service as partners
from carlink.partners.models import Country, Partner


def country_name(code: str) -> str:
    """The country's name in the current request's language (Babel's territory names)."""
    names = Locale.parse(i18n.babel_locale()).territories
    return str(names.get(code.upper(), code.upper()))


@dataclass(frozen=True)
class CountryAvailability:
    code: str
    name: str
    connect_available: bool
    services: list[str]  # names of the store's services offered there, in the catalogue's order
    online_booking: bool
    recall_booking: bool
    privacy_contact: str | None  # None: consent is revoked through the dealer (PRV-3)
    partners: int

    @property
    def store_open(self) -> bool:
        return self.connect_available and bool(self.services)


async def _availability(session: AsyncSession, row: Country, partner_count: int) -> CountryAvailability:
    offered = await catalog.services_for(session, country=row.code) if row.connect_available else []
    return _of(row, offered, partner_count)


def _of(row: Country, offered: list[catalog.ServiceOffers], partner_count: int) -> CountryAvailability:
    return CountryAvailability(
        code=row.code,
        name=country_name(row.code),
        connect_available=row.connect_available,
        services=[item.name(i18n.current()) for item in offered],
        online_booking=row.online_booking,
        recall_booking=row.recall_booking,
        privacy_contact=row.privacy_contact,
        partners=partner_count,
    )


async def overview(session: AsyncSession) -> list[CountryAvailability]:
    """Every country carlink knows, by name."""
    counts = dict(
        (
            await session.execute(select(Partner.country, func.count(Partner.id)).group_by(Partner.country))
        ).all()
    )
    offered = await catalog.services_by_country(session)
    rows = [
        _of(row, offered.get(row.code, []) if row.connect_available else [], counts.get(row.code, 0))
        for row in await partners.countries(session)
    ]
    return sorted(rows, key=lambda row: row.name)


async def detail(session: AsyncSession, code: str) -> CountryAvailability:
    row = await partners.country(session, code) if code.strip().isalpha() else None
    if row is None:
        raise NotFound("carlink does not know this country", code="country_not_found")
    return await _availability(session, row, len(await partners.partners_in(session, row.code)))


async def store_open(session: AsyncSession, code: str) -> bool:
    row = await partners.country(session, code)
    return row is not None and (await _availability(session, row, 0)).store_open


async def require_store_open(session: AsyncSession, *codes: str) -> None:
    """REQ: CON-6 — a refusal, not an empty store, where connected services are not offered."""
    for code in dict.fromkeys(code.upper() for code in codes):
        if not await store_open(session, code):
            raise Forbidden(
                "Connected services are not available in %(country)s, so the store is closed there. Your "
                "partner can tell you what your car offers.",
                code="not_available_in_country",
                country=country_name(code),
            )
