"""The demo's car console: what a person does sitting in a simulated car (type the pairing code, switch
privacy mode, remote-access authorisation, the data connection or hotspot sharing, restart the car). Only
`carlink demo` mounts it; it speaks to the cars directly, and the cars speak to the cloud over MQTT like real
ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from carlink.sim.fleet import Fleet

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=[str(HERE / "templates"), str(HERE.parent / "web" / "templates")])
PAIRING_MESSAGES = {
    None: "Linked: the car now shows your ID's services.",
    "NO_DATA_CONNECTION": (
        "The car says: no data connection. (This is a secondary user's code: remote access is for the main "
        "user only.)"
    ),
    "INVALID_CODE": "The car says: this pairing code is not valid for this vehicle.",
}


# What a person can switch in the car: form value -> (label, SimulatedCar method taking on/off).
SWITCHES = {
    "privacy": ("Privacy mode", "set_privacy_mode"),
    "remote_access": ("Remote-access authorisation", "set_remote_access"),
    "data": ("Data connection", "set_data_connection"),
    "hotspot": ("Hotspot sharing", "set_hotspot_sharing"),
}
# What the car says when it refuses a switch (the method returned False).
REFUSALS = {
    "hotspot": "The car says: hotspot sharing needs a data package, and none is active in this car.",
}


@dataclass
class DemoCars:
    fleet: Fleet | None = None
    last_message: dict[str, str] = field(default_factory=dict)


def console_router(cars: DemoCars) -> APIRouter:
    router = APIRouter(prefix="/demo/cars", include_in_schema=False)

    def _car(vin: str):  # type: ignore[no-untyped-def]
        if cars.fleet is None or vin not in cars.fleet.cars:
            return None
        return cars.fleet[vin]

    def _back(vin: str) -> RedirectResponse:
        return RedirectResponse(f"/demo/cars#car-{vin}", status_code=303)

    @router.get("", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        fleet = list(cars.fleet.cars.values()) if cars.fleet else []
        context = {"cars": fleet[:50], "messages": cars.last_message, "total": len(fleet)}
        return TEMPLATES.TemplateResponse(request, "car_console.html", context)

    @router.post("/{vin}/pair")
    async def pair(vin: str, code: str = Form("")) -> RedirectResponse:
        car = _car(vin)
        if car is not None:
            if not (len(code) == 8 and code.isdigit()):
                cars.last_message[vin] = "A pairing code has 8 digits."
            else:
                reply = await car.enter_pairing_code(code)
                cars.last_message[vin] = PAIRING_MESSAGES.get(reply.error, reply.error or "")
        return _back(vin)

    @router.post("/{vin}/switch")
    async def switch(vin: str, setting: str = Form(""), on: bool = Form(False)) -> RedirectResponse:
        car = _car(vin)
        action = SWITCHES.get(setting)
        if car is not None and action is not None:
            label, method = action
            accepted = await getattr(car, method)(on)
            if accepted is False:
                cars.last_message[vin] = REFUSALS[setting]
            else:
                cars.last_message[vin] = f"{label} {'on' if on else 'off'}."
        return _back(vin)

    @router.post("/{vin}/restart")
    async def restart(vin: str) -> RedirectResponse:
        car = _car(vin)
        if car is not None:
            waiting = sorted(car.entitlements.pending)
            await car.restart()
            started = [code for code in waiting if code in car.entitlements.applied]
            cars.last_message[vin] = _restart_message(started, waiting)
        return _back(vin)

    return router


def _restart_message(started: list[str], waiting: list[str]) -> str:
    if started:
        return f"Restarted. New in the car: {', '.join(started)}."
    if waiting:
        # REQ: STO-7 — new services appear at a restart only while the car is online.
        return f"Restarted without a data connection: {', '.join(waiting)} still waiting."
    return "Restarted. No new services."
