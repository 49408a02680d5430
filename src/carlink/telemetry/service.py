"""Telemetry ingest and the stored overview: the last value of each key with its own timestamp (RMT-2)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.garage.models import Vehicle
from carlink.protocol.messages import TELEMETRY_KEYS, Telemetry
from carlink.telemetry.models import Measurement

MAX_VALUE_BYTES = 4096
# Keys a car withholds in privacy mode; the cloud neither stores nor shows them then (VEH-6, PRV-4).
PRIVATE_KEYS = frozenset({"location"})
# What the documented fields of a value may hold (docs/protocol.md "Telemetry"): a value that breaks one is
# dropped, so no page shows a battery at 140 % or a position off the globe (issue 9: no garbage stored).
RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("battery", "percent"): (0, 100),
    ("fuel", "percent"): (0, 100),
    ("range", "total_km"): (0, 10_000),
    ("range", "electric_km"): (0, 10_000),
    ("range", "fuel_km"): (0, 10_000),
    ("mileage", "km"): (0, 10_000_000),
    ("location", "lat"): (-90, 90),
    ("location", "lon"): (-180, 180),
    ("location", "heading"): (0, 360),
    ("charging", "target_soc"): (0, 100),
    ("charging", "power_kw"): (0, 1_000),
    ("climate", "target_temperature_c"): (-50, 100),
    ("climate", "remaining_min"): (0, 24 * 60),
    ("hotspot", "used_mb"): (0, 2**31 - 1),
    ("hotspot", "volume_mb"): (0, 2**31 - 1),
}
FLAGS = frozenset(
    {
        ("lock", "locked"),
        ("privacy", "enabled"),
        ("remote_access", "authorised"),
        ("charging", "plugged"),
        ("climate", "active"),
        ("parking", "brake_on"),
        ("parking", "light_on"),
        ("hotspot", "sharing"),
    }
)


def plausible(key: str, value: dict[str, Any]) -> bool:
    """Whether each documented field the value carries has its type and range (null: not known)."""
    for name, field in value.items():
        if field is None:
            continue
        if (key, name) in FLAGS and not isinstance(field, bool):
            return False
        limits = RANGES.get((key, name))
        if limits is not None and (
            isinstance(field, bool)
            or not isinstance(field, int | float)
            or not limits[0] <= field <= limits[1]
        ):
            return False
    return True


@dataclass(frozen=True)
class Reading:
    value: dict[str, Any]
    measured_at: dt.datetime


async def ingest(session: AsyncSession, vehicle: Vehicle, message: Telemetry) -> list[str]:
    """Stores the values of a telemetry message; returns the keys that changed the stored overview."""
    privacy = message.values.get("privacy", {}).get("enabled")
    privacy_on = vehicle.privacy_mode if not isinstance(privacy, bool) else privacy
    accepted = {
        key: value
        for key, value in message.values.items()
        if key in TELEMETRY_KEYS
        and not (privacy_on and key in PRIVATE_KEYS)
        and len(json.dumps(value)) <= MAX_VALUE_BYTES
        and plausible(key, value)
    }
    if not accepted:
        return []
    existing = {
        row.key: row
        for row in await session.scalars(
            select(Measurement).where(Measurement.vehicle_id == vehicle.id, Measurement.key.in_(accepted))
        )
    }
    now = utcnow()
    changed = []
    for key, value in accepted.items():
        row = existing.get(key)
        if row is None:
            session.add(
                Measurement(
                    vehicle_id=vehicle.id, key=key, value=value, measured_at=message.at, received_at=now
                )
            )
        elif row.measured_at <= message.at:  # late, re-sent messages never overwrite newer values
            row.value = value
            row.measured_at = message.at
            row.received_at = now
        else:
            continue
        changed.append(key)
    return changed


async def stored_overview(session: AsyncSession, vehicle: Vehicle) -> dict[str, Reading]:
    rows = await session.scalars(select(Measurement).where(Measurement.vehicle_id == vehicle.id))
    overview = {row.key: Reading(row.value, row.measured_at) for row in rows}
    if vehicle.privacy_mode:
        for key in PRIVATE_KEYS:
            overview.pop(key, None)
    return overview
