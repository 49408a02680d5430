"""GET /api/v1/vehicles/{vin}/connectivity: the guide in the caller's language, with its facts as keys."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from carlink.connectivity.countries import country_name
from carlink.connectivity.guidance import Guide
from carlink.connectivity.service import connectivity_of
from carlink.garage.schemas import ConnectionOut
from carlink.identity.access import platform_of, require_caller

router = APIRouter(prefix="/api/v1/vehicles", tags=["connectivity"])


class ItemOut(BaseModel):
    key: str = Field(description="stable, e.g. roaming.enable")
    kind: str = Field(description="step, fact, warning or state (a look of the connection symbol)")
    text: str
    network: str | None = Field(None, description="for a state: the network the car reports then")


class SectionOut(BaseModel):
    key: str = Field(description="connections, roaming, data_off, symbol, privacy or traffic")
    title: str
    items: list[ItemOut]


class ConnectivityOut(BaseModel):
    vin: str
    model_key: str
    model_year: int
    connection: ConnectionOut
    privacy_mode: bool
    country: str = Field(description="ISO 3166 alpha-2 code the guide is for")
    home_country: str = Field(description="the caller's own country (ISO 3166 alpha-2)")
    abroad: bool = Field(description="true: the guide is for a trip to `country`")
    country_name: str
    country_known: bool = Field(description="false: we have no data for this country")
    connections: list[str] = Field(description="esim, inserted_sim, phone_hotspot")
    esim_only: bool
    roaming_automatic: bool
    roaming_menu: str
    data_menu: str
    privacy_scope: str
    symbol_position: str
    roaming_available: bool | None
    traffic_coverage: str | None = Field(description="full, partial, none; null when the country is unknown")
    esim_plan_offered: bool | None
    sections: list[SectionOut]


def guide_out(guide: Guide) -> list[dict[str, Any]]:
    return [
        {
            "key": section.key,
            "title": str(section.title),
            "items": [
                {
                    "key": item.key,
                    "kind": item.kind.value,
                    "text": str(item.text),
                    "network": item.network.value if item.network else None,
                }
                for item in section.items
            ],
        }
        for section in guide.sections
    ]


@router.get("/{vin}/connectivity", response_model=ConnectivityOut)
async def connectivity(
    vin: str,
    request: Request,
    country: str | None = Query(None, description="ISO 3166 alpha-2; the caller's own country if omitted"),
) -> dict[str, Any]:
    """How this car goes online, roams, switches data off, what its symbol and privacy mode mean, and what
    real-time traffic needs — for the model, its model year and the country (CON-1, CON-2, CON-5, VEH-9)."""
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        view = await connectivity_of(session, caller.account, vin, country)
    vehicle, guide = view.entry.vehicle, view.guide
    last_seen: dt.datetime | None = vehicle.last_seen_at
    return {
        "vin": vehicle.vin,
        "model_key": vehicle.model_key,
        "model_year": vehicle.model_year,
        "connection": {"online": vehicle.online, "network": vehicle.network, "last_seen_at": last_seen},
        "privacy_mode": vehicle.privacy_mode,
        "country_name": country_name(guide.country_code),
        **guide.facts(),
        "sections": guide_out(guide),
    }
