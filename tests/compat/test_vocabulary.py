"""The facade's vocabulary without a server: measurements from readings, command payloads, error statuses."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from carlink.compat import commands, measurements, pictures
from carlink.compat.api import wire_status
from carlink.compat.measurements import Snapshot
from carlink.errors import CarlinkError, Conflict, Forbidden, Locked, NotFound, TooManyRequests, Unauthorised
from carlink.telemetry.service import Reading
from tests.compat.harness import png_pixel

AT = dt.datetime(2026, 11, 25, 16, 4, 5, tzinfo=dt.UTC)
EV = frozenset({"battery", "range", "charging", "climate", "tyres", "location", "privacy", "remote_access"})


def snap(readings: dict[str, dict[str, Any]], *, online: bool = True, privacy: bool = False) -> Snapshot:
    return Snapshot(
        readings={key: Reading(value, AT) for key, value in readings.items()},
        supported=EV,
        online=online,
        privacy_mode=privacy,
        remote_access=True,
        pairing_code="12345678",
    )


CHARGING = {
    "plugged": True,
    "status": "CHARGING",
    "mode": "PROFILE",
    "target_soc": 80,
    "power_kw": 11.0,
    "rate_km_per_min": 0.88,
    "target_at": "2026-11-25T18:04:05+00:00",
}


def test_a_value_never_reported_is_not_connected_when_offline_and_unknown_when_online() -> None:
    assert measurements.measurement("BATTERY_LEVEL", snap({}, online=False))["status"] == {
        "isEnabled": False,
        "cause": "NOT_CONNECTED",
    }
    assert measurements.measurement("BATTERY_LEVEL", snap({}))["status"]["cause"] == "UNKNOWN"
    # Stored values stay available while the car is offline, with the time they were measured.
    item = measurements.measurement("BATTERY_LEVEL", snap({"battery": {"percent": 61}}, online=False))
    assert item == {
        "key": "BATTERY_LEVEL",
        "status": {"isEnabled": True},
        "value": {"percent": 61, "lastModified": "2026-11-25T16:04:05Z"},
    }


def test_a_malformed_reading_from_a_car_is_unknown_rather_than_an_error() -> None:
    broken = snap(
        {"battery": {"percent": "lots"}, "charging": {"mode": "PROFILE"}, "tyres": {"front_left": 2}}
    )
    for key in ("BATTERY_LEVEL", "CHARGING_SUMMARY", "TIRE_PRESSURE", "TIRE_PRESSURE_FRONT_LEFT"):
        assert measurements.measurement(key, broken)["status"] == {"isEnabled": False, "cause": "UNKNOWN"}


def test_measurements_the_model_lacks_are_not_supported_and_the_position_is_private() -> None:
    state = snap(
        {"fuel": {"percent": 40}, "location": {"lat": 48.1, "lon": 9.2, "heading": 90}}, privacy=True
    )
    assert measurements.measurement("FUEL_LEVEL", state)["status"]["cause"] == "NOT_SUPPORTED"
    assert measurements.measurement("GPS_LOCATION", state)["status"]["cause"] == "PRIVACY_ACTIVATED"
    assert measurements.measurement("GLOBAL_PRIVACY_MODE", state)["value"]["isEnabled"] is True
    assert (
        measurements.measurement("OPEN_STATE_WINDOW_FRONT_LEFT", state)["status"]["cause"] == "NOT_SUPPORTED"
    )
    location = measurements.measurement(
        "GPS_LOCATION", snap({"location": {"lat": 48.1, "lon": 9.2, "heading": 90}})
    )
    assert location["value"]["location"] == "48.1,9.2" and location["value"]["direction"] == 90


def test_charging_is_served_in_both_generations_words() -> None:
    state = snap({"charging": CHARGING})
    summary = measurements.measurement("CHARGING_SUMMARY", state)["value"]
    assert summary["mode"] == "PROFILE" and summary["status"] == "CHARGING"
    assert summary["chargingProfile"]["minSoC"] == summary["targetSoC"] == 80  # 0.2.7 and 0.2.9 read these
    assert summary["targetDateTimeWithOffset"] == "2026-11-25T18:04:05+00:00"
    rate = measurements.measurement("CHARGING_RATE", state)["value"]
    assert rate["chargingRate"] == 0.88 and rate["chargingPower"] == rate["chargingPowerkW"] == 11.0
    profiles = measurements.measurement("CHARGING_PROFILES", state)["value"]["list"]
    assert profiles == [{"id": 1, "name": "General", "isEnabled": True, "minSoc": 80}]
    direct = measurements.measurement("CHARGING_SUMMARY", snap({"charging": CHARGING | {"mode": "DIRECT"}}))
    assert direct["value"]["targetSoC"] == 100 and direct["value"]["mode"] == "DIRECT"


def test_climate_and_tyres_are_served_in_both_generations_words() -> None:
    climate = {
        "active": True,
        "target_temperature_c": 22.5,
        "remaining_min": 30,
        "zones": {"front_left": True, "front_right": False, "rear_left": False, "rear_right": False},
    }
    tyres = {"front_left": {"bar": 2.4, "target_bar": 2.7}, "rear_right": {"bar": 2.7, "target_bar": 2.7}}
    state = snap({"climate": climate, "tyres": tyres})
    assert measurements.measurement("CLIMATIZER_STATE", state)["value"]["isOn"] is True
    hvac = measurements.measurement("HVAC_SUMMARY", state)["value"]
    assert hvac["status"] == "ON" and hvac["targetTemperature"] == 295.65 and hvac["remainingTime"] == 30
    assert hvac["climateZonesEnabled"] == {
        "frontLeft": True,
        "frontRight": False,
        "rearLeft": False,
        "rearRight": False,
    }
    old = measurements.measurement("TIRE_PRESSURE", state)["value"]
    assert old["frontLeftTire"]["differenceBar"] == -0.3 and "frontRightTire" not in old
    new = measurements.measurement("TIRE_PRESSURE_FRONT_LEFT", state)["value"]
    assert new["actualPressureBar"] == 2.4 and new["differenceBar"] == -0.3
    assert measurements.measurement("TIRE_PRESSURE_FRONT_RIGHT", state)["status"]["cause"] == "UNKNOWN"


def test_command_payloads_become_our_commands() -> None:
    climate = commands.parse(
        {
            "key": "REMOTE_CLIMATIZER_START",
            "payload": {
                "spin": None,
                "targetTemperature": 293.15,
                "climateZonesEnabled": {
                    "frontLeft": True,
                    "frontRight": False,
                    "rearLeft": False,
                    "rearRight": True,
                },
            },
        }
    )
    assert commands.params(climate) == {
        "target_temperature_c": 20.0,
        "zones": {"front_left": True, "front_right": False, "rear_left": False, "rear_right": True},
    }
    flash = commands.parse({"key": "HONK_FLASH", "payload": {"mode": "FLASH", "spin": None}})
    assert commands.params(flash) == {"mode": "FLASH"}
    profiles = commands.parse(
        {
            "key": "CHARGING_PROFILES_EDIT",
            "payload": {
                "list": [
                    {"id": 4, "isEnabled": False, "minSoc": 30},
                    {"id": 1, "isEnabled": True, "minSoc": 75},
                ]
            },
        }
    )
    assert commands.params(profiles) == {"target_soc": 75}
    settings = commands.parse({"key": "CHARGING_SETTINGS_EDIT", "payload": {"targetSoc": 90, "spin": None}})
    assert commands.params(settings) == {"target_soc": 90}
    unlock = commands.parse({"key": "UNLOCK", "payload": {"spin": {"challenge": "AB", "hash": "CD"}}})
    assert commands.spin(unlock) == ("AB", "CD")
    with pytest.raises(CarlinkError) as refused:
        commands.spin(commands.parse({"key": "UNLOCK", "payload": {"spin": None}}))
    assert refused.value.code == "pin_required"
    with pytest.raises(CarlinkError):
        commands.params(
            commands.parse({"key": "REMOTE_CLIMATIZER_START", "payload": {"targetTemperature": "hot"}})
        )
    with pytest.raises(CarlinkError) as refused:  # never reaches the PIN check, which compares ASCII only
        commands.spin(
            commands.parse({"key": "UNLOCK", "payload": {"spin": {"challenge": "AB", "hash": "é"}}})
        )
    assert refused.value.code == "invalid_parameters"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Conflict("offline", code="vehicle_offline"), 408),
        (Conflict("privacy", code="privacy_mode"), 405),
        (Conflict("not authorised", code="remote_access_not_authorised"), 405),
        (Forbidden("secondary", code="main_user_only"), 405),
        (Forbidden("form", code="csrf_failed"), 401),
        (Unauthorised("pin", code="wrong_pin"), 401),
        (Locked("pin", code="pin_locked"), 423),
        (TooManyRequests("wake", retry_after=30, code="wake_rate_limited"), 429),
        (NotFound("car", code="vehicle_not_found"), 404),
        (Conflict("exists", code="vehicle_exists"), 400),
        (CarlinkError("bad", code="invalid_parameters", status=422), 400),
        (CarlinkError("down", code="unavailable", status=502), 500),
    ],
)
def test_our_errors_map_to_the_statuses_the_clients_know(error: CarlinkError, status: int) -> None:
    assert wire_status(error) == status


def test_pictures_are_pngs_in_the_cars_colour() -> None:
    for view in pictures.VIEWS:
        png = pictures.render(view, "7a9fc0")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
        assert int.from_bytes(png[16:20], "big") == pictures.WIDTH
        assert png_pixel(png, 0, 0) == (0, 0, 0, 0)
    assert png_pixel(pictures.render("sideView", "7a9fc0"), 320, 220) == (0x7A, 0x9F, 0xC0, 255)
    assert pictures.parse_colour("not-a-colour") == (0xC3, 0xCD, 0xD3, 255)
