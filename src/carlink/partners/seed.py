"""The countries carlink ships with (CON-6, PRV-2, PRV-3). `ensure_countries` adds missing ones and never
changes a row an operator has edited, so it runs at every start.

Contact addresses are invented (example.com); a deployment replaces them with its own (`carlink countries`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.partners.models import Country


@dataclass(frozen=True)
class CountrySeed:
    code: str
    contact: bool = True  # a privacy contact address exists; without one, revocation goes via the dealer
    online_booking: bool = False
    recall_booking: bool = False
    connect_available: bool = True


COUNTRIES: tuple[CountrySeed, ...] = (
    # Europe
    CountrySeed("DE", online_booking=True, recall_booking=True),
    CountrySeed("AT", online_booking=True, recall_booking=True),
    CountrySeed("CH", online_booking=True, recall_booking=True),
    CountrySeed("NL", online_booking=True, recall_booking=True),
    CountrySeed("GB", online_booking=True),
    CountrySeed("BE", online_booking=True),
    CountrySeed("LU"),
    CountrySeed("FR", online_booking=True),
    CountrySeed("IT"),
    CountrySeed("ES"),
    CountrySeed("PT"),
    CountrySeed("IE"),
    CountrySeed("DK"),
    CountrySeed("SE", online_booking=True),
    CountrySeed("NO", online_booking=True),
    CountrySeed("FI"),
    CountrySeed("IS"),
    CountrySeed("PL"),
    CountrySeed("CZ"),
    CountrySeed("SK"),
    CountrySeed("HU"),
    CountrySeed("SI"),
    CountrySeed("HR"),
    CountrySeed("RO"),
    CountrySeed("BG"),
    CountrySeed("GR"),
    CountrySeed("EE"),
    CountrySeed("LV"),
    CountrySeed("LT"),
    CountrySeed("CY"),
    CountrySeed("MT"),
    CountrySeed("TR"),
    # Asia and Pacific
    CountrySeed("JP", online_booking=True, recall_booking=True),
    CountrySeed("KR"),
    CountrySeed("TW"),
    CountrySeed("SG"),
    CountrySeed("HK"),
    CountrySeed("MY"),
    CountrySeed("TH"),
    CountrySeed("AU", online_booking=True),
    CountrySeed("NZ"),
    # Americas
    CountrySeed("US", online_booking=True, recall_booking=True),
    CountrySeed("CA", online_booking=True),
    CountrySeed("BR"),
    # Middle East and Africa
    CountrySeed("IL"),
    CountrySeed("ZA"),
    # Served through the dealer: no privacy contact address (PRV-3), and fewer connected services.
    CountrySeed("AE", contact=False),
    CountrySeed("SA", contact=False),
    CountrySeed("QA", contact=False),
    CountrySeed("KW", contact=False),
    CountrySeed("MX", contact=False),
    CountrySeed("CL", contact=False),
    CountrySeed("IN", contact=False, connect_available=False),
)


def privacy_contact(code: str) -> str:
    return f"privacy-{code.lower()}@example.com"


async def ensure_countries(session: AsyncSession) -> int:
    """Adds the countries that are missing; returns how many were added."""
    present = set(await session.scalars(select(Country.code)))
    added = 0
    for seed in COUNTRIES:
        if seed.code in present:
            continue
        session.add(
            Country(
                code=seed.code,
                privacy_contact=privacy_contact(seed.code) if seed.contact else None,
                online_booking=seed.online_booking,
                recall_booking=seed.recall_booking,
                connect_available=seed.connect_available,
            )
        )
        added += 1
    await session.flush()
    return added
