"""Vehicle list items and overviews of the maker's app API (reference doc §3.1-§3.3), from a garage entry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from carlink.garage.service import GarageEntry
from carlink.telemetry.service import Reading

from . import commands, measurements
from .measurements import Snapshot, iso

# Countries that drive on the left, where cars are right-hand drive (modelType.steeringPosition).
RIGHT_HAND_DRIVE = frozenset({"GB", "IE", "JP", "AU", "NZ", "ZA", "IN", "HK", "SG", "MY", "TH", "CY", "MT"})


def vehicle_item(entry: GarageEntry) -> dict[str, Any]:
    """A1 list item; the clients require vin, modelName, modelType.engine/.year and connect."""
    vehicle, model, variant = entry.vehicle, entry.model, entry.variant
    item: dict[str, Any] = {
        "vin": vehicle.vin,
        "modelName": variant.name,
        "modelType": {
            "code": variant.code,
            "year": str(vehicle.model_year),
            "steeringPosition": "RIGHT_HAND_DRIVE"
            if vehicle.country in RIGHT_HAND_DRIVE
            else "LEFT_HAND_DRIVE",
            "body": variant.body,
            "generation": model.generation_code,
            "revision": 1,
            "model": model.line.upper(),
            "engine": variant.engine.value,
        },
        "systemInfo": {"privacyScope": model.privacy_scope.value.upper()},
        "exteriorColorName": vehicle.color,
        "color": {"primaryExteriorColor": vehicle.color_hex},
        "connect": vehicle.online,
        "pairingCodeV2": entry.membership.pairing_code,
    }
    # Only a real custom name: the clients name the car customName whenever the key is present, even "".
    if vehicle.custom_name:
        item["customName"] = vehicle.custom_name
    return item


def snapshot(entry: GarageEntry, readings: Mapping[str, Reading]) -> Snapshot:
    return Snapshot(
        readings=readings,
        supported=entry.model.measurements(entry.variant.engine),
        online=entry.vehicle.online,
        privacy_mode=entry.vehicle.privacy_mode,
        remote_access=commands.remote_access(entry),
        pairing_code=entry.membership.pairing_code,
    )


def overview(
    entry: GarageEntry,
    readings: Mapping[str, Reading],
    *,
    measurement_keys: list[str],
    command_keys: list[str],
    now: dt.datetime,
) -> dict[str, Any]:
    """A2-A4: the vehicle with one measurement per `mf` key and one capability per `cf` key."""
    body = vehicle_item(entry)
    body["timestamp"] = iso(now)
    body["commands"] = commands.capabilities(command_keys, entry)
    body["measurements"] = measurements.measurements(measurement_keys, snapshot(entry, readings))
    return body
