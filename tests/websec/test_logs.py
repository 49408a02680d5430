"""No password, PIN, card number, token or key in the logs (issue 9, point 4).

A full journey runs against a real stack (SQLite and the embedded broker, which logs in this process) with
every logger the service has at DEBUG — carlink's own, uvicorn's access log (which prints query strings
such as `?code=`), and the libraries at the levels the service gives them (carlink.logs.NOISY) — captured
to a file. The journey uses every kind of secret: passwords at sign-in and registration, the app's
sign-in with its code, verifier and tokens, the PIN set and used (and its SHA-512 answers), a card at
checkout, an invitation link, the session and CSRF tokens, the cloud secret and the broker passwords
derived from it.
Then the file is searched for each value; any hit fails with the line.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
from collections.abc import Awaitable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.gateway.credentials import car_password, gateway_password
from carlink.identity.access import CSRF_HEADER, SESSION_COOKIE
from carlink.identity.tokens import pkce_s256
from carlink.logs import NOISY
from carlink.remote.service import spin_hash
from tests.conftest import STACKS
from tests.integration.test_store_contracts import checkout, ready_cart
from tests.support.portal import Browser
from tests.support.purchases import dealer_sale
from tests.support.stack import SECRET, TAYCAN, Stack, eventually

# The test's own HTTP client logs every URL it calls; it is not the service.
TEST_CLIENT = ("httpx", "httpcore")
PIN = "9317"
BUYER = "log.buyer@example.com"  # invited by a dealer's sale
CARD = "4242424242424242"


@contextlib.contextmanager
def every_log_to(path: Path) -> Iterator[None]:
    """The service's loggers at DEBUG into `path`: carlink and uvicorn (access log included), the noisy
    libraries as carlink.logs.configure leaves them."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    levels = {"": logging.DEBUG, "carlink": logging.DEBUG, "uvicorn": logging.DEBUG}
    levels |= {name: logging.WARNING for name in (*NOISY, *TEST_CLIENT)}
    levels["uvicorn.access"] = logging.DEBUG
    saved = {name: logging.getLogger(name).level for name in levels}
    # uvicorn's own loggers do not propagate to the root: the file is their handler too.
    holders = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.access")]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for holder in holders:
        holder.addHandler(handler)
    try:
        yield
    finally:
        for holder in holders:
            holder.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        handler.close()


async def app_sign_in(stack: Stack, secrets_used: list[str]) -> str:
    """The app's sign-in (authorization code with PKCE) and a refresh; returns the access token."""
    verifier = secrets.token_urlsafe(48)
    params = {
        "client_id": "carlink-app",
        "redirect_uri": "carlink://callback",
        "response_type": "code",
        "scope": "openid offline_access vehicles",
        "state": "app-state",
        "code_challenge": pkce_s256(verifier),
        "code_challenge_method": "S256",
    }
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        started = await http.get("/authorize", params=params)
        state = httpx.URL(started.headers["location"]).params["state"]
        await http.get(started.headers["location"])
        login = {"state": state, "username": world.OWNER, "password": world.PASSWORD}
        await http.post(f"/u/login/identifier?state={state}", data=login)
        done = await http.post(f"/u/login/password?state={state}", data=login)
        assert done.status_code == 302, done.text
        resumed = await http.get(done.headers["location"])
        code = httpx.URL(resumed.headers["location"]).params["code"]
        body = {
            "grant_type": "authorization_code",
            "client_id": "carlink-app",
            "code": code,
            "redirect_uri": "carlink://callback",
            "code_verifier": verifier,
        }
        tokens = (await http.post("/oauth/token", data=body)).json()
        refreshed = await http.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "carlink-app",
                "refresh_token": tokens["refresh_token"],
            },
        )
        assert refreshed.status_code == 200, refreshed.text
        secrets_used += [state, code, verifier, tokens["access_token"], tokens["refresh_token"]]
        secrets_used += [tokens.get("id_token", state), refreshed.json()["access_token"]]
        return str(tokens["access_token"])


async def remote_access(stack: Stack) -> tuple[bool, bool]:
    async with stack.db.session() as session:
        found = (
            await session.execute(
                select(Vehicle.remote_access_authorised, Vehicle.remote_access_reset_pending).where(
                    Vehicle.vin == TAYCAN
                )
            )
        ).one()
    return bool(found[0]), bool(found[1])


async def authorise_in_the_car_again(stack: Stack) -> None:
    """A new PIN switches remote access off in the owner's cars (VEH-5); the owner switches it on in the
    car again."""
    car = stack.fleet[TAYCAN]
    await eventually(lambda: car.state.remote_access is False, 20)
    await eventually(lambda: _is(remote_access(stack), (False, False)), 20)
    await car.set_remote_access(True)
    await eventually(lambda: _is(remote_access(stack), (True, False)), 20)


async def _is(found: Awaitable[tuple[bool, bool]], expected: tuple[bool, bool]) -> bool:
    return await found == expected


async def journey(stack: Stack, secrets_used: list[str]) -> None:
    # The portal: a wrong and a right password, a PIN set with the password, a card saved in a form.
    wrong_password = "Wrong-Password-7731"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        form = await http.get("/signin")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"email": world.OWNER, "password": wrong_password, "login_token": token.group(1)}
        assert (await http.post("/signin", data=data)).status_code == 400
        secrets_used += [wrong_password, token.group(1)]
    portal = await Browser(stack).sign_in(world.OWNER)
    try:
        secrets_used += [portal.csrf, portal.http.cookies[SESSION_COOKIE]]
        answer = await portal.post("/account/pin", {"password": world.PASSWORD, "pin": PIN})
        assert answer.status_code == 303, answer.text
        await authorise_in_the_car_again(stack)
        card = {"number": CARD, "exp_month": "12", "exp_year": "2031", "cvc": "737", "holder": "Pat Owner"}
        assert (await portal.post("/account/payment", card)).status_code in (200, 303)
        unlock = await portal.http.post(
            f"/vehicles/{TAYCAN}/unlock", json={"pin": PIN}, headers={CSRF_HEADER: portal.csrf}
        )
        assert unlock.status_code == 202, unlock.text
    finally:
        await portal.close()
    # The app: sign-in, the PIN through a challenge, a checkout with a card.
    access = await app_sign_in(stack, secrets_used)
    async with httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {access}"}, timeout=30
    ) as app:
        challenge = (await app.post(f"/api/v1/vehicles/{TAYCAN}/pin-challenges")).json()["challenge"]
        answer_hash = spin_hash(PIN, challenge)
        spin = {"challenge": challenge, "hash": answer_hash}
        sent = await app.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "UNLOCK", "spin": spin})
        assert sent.status_code == 202, sent.text
        secrets_used.append(answer_hash)
        cart = await ready_cart(app, TAYCAN, "navigation-plus", "P1Y", card="4242 4242 4242 4242")
        assert (await checkout(app, TAYCAN, cart["revision"])).status_code == 201
    # An invitation: the link opened, asked about by the app, and used with a new password.
    invitation = (await dealer_sale(stack, BUYER, "Log Buyer")).token
    new_password = "Invitee-Pass-5521"
    secrets_used += [invitation, new_password]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        page = await http.get(f"/register/{invitation}")
        assert page.status_code == 200, page.text
        assert (await http.get(f"/api/v1/invitations/{invitation}")).status_code == 200
        form_token = re.search(r'name="form_token" value="([^"]+)"', page.text)
        partner = re.search(r'<option value="([0-9]+)"[^>]*selected', page.text) or re.search(
            r'<option value="([0-9]+)"', page.text
        )
        policy = re.search(r'name="policy_version" value="([^"]+)"', page.text)
        assert form_token and partner and policy
        fields = {
            "display_name": "Log Buyer",
            "password": new_password,
            "password_again": new_password,
            "partner_id": partner.group(1),
            "policy": "1",
            "policy_version": policy.group(1),
            "form_token": form_token.group(1),
        }
        registered = await http.post(f"/register/{invitation}", data=fields)
        assert registered.status_code == 303, registered.text


def hits(text: str, secret: str) -> list[str]:
    """The log lines holding the secret (a PIN only as a whole number, not inside a longer one)."""
    pattern = rf"(?<![0-9]){re.escape(secret)}(?![0-9])" if secret.isdigit() else re.escape(secret)
    return [line for line in text.splitlines() if re.search(pattern, line)]


# SQLite with the embedded broker: the broker runs in this process, so its logs are searched too.
@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_a_full_journey_leaves_no_secret_in_the_logs(stack: Stack, tmp_path: Path) -> None:
    log_file = tmp_path / "carlink.log"
    used: list[str] = [SECRET, gateway_password(SECRET), car_password(SECRET, TAYCAN), world.PASSWORD, PIN]
    used += [CARD, "4242 4242 4242 4242"]
    broker_password = httpx.URL(stack.settings.mqtt_url).password
    if broker_password:
        used.append(broker_password)
    with every_log_to(log_file):
        await journey(stack, used)
    text = log_file.read_text(encoding="utf-8")
    assert '"POST /signin HTTP/1.1" 303' in text, f"the access log was not captured: {text[:2000]}"
    found = {secret[:6] + "…": hits(text, secret) for secret in dict.fromkeys(used) if secret}
    leaks = {secret: lines[:3] for secret, lines in found.items() if lines}
    assert not leaks, "secrets in the log:\n" + "\n".join(f"{k}: {v}" for k, v in leaks.items())
    # The addresses that held them are logged, with the secret replaced.
    assert "/register/[redacted]" in text and "state=[redacted]" in text
