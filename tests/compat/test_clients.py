"""RMT-4 with the real community clients from PyPI: pyporscheconnectapi 0.2.9 (library and porschecli) and
0.2.7 driven the way Home Assistant's integration drives it, against a running carlink and simulated cars.

Both drivers run at once, each on its own car (the Taycan for 0.2.9, the Panamera for Home Assistant), so
the slow parts of the clients (2.5 s at sign-in, 1 s per poll and after each command) overlap.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from carlink.compat.measurements import KNOWN_KEYS
from carlink.demo import world
from carlink.protocol.messages import CommandType
from carlink.sim.car import SimulatedCar
from tests.compat.harness import drive
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack

pytestmark = pytest.mark.compat

LOGIN = ["/authorize", "/u/login/identifier", "/u/login/password", "/authorize/resume", "/oauth/token"]


def _remote_services(car: SimulatedCar) -> list[tuple[str, dict[str, Any]]]:
    return [(c.type.value, c.params) for c in car.executed if c.type is not CommandType.WAKE]


def _wakes(car: SimulatedCar) -> int:
    return sum(1 for c in car.executed if c.type is CommandType.WAKE)


async def test_pyporscheconnectapi_029_and_home_assistant_027_sign_in_read_and_command_the_cars(
    stack: Stack, compat_clients: dict[str, Path], tmp_path: Path
) -> None:
    port = stack.base_url.rsplit(":", 1)[1]
    taycan, panamera = stack.fleet[TAYCAN], stack.fleet[PANAMERA]
    taycan.state.plugged = panamera.state.plugged = True  # direct charging needs the cable
    reported_mileage = taycan.state.mileage
    taycan.state.mileage += 321  # known only in the car until it is woken for a current overview
    for name in ("029", "027"):
        (tmp_path / name).mkdir()
    credentials = (world.OWNER, world.PASSWORD, world.PIN)
    new, home_assistant = await asyncio.gather(
        drive("drive_029.py", compat_clients["0.2.9"], tmp_path / "029", port, TAYCAN, *credentials),
        drive("drive_027_ha.py", compat_clients["0.2.7"], tmp_path / "027", port, PANAMERA, *credentials),
    )
    _check_029(new, taycan, reported_mileage)
    _check_home_assistant_027(home_assistant, panamera)

    # What the clients did is what the cars did, and our own API's stored overview agrees.
    owner = await stack.as_user(world.OWNER)
    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/status")).json()["values"]
    assert status["charging"]["value"]["target_soc"] == taycan.state.target_soc == 80
    assert status["lock"]["value"]["locked"] is taycan.state.locked is False
    status = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/status")).json()["values"]
    assert status["charging"]["value"]["target_soc"] == panamera.state.target_soc == 65
    assert status["climate"]["value"]["active"] is panamera.state.climate_on is False


def _check_029(out: dict[str, Any], car: SimulatedCar, reported_mileage: int) -> None:
    assert out["errors"] == {}, out["errors"]
    assert out["version"] == "0.2.9" and "/.compat/ppc-0.2.9/" in out["loaded_from"]

    # The browser-style sign-in of reference §4, then a refresh when the access token runs out.
    login = out["login"]["calls"]
    assert [c["path"] for c in login] == LOGIN
    assert [c["status"] for c in login] == [302, 200, 302, 302, 200]
    assert {c["host"] for c in login} == {"identity.porsche.com"}
    assert login[-1]["grant_type"] == "authorization_code"
    assert {"access_token", "refresh_token", "expires_at", "id_token"} <= set(out["login"]["token_fields"])
    assert [(c["path"], c["grant_type"], c["status"]) for c in out["refresh"]["calls"]] == [
        ("/oauth/token", "refresh_token", 200)
    ]
    assert out["refresh"]["valid_for"] > 600

    assert {v["vin"] for v in out["list"]} == {TAYCAN, PANAMERA, NINE_ELEVEN}
    assert len(out["double_slash_list"]) == 3  # /app//connect/... of older clients
    listed = next(v for v in out["list"] if v["vin"] == TAYCAN)
    assert listed["modelType"]["engine"] == "BEV" and listed["modelType"]["year"] == "2023"
    assert listed["connect"] is True

    stored, current = out["stored"], out["current"]
    assert stored["name"] == "Taycan 4S" and stored["model_year"] == "2023"
    assert stored["mileage"] == reported_mileage  # stored: what the car last reported
    assert current["mileage"] == reported_mileage + 321  # current: the car was woken and told
    assert stored["main_battery_level"] == int(car.state.battery)
    assert stored["vehicle_locked"] is True and stored["vehicle_closed"] is True
    assert stored["location"][:2] == [car.state.lat, car.state.lon]
    assert set(stored["tire_pressures"]) == {"front_left", "front_right", "rear_left", "rear_right"}
    assert stored["has_remote_climatisation"] and stored["has_remote_services"] and not stored["privacy_mode"]
    assert stored["last_global_update"] is not None
    # Woken moments ago: rate-limited, so the stored data answers instead of an error (RMT-2).
    again = {m["key"]: m for m in out["current_again"]["measurements"]}
    assert again["MILEAGE"]["value"]["kilometers"] == reported_mileage + 321
    assert _wakes(car) == 1

    everything = out["everything"]["measurements"]
    assert [m["key"] for m in everything] == list(KNOWN_KEYS)  # mf=*
    assert all("isEnabled" in m["status"] for m in everything)
    assert all(isinstance(m["value"], dict) for m in everything if m["status"]["isEnabled"])

    capabilities = out["capabilities"]
    assert capabilities["REMOTE_CLIMATIZER_START"] == {
        "status": {"isEnabled": True},
        "metadata": {"minTemperature": 288.15, "maxTemperature": 303.15},
    }
    assert capabilities["LOCK"]["status"] == {"isEnabled": True}
    assert capabilities["TRUNK_UNLOCK"]["status"] == {"isEnabled": False, "cause": "NOT_SUPPORTED"}
    assert "range 288.15-303.15 K" in out["climatise_too_hot"]["value_error"]

    pictures = out["pictures"]
    assert set(pictures) == {"frontView", "sideView", "rearView", "rearTopView", "topView"}
    assert all(
        p["status"] == 200 and p["png"] and p["content_type"] == "image/png" for p in pictures.values()
    )

    assert out["flash"]["result"] == "PERFORMED"
    assert out["lock"]["after"]["vehicle_locked"] is True
    assert out["unlock_wrong_pin"]["code"] == 401
    assert out["unlock"]["result"] == "PERFORMED" and out["unlock"]["after"]["vehicle_locked"] is False
    on = out["climatise_on"]["after"]
    assert on["remote_climatise_on"] is True and on["climatisation_target_temperature"] == 22.0
    assert on["seat_heating"] == {
        "frontLeft": True,
        "frontRight": False,
        "rearLeft": False,
        "rearRight": True,
    }
    assert out["climatise_off"]["after"]["remote_climatise_on"] is False
    assert out["direct_charge_on"]["after"]["direct_charge_on"] is True
    assert out["direct_charge_on"]["after"]["charging_target"] == 100
    assert out["direct_charge_off"]["after"]["direct_charge_on"] is False
    assert out["target_soc"]["result"] == "PERFORMED" and out["target_soc"]["after"]["charging_target"] == 70

    cli = out["cli"]
    assert all(run["exit"] in (0, None) for run in cli.values()), cli
    assert cli["list"]["output"]["vin"] in {TAYCAN, PANAMERA, NINE_ELEVEN}  # the CLI merges the list
    assert cli["storedoverview"]["output"]["MILEAGE"]["kilometers"] == reported_mileage + 321
    assert set(cli["tire_pressures"]["output"]) == {"front_left", "front_right", "rear_left", "rear_right"}
    assert any(c["key"] == "HONK_FLASH" for c in cli["capabilities"]["output"]["commands"])
    assert len(cli["pictures"]["output"]) == 5
    assert cli["honk_and_flash"]["output"] == "PERFORMED"
    assert cli["chargingsettings"]["output"] == "PERFORMED"
    assert cli["battery"]["output"] == int(car.state.battery)

    assert _remote_services(car) == [
        ("HONK_FLASH", {"mode": "FLASH"}),
        ("LOCK", {}),
        ("UNLOCK", {}),  # once: the wrong PIN never reached the car
        (
            "CLIMATE_START",
            {
                "target_temperature_c": 22.0,
                "zones": {"front_left": True, "front_right": False, "rear_left": False, "rear_right": True},
            },
        ),
        ("CLIMATE_STOP", {}),
        ("DIRECT_CHARGING_START", {}),
        ("DIRECT_CHARGING_STOP", {}),
        ("CHARGE_TARGET", {"target_soc": 70}),  # library: CHARGING_PROFILES_EDIT
        ("HONK_FLASH", {"mode": "HONK_AND_FLASH"}),  # porschecli honk_and_flash
        ("CHARGE_TARGET", {"target_soc": 80}),  # porschecli chargingsettings: CHARGING_SETTINGS_EDIT
    ]
    assert car.state.locked is False and car.state.climate_on is False
    assert car.state.charging_mode == "PROFILE" and car.state.target_soc == 80


def _check_home_assistant_027(out: dict[str, Any], car: SimulatedCar) -> None:
    assert out["errors"] == {}, out["errors"]
    assert out["version"] == "0.2.7" and "/.compat/ppc-0.2.7/" in out["loaded_from"]

    # Config flow: the 0.2.7 sign-in (no PKCE, one resume hop); setup then reuses the token: no identity call.
    flow = [c["path"] for c in out["config_flow"]["calls"]]
    assert flow[:5] == LOGIN and flow[5] == "/app/connect/v1/vehicles"
    assert out["identity_calls_after_setup"] == []
    setup_paths = [path for _, _, path, status in out["setup_calls"] if status == 200]
    assert len(setup_paths) == len(out["setup_calls"]) == 1 + 2 * 3  # A1, then A2 and A7 per car

    setup = out["setup"]
    taycan, panamera, carrera = setup[TAYCAN], setup[PANAMERA], setup[NINE_ELEVEN]
    assert taycan["device"] == {"name": "Taycan 4S", "model": "Taycan 4S"}
    assert set(taycan["sensor"]) == {
        "charging_target",
        "charging_status",
        "charging_rate",
        "charging_finished",
        "charging_power",
        "remaining_range_electric",
        "state_of_charge",
        "mileage",
    }
    assert set(panamera["sensor"]) == set(taycan["sensor"]) | {"remaining_range", "fuel_level"}  # PHEV
    assert set(carrera["sensor"]) == {"mileage", "remaining_range", "fuel_level"}  # combustion
    for entities in (taycan, panamera):  # charging_finished is None unless the car is charging
        assert None not in [v for k, v in entities["sensor"].items() if k != "charging_finished"]
    assert None not in carrera["sensor"].values()
    assert panamera["sensor"]["state_of_charge"] == int(car.state.battery)
    assert panamera["sensor"]["fuel_level"] == int(car.state.fuel)
    for entities in setup.values():
        assert entities["binary_sensor"]["remote_access"] is True
        assert entities["binary_sensor"]["privacy_mode"] is False
        assert entities["binary_sensor"]["parking_brake"] is True
        assert entities["binary_sensor"]["doors_and_lids"]["closed"] is True
        assert entities["binary_sensor"]["tire_pressure_status"] is True  # from TIRE_PRESSURE (0.2.7)
        assert entities["device_tracker"]["location"][0] is not None
        assert set(entities["image"]) == {"frontView", "sideView", "rearView", "rearTopView", "topView"}
    assert panamera["switch"] == {"climatise": False, "direct_charging": False}  # CLIMATIZER_STATE present
    assert carrera["switch"] == {} and "number" not in carrera
    assert panamera["number"] == {"target_soc": 80}
    assert all(i["status"] == 200 and i["png"] and i["type"] == "image/png" for i in out["images"].values())

    def after(step: str) -> dict[str, Any]:
        assert out[step]["result"] in ("PERFORMED", None), out[step]
        entities: dict[str, Any] = out[step]["entities"]
        return entities

    assert after("lock_unlock")["lock"] is False
    assert out["lock_unlock_wrong_code"]["code"] == 401
    assert after("lock_lock")["lock"] is True
    assert after("service_climatisation_start")["switch"]["climatise"] is True
    assert after("switch_climatise_off")["switch"]["climatise"] is False
    charging = after("switch_direct_charging_on")
    assert charging["switch"]["direct_charging"] is True and charging["sensor"]["charging_target"] == 100
    assert after("switch_direct_charging_off")["switch"]["direct_charging"] is False
    assert after("number_target_soc")["number"]["target_soc"] == 65
    assert after("number_target_soc")["sensor"]["charging_target"] == 65
    assert out["button_flash"]["result"] == out["button_honk_and_flash"]["result"] == "PERFORMED"

    assert _remote_services(car) == [
        ("UNLOCK", {}),
        ("LOCK", {}),
        (
            "CLIMATE_START",
            {
                "target_temperature_c": 23.5,
                "zones": {"front_left": True, "front_right": True, "rear_left": False, "rear_right": False},
            },
        ),
        ("CLIMATE_STOP", {}),
        ("DIRECT_CHARGING_START", {}),
        ("DIRECT_CHARGING_STOP", {}),
        ("CHARGE_TARGET", {"target_soc": 65}),  # number entity: CHARGING_PROFILES_EDIT (no DEPARTURES)
        ("HONK_FLASH", {"mode": "FLASH"}),
        ("HONK_FLASH", {"mode": "HONK_AND_FLASH"}),
    ]
    assert _wakes(car) == 1  # the "current overview" button
    assert car.state.locked is True and car.state.target_soc == 65
