"""How the stored overview reads on a page: a label and one line of words per telemetry key (RMT-2).

The values come from the car, so every wording falls back to a plain listing when a value has an
unexpected shape instead of failing the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from carlink.telemetry.service import Reading

LABELS = {
    "lock": "Lock",
    "doors": "Doors and lids",
    "battery": "Battery",
    "fuel": "Fuel",
    "range": "Range",
    "charging": "Charging",
    "climate": "Climate",
    "mileage": "Mileage",
    "tyres": "Tyre pressure",
    "parking": "Parking",
    "location": "Last location",
    "privacy": "Privacy mode",
    "remote_access": "Remote access",
    "hotspot": "In-car WiFi hotspot",
}
ORDER = (
    "lock",
    "doors",
    "battery",
    "fuel",
    "range",
    "charging",
    "climate",
    "mileage",
    "tyres",
    "parking",
    "hotspot",
    "location",
)
# Shown with the connection at the top of the status, from the vehicle's own record.
SHOWN_AS_MODES = frozenset({"privacy", "remote_access"})
PARTS = {
    "front_left": "front left",
    "front_right": "front right",
    "rear_left": "rear left",
    "rear_right": "rear right",
    "lid_front": "front lid",
    "lid_rear": "rear lid",
    "sunroof": "sunroof",
}


@dataclass(frozen=True)
class Line:
    key: str
    label: str
    text: str
    measured_at: dt.datetime


def overview_lines(readings: Mapping[str, Reading]) -> list[Line]:
    known = [key for key in ORDER if key in readings]
    others = sorted(key for key in readings if key not in ORDER and key not in SHOWN_AS_MODES)
    return [
        Line(key, label(key), describe(key, readings[key].value), readings[key].measured_at)
        for key in known + others
    ]


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " ").capitalize())


def describe(key: str, value: Mapping[str, Any]) -> str:
    wording = _WORDINGS.get(key)
    if wording is not None:
        try:
            return wording(value)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass
    return _listing(value)


def _listing(value: Mapping[str, Any]) -> str:
    text = ", ".join(f"{str(k).replace('_', ' ')}: {v}" for k, v in value.items())
    return text[:200] or "no value"


def _lock(value: Mapping[str, Any]) -> str:
    return "Locked" if _flag(value["locked"]) else "Unlocked"


def _doors(value: Mapping[str, Any]) -> str:
    open_parts = [
        PARTS.get(part, part.replace("_", " ")) for part, is_open in value["open"].items() if _flag(is_open)
    ]
    return "Open: " + ", ".join(open_parts) if open_parts else "All closed"


def _percent(value: Mapping[str, Any]) -> str:
    return f"{int(value['percent'])} %"


def _range(value: Mapping[str, Any]) -> str:
    total, electric, fuel = (int(value.get(k) or 0) for k in ("total_km", "electric_km", "fuel_km"))
    if electric and fuel:
        return f"{total} km ({electric} km electric, {fuel} km on fuel)"
    return f"{total} km"


def _charging(value: Mapping[str, Any]) -> str:
    if not _flag(value["plugged"]):
        return "Not plugged in"
    status = str(value.get("status", ""))
    words = {"CHARGING": "Charging", "CHARGING_COMPLETED": "Charging complete"}.get(status, "Plugged in")
    parts = [words]
    power = float(value.get("power_kw") or 0)
    if status == "CHARGING" and power:
        parts[0] += f" at {power:g} kW"
    if value.get("mode") == "DIRECT":
        parts.append("direct charging")
    if value.get("target_soc") is not None:
        parts.append(f"target {int(value['target_soc'])} %")
    return ", ".join(parts)


def _climate(value: Mapping[str, Any]) -> str:
    temperature = float(value["target_temperature_c"])
    if _flag(value["active"]):
        return f"On, {temperature:g} °C"
    return f"Off (set to {temperature:g} °C)"


def _mileage(value: Mapping[str, Any]) -> str:
    return f"{int(value['km']):,} km"


def _tyres(value: Mapping[str, Any]) -> str:
    parts = []
    for wheel, reading in value.items():
        bar, target = float(reading["bar"]), reading.get("target_bar")
        low = " (low)" if target is not None and bar < float(target) - 0.3 else ""
        parts.append(f"{PARTS.get(wheel, wheel)} {bar:.1f} bar{low}")
    return ", ".join(parts)


def _parking(value: Mapping[str, Any]) -> str:
    text = "Parking brake on" if _flag(value["brake_on"]) else "Parking brake off"
    return text + (", parking light on" if _flag(value.get("light_on", False)) else "")


def _location(value: Mapping[str, Any]) -> str:
    lat, lon = float(value["lat"]), float(value["lon"])
    return f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.5f}° {'E' if lon >= 0 else 'W'}"


def _hotspot(value: Mapping[str, Any]) -> str:
    """REQ: CON-3 — sharing on or off, and the data used of the package's volume."""
    used = int(value.get("used_mb") or 0)
    volume = value.get("volume_mb")
    usage = f"{used:,} MB of {int(volume):,} MB used" if volume else f"{used:,} MB used"
    if value.get("package") is None:
        return "No data package: only the app reaches the car"
    return ("Sharing on, " if _flag(value["sharing"]) else "Sharing off, ") + usage


def _flag(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise TypeError("expected true or false")
    return raw


_WORDINGS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "lock": _lock,
    "doors": _doors,
    "battery": _percent,
    "fuel": _percent,
    "range": _range,
    "charging": _charging,
    "climate": _climate,
    "mileage": _mileage,
    "tyres": _tyres,
    "parking": _parking,
    "location": _location,
    "hotspot": _hotspot,
}
