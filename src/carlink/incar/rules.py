"""Pure rules of in-car ID login: roles, what a visitor may do, and the bounds of profiles and settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from carlink.errors import CarlinkError
from carlink.i18n import N_

MAIN = "main"
SECONDARY = "secondary"
VISITOR = "visitor"
ROLES = (MAIN, SECONDARY, VISITOR)

# Service settings that follow the ID into any car with ID login (VEH-7), with their upper bounds.
FAVOURITES = "favourites"
RADIO_STATIONS = "radio_stations"
WEATHER_PLACES = "weather_places"
SERVICE_LIMITS: dict[str, int] = {FAVOURITES: 50, RADIO_STATIONS: 30, WEATHER_PLACES: 10}
# Shown with `_` where a page names one entry of the kind.
SERVICE_NAMES: dict[str, str] = {
    FAVOURITES: N_("favourite"),
    RADIO_STATIONS: N_("radio station"),
    WEATHER_PLACES: N_("weather place"),
}
LABEL_MAX = 80

# A wrong security code typed in the car by someone who is not a user of it (VEH-8): every fifth wrong code
# in a row locks it, for an hour the first time and twice as long each time after, up to a day, so guessing
# the 10,000 codes takes years rather than weeks.
CODE_FAILURES_BEFORE_LOCK = 5
CODE_LOCK_MINUTES = 60
CODE_LOCK_MAX_MINUTES = 24 * 60

CLIMATE_MODES = ("auto", "eco", "comfort", "max")
POSITION_RANGE = (0, 100)
TEMPERATURE_RANGE = (15.0, 30.0)


def may_use_timers(role: str) -> bool:
    """Scheduled remote services need at least a secondary-user assignment (VEH-8)."""
    return role in (MAIN, SECONDARY)


def code_locked(locked_until: dt.datetime | None, now: dt.datetime) -> bool:
    return locked_until is not None and locked_until > now


def code_lock_minutes(failures_in_a_row: int) -> int | None:
    """How long the code locks after this many wrong codes in a row; None: not yet."""
    if failures_in_a_row <= 0 or failures_in_a_row % CODE_FAILURES_BEFORE_LOCK:
        return None
    locks = failures_in_a_row // CODE_FAILURES_BEFORE_LOCK
    minutes: int = CODE_LOCK_MINUTES * 2 ** min(locks - 1, 10)
    return min(minutes, CODE_LOCK_MAX_MINUTES)


@dataclass(frozen=True)
class Profile:
    """Seat, mirror and steering positions (0-100, the car's own scale) and climate; None = car default."""

    seat_position: int | None = None
    mirror_position: int | None = None
    steering_position: int | None = None
    climate_temperature_c: float | None = None
    climate_mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _position(values: dict[str, Any], key: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    low, high = POSITION_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CarlinkError(
            "%(setting)s is a whole number %(low)s-%(high)s",
            code="invalid_profile",
            setting=key,
            low=low,
            high=high,
        )
    return value


def checked_profile(values: dict[str, Any]) -> Profile:
    """A profile from a car or a client; unknown keys and values out of range are refused."""
    unknown = set(values) - set(Profile.__dataclass_fields__)
    if unknown:
        raise CarlinkError(
            "unknown profile settings: %(settings)s",
            code="invalid_profile",
            settings=", ".join(sorted(unknown)),
        )
    temperature = values.get("climate_temperature_c")
    if temperature is not None:
        low_t, high_t = TEMPERATURE_RANGE
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise CarlinkError("the climate temperature is a number", code="invalid_profile")
        if not low_t <= temperature <= high_t:
            raise CarlinkError(
                "the climate temperature is %(low)s-%(high)s °C",
                code="invalid_profile",
                low=f"{low_t:g}",
                high=f"{high_t:g}",
            )
        temperature = round(float(temperature) * 2) / 2
    mode = values.get("climate_mode")
    if mode is not None and mode not in CLIMATE_MODES:
        raise CarlinkError(
            "the climate mode is one of %(modes)s", code="invalid_profile", modes=", ".join(CLIMATE_MODES)
        )
    return Profile(
        seat_position=_position(values, "seat_position"),
        mirror_position=_position(values, "mirror_position"),
        steering_position=_position(values, "steering_position"),
        climate_temperature_c=temperature,
        climate_mode=mode,
    )


def checked_label(kind: str, raw: Any) -> str:
    if kind not in SERVICE_NAMES:
        raise CarlinkError('unknown service setting "%(kind)s"', code="invalid_service_settings", kind=kind)
    if not isinstance(raw, str):
        raise CarlinkError("each entry is a name", code="invalid_service_settings")
    label = " ".join(raw.split())
    if not label:
        raise CarlinkError("enter a name for the new entry", code="invalid_service_settings")
    if len(label) > LABEL_MAX:
        raise CarlinkError(
            "a name has at most %(limit)s characters", code="invalid_service_settings", limit=LABEL_MAX
        )
    return label


def checked_service_list(kind: str, raw: Any) -> list[str]:
    """One kind's full list: names cleaned, duplicates dropped (first wins), at most its limit."""
    if not isinstance(raw, list):
        raise CarlinkError("%(kind)s is a list of names", code="invalid_service_settings", kind=kind)
    labels: list[str] = []
    for item in raw:
        label = checked_label(kind, item)
        if label.casefold() not in (known.casefold() for known in labels):
            labels.append(label)
    limit = SERVICE_LIMITS[kind]
    if len(labels) > limit:
        raise CarlinkError(
            "at most %(limit)s entries of %(kind)s fit in the car",
            code="too_many_service_settings",
            limit=limit,
            kind=kind,
        )
    return labels


def checked_service_settings(raw: dict[str, Any]) -> dict[str, list[str]]:
    """Service settings given in full or in part: each kind named is replaced by its new list."""
    unknown = set(raw) - set(SERVICE_LIMITS)
    if unknown:
        raise CarlinkError(
            "unknown service settings: %(kinds)s",
            code="invalid_service_settings",
            kinds=", ".join(sorted(unknown)),
        )
    return {kind: checked_service_list(kind, items) for kind, items in raw.items()}
