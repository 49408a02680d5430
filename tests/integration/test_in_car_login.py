"""In-car ID login with real cars over a real broker (VEH-7, VEH-8): profiles per ID, keys that remember,
visitors with the security code, guest mode, and the end of a login (ACC-5)."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from carlink.clock import clock
from carlink.demo import world
from carlink.demo.console import DemoCars, console_router
from carlink.incar import personal_data, service
from carlink.notify.models import Notification
from tests.support.portal import account_id, csrf_of
from tests.support.stack import PANAMERA, TAYCAN, Stack, eventually


async def portal_browser(stack: Stack, email: str) -> httpx.AsyncClient:
    """A browser session signed in through the portal's form."""
    browser = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
    form = await browser.get("/signin")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    data = {"email": email, "password": world.PASSWORD, "login_token": token.group(1)}
    assert (await browser.post("/signin", data=data)).status_code == 303
    return browser


async def test_ids_log_into_the_taycan_and_each_key_recalls_its_driver(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    car = stack.fleet[TAYCAN]
    # REQ: VEH-7 — a key nobody logged in with is a guest's: defaults, nothing sent, no timers.
    guest = await car.start_with_key("key-1")
    assert guest.guest and guest.cabin.seat_position == 50
    assert await car.adjust_cabin(seat_position=10) is None
    timer = await car.request_timer()
    assert (timer.ok, timer.error) == (False, "guest_no_timers")
    assert (await car.change_service_settings(favourites=["Home"])).error == "guest_not_saved"
    assert car.id_login_requests == []

    # REQ: VEH-7 — the owner logs in with the ID; the car keeps the seat and climate for the ID.
    login = await car.log_in_id(world.OWNER, world.PASSWORD)
    assert (login.ok, login.role, login.error) == (True, "main", None)
    assert login.token and car.id_login.keys["key-1"].token == login.token
    saved = await car.adjust_cabin(seat_position=30, climate_temperature_c=22.5, climate_mode="eco")
    assert saved is not None and saved.ok
    assert (await car.change_service_settings(favourites=["Home", "Office"])).ok

    # The family member takes the car with the second key and sets their own seat.
    assert (await car.start_with_key("key-2")).guest
    family = await car.log_in_id(world.FAMILY, world.PASSWORD)
    assert (family.ok, family.role) == (True, "secondary")
    assert family.services is not None and family.services.favourites == []
    assert (await car.adjust_cabin(seat_position=70)) is not None
    assert (await car.request_timer()).ok  # a secondary user may set timers

    # REQ: VEH-7 — the first key recalls the owner's settings without the password.
    requests_before = len(car.id_login_requests)
    owner = await car.start_with_key("key-1")
    assert (owner.role, owner.email, owner.cabin.seat_position) == ("main", world.OWNER, 30)
    assert (owner.cabin.climate_temperature_c, owner.cabin.climate_mode) == (22.5, "eco")
    assert owner.services.favourites == ["Home", "Office"]
    assert [r.action for r in car.id_login_requests[requests_before:]] == ["resume"]

    # REQ: VEH-7 — service settings changed through the API appear at the next resume.
    client = await stack.as_user(world.OWNER)
    changed = await client.put(
        "/api/v1/me/in-car-settings",
        json={"service_settings": {"radio_stations": ["SWR3", "Deutschlandfunk"]}},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["service_settings"]["favourites"] == ["Home", "Office"]
    assert changed.json()["service_settings"]["radio_stations"] == ["SWR3", "Deutschlandfunk"]
    assert [c["vin"] for c in changed.json()["logged_in_cars"]] == [TAYCAN]
    too_many = await client.put(
        "/api/v1/me/in-car-settings",
        json={"service_settings": {"weather_places": [str(n) for n in range(11)]}},
    )
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (400, "too_many_service_settings")
    resumed = await car.start_with_key("key-1")
    assert resumed.services.radio_stations == ["SWR3", "Deutschlandfunk"]
    assert resumed.cabin.seat_position == 30

    # The second key recalls the family member; logging out makes it a guest's key again.
    assert (await car.start_with_key("key-2")).cabin.seat_position == 70
    assert (await car.log_out_id()) is not None
    assert (await car.start_with_key("key-2")).guest

    # PRV-5 export names the car but never a token.
    owner_id = await account_id(stack, world.OWNER)
    async with stack.db.session() as session:
        exported = await personal_data.export(session, owner_id)
    assert exported["profile"]["seat_position"] == 30 and login.token not in str(exported)

    # REQ: ACC-5 — the ID deleted: its token is refused at resume and the car falls back to guest.
    async with stack.db.transaction() as session:
        await service.reset_for_account(session, owner_id)
    after = await car.start_with_key("key-1")
    assert after.guest and car.id_login.notice and car.id_login.keys["key-1"].guest
    assert car.id_login.notice.startswith("this login has ended")

    # Malformed requests are dropped; no password, security code or token ever reaches the logs.
    secret_request = {"v": 1, "id": "malformed-1", "action": "login", "email": world.OWNER}
    secret_request |= {"password": "Secret-Passw0rd", "security_code": "98765"}
    await car.publish_raw(car.topics.up(TAYCAN, "idlogin"), json.dumps(secret_request).encode())
    await eventually(lambda: "malformed idlogin" in caplog.text)
    for secret in ("Secret-Passw0rd", "98765", world.PASSWORD, login.token, family.token):
        assert secret not in caplog.text


async def test_strangers_need_the_security_code_and_models_without_id_login_refuse(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    await car.start_with_key("key-3")
    # REQ: VEH-8 — not a user of the car: the security code is needed, then a visitor without timers.
    needed = await car.log_in_id(world.STRANGER, world.PASSWORD)
    assert (needed.ok, needed.error) == (False, "security_code_required")
    wrong_password = await car.log_in_id(world.STRANGER, "not-the-password", security_code=world.PIN)
    assert (wrong_password.ok, wrong_password.error) == (False, "invalid_credentials")
    visitor = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code=world.PIN)
    assert (visitor.ok, visitor.role) == (True, "visitor")
    timer = await car.request_timer()
    assert (timer.ok, timer.error) == (False, "timers_need_assignment")
    assert (await car.adjust_cabin(seat_position=5)) is not None

    # The portal shows the visitor's car and settings; the visitor logs out of the car there.
    client = await stack.as_user(world.STRANGER)
    settings = (await client.get("/api/v1/me/in-car-settings")).json()
    assert [(c["vin"], c["role"]) for c in settings["logged_in_cars"]] == [(TAYCAN, "visitor")]
    assert settings["profile"]["seat_position"] == 5
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        assert (await anonymous.get("/account/in-car")).status_code == 303
    browser = await portal_browser(stack, world.STRANGER)
    page = await browser.get("/account/in-car")
    assert page.status_code == 200 and TAYCAN in page.text and "Visitor" in page.text
    csrf = csrf_of(page.text)
    favourite = {"csrf_token": csrf, "kind": "favourites", "label": "  Zoo   Stuttgart "}
    assert (await browser.post("/account/in-car/services", data=favourite)).status_code == 303
    again = await browser.post("/account/in-car/services", data=favourite)
    assert again.status_code == 400 and "in your list already" in again.text
    too_long = await browser.post("/account/in-car/services", data={**favourite, "label": "x" * 81})
    assert too_long.status_code == 400
    forged = await browser.post("/account/in-car/services", data={**favourite, "csrf_token": "forged"})
    assert forged.status_code in (400, 403)
    assert "Zoo Stuttgart" in (await browser.get("/account/in-car")).text
    removed = await browser.post(
        "/account/in-car/services/remove",
        data={"csrf_token": csrf, "kind": "favourites", "label": "Zoo Stuttgart"},
    )
    assert removed.status_code == 303
    assert (await client.get("/api/v1/me/in-car-settings")).json()["service_settings"]["favourites"] == []
    logout = await browser.post(f"/account/in-car/cars/{TAYCAN}/logout", data={"csrf_token": csrf})
    assert logout.status_code == 303
    await browser.aclose()
    assert (await car.start_with_key("key-3")).guest
    assert (await client.delete(f"/api/v1/me/in-car-logins/{TAYCAN}")).status_code == 404

    # REQ: VEH-8 — wrong codes count; the fifth locks the code, even against the right one.
    for tries_left in (4, 3, 2, 1):
        wrong = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code="9999")
        assert (wrong.ok, wrong.error) == (False, "wrong_security_code")
        assert f"{tries_left} tries left" in (wrong.message or "")
    locked = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code="9999")
    assert (locked.ok, locked.error) == (False, "security_code_locked")
    still = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code=world.PIN)
    assert (still.ok, still.error) == (False, "security_code_locked")
    # The car's own users need no code, locked or not.
    assert (await car.log_in_id(world.FAMILY, world.PASSWORD)).role == "secondary"
    # The owner is told, and the next lock lasts twice as long: guessing 10,000 codes takes years.
    async with stack.db.session() as session:
        told = await session.scalar(select(Notification).where(Notification.kind == "security_code_locked"))
    assert told is not None and TAYCAN in told.title
    clock.advance(seconds=61 * 60)
    for _ in range(4):
        wrong = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code="9999")
        assert wrong.error == "wrong_security_code"
    again = await car.log_in_id(world.STRANGER, world.PASSWORD, security_code="9999")
    assert again.error == "security_code_locked" and "120 minutes" in (again.message or "")

    # REQ: VEH-1 — the Panamera has no in-car ID login.
    panamera = await stack.fleet[PANAMERA].log_in_id(world.OWNER, world.PASSWORD)
    assert (panamera.ok, panamera.error) == (False, "id_login_unsupported")

    # The demo's car console drives the same car: start with a key, log in, set a timer.
    app = FastAPI()
    app.include_router(console_router(DemoCars(fleet=stack.fleet)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as demo:
        started = await demo.post(f"/demo/cars/{TAYCAN}/key", data={"key": "key-1"})
        assert started.status_code == 303
        login_form = {"email": world.OWNER, "password": world.PASSWORD}
        assert (await demo.post(f"/demo/cars/{TAYCAN}/id-login", data=login_form)).status_code == 303
        assert "Logged in as owner@example.com (main)" in (await demo.get("/demo/cars")).text
        await demo.post(f"/demo/cars/{TAYCAN}/cabin", data={"seat_position": "200", "temperature": "21"})
        assert "Seat positions are 0-100" in (await demo.get("/demo/cars")).text
        await demo.post(f"/demo/cars/{TAYCAN}/id-logout")
        await demo.post(f"/demo/cars/{TAYCAN}/timer")
        assert "Timers need an ID" in (await demo.get("/demo/cars")).text
