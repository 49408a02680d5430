"""Hands cars what they need to reach the cloud: broker URL, their account, the keys they trust."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.garage.models import Vehicle
from carlink.gateway.credentials import car_password
from carlink.remote.models import CommandSigningKey
from carlink.settings import Settings


async def fleet_manifest(
    session: AsyncSession, settings: Settings, *, broker_url: str, vins: Sequence[str]
) -> dict[str, Any]:
    """The manifest `carlink sim` reads (carlink.sim.fleet.Manifest)."""
    keys = await session.scalars(select(CommandSigningKey))
    vehicles = await session.scalars(select(Vehicle).where(Vehicle.vin.in_(list(vins))).order_by(Vehicle.id))
    return {
        "broker_url": broker_url,
        "prefix": settings.mqtt_topic_prefix,
        "trusted_keys": {key.kid: key.public_key for key in keys},
        "cars": [
            {
                "vin": vehicle.vin,
                "variant_code": vehicle.variant_code,
                "password": car_password(settings.secret_key, vehicle.vin),
                "country": vehicle.country,
            }
            for vehicle in vehicles
        ],
    }
