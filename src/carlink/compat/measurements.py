"""The measurement vocabulary of the maker's app API, built from our telemetry readings (RMT-4).

Both client generations are served side by side (reference doc §2, §3.2): 0.2.7, which Home Assistant pins,
asks for CLIMATIZER_STATE and TIRE_PRESSURE; 0.2.9 asks for HVAC_SUMMARY and TIRE_PRESSURE_<wheel>. Every
requested key gets exactly one item, and every item carries `status.isEnabled`; an enabled item always has a
`value` dict. A key we cannot serve says why in `status.cause`:

- `NOT_SUPPORTED`: the name is unknown to us, or the model's capability profile has no such measurement;
- `PRIVACY_ACTIVATED`: the position while privacy mode is on in the car (VEH-6);
- `NOT_CONNECTED`: no value was ever reported and the car is offline (`connect: false`);
- `UNKNOWN`: no (usable) value has been reported yet although the car is online.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from carlink.telemetry.service import Reading

KELVIN = 273.15
# The one charging profile our cars have: the clients edit the target SoC through it (CHARGING_PROFILES_EDIT).
PROFILE_ID = 1
PROFILE_NAME = "General"
WIRE_WHEELS = {
    "FRONT_LEFT": "front_left",
    "FRONT_RIGHT": "front_right",
    "REAR_LEFT": "rear_left",
    "REAR_RIGHT": "rear_right",
}
WIRE_DOORS = {
    "DOOR_FRONT_LEFT": "front_left",
    "DOOR_FRONT_RIGHT": "front_right",
    "DOOR_REAR_LEFT": "rear_left",
    "DOOR_REAR_RIGHT": "rear_right",
    "LID_FRONT": "lid_front",
    "LID_REAR": "lid_rear",
    "SUNROOF": "sunroof",
}


class Cause(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    NOT_CONNECTED = "NOT_CONNECTED"
    PRIVACY_ACTIVATED = "PRIVACY_ACTIVATED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class Snapshot:
    """What the cloud knows about one car, as one caller may see it."""

    readings: Mapping[str, Reading]
    supported: frozenset[str]  # our telemetry keys the model reports (protocol.catalogue)
    online: bool
    privacy_mode: bool
    remote_access: bool  # remote services usable by this caller: main user and authorised in the car
    pairing_code: str


Builder = Callable[[Mapping[str, Any], Snapshot], dict[str, Any] | None]


@dataclass(frozen=True)
class Source:
    build: Builder
    reading: str | None = None  # our telemetry key the value is built from; its time becomes lastModified
    requires: frozenset[str] = frozenset()  # further telemetry keys the model must have
    from_cloud: bool = False  # the cloud knows the value itself, so it is served without a reading


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _percent(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    return {"percent": int(v["percent"])}


def _door(name: str) -> Builder:
    def build(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any] | None:
        doors = v["open"]
        return {"isOpen": bool(doors[name])} if name in doors else None

    return build


def _location(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    lat, lon = float(v["lat"]), float(v["lon"])
    return {"location": f"{lat},{lon}", "direction": int(v.get("heading", 0))}


def _target_soc(v: Mapping[str, Any]) -> int:
    return int(v["target_soc"])


def _charging_summary(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    direct = v.get("mode") == "DIRECT"
    target = _target_soc(v)
    target_at = v.get("target_at")
    return {
        "mode": "DIRECT" if direct else "PROFILE",
        "status": str(v["status"]),
        # Direct charging charges to 100 %; both client generations read it so (reference §3.2).
        "targetSoC": 100 if direct else target,
        "chargingProfile": {"profileId": PROFILE_ID, "profileName": PROFILE_NAME, "minSoC": target},
        "targetDateTimeWithOffset": target_at if isinstance(target_at, str) and target_at else None,
    }


def _charging_rate(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    power = float(v.get("power_kw") or 0.0)
    # chargingRate is km per minute on the wire; newer clients read chargingPowerkW (ha#397).
    return {
        "chargingRate": float(v.get("rate_km_per_min") or 0.0),
        "chargingPower": power,
        "chargingPowerkW": power,
    }


def _charging_profiles(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    profile = {"id": PROFILE_ID, "name": PROFILE_NAME, "isEnabled": True, "minSoc": _target_soc(v)}
    return {"currentProfileId": PROFILE_ID, "list": [profile]}


def _zones(v: Mapping[str, Any]) -> dict[str, bool]:
    zones = v.get("zones") or {}
    return {
        "frontLeft": bool(zones.get("front_left")),
        "frontRight": bool(zones.get("front_right")),
        "rearLeft": bool(zones.get("rear_left")),
        "rearRight": bool(zones.get("rear_right")),
    }


def _hvac_summary(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any]:
    active = bool(v["active"])
    return {
        "status": "ON" if active else "OFF",
        "targetTemperature": round(float(v["target_temperature_c"]) + KELVIN, 2),
        "remainingTime": int(v.get("remaining_min") or 0),
        "climateZonesEnabled": _zones(v),
    }


def _tyre(v: Mapping[str, Any], wheel: str) -> dict[str, Any] | None:
    tyre = v.get(wheel)
    if not isinstance(tyre, Mapping):
        return None
    actual, target = float(tyre["bar"]), float(tyre["target_bar"])
    return {
        "actualPressureBar": actual,
        "targetPressureBar": target,
        "differenceBar": round(actual - target, 2),
    }


def _wheel(wheel: str) -> Builder:
    return lambda v, _: _tyre(v, wheel)


def _tire_pressure(v: Mapping[str, Any], _: Snapshot) -> dict[str, Any] | None:
    # [0.2.7] Home Assistant takes the largest |differenceBar| over the *Tire keys: one must be there.
    camel = {
        "FRONT_LEFT": "frontLeftTire",
        "FRONT_RIGHT": "frontRightTire",
        "REAR_LEFT": "rearLeftTire",
        "REAR_RIGHT": "rearRightTire",
    }
    tyres = {camel[w]: t for w, ours in WIRE_WHEELS.items() if (t := _tyre(v, ours)) is not None}
    return tyres or None


def _global_timestamp(_: Mapping[str, Any], snap: Snapshot) -> dict[str, Any] | None:
    latest = max((r.measured_at for r in snap.readings.values()), default=None)
    return {"timestamp": iso(latest)} if latest else None


def _field(name: str, wire: str, kind: Callable[[Any], Any] = bool) -> Builder:
    return lambda v, _: {wire: kind(v[name])}


VOCABULARY: dict[str, Source] = {
    "BATTERY_LEVEL": Source(_percent, "battery"),
    "FUEL_LEVEL": Source(_percent, "fuel"),
    "E_RANGE": Source(_field("electric_km", "kilometers", int), "range", requires=frozenset({"battery"})),
    "RANGE": Source(_field("total_km", "kilometers", int), "range"),
    "MILEAGE": Source(_field("km", "kilometers", int), "mileage"),
    "LOCK_STATE_VEHICLE": Source(_field("locked", "isLocked"), "lock"),
    **{f"OPEN_STATE_{wire}": Source(_door(ours), "doors") for wire, ours in WIRE_DOORS.items()},
    "GPS_LOCATION": Source(_location, "location"),
    "PARKING_BRAKE": Source(_field("brake_on", "isOn"), "parking"),
    "PARKING_LIGHT": Source(_field("light_on", "isOn"), "parking"),
    "CHARGING_SUMMARY": Source(_charging_summary, "charging"),
    "CHARGING_RATE": Source(_charging_rate, "charging"),
    "CHARGING_SETTINGS": Source(lambda v, _: {"targetSoc": _target_soc(v)}, "charging"),
    "CHARGING_PROFILES": Source(_charging_profiles, "charging"),
    "CLIMATIZER_STATE": Source(_field("active", "isOn"), "climate"),  # [0.2.7]
    "HVAC_SUMMARY": Source(_hvac_summary, "climate"),  # 0.2.9
    "TIRE_PRESSURE": Source(_tire_pressure, "tyres"),  # [0.2.7]
    **{f"TIRE_PRESSURE_{wire}": Source(_wheel(ours), "tyres") for wire, ours in WIRE_WHEELS.items()},  # 0.2.9
    # The cloud enforces privacy mode and remote access itself (garage.Vehicle): it answers from its record.
    "GLOBAL_PRIVACY_MODE": Source(lambda _, s: {"isEnabled": s.privacy_mode}, "privacy", from_cloud=True),
    "REMOTE_ACCESS_AUTHORIZATION": Source(
        lambda _, s: {"isEnabled": s.remote_access}, "remote_access", from_cloud=True
    ),
    "GLOBAL_TIMESTAMP": Source(_global_timestamp, from_cloud=True),
    "PAIRING_CODE": Source(lambda _, s: {"code": s.pairing_code}, from_cloud=True),
}

# Keys the clients ask for that we have no data for: answered NOT_SUPPORTED. DEPARTURES among them, so
# that Home Assistant edits the target SoC through CHARGING_PROFILES_EDIT (reference doc §6, number).
UNSERVED_KEYS = """
    ACV_STATE ALARM_STATE BATTERY_CHARGING_STATE BATTERY_CONDITION BEM_LEVEL BLEID_DDADATA CHARGING_SESSION
    CONNECT_CONTRACT DEPARTURES DIRECT_CHARGING FUEL_RESERVE HEATING_STATE HVAC_STATE
    INSTRUMENT_CLUSTER_ALERTS INTERMEDIATE_SERVICE_RANGE INTERMEDIATE_SERVICE_TIME LOCATION_ALARMS
    MAIN_SERVICE_RANGE MAIN_SERVICE_TIME MDK_ACTIVATION_STATE MDK_CARD_STATE MDK_PAIRING_PASSWORD
    MDK_PAIRING_STATE OIL_LEVEL_CURRENT OIL_LEVEL_MAX OIL_LEVEL_MIN_WARNING OIL_SERVICE_RANGE
    OIL_SERVICE_TIME OPEN_STATE_CHARGE_FLAP_LEFT OPEN_STATE_CHARGE_FLAP_RIGHT OPEN_STATE_SERVICE_FLAP
    OPEN_STATE_SPOILER OPEN_STATE_SUNROOF_REAR OPEN_STATE_TOP OPEN_STATE_WINDOW_FRONT_LEFT
    OPEN_STATE_WINDOW_FRONT_RIGHT OPEN_STATE_WINDOW_REAR_LEFT OPEN_STATE_WINDOW_REAR_RIGHT
    OTA_CONSENT_STATUS OTA_UPDATE_DETAILS PRED_PRECON_LOCATION_EXCEPTIONS PRED_PRECON_USER_SETTINGS
    SERVICE_PREDICTIONS SPEED_ALARMS THEFT_STATE TIMERS TIMEZONE VALET_ALARM VTS_CERTIFICATE_LIST
    VTS_CONFIGURATION VTS_MODES
"""
# Every key either client generation asks for (reference doc §2), so that `mf=*` answers all of them.
KNOWN_KEYS: tuple[str, ...] = tuple(sorted({*VOCABULARY, *UNSERVED_KEYS.split()}))


def _disabled(key: str, cause: Cause) -> dict[str, Any]:
    return {"key": key, "status": {"isEnabled": False, "cause": cause.value}}


def measurement(key: str, snap: Snapshot) -> dict[str, Any]:
    """One item of `measurements[]` for a requested key."""
    source = VOCABULARY.get(key)
    if source is None:
        return _disabled(key, Cause.NOT_SUPPORTED)
    needed = source.requires | ({source.reading} if source.reading else set())
    if not needed <= snap.supported:
        return _disabled(key, Cause.NOT_SUPPORTED)
    if "location" in needed and snap.privacy_mode:
        return _disabled(key, Cause.PRIVACY_ACTIVATED)
    missing = Cause.UNKNOWN if snap.online else Cause.NOT_CONNECTED
    reading = snap.readings.get(source.reading) if source.reading else None
    if reading is None and not source.from_cloud:
        return _disabled(key, missing)
    try:
        value = source.build(reading.value if reading else {}, snap)
    except (KeyError, TypeError, ValueError, AttributeError):
        # What a car reports is checked only for size at ingest; a malformed value is "unknown", never a 500.
        value = None
    if value is None:
        return _disabled(key, missing)
    if reading is not None:
        value["lastModified"] = iso(reading.measured_at)
    return {"key": key, "status": {"isEnabled": True}, "value": value}


def measurements(keys: Iterable[str], snap: Snapshot) -> list[dict[str, Any]]:
    return [measurement(key, snap) for key in keys]
