"""Drives pyporscheconnectapi 0.2.9 (library, then porschecli) against a local carlink; prints one JSON line.

Run by tests/compat/test_clients.py with PYTHONPATH=.compat/ppc-0.2.9, so the client comes from the PyPI
wheel. Usage: drive_029.py PORT VIN EMAIL PASSWORD PIN
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import io
import json
import sys
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pyporscheconnectapi
from local_transport import LocalTransport, local_client
from pyporscheconnectapi import cli
from pyporscheconnectapi.account import PorscheConnectAccount
from pyporscheconnectapi.connection import Connection
from pyporscheconnectapi.exceptions import PorscheExceptionError
from pyporscheconnectapi.remote_services import RemoteServices
from pyporscheconnectapi.vehicle import PorscheVehicle

PROPERTIES = (
    "model_name",
    "model_year",
    "connected",
    "main_battery_level",
    "vehicle_locked",
    "vehicle_closed",
    "doors_and_lids",
    "location",
    "tire_pressures",
    "tire_pressure_status",
    "has_tire_pressure_monitoring",
    "charging_target",
    "direct_charge_on",
    "has_direct_charge",
    "remote_climatise_on",
    "has_remote_climatisation",
    "climatisation_target_temperature",
    "climatisation_remaining_time",
    "seat_heating",
    "privacy_mode",
    "has_remote_services",
    "mileage",
    "remaining_range",
    "electric_range",
    "fuel_level",
    "has_electric_drivetrain",
    "has_ice_drivetrain",
    "last_global_update",
    "location_updated_at",
)


def describe(vehicle: PorscheVehicle) -> dict[str, Any]:
    """What the library makes of the data: every property a user of 0.2.9 reads."""
    return {"name": vehicle.data.get("name"), **{name: getattr(vehicle, name) for name in PROPERTIES}}


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


async def library(port: int, vin: str, email: str, password: str, pin: str) -> dict[str, Any]:
    run = Run()
    client, transport = local_client(port)
    connection = Connection(email, password, async_client=client)

    async def login() -> dict[str, Any]:
        token = await connection.get_token()
        return {"calls": list(transport.calls), "token_fields": sorted(token)}

    async def refresh() -> dict[str, Any]:
        transport.calls.clear()
        connection.token["expires_at"] = int(time.time()) - 5  # as if an hour had passed
        await connection.get_token()
        return {
            "calls": list(transport.calls),
            "valid_for": connection.token["expires_at"] - int(time.time()),
        }

    await run.step("login", login)
    await run.step("refresh", refresh)
    account = PorscheConnectAccount(connection=connection)
    vehicles = await run.step("list", lambda: _list(account))
    if not vehicles:
        return run.out
    vehicle = await account.get_vehicle(vin)
    assert vehicle is not None
    services = RemoteServices(vehicle)

    async def overview(current: bool) -> dict[str, Any]:
        await (vehicle.get_current_overview() if current else vehicle.get_stored_overview())
        return describe(vehicle)

    await run.step("stored", lambda: overview(False))
    await run.step("current", lambda: overview(True))
    # Woken moments ago: the rate limit answers with the stored data instead of failing (RMT-2).
    await run.step(
        "current_again",
        lambda: connection.get(
            f"/connect/v1/vehicles/{vin}?mf=MILEAGE&mf=GLOBAL_TIMESTAMP&wakeUpJob={uuid.uuid4()}"
        ),
    )
    await run.step("everything", lambda: connection.get(f"/connect/v1/vehicles/{vin}?mf=*"))
    await run.step("double_slash_list", lambda: connection.get("//connect/v1/vehicles"))

    async def capabilities() -> dict[str, Any]:
        await vehicle.get_capabilities()
        return {
            c["key"]: {"status": c["status"], "metadata": c.get("metadata")}
            for c in vehicle.capabilities["commands"]
        }

    await run.step("capabilities", capabilities)

    async def pictures() -> dict[str, Any]:
        await vehicle.get_picture_locations()
        fetched = {}
        async with httpx.AsyncClient() as plain:  # as Home Assistant does: no token, just the URL
            for view, url in vehicle.picture_locations.items():
                response = await plain.get(url)
                fetched[view] = {
                    "url": url,
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type"),
                    "png": response.content[:8] == b"\x89PNG\r\n\x1a\n",
                    "bytes": len(response.content),
                }
        return fetched

    await run.step("pictures", pictures)

    async def command(action: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        result = await action()
        return {"result": result.status if result is not None else None, "after": describe(vehicle)}

    async def refused(action: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        try:
            await action()
        except PorscheExceptionError as exc:
            return {"code": getattr(exc, "code", None), "message": exc.message}
        except ValueError as exc:
            return {"value_error": str(exc)}
        return {"code": None}

    await run.step("flash", lambda: command(services.flash_indicators))
    await run.step("lock", lambda: command(services.lock_vehicle))
    wrong_pin = "0000" if pin != "0000" else "9999"
    await run.step("unlock_wrong_pin", lambda: refused(lambda: services.unlock_vehicle(wrong_pin)))
    await run.step("unlock", lambda: command(lambda: services.unlock_vehicle(pin)))
    await run.step(
        "climatise_too_hot", lambda: refused(lambda: services.climatise_on(target_temperature=313.15))
    )
    await run.step(
        "climatise_on",
        lambda: command(
            lambda: services.climatise_on(target_temperature=295.15, front_left=True, rear_right=True)
        ),
    )
    await run.step("climatise_off", lambda: command(services.climatise_off))
    await run.step("direct_charge_on", lambda: command(services.direct_charge_on))
    await run.step("direct_charge_off", lambda: command(services.direct_charge_off))
    await run.step("target_soc", lambda: command(lambda: services.set_target_soc(70)))
    run.out["token"] = dict(connection.token)
    await connection.close()
    return run.out


async def _list(account: PorscheConnectAccount) -> list[dict[str, Any]]:
    return [v.data for v in await account.get_vehicles()]


def porschecli(port: int, session_file: str, *argv: str) -> dict[str, Any]:
    """One `porschecli` run, as from a shell: the default httpx client is replaced by the local one
    (reference doc §5) and dummy credentials are passed, since the CLI prompts for them otherwise."""
    client = httpx.AsyncClient(transport=LocalTransport(port))
    defaults = list(Connection.__init__.__defaults__ or ())
    defaults[4] = client  # the async_client slot
    Connection.__init__.__defaults__ = tuple(defaults)
    sys.argv = ["porschecli", "-e", "dummy@example.com", "-p", "dummy", "-s", session_file, "-j", *argv]
    printed = io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(printed):
        try:
            cli.cli()
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # reported in the JSON, asserted on by the test
            code = "".join(traceback.format_exception_only(exc)).strip()
    text = printed.getvalue()
    try:
        output: Any = json.loads(text)
    except ValueError:
        output = text
    return {"exit": code, "output": output}


def main() -> None:
    port, vin, email, password, pin = int(sys.argv[1]), *sys.argv[2:6]
    out = asyncio.run(library(port, vin, email, password, pin))
    out["version"] = importlib.metadata.version("pyporscheconnectapi")
    out["loaded_from"] = pyporscheconnectapi.__file__
    token = out.pop("token", None)
    if token:
        session_file = "session.json"
        with open(session_file, "w", encoding="utf-8") as handle:
            json.dump(token, handle)
        out["cli"] = {
            "list": porschecli(port, session_file, "list"),
            "storedoverview": porschecli(port, session_file, "storedoverview", "-v", vin),
            "tire_pressures": porschecli(port, session_file, "tire_pressures", "-v", vin),
            "capabilities": porschecli(port, session_file, "capabilities", "-v", vin),
            "pictures": porschecli(port, session_file, "pictures", "-v", vin),
            "honk_and_flash": porschecli(port, session_file, "honk_and_flash", "-v", vin),
            "chargingsettings": porschecli(
                port, session_file, "chargingsettings", "-v", vin, "--targetsoc", "80"
            ),
            "battery": porschecli(port, session_file, "battery", "-v", vin),
        }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
