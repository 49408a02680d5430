"""The use case behind the page and the API: a person's car and its guide for a country."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from carlink.connectivity.countries import checked_country
from carlink.connectivity.guidance import Guide, build_guide
from carlink.errors import CarlinkError, vehicle_not_found
from carlink.garage import service as garage
from carlink.garage.service import GarageEntry
from carlink.identity.models import Account


@dataclass(frozen=True)
class ConnectivityView:
    entry: GarageEntry
    guide: Guide
    home_country: str  # the car's home market; the guide may be for another country (a trip abroad)


async def connectivity_of(
    session: AsyncSession, account: Account, raw_vin: str, country: str | None = None
) -> ConnectivityView:
    """The guide for one of the person's cars (owner or secondary user; anyone else gets the same 404 as an
    unknown VIN), for `country` or else the person's own country."""
    try:
        entry = await garage.garage_entry(session, account, raw_vin)
    except CarlinkError as error:
        if error.code == "invalid_vin":  # a malformed VIN is just another car that is not in the garage
            raise vehicle_not_found(raw_vin[:17]) from error
        raise
    # The car's home market: its eSIM plan is sold there, whoever of its people looks.
    home = entry.vehicle.country.upper()
    chosen = checked_country(country) if country else home
    guide = build_guide(entry.model, model_year=entry.vehicle.model_year, country=chosen, home_country=home)
    return ConnectivityView(entry, guide, home)
