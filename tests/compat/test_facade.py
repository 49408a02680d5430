"""The compatibility facade (RMT-4) over plain HTTP: the edges the community clients rarely reach, such as
foreign VINs, privacy mode, an offline car, locked PINs and commands the car refuses."""

from __future__ import annotations

from typing import Any

import httpx

from carlink.demo import world
from carlink.remote.service import spin_hash
from tests.compat.harness import png_pixel
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack, eventually

API = "/app/connect/v1/vehicles"
CAPABILITIES = "cf=LOCK&cf=REMOTE_CLIMATIZER_START&cf=DIRECT_CHARGING_START"


def _measurements(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["key"]: m for m in body["measurements"]}


def _commands(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c["status"] for c in body["commands"]}


async def _command(client: httpx.AsyncClient, vin: str, key: str, payload: dict[str, Any]) -> httpx.Response:
    return await client.post(f"{API}/{vin}/commands", json={"key": key, "payload": payload})


async def _final(client: httpx.AsyncClient, vin: str, command_id: str) -> dict[str, Any]:
    outcome: dict[str, Any] = {}

    async def finished() -> bool:
        outcome.update((await client.get(f"{API}/{vin}/commands/{command_id}")).json())
        return outcome["status"]["result"] in ("PERFORMED", "ERROR")

    await eventually(finished, timeout=30)
    return outcome


async def test_strangers_family_and_anonymous_callers_get_answers_the_clients_know(stack: Stack) -> None:
    stranger = await stack.as_user(world.STRANGER)
    foreign = await stranger.get(f"{API}/{TAYCAN}?mf=BATTERY_LEVEL")
    unknown = await stranger.get(f"{API}/WP0ZZZY1ZPS999999?mf=BATTERY_LEVEL")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"] == unknown.json()["error"] == "vehicle_not_found"
    assert (await _command(stranger, TAYCAN, "LOCK", {"spin": None})).status_code == 404
    assert (await stranger.get(f"{API}/{TAYCAN}/pictures")).status_code == 404
    assert (await stranger.get(API)).json() == []

    anonymous = await stack.http.get(API)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorised"

    family = await stack.as_user(
        world.FAMILY
    )  # a secondary user sees the car but has no remote access (VEH-4)
    body = (
        await family.get(f"{API}/{TAYCAN}?mf=REMOTE_ACCESS_AUTHORIZATION&mf=BATTERY_LEVEL&{CAPABILITIES}")
    ).json()
    assert _measurements(body)["REMOTE_ACCESS_AUTHORIZATION"]["value"]["isEnabled"] is False
    assert _measurements(body)["BATTERY_LEVEL"]["status"] == {"isEnabled": True}
    assert _commands(body)["LOCK"] == {"isEnabled": False, "cause": "UNKNOWN"}
    refused = await _command(family, TAYCAN, "LOCK", {"spin": None})
    assert (
        refused.status_code == 405 and refused.json()["error"] == "main_user_only"
    )  # MOBILE_ACCESS_DISABLED

    owner = await stack.as_user(world.OWNER)
    for body_text in (b"{not json", b'{"payload": {}}', b'{"key": "LOCK", "payload": []}'):
        response = await owner.post(f"{API}/{TAYCAN}/commands", content=body_text)
        assert response.status_code == 400 and "error" in response.json()
    response = await _command(owner, TAYCAN, "TRUNK_UNLOCK", {})
    assert response.status_code == 400 and response.json()["error"] == "not_supported"
    response = await owner.get(f"{API}/{TAYCAN}/commands/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404 and response.json()["error"] == "command_not_found"


async def test_measurements_follow_the_models_capability_profile(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    keys = "mf=BATTERY_LEVEL&mf=CHARGING_SUMMARY,HVAC_SUMMARY&mf=FUEL_LEVEL&mf=NO_SUCH_KEY&mf=BATTERY_LEVEL"
    carrera = (await owner.get(f"{API}/{NINE_ELEVEN}?{keys}&{CAPABILITIES}")).json()
    assert [m["key"] for m in carrera["measurements"]] == [
        "BATTERY_LEVEL",
        "CHARGING_SUMMARY",
        "HVAC_SUMMARY",
        "FUEL_LEVEL",
        "NO_SUCH_KEY",
    ]
    found = _measurements(carrera)
    for key in ("BATTERY_LEVEL", "CHARGING_SUMMARY", "HVAC_SUMMARY", "NO_SUCH_KEY"):
        assert found[key]["status"] == {"isEnabled": False, "cause": "NOT_SUPPORTED"}
    assert found["FUEL_LEVEL"]["value"]["percent"] == int(stack.fleet[NINE_ELEVEN].state.fuel)
    assert _commands(carrera)["REMOTE_CLIMATIZER_START"] == {"isEnabled": False, "cause": "NOT_SUPPORTED"}
    assert _commands(carrera)["LOCK"] == {"isEnabled": True}
    assert carrera["modelType"]["engine"] == "COMBUSTION" and carrera["connect"] is True

    taycan = _measurements((await owner.get(f"{API}/{TAYCAN}?{keys}")).json())
    assert taycan["FUEL_LEVEL"]["status"]["cause"] == "NOT_SUPPORTED"
    assert taycan["BATTERY_LEVEL"]["value"]["percent"] == int(stack.fleet[TAYCAN].state.battery)
    summary = taycan["CHARGING_SUMMARY"]["value"]
    assert summary["mode"] == "PROFILE" and summary["chargingProfile"]["minSoC"] == summary["targetSoC"] == 80

    pictures = (await owner.get(f"{API}/{NINE_ELEVEN}/pictures")).json()
    side = next(p for p in pictures if p["view"] == "sideView")
    image = await stack.http.get(side["url"])  # no bearer token: Home Assistant fetches it so
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert png_pixel(image.content, 320, 220) == (0xC0, 0x14, 0x1C, 255)  # Guards Red, the car's colour
    assert png_pixel(image.content, 5, 5)[3] == 0  # transparent around the car
    forged = side["url"].replace(side["url"].split("/")[-2], "0" * 32)
    other_car = side["url"].replace(NINE_ELEVEN, TAYCAN)
    odd_token = side["url"].replace(side["url"].split("/")[-2], "%C3%A9")
    for url in (forged, other_car, odd_token, side["url"].replace("sideView", "interiorView")):
        response = await stack.http.get(url)
        assert response.status_code == 404 and response.json()["error"] == "picture_not_found"


async def test_commands_are_polled_to_performed_or_error_and_pins_lock_with_423(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    car = stack.fleet[TAYCAN]
    car.state.plugged = False
    accepted = await _command(owner, TAYCAN, "DIRECT_CHARGING_START", {"spin": None})
    assert accepted.status_code == 200 and accepted.json()["status"]["result"] == "ACCEPTED"
    refused = await _final(owner, TAYCAN, accepted.json()["status"]["id"])  # the car: cable not plugged in
    assert refused["status"]["result"] == "ERROR" and "not plugged" in refused["status"]["message"]

    response = await _command(owner, TAYCAN, "CHARGING_PROFILES_EDIT", {"list": [{"id": 1, "minSoc": 55}]})
    assert (await _final(owner, TAYCAN, response.json()["status"]["id"]))["status"]["result"] == "PERFORMED"
    assert car.state.target_soc == 55
    response = await _command(owner, TAYCAN, "CHARGING_SETTINGS_EDIT", {"targetSoc": 120, "spin": None})
    assert response.status_code == 400 and response.json()["error"] == "invalid_parameters"

    for attempt in range(3):
        challenge = (await _command(owner, TAYCAN, "SPIN_CHALLENGE", {"spin": None})).json()["data"][
            "challenge"
        ]
        assert len(challenge) % 2 == 0 and int(challenge, 16) >= 0
        answer = {"spin": {"challenge": challenge, "hash": spin_hash("9999", challenge)}}
        response = await _command(owner, TAYCAN, "UNLOCK", answer)
        assert response.status_code == (401 if attempt < 2 else 423), response.text
    assert response.json()["error"] == "pin_locked"
    locked = await _command(owner, TAYCAN, "SPIN_CHALLENGE", {"spin": None})
    assert locked.status_code == 423 and locked.json()["error"] == "pin_locked"
    assert car.state.locked is True
    assert [c.type.value for c in car.executed] == ["DIRECT_CHARGING_START", "CHARGE_TARGET"]


async def test_privacy_mode_hides_the_position_and_turns_remote_services_off(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    await stack.fleet[PANAMERA].set_privacy_mode(True)
    url = f"{API}/{PANAMERA}?mf=GPS_LOCATION&mf=GLOBAL_PRIVACY_MODE&mf=MILEAGE&{CAPABILITIES}"

    async def private() -> bool:
        body = (await owner.get(url)).json()
        return bool(_measurements(body)["GLOBAL_PRIVACY_MODE"]["value"]["isEnabled"])

    await eventually(private)
    body = (await owner.get(url)).json()
    assert _measurements(body)["GPS_LOCATION"]["status"] == {"isEnabled": False, "cause": "PRIVACY_ACTIVATED"}
    assert _measurements(body)["MILEAGE"]["status"] == {"isEnabled": True}
    assert _commands(body)["LOCK"] == {"isEnabled": False, "cause": "PRIVACY_ACTIVATED"}
    refused = await _command(owner, PANAMERA, "HONK_FLASH", {"mode": "FLASH", "spin": None})
    assert refused.status_code == 405 and refused.json()["error"] == "privacy_mode"


async def test_an_offline_car_is_unavailable_for_commands_but_its_stored_data_is_served(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    await stack.fleet[NINE_ELEVEN].set_data_connection(False)

    async def offline() -> bool:
        listed = (await owner.get(API)).json()
        return next(v for v in listed if v["vin"] == NINE_ELEVEN)["connect"] is False

    await eventually(offline)
    body = (await owner.get(f"{API}/{NINE_ELEVEN}?mf=MILEAGE&mf=LOCK_STATE_VEHICLE&{CAPABILITIES}")).json()
    assert body["connect"] is False
    assert _measurements(body)["MILEAGE"]["value"]["kilometers"] == stack.fleet[NINE_ELEVEN].state.mileage
    assert _commands(body)["LOCK"] == {"isEnabled": False, "cause": "NOT_CONNECTED"}
    for response in (
        await _command(owner, NINE_ELEVEN, "LOCK", {"spin": None}),
        await owner.get(f"{API}/{NINE_ELEVEN}?mf=MILEAGE&wakeUpJob=0b6e7a0c"),
    ):
        assert response.status_code == 408, response.text  # VEHICLE_UNAVAILABLE
        assert response.json()["error"] == "vehicle_offline"
