"""Hands cars what they need to reach the cloud: broker URL, their account, the keys they trust, and where
to fetch signed data packages with the package root they pin (FOD, OTA)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.errors import NotFound
from carlink.fod import service as packages
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
    manifest: dict[str, Any] = {
        "broker_url": broker_url,
        "prefix": settings.mqtt_topic_prefix,
        "api_url": settings.base_url,
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
    # Root v1, as a factory pins it; the car walks the chain from there (docs/protocol.md). Without package
    # keys yet, the car pins the cloud's root v1 at its first download.
    with contextlib.suppress(NotFound):
        manifest["trusted_root"] = (await packages.root_version(session, 1)).envelope
    return manifest
