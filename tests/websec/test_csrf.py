"""CSRF protection on every form (issue 9, point 4).

The app's routes are walked, not listed: every route that takes form fields, and every other route outside
the JSON APIs that changes state, is posted by a signed-in browser without the session's token and with the
token of another session of the same person. Each post must be refused with `csrf_failed` and the database
must be unchanged; with the right token the post gets past the check. A new route is covered from its first
day; one that must not need the session's token has to be listed in `OWN_TOKEN` or `NO_AMBIENT_AUTHORITY`
with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.params import Form
from fastapi.routing import APIRoute
from sqlalchemy import func, select

from carlink.app import create_app
from carlink.db.base import Base
from carlink.demo import world
from carlink.identity.access import CSRF_HEADER, SESSION_COOKIE
from carlink.identity.models import Account, WebSession
from carlink.settings import Settings
from tests.conftest import STACKS
from tests.support.portal import Browser, account_id, hidden_field
from tests.support.purchases import dealer_sale
from tests.support.stack import TAYCAN, Stack

SQLITE_STACK = [STACKS[0]]
INVITED = "csrf.buyer@example.com"  # invited by a dealer's sale

# Forms protected by a token of their own, bound to a cookie (tested below, each with its own journey).
OWN_TOKEN = {
    "/signin": "login_token, double-submitted in the carlink_signin cookie",
    "/register": "form_token, double-submitted in the carlink_register cookie",
    "/register/{token}": "form_token, double-submitted in the carlink_register cookie",
    "/u/login/identifier": "the state of the sign-in transaction, bound to the browser by carlink_authorize",
    "/u/login/password": "the state of the sign-in transaction, bound to the browser by carlink_authorize",
}
# Posts that act on no cookie: another site gains nothing by sending them from a victim's browser, as it
# could send the very same request itself.
NO_AMBIENT_AUTHORITY = {
    "/oauth/token": "OAuth token endpoint: authenticated by the code and PKCE verifier or a refresh token",
    "/register/resend": "asks for a registration mail by address; the same for anyone, rate-limited",
    "/certificates/verify": "public lookup of a security certificate by its number and code",
}
# The console a route belongs to decides who posts it (a form is checked for its token before the role).
STAFF = {"/dealer": world.DEALER, "/operator": world.OPERATOR, "/soc": world.SOC_OPERATOR}
# Written by the simulated cars all the time, whatever the browser does.
CAR_TRAFFIC = {"measurements", "vehicles"}
# Routes whose right-token post ends the session: sent last.
LAST = ("/account/delete", "/signout")


def _routes(app: Any) -> Iterator[APIRoute]:
    for route in app.routes:
        if hasattr(route, "original_router"):
            yield from _routes(route.original_router)
        elif isinstance(route, APIRoute):
            yield route


def takes_form(route: APIRoute) -> bool:
    return any(isinstance(param.field_info, Form) for param in route.dependant.body_params)


def changes_state(route: APIRoute) -> bool:
    return bool((route.methods or set()) - {"GET", "HEAD", "OPTIONS"})


def form_routes(app: Any) -> list[APIRoute]:
    """Every route with form fields, and every state-changing route outside the JSON APIs (some read the
    form themselves, without Form parameters)."""
    found = [
        route
        for route in _routes(app)
        if takes_form(route) or (changes_state(route) and not route.path.startswith(("/api/", "/app/")))
    ]
    return sorted(found, key=lambda route: (route.path.endswith(LAST), route.path))


def who_posts(path: str) -> str:
    return str(next((email for prefix, email in STAFF.items() if path.startswith(prefix)), world.OWNER))


def refusal_code(response: httpx.Response) -> str:
    """The stable code of a refusal, from a JSON body or an error page."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else str(error or "")
    found = re.search(r'data-code="([^"]+)"', response.text)
    return found.group(1) if found else ""


async def snapshot(stack: Stack) -> dict[str, str]:
    """A digest of every table the browser could change."""
    digests: dict[str, str] = {}
    async with stack.db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in CAR_TRAFFIC:
                continue
            rows = sorted(repr(tuple(row)) for row in (await session.execute(select(table))).all())
            digests[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return digests


def address(route: APIRoute, values: dict[str, str]) -> str:
    return route.path.format(**{name: values.get(name, "1") for name in route.param_convertors})


async def send(browser: Browser, route: APIRoute, url: str, token: str | None) -> httpx.Response:
    """The post as a browser's form would send it, or (for the page's script calls) JSON with the header."""
    accept = {"Accept": "application/json"}
    if takes_form(route) or not route.dependant.body_params:
        data = {} if token is None else {"csrf_token": token}
        return await browser.http.post(url, data=data, headers=accept)
    headers = accept if token is None else {**accept, CSRF_HEADER: token}
    return await browser.http.post(url, json={"pin": "0000"}, headers=headers)


async def api_calls_without_the_header(browser: Browser, other: Browser) -> list[str]:
    """The page's script calls the JSON API with the session cookie: a state change needs the CSRF header
    (a GET needs none)."""
    wrong = []
    url = f"/api/v1/vehicles/{TAYCAN}/pin-challenges"
    for headers in ({}, {CSRF_HEADER: other.csrf}):
        refused = await browser.http.post(url, headers={"Accept": "application/json", **headers})
        if (refused.status_code, refusal_code(refused)) != (403, "csrf_failed"):
            wrong.append(f"{url} with {headers}: {refused.status_code} {refusal_code(refused)!r}")
    if (await browser.http.get(f"/api/v1/vehicles/{TAYCAN}/commands")).status_code != 200:
        wrong.append("a GET with the cookie alone was refused")
    return wrong


@pytest.mark.parametrize("stack", SQLITE_STACK, indirect=True)
async def test_every_form_refuses_a_post_without_the_sessions_token(stack: Stack) -> None:
    """…and so does the JSON API called with the session cookie but without the X-CSRF-Token header."""
    routes = [
        route for route in form_routes(stack.app) if route.path not in {**OWN_TOKEN, **NO_AMBIENT_AUTHORITY}
    ]
    assert len(routes) > 50, "the walk found too few forms: is the route table read right?"
    values = {"vin": TAYCAN, "account_id": str(await account_id(stack, world.FAMILY)), "token": "x" * 20}
    browsers: dict[str, tuple[Browser, Browser]] = {}
    try:
        for email in {who_posts(route.path) for route in routes}:
            # Two sessions of the same person: the other one's token must not do.
            browsers[email] = (await Browser(stack).sign_in(email), await Browser(stack).sign_in(email))
        before = await snapshot(stack)
        turns = asyncio.Semaphore(4)  # a few posts at a time: the refusals do not depend on each other

        async def forged(route: APIRoute) -> list[str]:
            browser, other = browsers[who_posts(route.path)]
            url = address(route, values)
            found = []
            for token in (None, other.csrf):
                async with turns:
                    response = await send(browser, route, url, token)
                if response.status_code != 403 or refusal_code(response) != "csrf_failed":
                    shown = "another session's" if token else "no"
                    found.append(
                        f"{url} with {shown} token: {response.status_code} {refusal_code(response)!r}"
                    )
            return found

        wrong = [line for lines in await asyncio.gather(*map(forged, routes)) for line in lines]
        wrong += await api_calls_without_the_header(*browsers[world.OWNER])
        after = await snapshot(stack)
        changed = sorted(name for name in before if before[name] != after[name])
        assert not wrong, "posts not refused as csrf_failed:\n" + "\n".join(wrong)
        assert not changed, f"refused posts changed tables: {changed}"
        # The page's script calls the JSON API with the cookie and the header: that works.
        allowed = await browsers[world.OWNER][0].http.post(
            f"/api/v1/vehicles/{TAYCAN}/pin-challenges", headers={CSRF_HEADER: browsers[world.OWNER][0].csrf}
        )
        assert allowed.status_code == 201, allowed.text

        async def with_own_token(route: APIRoute) -> str:
            browser, _other = browsers[who_posts(route.path)]
            async with turns:
                response = await send(browser, route, address(route, values), browser.csrf)
            return route.path if refusal_code(response) == "csrf_failed" else ""

        # The right token passes the check (the fields may still be refused); signing out comes last.
        first = [route for route in routes if not route.path.endswith(LAST)]
        refused = await asyncio.gather(*map(with_own_token, first))
        refused += [await with_own_token(route) for route in routes if route.path.endswith(LAST)]
        assert not any(refused), f"refused with their own session's token: {[p for p in refused if p]}"
    finally:
        for pair in browsers.values():
            for browser in pair:
                await browser.close()


def test_every_form_route_is_covered_or_named_with_a_reason(tmp_path: Path) -> None:
    """A listed exception that no longer exists is dropped from the lists, so they stay true."""
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/routes.db"), migrate=False)
    paths = {route.path for route in form_routes(app)}
    gone = sorted((set(OWN_TOKEN) | set(NO_AMBIENT_AUTHORITY)) - paths)
    assert not gone, f"exceptions for routes that no longer take forms: {gone}"
    assert {"/signout", "/operator/recalls", "/vehicles/{vin}/unlock"} <= paths


# --- the sign-in and registration forms' own tokens ------------------------------------------------------


async def sessions_of(stack: Stack, email: str) -> int:
    async with stack.db.session() as session:
        found = await session.scalar(
            select(func.count()).select_from(WebSession).join(Account).where(Account.email == email)
        )
    return int(found or 0)


async def sign_in_form_needs_its_own_browsers_token(stack: Stack) -> None:
    """Login CSRF: another site must not sign this browser into an ID of its choosing."""
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as victim,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as attacker,
    ):
        await victim.get("/signin")  # the victim's browser holds its own sign-in cookie
        attackers_token = hidden_field((await attacker.get("/signin")).text, "login_token")
        before = await sessions_of(stack, world.STRANGER)
        credentials = {"email": world.STRANGER, "password": world.PASSWORD}
        for token in ("", attackers_token, "tökén"):  # (any text: compared as bytes, never a 500)
            forged = await victim.post("/signin", data={**credentials, "login_token": token})
            assert forged.status_code == 400 and SESSION_COOKIE not in forged.cookies, forged.text
        assert await sessions_of(stack, world.STRANGER) == before
        own = hidden_field((await victim.get("/signin")).text, "login_token")
        signed_in = await victim.post("/signin", data={**credentials, "login_token": own})
        assert signed_in.status_code == 303 and SESSION_COOKIE in signed_in.cookies


async def accounts_named(stack: Stack, email: str) -> int:
    async with stack.db.session() as session:
        return int(await session.scalar(select(func.count()).where(Account.email == email)) or 0)


async def self_registration_needs_its_own_browsers_token(stack: Stack) -> None:
    """Registering signs the browser in, so the form is guarded like the sign-in form."""
    email = "csrf.newcomer@example.com"
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as victim,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as attacker,
    ):
        page = (await victim.get("/register")).text
        policy = re.search(r'name="policy_version" value="([^"]+)"', page)
        partner = re.search(r'<option value="([0-9]+)"', page)
        assert policy is not None and partner is not None, "the registration form changed"
        fields = {
            "email": email,
            "country": "DE",
            "display_name": "Newcomer",
            "password": world.PASSWORD,
            "password_again": world.PASSWORD,
            "partner_id": partner.group(1),
            "policy": "1",
            "policy_version": policy.group(1),
        }
        attackers = hidden_field((await attacker.get("/register")).text, "form_token")
        for token in ("", attackers, "tökén"):
            forged = await victim.post("/register", data={**fields, "form_token": token})
            assert forged.status_code == 400 and SESSION_COOKIE not in forged.cookies, forged.status_code
        assert await accounts_named(stack, email) == 0
        registered = await victim.post(
            "/register", data={**fields, "form_token": hidden_field(page, "form_token")}
        )
        assert registered.status_code == 303, registered.text
        assert SESSION_COOKIE in registered.cookies and await accounts_named(stack, email) == 1


async def invitation_registration_needs_its_own_browsers_token(stack: Stack) -> None:
    """The dealer's invitation link (/register/{token}) registers and signs in: guarded the same way."""
    token = (await dealer_sale(stack, INVITED, "Csrf Buyer")).token
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as victim,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as attacker,
    ):
        page = (await victim.get(f"/register/{token}")).text
        policy = re.search(r'name="policy_version" value="([^"]+)"', page)
        partner = re.search(r'<option value="([0-9]+)"', page)
        assert policy is not None and partner is not None, "the invitation's form changed"
        fields = {
            "display_name": "Invited",
            "password": world.PASSWORD,
            "password_again": world.PASSWORD,
            "partner_id": partner.group(1),
            "policy": "1",
            "policy_version": policy.group(1),
        }
        attackers = hidden_field((await attacker.get(f"/register/{token}")).text, "form_token")
        for sent in ("", attackers):
            forged = await victim.post(f"/register/{token}", data={**fields, "form_token": sent})
            assert forged.status_code == 400 and SESSION_COOKIE not in forged.cookies, forged.status_code
        assert await accounts_named(stack, INVITED) == 0
        registered = await victim.post(
            f"/register/{token}", data={**fields, "form_token": hidden_field(page, "form_token")}
        )
        assert registered.status_code == 303 and SESSION_COOKIE in registered.cookies, registered.text
        assert await accounts_named(stack, INVITED) == 1


async def only_the_browser_that_started_an_app_sign_in_is_signed_in(stack: Stack) -> None:
    """The app's sign-in (/authorize … /authorize/resume) ends with a portal session only in the browser
    that started it: a resume link opened elsewhere hands out the code to the app's redirect address but
    signs nobody in (login CSRF)."""
    params = {
        "client_id": "carlink-app",
        "redirect_uri": "carlink://callback",
        "response_type": "code",
        "scope": "openid",
        "state": "s",
    }
    async with (
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as attacker,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as victim,
        httpx.AsyncClient(base_url=stack.base_url, timeout=30) as app_browser,
    ):
        for client in (attacker, app_browser):
            started = await client.get("/authorize", params=params)
            state = httpx.URL(started.headers["location"]).params["state"]
            login = {"state": state, "username": world.STRANGER, "password": world.PASSWORD}
            await client.post(f"/u/login/identifier?state={state}", data=login)
            done = await client.post(f"/u/login/password?state={state}", data=login)
            assert done.status_code == 302, done.text
            resume = done.headers["location"]
            if client is attacker:  # the attacker lures the victim's browser to its finished sign-in
                lured = await victim.get(resume)
                assert lured.status_code == 302 and "code=" in lured.headers["location"]
                assert SESSION_COOKIE not in lured.cookies
            else:
                finished = await client.get(resume)
                assert finished.status_code == 302 and SESSION_COOKIE in finished.cookies


@pytest.mark.parametrize("stack", SQLITE_STACK, indirect=True)
async def test_the_sign_in_and_registration_forms_need_their_own_browsers_token(stack: Stack) -> None:
    await sign_in_form_needs_its_own_browsers_token(stack)
    await self_registration_needs_its_own_browsers_token(stack)
    await invitation_registration_needs_its_own_browsers_token(stack)
    await only_the_browser_that_started_an_app_sign_in_is_signed_in(stack)
