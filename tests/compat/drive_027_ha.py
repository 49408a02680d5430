"""Drives pyporscheconnectapi 0.2.7 the way Home Assistant's porscheconnect 0.1.10 does (reference doc §6).

Config flow (a full login), then setup with the saved token, the first refresh (A1, then A2 and A7 per car),
the entities' reads, and the entities' actions on one car. Prints one JSON line. Run with
PYTHONPATH=.compat/ppc-0.2.7. Usage: drive_027_ha.py PORT VIN EMAIL PASSWORD PIN
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pyporscheconnectapi
from local_transport import local_client
from pyporscheconnectapi.account import PorscheConnectAccount
from pyporscheconnectapi.connection import Connection
from pyporscheconnectapi.exceptions import PorscheExceptionError
from pyporscheconnectapi.remote_services import RemoteServices
from pyporscheconnectapi.vehicle import PorscheVehicle

# Home Assistant's sensors: (measurement node, leaf), and which drivetrain they are created for.
SENSORS = {
    "charging_target": ("CHARGING_SUMMARY", "minSoC", "electric"),
    "charging_status": ("CHARGING_SUMMARY", "status", "electric"),
    "charging_rate": ("CHARGING_RATE", "chargingRate-kph", "electric"),
    "charging_finished": ("CHARGING_SUMMARY", "targetDateTimeWithOffset", "electric"),
    "charging_power": ("CHARGING_RATE", "chargingPower", "electric"),
    "remaining_range_electric": ("E_RANGE", "kilometers", "electric"),
    "state_of_charge": ("BATTERY_LEVEL", "percent", "electric"),
    "mileage": ("MILEAGE", "kilometers", "any"),
    "remaining_range": ("RANGE", "kilometers", "ice"),
    "fuel_level": ("FUEL_LEVEL", "percent", "ice"),
}
BINARY_SENSORS = {
    "remote_access": ("REMOTE_ACCESS_AUTHORIZATION", "isEnabled"),
    "privacy_mode": ("GLOBAL_PRIVACY_MODE", "isEnabled"),
    "parking_brake": ("PARKING_BRAKE", "isOn"),
    "parking_light": ("PARKING_LIGHT", "isOn"),
}


def leaf(data: dict[str, Any], node: str, name: str) -> Any:
    """Home Assistant's getVehicleDataLeaf: a missing node or leaf is None (state unknown)."""
    value = data.get(node)
    return value.get(name) if isinstance(value, dict) else None


def entities(vehicle: PorscheVehicle, *, tracker: bool) -> dict[str, Any]:
    """The state of every entity Home Assistant creates for this car."""
    data = vehicle.data
    created = {"any": True, "electric": vehicle.has_electric_drivetrain, "ice": vehicle.has_ice_drivetrain}
    state: dict[str, Any] = {"device": {"name": data["name"], "model": data["modelName"]}}
    state["sensor"] = {
        key: leaf(data, node, name) for key, (node, name, kind) in SENSORS.items() if created[kind]
    }
    if "charging_status" in state["sensor"] and state["sensor"]["charging_status"] is not None:
        state["sensor"]["charging_status"] = state["sensor"]["charging_status"].lower()
    state["binary_sensor"] = {key: leaf(data, node, name) for key, (node, name) in BINARY_SENSORS.items()}
    state["binary_sensor"]["doors_and_lids"] = {
        "closed": vehicle.vehicle_closed,
        "doors": vehicle.doors_and_lids,
    }
    if vehicle.has_tire_pressure_monitoring:
        state["binary_sensor"]["tire_pressure_status"] = vehicle.tire_pressure_status
    if tracker:
        state["device_tracker"] = {"location": vehicle.location, "updated_at": vehicle.location_updated_at}
    state["lock"] = vehicle.vehicle_locked
    switches: dict[str, Any] = {}
    if vehicle.has_remote_climatisation and vehicle.has_remote_services:
        switches["climatise"] = vehicle.remote_climatise_on
    if vehicle.has_direct_charge and vehicle.has_remote_services:
        switches["direct_charging"] = vehicle.direct_charge_on
    state["switch"] = switches
    if vehicle.has_electric_drivetrain and vehicle.has_remote_services:
        state["number"] = {"target_soc": vehicle.charging_target}
    state["image"] = dict(vehicle.picture_locations)
    return state


class Run:
    def __init__(self) -> None:
        self.out: dict[str, Any] = {"errors": {}}

    async def step(self, name: str, action: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await action()
        except Exception as exc:
            self.out["errors"][name] = "".join(traceback.format_exception_only(exc)).strip()
            return None
        self.out[name] = result
        return result


async def config_flow(port: int, email: str, password: str) -> dict[str, Any]:
    """The integration's config flow: sign in with e-mail and password, keep the token."""
    client, transport = local_client(port)
    connection = Connection(email, password, async_client=client)
    account = PorscheConnectAccount(connection=connection)
    await account.get_vehicles()
    token = dict(connection.token)
    await connection.close()
    return {"token": token, "calls": transport.calls}


async def home_assistant(port: int, vin: str, email: str, password: str, pin: str) -> dict[str, Any]:
    run = Run()
    flow = await run.step("config_flow", lambda: config_flow(port, email, password))
    if flow is None:
        return run.out
    client, transport = local_client(port)
    connection = Connection(email, password, async_client=client, token=flow["token"])
    account = PorscheConnectAccount(connection=connection)

    async def first_refresh() -> dict[str, Any]:
        vehicles = await account.get_vehicles()
        for vehicle in vehicles:
            await vehicle.get_stored_overview()
            await vehicle.get_picture_locations()
        return {v.vin: entities(v, tracker=not v.privacy_mode) for v in vehicles}

    await run.step("setup", first_refresh)
    run.out["setup_calls"] = [(c["method"], c["host"], c["path"], c["status"]) for c in transport.calls]
    vehicle = await account.get_vehicle(vin)
    assert vehicle is not None
    services = RemoteServices(vehicle)

    async def pictures() -> dict[str, Any]:
        async with httpx.AsyncClient() as plain:  # the image entity fetches each URL itself
            fetched = {}
            for view, url in vehicle.picture_locations.items():
                response = await plain.get(url)
                fetched[view] = {
                    "status": response.status_code,
                    "type": response.headers.get("content-type"),
                    "png": response.content[:8] == b"\x89PNG\r\n\x1a\n",
                }
            return fetched

    await run.step("images", pictures)

    async def act(action: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        result = await action()
        return {"result": getattr(result, "status", None), "entities": entities(vehicle, tracker=True)}

    async def refused(action: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        try:
            await action()
        except PorscheExceptionError as exc:
            return {"code": getattr(exc, "code", None), "message": exc.message}
        return {"code": None}

    await run.step("button_current_overview", lambda: act(vehicle.get_current_overview))
    await run.step("lock_unlock", lambda: act(lambda: services.unlock_vehicle(pin)))
    wrong_pin = "0000" if pin != "0000" else "9999"
    await run.step("lock_unlock_wrong_code", lambda: refused(lambda: services.unlock_vehicle(wrong_pin)))
    await run.step("lock_lock", lambda: act(services.lock_vehicle))
    # The integration's climatisation_start service: °C + 273.15 and the four seat zones.
    await run.step(
        "service_climatisation_start",
        lambda: act(
            lambda: services.climatise_on(
                target_temperature=23.5 + 273.15,
                front_left=True,
                front_right=True,
                rear_left=False,
                rear_right=False,
            )
        ),
    )
    await run.step("switch_climatise_off", lambda: act(services.climatise_off))
    await run.step("switch_direct_charging_on", lambda: act(services.direct_charge_on))
    await run.step("switch_direct_charging_off", lambda: act(services.direct_charge_off))
    await run.step("number_target_soc", lambda: act(lambda: services.set_target_soc(65)))
    await run.step("button_flash", lambda: act(services.flash_indicators))
    await run.step("button_honk_and_flash", lambda: act(services.honk_and_flash_indicators))
    run.out["identity_calls_after_setup"] = [c for c in transport.calls if not c["path"].startswith("/app/")]
    await connection.close()
    return run.out


def main() -> None:
    port, vin, email, password, pin = int(sys.argv[1]), *sys.argv[2:6]
    out = asyncio.run(home_assistant(port, vin, email, password, pin))
    out["version"] = importlib.metadata.version("pyporscheconnectapi")
    out["loaded_from"] = pyporscheconnectapi.__file__
    out.get("config_flow", {}).pop("token", None)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
