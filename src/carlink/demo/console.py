"""The demo's car console: what a person does sitting in a simulated car (type the pairing code, switch
privacy mode, remote-access authorisation, the data connection or hotspot sharing, restart the car, start it
with a key and log an ID in, VEH-7/VEH-8; drive, park and lock, plug the cable in, let ten minutes pass, so
functions and updates install, FOD-4..8; fire the theft sensors, have the car towed or stolen, put a driver
card in, SEC-1..3). Only
`carlink demo` mounts it; it speaks to the cars directly, and the cars speak to the cloud over MQTT like real
ones."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError

from carlink.sim.car import SimulatedCar
from carlink.sim.fleet import Fleet
from carlink.sim.security import SENSORS
from carlink.web.templating import portal_templates

HERE = Path(__file__).parent
TEMPLATES = portal_templates(HERE / "templates")
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


# What a person does with the car itself: form value -> (what the console says, what the car does).
MOVES: dict[str, tuple[str, Callable[[SimulatedCar], Awaitable[None]]]] = {
    "drive": ("You drive off.", lambda car: car.drive()),
    "park": ("You park, switch off, get out and lock the car.", lambda car: car.park_and_leave()),
    "plug": ("Charging cable plugged in.", lambda car: car.set_charging_cable(True)),
    "unplug": ("Charging cable unplugged.", lambda car: car.set_charging_cable(False)),
    "wait": ("Ten minutes pass in the car.", lambda car: car.pass_time(600)),
}


# The car's theft sensors, as the console names them (SEC-1): form value -> label.
SENSOR_LABELS = {trigger.value: trigger.value.replace("_", " ").capitalize() for trigger in sorted(SENSORS)}
DEMO_CARD = "DEMO-CARD-0001"  # what the console offers to put in; a dealer registers the same serial


# The car's keys in the demo; each remembers the ID (or guest) that used it last (VEH-7).
KEYS = ("key-1", "key-2", "key-3")
OFFLINE = "The car cannot reach carlink now: switch its data connection on and try again."


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
        context = {
            "cars": fleet[:50],
            "messages": cars.last_message,
            "total": len(fleet),
            "keys": KEYS,
            "sensors": SENSOR_LABELS,
            "demo_card": DEMO_CARD,
        }
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

    @router.post("/{vin}/move")
    async def move(vin: str, action: str = Form("")) -> RedirectResponse:
        """Drive, park and lock, the charging cable, time passing: a function or update installs at the
        next chance after the car is parked and locked (FOD-4, FOD-5)."""
        car = _car(vin)
        found = MOVES.get(action)
        if car is not None and found is not None:
            said, act = found
            await act(car)
            cars.last_message[vin] = said
        return _back(vin)

    @router.post("/{vin}/security")
    async def security(vin: str, action: str = Form(""), serial: str = Form("")) -> RedirectResponse:
        """A theft sensor fires, the car is towed or stolen, a driver card goes in or out (SEC-1..3)."""
        car = _car(vin)
        if car is not None:
            said = await _security_action(car, action, serial.strip())
            if said is not None:
                cars.last_message[vin] = said
        return _back(vin)

    # --- in-car ID login (VEH-7, VEH-8) --------------------------------------------------------------

    async def _in_car(vin: str, act: Callable[[SimulatedCar], Awaitable[str]], bad_input: str) -> None:
        """Runs what the person does in the car and keeps what the car says about it."""
        car = _car(vin)
        if car is None:
            return
        try:
            cars.last_message[vin] = await act(car)
        except ValidationError:
            cars.last_message[vin] = bad_input
        except (TimeoutError, aiomqtt.MqttError):
            cars.last_message[vin] = OFFLINE

    @router.post("/{vin}/key")
    async def start_with_key(vin: str, key: str = Form("")) -> RedirectResponse:
        async def act(car: SimulatedCar) -> str:
            occupant = await car.start_with_key(key if key in KEYS else KEYS[0])
            who = "a guest" if occupant.guest else f"{occupant.email} ({occupant.role})"
            return car.id_login.notice or f"Started with {key}: driving as {who}."

        await _in_car(vin, act, "Choose one of the car's keys.")
        return _back(vin)

    @router.post("/{vin}/id-login")
    async def id_login(
        vin: str, email: str = Form(""), password: str = Form(""), security_code: str = Form("")
    ) -> RedirectResponse:
        async def act(car: SimulatedCar) -> str:
            reply = await car.log_in_id(email.strip(), password, security_code.strip() or None)
            return f"Logged in as {reply.email} ({reply.role})." if reply.ok else _said(reply.message)

        await _in_car(vin, act, "Enter your email, password and, if asked, the 4-digit security code.")
        return _back(vin)

    @router.post("/{vin}/cabin")
    async def cabin(
        vin: str, seat_position: int = Form(50), temperature: float = Form(21.0)
    ) -> RedirectResponse:
        async def act(car: SimulatedCar) -> str:
            reply = await car.adjust_cabin(seat_position=seat_position, climate_temperature_c=temperature)
            if reply is None:
                return "Set for this drive. As a guest, nothing is kept."
            return "Saved to your ID." if reply.ok else _said(reply.message)

        await _in_car(vin, act, "Seat positions are 0-100, temperatures 15-30 °C.")
        return _back(vin)

    @router.post("/{vin}/timer")
    async def timer(vin: str) -> RedirectResponse:
        async def act(car: SimulatedCar) -> str:
            reply = await car.request_timer()
            return "Timer set." if reply.ok else _said(reply.message)

        await _in_car(vin, act, "")
        return _back(vin)

    @router.post("/{vin}/id-logout")
    async def id_logout(vin: str) -> RedirectResponse:
        async def act(car: SimulatedCar) -> str:
            await car.log_out_id()
            return "Logged out: the car drives as a guest, and this key is a guest's now."

        await _in_car(vin, act, "")
        return _back(vin)

    return router


async def _security_action(car: SimulatedCar, action: str, serial: str) -> str | None:
    """Does what the security form asks and says what happened; None for an unknown action."""
    online = "" if car.connected.is_set() else " The car is offline: it sends the alarms when it is back."
    if action in SENSOR_LABELS:
        label = SENSOR_LABELS[action]
        alarm_id = await car.trigger_sensor(action)
        if alarm_id is None:
            return f"{label}: no alarm, the car's {_mode(car)} mode covers it."
        return f"{label}: the car raised an alarm for the SOC.{online}"
    if action == "tow":
        await car.tow_away()
        return f"The car is lifted onto a tow truck and carried off 1 km.{online}"
    if action == "steal":
        await car.steal()
        return f"A thief starts the car without its key and drives off.{online}"
    if action == "card_in":
        card = serial or DEMO_CARD
        car.present_driver_card(card)
        return f"Driver card {card} is in the car."
    if action == "card_out":
        car.present_driver_card(None)
        return "No driver card in the car."
    return None


def _mode(car: SimulatedCar) -> str:
    mode = car.security.mode_in_force(car.now())
    return mode.kind if mode is not None else "current"


def _said(message: str | None) -> str:
    return f"The car says: {message or 'that did not work'}."


def _restart_message(started: list[str], waiting: list[str]) -> str:
    if started:
        return f"Restarted. New in the car: {', '.join(started)}."
    if waiting:
        # REQ: STO-7 — new services appear at a restart only while the car is online.
        return f"Restarted without a data connection: {', '.join(waiting)} still waiting."
    return "Restarted. No new services."
