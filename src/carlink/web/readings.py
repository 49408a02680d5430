"""How the stored overview reads on a page: a label and one line of words per telemetry key (RMT-2).

The values come from the car, so every wording falls back to a plain listing when a value has an
unexpected shape instead of failing the page. Labels and wordings are in the request's language
(carlink.i18n), numbers in its format.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from babel.numbers import format_decimal

from carlink import i18n
from carlink.i18n import N_, _
from carlink.telemetry.service import Reading

LABELS = {
    "lock": N_("Lock"),
    "doors": N_("Doors and lids"),
    "battery": N_("Battery"),
    "fuel": N_("Fuel"),
    "range": N_("Range"),
    "charging": N_("Charging"),
    "climate": N_("Climate"),
    "mileage": N_("Mileage"),
    "tyres": N_("Tyre pressure"),
    "parking": N_("Parking"),
    "location": N_("Last location"),
    "privacy": N_("Privacy mode"),
    "remote_access": N_("Remote access"),
    "hotspot": N_("In-car WiFi hotspot"),
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
    "front_left": N_("front left"),
    "front_right": N_("front right"),
    "rear_left": N_("rear left"),
    "rear_right": N_("rear right"),
    "lid_front": N_("front lid"),
    "lid_rear": N_("rear lid"),
    "sunroof": N_("sunroof"),
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
    known = LABELS.get(key)
    return _(known) if known else key.replace("_", " ").capitalize()


def _part(key: str) -> str:
    known = PARTS.get(key)
    return _(known) if known else key.replace("_", " ")


def _km(value: int) -> str:
    return _("%(km)s km", km=i18n.number(value))


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
    return text[:200] or _("no value")


def _lock(value: Mapping[str, Any]) -> str:
    return _("Locked") if _flag(value["locked"]) else _("Unlocked")


def _doors(value: Mapping[str, Any]) -> str:
    open_parts = [_part(part) for part, is_open in value["open"].items() if _flag(is_open)]
    if not open_parts:
        return _("All closed")
    return _("Open: %(parts)s", parts=_(", ").join(open_parts))


def _percent(value: Mapping[str, Any]) -> str:
    return _("%(percent)s %%", percent=i18n.number(int(value["percent"])))


def _range(value: Mapping[str, Any]) -> str:
    total, electric, fuel = (int(value.get(k) or 0) for k in ("total_km", "electric_km", "fuel_km"))
    if electric and fuel:
        return _(
            "%(total)s (%(electric)s electric, %(fuel)s on fuel)",
            total=_km(total),
            electric=_km(electric),
            fuel=_km(fuel),
        )
    return _km(total)


def _charging(value: Mapping[str, Any]) -> str:
    if not _flag(value["plugged"]):
        return _("Not plugged in")
    status = str(value.get("status", ""))
    power = float(value.get("power_kw") or 0)
    if status == "CHARGING" and power:
        words = _("Charging at %(power)s kW", power=i18n.number(power))
    elif status == "CHARGING":
        words = _("Charging")
    elif status == "CHARGING_COMPLETED":
        words = _("Charging complete")
    else:
        words = _("Plugged in")
    parts = [words]
    if value.get("mode") == "DIRECT":
        parts.append(_("direct charging"))
    if value.get("target_soc") is not None:
        parts.append(_("target %(percent)s %%", percent=i18n.number(int(value["target_soc"]))))
    return _(", ").join(parts)


def _climate(value: Mapping[str, Any]) -> str:
    temperature = i18n.number(float(value["target_temperature_c"]))
    if _flag(value["active"]):
        return _("On, %(temperature)s °C", temperature=temperature)
    return _("Off (set to %(temperature)s °C)", temperature=temperature)


def _mileage(value: Mapping[str, Any]) -> str:
    return _km(int(value["km"]))


def _tyres(value: Mapping[str, Any]) -> str:
    parts = []
    for wheel, reading in value.items():
        bar, target = float(reading["bar"]), reading.get("target_bar")
        pressure = format_decimal(bar, format="#,##0.0", locale=i18n.babel_locale())
        if target is not None and bar < float(target) - 0.3:
            parts.append(_("%(wheel)s %(bar)s bar (low)", wheel=_part(wheel), bar=pressure))
        else:
            parts.append(_("%(wheel)s %(bar)s bar", wheel=_part(wheel), bar=pressure))
    return _(", ").join(parts)


def _parking(value: Mapping[str, Any]) -> str:
    brake_on = _flag(value["brake_on"])
    if _flag(value.get("light_on", False)):
        return (
            _("Parking brake on, parking light on") if brake_on else _("Parking brake off, parking light on")
        )
    return _("Parking brake on") if brake_on else _("Parking brake off")


def _location(value: Mapping[str, Any]) -> str:
    lat, lon = float(value["lat"]), float(value["lon"])
    return f"{abs(lat):.5f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.5f}° {'E' if lon >= 0 else 'W'}"


def _hotspot(value: Mapping[str, Any]) -> str:
    """REQ: CON-3 — sharing on or off, and the data used of the package's volume."""
    used = i18n.number(int(value.get("used_mb") or 0))
    volume = value.get("volume_mb")
    if volume:
        usage = _("%(used)s MB of %(volume)s MB used", used=used, volume=i18n.number(int(volume)))
    else:
        usage = _("%(used)s MB used", used=used)
    if value.get("package") is None:
        return _("No data package: only the app reaches the car")
    if _flag(value["sharing"]):
        return _("Sharing on, %(usage)s", usage=usage)
    return _("Sharing off, %(usage)s", usage=usage)


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
