"""Pairing codes and users per vehicle (VEH-2, VEH-3, VEH-4), the stored and current overview (RMT-2),
connection status (VEH-9) and the vehicle's event stream, with real cars over a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
from typing import Any

import httpx

from carlink.clock import clock
from carlink.demo import world
from carlink.protocol.messages import Network
from tests.support.stack import NINE_ELEVEN, PANAMERA, TAYCAN, Stack, eventually


async def vehicles(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/vehicles")
    assert response.status_code == 200, response.text
    return {car["vin"]: car for car in response.json()}


async def status(client: httpx.AsyncClient, vin: str, **params: Any) -> httpx.Response:
    return await client.get(f"/api/v1/vehicles/{vin}/status", params=params)


# --- pairing codes (VEH-3, VEH-4) --------------------------------------------------------------------------


async def test_each_person_has_an_eight_digit_pairing_code_per_vehicle(stack: Stack) -> None:
    owner = await vehicles(await stack.as_user(world.OWNER))
    family = await vehicles(await stack.as_user(world.FAMILY))
    assert set(owner) == {TAYCAN, PANAMERA, NINE_ELEVEN} and set(family) == {TAYCAN}
    codes = [car["pairing_code"] for car in owner.values()] + [family[TAYCAN]["pairing_code"]]
    assert all(re.fullmatch(r"[0-9]{8}", code) for code in codes)
    assert len(set(codes)) == len(codes)  # one per person and vehicle
    assert owner[TAYCAN]["pairing_code"] == world.demo_pairing_code(TAYCAN, world.OWNER)
    assert (owner[TAYCAN]["role"], family[TAYCAN]["role"]) == ("main", "secondary")
    assert owner[NINE_ELEVEN]["paired"] is False and owner[PANAMERA]["paired"] is True
    # The Taycan signs in with the ID in the car; the 911 needs the code (VEH-1, VEH-3).
    assert owner[TAYCAN]["capabilities"]["pairing_code_needed"] is False
    assert owner[NINE_ELEVEN]["capabilities"]["pairing_code_needed"] is True


async def test_the_main_users_code_entered_in_the_911_links_it(stack: Stack) -> None:
    client = await stack.as_user(world.OWNER)
    code = (await vehicles(client))[NINE_ELEVEN]["pairing_code"]
    reply = await stack.fleet[NINE_ELEVEN].enter_pairing_code(code)
    assert (reply.ok, reply.error) == (True, None)
    assert (await vehicles(client))[NINE_ELEVEN]["paired"] is True


async def test_a_secondary_users_code_in_the_car_gives_no_data_connection(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    added = await owner.post(f"/api/v1/vehicles/{NINE_ELEVEN}/users", json={"email": world.FAMILY})
    assert added.status_code == 201, added.text
    family = await stack.as_user(world.FAMILY)
    code = (await vehicles(family))[NINE_ELEVEN]["pairing_code"]
    reply = await stack.fleet[NINE_ELEVEN].enter_pairing_code(code)
    assert (reply.ok, reply.error) == (False, "NO_DATA_CONNECTION")
    assert (await vehicles(family))[NINE_ELEVEN]["paired"] is False
    assert (await vehicles(owner))[NINE_ELEVEN]["paired"] is False


async def test_a_wrong_code_or_another_vehicles_code_is_invalid(stack: Stack) -> None:
    owner = await vehicles(await stack.as_user(world.OWNER))
    car = stack.fleet[NINE_ELEVEN]
    taken = {c["pairing_code"] for c in owner.values()}
    wrong = next(f"{n:08d}" for n in range(10**8) if f"{n:08d}" not in taken)
    assert (await car.enter_pairing_code(wrong)).error == "INVALID_CODE"
    taycan_code = owner[TAYCAN]["pairing_code"]
    assert (await car.enter_pairing_code(taycan_code)).error == "INVALID_CODE"
    assert (await vehicles(await stack.as_user(world.OWNER)))[NINE_ELEVEN]["paired"] is False


# --- users of a vehicle (VEH-2) ----------------------------------------------------------------------------


async def test_the_main_user_adds_and_removes_secondary_users(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    stranger = await stack.as_user(world.STRANGER)
    assert (await status(stranger, PANAMERA)).status_code == 404
    added = await owner.post(f"/api/v1/vehicles/{PANAMERA}/users", json={"email": " Stranger@Example.com"})
    assert added.status_code == 201
    assert added.json() | {"account_id": 0} == {"account_id": 0, "email": world.STRANGER, "role": "secondary"}
    detail = (await owner.get(f"/api/v1/vehicles/{PANAMERA}")).json()
    assert {(u["email"], u["role"]) for u in detail["users"]} == {
        (world.OWNER, "main"),
        (world.STRANGER, "secondary"),
    }
    theirs = (await vehicles(stranger))[PANAMERA]
    assert theirs["role"] == "secondary" and theirs["pairing_code"] != detail["pairing_code"]
    assert (await stranger.get(f"/api/v1/vehicles/{PANAMERA}")).json()["users"] is None
    assert (await status(stranger, PANAMERA)).status_code == 200
    removed = await owner.delete(f"/api/v1/vehicles/{PANAMERA}/users/{added.json()['account_id']}")
    assert removed.status_code == 204
    gone = await status(stranger, PANAMERA)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "vehicle_not_found")


async def test_a_secondary_user_cannot_add_or_remove_users(stack: Stack) -> None:
    family = await stack.as_user(world.FAMILY)
    owner_id = (await (await stack.as_user(world.OWNER)).get("/api/v1/me")).json()["id"]
    add = await family.post(f"/api/v1/vehicles/{TAYCAN}/users", json={"email": world.STRANGER})
    assert (add.status_code, add.json()["error"]["code"]) == (403, "main_user_only")
    remove = await family.delete(f"/api/v1/vehicles/{TAYCAN}/users/{owner_id}")
    assert (remove.status_code, remove.json()["error"]["code"]) == (403, "main_user_only")
    assert TAYCAN not in await vehicles(await stack.as_user(world.STRANGER))


async def test_adding_users_refuses_unknown_ids_and_the_main_user_and_removing_the_main_user(
    stack: Stack,
) -> None:
    owner = await stack.as_user(world.OWNER)
    owner_id = (await owner.get("/api/v1/me")).json()["id"]
    unknown = await owner.post(f"/api/v1/vehicles/{TAYCAN}/users", json={"email": "nobody@example.com"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "account_not_found")
    myself = await owner.post(f"/api/v1/vehicles/{TAYCAN}/users", json={"email": world.OWNER})
    assert (myself.status_code, myself.json()["error"]["code"]) == (409, "already_main_user")
    main = await owner.delete(f"/api/v1/vehicles/{TAYCAN}/users/{owner_id}")
    assert (main.status_code, main.json()["error"]["code"]) == (404, "user_not_found")


# --- stored and current overview (RMT-2) -------------------------------------------------------------------


def _aware(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.tzinfo is not None
    return moment


async def test_the_stored_overview_gives_every_value_the_model_measures_with_its_time(stack: Stack) -> None:
    client = await stack.as_user(world.OWNER)
    cars = await vehicles(client)
    for vin in (TAYCAN, NINE_ELEVEN):
        body = (await status(client, vin)).json()
        assert set(body["values"]) == set(cars[vin]["capabilities"]["measurements"])
        for reading in body["values"].values():
            assert _aware(reading["measured_at"]) <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    taycan = (await status(client, TAYCAN)).json()["values"]
    assert {"battery", "charging", "climate"} <= set(taycan) and "fuel" not in taycan
    assert taycan["battery"]["value"] == {"percent": int(stack.fleet[TAYCAN].state.battery)}
    nine_eleven = (await status(client, NINE_ELEVEN)).json()["values"]
    assert "fuel" in nine_eleven and not {"battery", "charging", "climate"} & set(nine_eleven)
    assert nine_eleven["mileage"]["value"] == {"km": stack.fleet[NINE_ELEVEN].state.mileage}


async def test_the_current_overview_wakes_the_car_for_fresh_values(stack: Stack) -> None:
    client = await stack.as_user(world.OWNER)
    car = stack.fleet[PANAMERA]
    car.state.mileage += 42  # driven since its last report
    stored = (await status(client, PANAMERA)).json()["values"]["mileage"]
    assert stored["value"] == {"km": car.state.mileage - 42}
    current = await status(client, PANAMERA, current="true")
    assert current.status_code == 200, current.text
    mileage = current.json()["values"]["mileage"]
    assert mileage["value"] == {"km": car.state.mileage}
    assert _aware(mileage["measured_at"]) > _aware(stored["measured_at"])
    assert [c.type.value for c in car.executed] == ["WAKE"]
    # A wake-up is not a remote service: it is not listed among the car's commands.
    assert (await client.get(f"/api/v1/vehicles/{PANAMERA}/commands")).json() == []


async def test_waking_the_car_again_within_the_interval_is_refused_with_retry_after(stack: Stack) -> None:
    client = await stack.as_user(world.OWNER)
    assert (await status(client, TAYCAN, current="true")).status_code == 200
    again = await status(client, TAYCAN, current="true")
    assert (again.status_code, again.json()["error"]["code"]) == (429, "wake_rate_limited")
    wait = int(again.headers["Retry-After"])
    assert 0 < wait <= stack.settings.wake_interval_seconds
    assert (await status(client, TAYCAN)).status_code == 200  # the stored overview is always there
    clock.advance(seconds=wait)
    assert (await status(client, TAYCAN, current="true")).status_code == 200
    assert [c.type.value for c in stack.fleet[TAYCAN].executed] == ["WAKE", "WAKE"]


# --- connection status (VEH-9) -----------------------------------------------------------------------------


async def test_connection_status_shows_the_network_and_the_last_will_marks_the_car_offline(
    stack: Stack,
) -> None:
    client = await stack.as_user(world.OWNER)
    connection = (await vehicles(client))[TAYCAN]["connection"]
    assert (connection["online"], connection["network"]) == (True, "LTE")
    car = stack.fleet[TAYCAN]
    await car.stop()
    car.network = Network.WIFI  # the driver's phone hotspot (CON-1)
    await car.start()

    def connection_is(online: bool, network: str) -> Any:
        async def check() -> bool:
            found = (await vehicles(client))[TAYCAN]["connection"]
            return (found["online"], found["network"]) == (online, network)

        return check

    await eventually(connection_is(True, "WIFI"))
    await car.stop(graceful=False)  # power lost: no goodbye, the broker publishes the car's last will
    await eventually(connection_is(False, "NONE"))
    seen = (await vehicles(client))[TAYCAN]["connection"]["last_seen_at"]
    assert seen is not None and _aware(seen) <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    assert (await status(client, TAYCAN)).json()["connection"]["online"] is False


# --- the vehicle's event stream ----------------------------------------------------------------------------


async def test_the_event_stream_delivers_each_state_of_a_command(stack: Stack) -> None:
    client = await stack.as_user(world.OWNER)
    car = stack.fleet[TAYCAN]
    events: list[tuple[str, dict[str, Any]]] = []

    async def read() -> None:
        async with client.stream("GET", f"/api/v1/vehicles/{TAYCAN}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))

    reader = asyncio.create_task(read())
    try:

        async def listening() -> bool:  # the stream is open once it passes on a report of the car's
            await car.report(frozenset({"tyres"}))
            return any(kind == "telemetry" for kind, _ in events)

        await eventually(listening, interval=0.2)
        response = await client.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "HONK_FLASH"})
        command_id = response.json()["id"]

        def states() -> list[str]:
            return [e["state"] for kind, e in events if kind == "command" and e["id"] == command_id]

        await eventually(lambda: "performed" in states())
        assert states() == ["delivered", "performed"]
        final = next(e for kind, e in events if kind == "command" and e["state"] == "performed")
        assert final == {
            "type": "command",
            "id": command_id,
            "command": "HONK_FLASH",
            "state": "performed",
            "reason": None,
        }
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def test_strangers_cannot_open_a_vehicles_event_stream(stack: Stack) -> None:
    stranger = await stack.as_user(world.STRANGER)
    response = await stranger.get(f"/api/v1/vehicles/{TAYCAN}/events")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "vehicle_not_found")
