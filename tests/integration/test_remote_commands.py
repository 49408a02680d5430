"""Remote services end to end: API -> database -> MQTT -> simulated car -> ack -> status (RMT-1)."""

from __future__ import annotations

from carlink.demo import world
from carlink.remote.service import spin_hash
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack, eventually


async def _command(client, vin: str, body: dict, wait: float = 10) -> dict:  # type: ignore[no-untyped-def]
    response = await client.post(f"/api/v1/vehicles/{vin}/commands", json=body)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["state"] == "accepted"
    response = await client.get(f"/api/v1/vehicles/{vin}/commands/{accepted['id']}", params={"wait": wait})
    assert response.status_code == 200
    return dict(response.json())


async def _unlock(client, vin: str, pin: str) -> dict:  # type: ignore[no-untyped-def]
    challenge = (await client.post(f"/api/v1/vehicles/{vin}/pin-challenges")).json()["challenge"]
    return await _command(
        client, vin, {"type": "UNLOCK", "spin": {"challenge": challenge, "hash": spin_hash(pin, challenge)}}
    )


async def test_lock_and_unlock_with_pin_change_the_cars_lock_state(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    car = stack.fleet[TAYCAN]
    done = await _unlock(owner, TAYCAN, world.PIN)
    assert done["state"] == "performed"
    assert car.state.locked is False
    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/status")).json()
    assert status["values"]["lock"]["value"] == {"locked": False}
    done = await _command(owner, TAYCAN, {"type": "LOCK"})
    assert done["state"] == "performed" and car.state.locked is True
    assert [c.type.value for c in car.executed] == ["UNLOCK", "LOCK"]


async def test_wrong_pin_is_refused_and_locks_after_three_tries(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    for attempt in range(3):
        challenge = (await owner.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")).json()["challenge"]
        response = await owner.post(
            f"/api/v1/vehicles/{TAYCAN}/commands",
            json={"type": "UNLOCK", "spin": {"challenge": challenge, "hash": spin_hash("9999", challenge)}},
        )
        expected = (401, "wrong_pin") if attempt < 2 else (423, "pin_locked")
        assert (response.status_code, response.json()["error"]["code"]) == expected
    response = await owner.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")
    assert response.status_code == 423
    assert stack.fleet[TAYCAN].state.locked is True
    assert stack.fleet[TAYCAN].executed == []


async def test_pin_challenge_is_single_use(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    challenge = (await owner.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")).json()["challenge"]
    body = {"type": "UNLOCK", "spin": {"challenge": challenge, "hash": spin_hash(world.PIN, challenge)}}
    first = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json=body)
    assert first.status_code == 202
    again = await owner.post(f"/api/v1/vehicles/{TAYCAN}/commands", json=body)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "challenge_used"


async def test_climate_charging_and_target_follow_the_car(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    car = stack.fleet[TAYCAN]
    car.state.plugged = True
    assert (
        await _command(owner, TAYCAN, {"type": "CLIMATE_START", "params": {"target_temperature_c": 22.5}})
    )["state"] == "performed"
    assert car.state.climate_on and car.state.climate_temperature == 22.5
    assert (await _command(owner, TAYCAN, {"type": "CLIMATE_STOP"}))["state"] == "performed"
    assert (await _command(owner, TAYCAN, {"type": "DIRECT_CHARGING_START"}))["state"] == "performed"
    assert car.state.charging_mode == "DIRECT"
    assert (await _command(owner, TAYCAN, {"type": "CHARGE_TARGET", "params": {"target_soc": 90}}))[
        "state"
    ] == "performed"
    status = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/status")).json()
    assert status["values"]["charging"]["value"]["target_soc"] == 90
    assert status["values"]["climate"]["value"]["active"] is False


async def test_only_the_main_user_sends_remote_commands(stack: Stack) -> None:
    family = await stack.as_user(world.FAMILY)
    response = await family.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "LOCK"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "main_user_only"
    # The secondary user still sees the car and its status.
    assert (await family.get(f"/api/v1/vehicles/{TAYCAN}/status")).status_code == 200


async def test_strangers_get_the_same_404_for_foreign_and_unknown_vins(stack: Stack) -> None:
    stranger = await stack.as_user(world.STRANGER)
    foreign = await stranger.get(f"/api/v1/vehicles/{TAYCAN}/status")
    unknown = await stranger.get("/api/v1/vehicles/WP0ZZZY1ZPS999999/status")
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.json()["error"]["code"] == unknown.json()["error"]["code"] == "vehicle_not_found"
    response = await stranger.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "LOCK"})
    assert response.status_code == 404
    malformed = await stranger.get("/api/v1/vehicles/NOT-A-VIN/status")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_vin"


async def test_commands_unsupported_by_the_model_are_refused(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    response = await owner.post(
        f"/api/v1/vehicles/{NINE_ELEVEN}/commands", json={"type": "DIRECT_CHARGING_START"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "not_supported"


async def test_privacy_mode_refuses_commands_and_hides_location(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    status = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/status")).json()
    assert "location" in status["values"]
    await stack.fleet[PANAMERA].set_privacy_mode(True)

    async def privacy_on() -> bool:
        body = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/status")).json()
        return bool(body["privacy_mode"])

    await eventually(privacy_on)
    status = (await owner.get(f"/api/v1/vehicles/{PANAMERA}/status")).json()
    assert "location" not in status["values"]
    response = await owner.post(f"/api/v1/vehicles/{PANAMERA}/commands", json={"type": "LOCK"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "privacy_mode"


async def test_remote_access_must_be_authorised_in_the_car(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    await stack.fleet[PANAMERA].set_remote_access(False)

    async def refused() -> bool:
        response = await owner.post(f"/api/v1/vehicles/{PANAMERA}/commands", json={"type": "HONK_FLASH"})
        return (
            response.status_code == 409 and response.json()["error"]["code"] == "remote_access_not_authorised"
        )

    await eventually(refused)


async def test_offline_car_gives_a_clear_answer(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    await stack.fleet[NINE_ELEVEN].set_data_connection(False)

    async def offline() -> bool:
        body = (await owner.get("/api/v1/vehicles")).json()
        car = next(v for v in body if v["vin"] == NINE_ELEVEN)
        return car["connection"]["online"] is False and car["connection"]["network"] == "NONE"

    await eventually(offline)
    response = await owner.post(f"/api/v1/vehicles/{NINE_ELEVEN}/commands", json={"type": "LOCK"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "vehicle_offline"


async def test_model_catalogue_is_published_with_capability_profiles(stack: Stack) -> None:
    models = {m["key"]: m for m in (await stack.http.get("/api/v1/catalogue/models")).json()}
    assert {
        "911-7",
        "911-8",
        "718",
        "macan-1",
        "macan-2",
        "cayenne-2",
        "cayenne-3",
        "panamera-2",
        "taycan-1",
    } <= set(models)
    taycan = models["taycan-1"]
    assert taycan["esim_only"] and not taycan["pairing_code_needed"] and taycan["in_car_id_login"]
    assert taycan["roaming"] == "automatic" and taycan["privacy_scope"] == "all_services"
    assert models["911-7"]["connection_symbol"] == "bottom_left"
    assert "DIRECT_CHARGING_START" not in models["911-7"]["variants"][0]["commands"]


async def _remote_access_authorised(stack: Stack, vin: str) -> tuple[bool, bool]:
    from carlink.garage.service import vehicle_by_vin

    async with stack.db.session() as session:
        vehicle = await vehicle_by_vin(session, vin)
        assert vehicle is not None
        return vehicle.remote_access_authorised, vehicle.remote_access_reset_pending


async def test_resetting_the_security_pin_switches_remote_access_off_until_authorised_in_the_car(
    stack: Stack,
) -> None:
    owner = await stack.as_user(world.OWNER)
    response = await owner.put("/api/v1/me/pin", json={"password": world.PASSWORD, "pin": "4321"})
    assert response.status_code == 204
    # At once, for every car of which the owner is the main user (VEH-5).
    for vin in (TAYCAN, PANAMERA):
        response = await owner.post(f"/api/v1/vehicles/{vin}/commands", json={"type": "HONK_FLASH"})
        assert response.json()["error"]["code"] == "remote_access_not_authorised"
    # The cars are told, and switch it off themselves.
    car = stack.fleet[TAYCAN]
    await eventually(lambda: car.state.remote_access is False, timeout=15)
    await eventually(lambda: _remote_access_authorised_is(stack, TAYCAN, (False, False)), timeout=15)
    # The owner authorises remote access again in the car; remote services work again, with the new PIN.
    await car.set_remote_access(True)
    await eventually(lambda: _remote_access_authorised_is(stack, TAYCAN, (True, False)))
    assert (await _unlock(owner, TAYCAN, "4321"))["state"] == "performed"


async def _remote_access_authorised_is(stack: Stack, vin: str, expected: tuple[bool, bool]) -> bool:
    return await _remote_access_authorised(stack, vin) == expected


async def test_factory_reset_in_the_car_disables_remote_access(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    await stack.fleet[PANAMERA].factory_reset()
    await eventually(lambda: _remote_access_authorised_is(stack, PANAMERA, (False, False)))
    response = await owner.post(f"/api/v1/vehicles/{PANAMERA}/commands", json={"type": "LOCK"})
    assert response.json()["error"]["code"] == "remote_access_not_authorised"


async def test_every_command_and_its_outcome_is_in_the_audit_log(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    done = await _command(owner, TAYCAN, {"type": "HONK_FLASH", "params": {"mode": "FLASH"}})
    challenge = (await owner.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")).json()["challenge"]
    await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/commands",
        json={"type": "UNLOCK", "spin": {"challenge": challenge, "hash": spin_hash("0000", challenge)}},
    )
    log = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/audit")).json()
    actions = [(entry["action"], entry["detail"].get("command_id")) for entry in log]
    assert ("command.accepted", done["id"]) in actions
    assert ("command.performed", done["id"]) in actions
    assert ("pin.wrong", None) in actions
    family = await stack.as_user(world.FAMILY)
    assert (await family.get(f"/api/v1/vehicles/{TAYCAN}/audit")).status_code == 403
