"""Rate limits answer 429 with a stable code and Retry-After in seconds (issue 9, point 4): remote commands
and PIN challenges per ID and car on every channel, sign-in per source address and per ID. The limits are
lowered through settings so a test needs few requests; long windows pass on the fake clock.

The wake-up limit (one per car per interval, `wake_rate_limited`) is proven in
tests/integration/test_pairing_and_status.py.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from carlink.clock import clock
from carlink.demo import world
from carlink.identity.access import CSRF_HEADER
from carlink.remote.service import spin_hash
from tests.conftest import POSTGRES_STACK, STACKS
from tests.support.portal import Browser
from tests.support.stack import PANAMERA, TAYCAN, Stack

SQLITE_STACK = [STACKS[0]]
COMPAT = "/app/connect/v1/vehicles"


def refused(response: httpx.Response) -> tuple[int, str, int]:
    """(status, code, Retry-After) of a refusal from /api/v1, the compatibility facade or a page."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        code = body["error"]["code"] if isinstance(body["error"], dict) else body["error"]
    else:
        found = re.search(r'data-code="([^"]+)"', response.text)
        code = found.group(1) if found else ""
    return response.status_code, code, int(response.headers.get("Retry-After", "0"))


@pytest.mark.stack_settings(commands_per_vehicle=3, command_window_seconds=300)
@pytest.mark.parametrize("stack", SQLITE_STACK, indirect=True)
async def test_remote_commands_are_limited_per_id_and_car_on_every_channel(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    try:
        url = f"/api/v1/vehicles/{TAYCAN}/commands"
        for _ in range(2):
            assert (await owner.post(url, json={"type": "LOCK"})).status_code == 202
        compat = await owner.post(f"{COMPAT}/{TAYCAN}/commands", json={"key": "LOCK", "payload": {}})
        assert compat.status_code == 200, compat.text  # the third, through the facade
        status, code, wait = refused(await owner.post(url, json={"type": "LOCK"}))
        assert (status, code) == (429, "command_rate_limited") and 290 <= wait <= 301
        status, code, wait = refused(
            await owner.post(f"{COMPAT}/{TAYCAN}/commands", json={"key": "HONK_FLASH", "payload": {}})
        )
        assert (status, code) == (429, "command_rate_limited") and 0 < wait <= 301
        # Another car of the same ID has its own count.
        assert (
            await owner.post(f"/api/v1/vehicles/{PANAMERA}/commands", json={"type": "LOCK"})
        ).status_code == 202
        clock.advance(seconds=wait)
        assert (await owner.post(url, json={"type": "LOCK"})).status_code == 202
    finally:
        await owner.aclose()


# The app's access token must outlive the PIN's hour-long lock on the fake clock.
@pytest.mark.stack_settings(
    pin_challenges_per_vehicle=4, pin_challenge_window_seconds=600, access_token_seconds=86400
)
@pytest.mark.parametrize("stack", SQLITE_STACK, indirect=True)
async def test_pin_entry_is_limited_and_its_lock_says_when_to_retry(stack: Stack) -> None:
    owner = await stack.as_user(world.OWNER)
    portal = await Browser(stack).sign_in(world.OWNER)
    try:
        challenges = f"/api/v1/vehicles/{TAYCAN}/pin-challenges"
        commands = f"/api/v1/vehicles/{TAYCAN}/commands"
        answers = []
        for _ in range(stack.settings.pin_failures_before_lock):  # wrong PINs lock the PIN (RMT-1)
            challenge = (await owner.post(challenges)).json()["challenge"]
            spin = {"challenge": challenge, "hash": spin_hash("0000", challenge)}
            answers.append(await owner.post(commands, json={"type": "UNLOCK", "spin": spin}))
        lock_seconds = stack.settings.pin_lock_minutes * 60
        assert refused(answers[-1]) == (423, "pin_locked", lock_seconds)
        status, code, wait = refused(await owner.post(challenges))
        assert (status, code) == (423, "pin_locked") and 0 < wait <= lock_seconds
        clock.advance(seconds=wait)
        # The lock has run out; now the challenges per window: the API, the facade, the portal's unlock.
        for _ in range(2):
            assert (await owner.post(challenges)).status_code == 201
        spin_challenge = await owner.post(f"{COMPAT}/{TAYCAN}/commands", json={"key": "SPIN_CHALLENGE"})
        assert spin_challenge.status_code == 200, spin_challenge.text
        unlock = await portal.http.post(
            f"/vehicles/{TAYCAN}/unlock", json={"pin": world.PIN}, headers={CSRF_HEADER: portal.csrf}
        )
        assert unlock.status_code == 202, unlock.text
        status, code, wait = refused(await owner.post(challenges))
        assert (status, code) == (429, "pin_rate_limited") and 590 <= wait <= 601
        facade = await owner.post(f"{COMPAT}/{TAYCAN}/commands", json={"key": "SPIN_CHALLENGE"})
        assert refused(facade)[:2] == (429, "pin_rate_limited")
        again = await portal.http.post(
            f"/vehicles/{TAYCAN}/unlock",
            json={"pin": world.PIN},
            headers={CSRF_HEADER: portal.csrf, "Accept": "application/json"},
        )
        assert refused(again)[:2] == (429, "pin_rate_limited")
        clock.advance(seconds=wait)
        assert (await owner.post(challenges)).status_code == 201
    finally:
        await owner.aclose()
        await portal.close()


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await http.get("/signin")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    data = {"email": email, "password": password, "login_token": token.group(1)}
    return await http.post("/signin", data=data, headers={"Accept": "text/html"})


@pytest.mark.stack_settings(login_failures_per_source_per_10min=4)
@pytest.mark.parametrize("stack", SQLITE_STACK, indirect=True)
async def test_sign_in_is_limited_per_source_address(stack: Stack) -> None:
    """After a number of failures from one address, every sign-in from it waits, on the portal and in the
    app's sign-in alike. (Per ID, the growing delay and the lock answer 429 and 423 with Retry-After:
    tests/integration/test_identity.py.)"""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        for number in range(stack.settings.login_failures_per_source_per_10min):
            assert (await sign_in(http, f"nobody{number}@example.com", "not-it")).status_code == 400
        status, _code, wait = refused(await sign_in(http, world.OWNER, world.PASSWORD))
        assert status == 429 and 0 < wait <= 600  # the page says why in words
        params = {"client_id": "carlink-app", "redirect_uri": "carlink://callback", "scope": "openid"}
        started = await http.get("/authorize", params=params)
        state = httpx.URL(started.headers["location"]).params["state"]
        login = {"state": state, "username": world.OWNER, "password": world.PASSWORD}
        await http.post("/u/login/identifier", data=login)
        status, code, wait = refused(await http.post("/u/login/password", data=login))
        assert (status, code) == (429, "too_many_requests") and 0 < wait <= 600
        clock.advance(seconds=wait)
        assert (await sign_in(http, world.OWNER, world.PASSWORD)).status_code == 303


@pytest.mark.stack_settings(commands_per_vehicle=4, pin_challenges_per_vehicle=4)
@pytest.mark.parametrize("stack", [POSTGRES_STACK], indirect=True)
async def test_parallel_requests_do_not_slip_past_a_limit(stack: Stack) -> None:
    """Counting and recording happen under a lock of the person's membership of the car: seven requests at
    once get four answers and three refusals, not seven answers (PostgreSQL runs them truly in parallel)."""
    owner = await stack.as_user(world.OWNER)
    try:
        for path, body in ((f"/api/v1/vehicles/{TAYCAN}/commands", {"type": "LOCK"}),
                           (f"/api/v1/vehicles/{TAYCAN}/pin-challenges", None)):  # fmt: skip
            answers = await asyncio.gather(*(owner.post(path, json=body) for _ in range(7)))
            statuses = sorted(answer.status_code for answer in answers)
            assert statuses.count(429) == 3 and all(status in (201, 202) for status in statuses[:4]), statuses
    finally:
        await owner.aclose()
