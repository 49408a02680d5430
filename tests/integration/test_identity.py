"""The ID (ACC-1, ACC-3, ACC-7): registration, the OIDC provider, tokens, and sign-in guessing protection."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from carlink.clock import clock
from carlink.db.base import Database
from carlink.demo import world
from carlink.errors import CarlinkError
from carlink.identity import service as identity
from carlink.identity.access import SESSION_COOKIE
from carlink.identity.tokens import AUDIENCE, pkce_s256
from carlink.settings import Settings
from tests.support.stack import Stack, oidc_login

APP, APP_REDIRECT = "carlink-app", "carlink://callback"
# The community clients of the maker's app API send no PKCE challenge (reference doc, section 4).
COMMUNITY, COMMUNITY_REDIRECT = "XhygisuebbrqQ80byOuU5VncxLIm8E6H", "my-porsche-app://auth0/callback"


# --- the sign-in pages, as a browser or an app's web view walks them ----------------------------------------


async def start_sign_in(
    http: httpx.AsyncClient,
    *,
    client_id: str = APP,
    redirect_uri: str = APP_REDIRECT,
    verifier: str | None = None,
) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid offline_access vehicles",
        "state": "app-state",
    }
    if verifier is not None:
        params |= {"code_challenge": pkce_s256(verifier), "code_challenge_method": "S256"}
    response = await http.get("/authorize", params=params)
    assert response.status_code == 302, response.text
    return str(httpx.URL(response.headers["location"]).params["state"])


async def enter_email(http: httpx.AsyncClient, state: str, email: str, **captcha: str) -> httpx.Response:
    return await http.post(
        f"/u/login/identifier?state={state}", data={"state": state, "username": email, **captcha}
    )


async def enter_password(http: httpx.AsyncClient, state: str, email: str, password: str) -> httpx.Response:
    return await http.post(
        f"/u/login/password?state={state}", data={"state": state, "username": email, "password": password}
    )


async def code_after(http: httpx.AsyncClient, signed_in: httpx.Response) -> str:
    assert signed_in.status_code == 302, signed_in.text
    response = await http.get(signed_in.headers["location"])  # relative: /authorize/resume?state=...
    assert response.status_code == 302, response.text
    location = httpx.URL(response.headers["location"])
    assert location.params["state"] == "app-state"
    return str(location.params["code"])


async def authorization_code(
    http: httpx.AsyncClient,
    email: str,
    password: str = world.PASSWORD,
    *,
    client_id: str = APP,
    redirect_uri: str = APP_REDIRECT,
    verifier: str | None = None,
) -> str:
    state = await start_sign_in(http, client_id=client_id, redirect_uri=redirect_uri, verifier=verifier)
    assert (await enter_email(http, state, email)).status_code == 200
    return await code_after(http, await enter_password(http, state, email, password))


async def redeem(
    http: httpx.AsyncClient,
    code: str,
    verifier: str | None,
    *,
    client_id: str = APP,
    redirect_uri: str = APP_REDIRECT,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return await http.post("/oauth/token", data=data)


async def refresh(http: httpx.AsyncClient, refresh_token: str, client_id: str = APP) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "client_id": client_id, "refresh_token": refresh_token},
    )


def page_error_code(response: httpx.Response) -> str | None:
    found = re.search(r'data-code="([^"]*)"', response.text)
    return found.group(1) if found else None


def read_captcha(page: str) -> tuple[str, str]:
    """(the characters a person reads in the picture, the form's hidden token)."""
    image = re.search(r'<img [^>]*src="data:image/svg\+xml;base64,([^"]+)"', page)
    token = re.search(r'name="captcha_token" value="([^"]+)"', page)
    assert image and token, page
    svg = base64.b64decode(image.group(1)).decode()
    glyphs = re.findall(r'<text x="(\d+)"[^>]*>([^<]+)</text>', svg)
    return "".join(char for _, char in sorted(glyphs, key=lambda g: int(g[0]))), token.group(1)


async def solve_the_picture(http: httpx.AsyncClient, state: str, email: str) -> None:
    """At the first step, as a person would: the picture is shown, and its characters are typed in."""
    challenge = await enter_email(http, state, email)
    assert challenge.status_code == 400, challenge.text
    answer, token = read_captcha(challenge.text)
    solved = await enter_email(http, state, email, captcha=answer, captcha_token=token)
    assert solved.status_code == 200, solved.text


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        yield http


async def bearer(stack: Stack, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def lock_by_guessing(db: Database, settings: Settings, email: str) -> None:
    """Wrong passwords until the ID locks, waiting out each growing delay on the fake clock."""
    for _ in range(settings.login_failures_before_lock):
        clock.advance(seconds=61)
        with pytest.raises(CarlinkError) as refused:
            async with db.transaction() as session:
                await identity.authenticate(
                    session, settings, email=email, password="guess-123", source="203.0.113.5"
                )
        assert refused.value.code == "invalid_credentials"


# --- registration (ACC-1, ACC-3) ---------------------------------------------------------------------------


async def test_people_register_themselves_where_self_registration_is_offered_and_sign_in_with_it(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    response = await browser.post(
        "/api/v1/accounts",
        json={
            "email": " Kim@Example.com",
            "password": "long-enough-1",
            "country": "de",
            "display_name": "Kim",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json() | {"id": 0} == {
        "id": 0,
        "email": "kim@example.com",
        "display_name": "Kim",
        "country": "DE",
        "locale": "en",
        "pin_set": False,
    }
    tokens = await oidc_login(browser, "kim@example.com", "long-enough-1")
    async with await bearer(stack, tokens["access_token"]) as kim:
        me = (await kim.get("/api/v1/me")).json()
        assert me["email"] == "kim@example.com" and me["id"] == response.json()["id"]
        assert (await kim.get("/api/v1/vehicles")).json() == []


async def test_an_id_registered_through_the_api_speaks_the_language_asked_for(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    base = {"password": "long-enough-1", "country": "DE"}
    chosen = await browser.post(
        "/api/v1/accounts",
        json={**base, "email": "yui@example.com", "locale": "ja"},
        headers={"Accept-Language": "de"},
    )
    assert chosen.status_code == 201 and chosen.json()["locale"] == "ja", chosen.text
    browsers = await browser.post(
        "/api/v1/accounts", json={**base, "email": "jonas@example.com"}, headers={"Accept-Language": "de-AT"}
    )
    assert browsers.status_code == 201 and browsers.json()["locale"] == "de", browsers.text


async def test_self_registration_is_refused_in_countries_where_a_dealer_invites(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    assert "FR" not in stack.settings.self_registration_countries
    response = await browser.post(
        "/api/v1/accounts", json={"email": "jean@example.com", "password": "long-enough-1", "country": "FR"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_registration_unavailable"
    assert "dealer" in response.json()["error"]["message"]


REFUSED_REGISTRATIONS = [
    ({"email": "OWNER@example.com ", "password": "long-enough-1", "country": "DE"}, 409, "email_taken"),
    ({"email": "new@example.com", "password": "short", "country": "DE"}, 400, "weak_password"),
    ({"email": "not-an-address", "password": "long-enough-1", "country": "DE"}, 400, "invalid_email"),
    ({"email": "new@example.com", "password": "long-enough-1"}, 422, "invalid_request"),
    ({"email": "new@example.com", "password": "long-enough-1", "country": "DEU"}, 422, "invalid_request"),
]


async def test_registration_refuses_a_taken_email_a_weak_password_or_a_malformed_address(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    for body, status, code in REFUSED_REGISTRATIONS:
        response = await browser.post("/api/v1/accounts", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    async with stack.db.session() as session:
        assert await identity.find_account(session, "new@example.com") is None


# --- the OIDC provider -------------------------------------------------------------------------------------


async def test_discovery_and_jwks_let_any_client_verify_our_tokens(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    discovery = (await browser.get("/.well-known/openid-configuration")).json()
    assert discovery["issuer"] == stack.base_url
    assert discovery["token_endpoint"] == f"{stack.base_url}/oauth/token"
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    assert {"authorization_code", "refresh_token"} <= set(discovery["grant_types_supported"])
    jwks = jwt.PyJWKSet.from_dict((await browser.get(httpx.URL(discovery["jwks_uri"]).path)).json())
    tokens = await oidc_login(browser, world.OWNER, world.PASSWORD)
    access, id_token = tokens["access_token"], tokens["id_token"]
    key = next(k for k in jwks.keys if k.key_id == jwt.get_unverified_header(access)["kid"])
    claims = jwt.decode(
        access,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=AUDIENCE,
        issuer=discovery["issuer"],
    )
    assert claims["email"] == world.OWNER and claims["client_id"] == APP
    identity_claims = jwt.decode(
        id_token, key.key, algorithms=["ES256"], audience=APP, issuer=discovery["issuer"]
    )
    assert identity_claims["sub"] == claims["sub"] and identity_claims["email_verified"] is True
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == stack.settings.access_token_seconds
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB"),
            key.key,
            algorithms=["ES256"],
            audience=AUDIENCE,
        )


async def test_an_authorization_code_can_be_redeemed_only_once(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await authorization_code(browser, world.OWNER, verifier=verifier)
    first = await redeem(browser, code, verifier)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    again = await redeem(browser, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_a_pkce_verifier_that_does_not_match_the_challenge_is_refused(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    verifier = secrets.token_urlsafe(48)
    code = await authorization_code(browser, world.OWNER, verifier=verifier)
    wrong = await redeem(browser, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    missing = await redeem(browser, code, None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    # A code is bound to its redirect URI too.
    other_uri = await redeem(browser, code, verifier, redirect_uri="http://127.0.0.1/callback")
    assert other_uri.status_code == 400 and other_uri.json()["error"] == "invalid_grant"


async def test_a_community_client_without_pkce_still_signs_in(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    code = await authorization_code(
        browser, world.OWNER, client_id=COMMUNITY, redirect_uri=COMMUNITY_REDIRECT
    )
    response = await redeem(browser, code, None, client_id=COMMUNITY, redirect_uri=COMMUNITY_REDIRECT)
    assert response.status_code == 200, response.text
    async with await bearer(stack, response.json()["access_token"]) as client:
        assert (await client.get("/api/v1/me")).json()["email"] == world.OWNER


async def test_only_s256_pkce_challenges_are_accepted(stack: Stack, browser: httpx.AsyncClient) -> None:
    response = await browser.get(
        "/authorize",
        params={
            "client_id": APP,
            "redirect_uri": APP_REDIRECT,
            "response_type": "code",
            "state": "app-state",
            "code_challenge": "a-plain-verifier",
            "code_challenge_method": "plain",
        },
    )
    assert response.status_code == 302  # an OAuth error goes back to the registered client
    location = httpx.URL(response.headers["location"])
    assert (location.params["error"], location.params["state"]) == ("invalid_request", "app-state")
    assert "code" not in location.params


async def test_an_unregistered_redirect_uri_is_never_redirected_to(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    response = await browser.get(
        "/authorize",
        params={"client_id": APP, "redirect_uri": "https://evil.example/cb", "response_type": "code"},
    )
    assert response.status_code == 400 and "location" not in response.headers


# --- tokens (ACC-7: clients never need the password again) -------------------------------------------------


async def test_a_refresh_token_keeps_a_client_working_even_after_the_id_is_locked_by_guessing(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    tokens = await oidc_login(browser, world.OWNER, world.PASSWORD)
    await lock_by_guessing(stack.db, stack.settings, world.OWNER)
    state = await start_sign_in(browser)
    await solve_the_picture(browser, state, world.OWNER)
    locked = await enter_password(browser, state, world.OWNER, world.PASSWORD)
    # The lock keeps its status and says when to try again, as on the portal's sign-in (issue 9).
    assert locked.status_code == 423 and page_error_code(locked) == "account_locked"
    assert int(locked.headers["Retry-After"]) > 0
    response = await refresh(browser, tokens["refresh_token"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"] != tokens["access_token"] and body["refresh_token"] == tokens["refresh_token"]
    async with await bearer(stack, body["access_token"]) as client:
        assert (await client.get(f"/api/v1/vehicles/{world.DEMO_CARS[0].vin}/status")).status_code == 200


async def test_a_refresh_token_works_only_for_the_client_it_was_issued_to(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    real = (await oidc_login(browser, world.FAMILY, world.PASSWORD))["refresh_token"]
    made_up = await refresh(browser, "made-up")
    assert (made_up.status_code, made_up.json()["error"]) == (403, "invalid_grant")
    other_client = await refresh(browser, real, COMMUNITY)
    assert (other_client.status_code, other_client.json()["error"]) == (403, "invalid_grant")
    unknown_client = await refresh(browser, real, "unknown-client")
    assert (unknown_client.status_code, unknown_client.json()["error"]) == (401, "invalid_client")
    assert (await refresh(browser, real)).status_code == 200


async def test_an_unsupported_grant_type_is_named_in_the_error(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    response = await browser.post("/oauth/token", data={"grant_type": "password", "client_id": APP})
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


async def test_an_expired_access_token_is_refused_and_a_refresh_brings_a_fresh_one(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    tokens = await oidc_login(browser, world.OWNER, world.PASSWORD)
    async with await bearer(stack, tokens["access_token"]) as client:
        assert (await client.get("/api/v1/me")).status_code == 200
        clock.advance(seconds=stack.settings.access_token_seconds + 10)
        expired = await client.get("/api/v1/me")
        assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    fresh = (await refresh(browser, tokens["refresh_token"])).json()["access_token"]
    async with await bearer(stack, fresh) as client:
        assert (await client.get("/api/v1/me")).status_code == 200


# --- sign-in guessing protection on the pages (ACC-7) ------------------------------------------------------


async def test_after_wrong_passwords_sign_in_asks_for_a_picture_a_person_can_read(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    state = await start_sign_in(browser)
    assert (await enter_email(browser, state, world.FAMILY)).status_code == 200
    for _ in range(stack.settings.login_failures_before_delay):
        wrong = await enter_password(browser, state, world.FAMILY, "not-my-password")
        assert wrong.status_code == 400 and page_error_code(wrong) == "invalid_credentials"
    verifier = secrets.token_urlsafe(48)
    state = await start_sign_in(browser, verifier=verifier)
    challenge = await enter_email(browser, state, world.FAMILY)
    assert challenge.status_code == 400 and 'src="data:image/svg+xml;base64,' in challenge.text
    # Skipping the picture does not get to the password.
    skipped = await enter_password(browser, state, world.FAMILY, world.PASSWORD)
    assert skipped.status_code == 400 and page_error_code(skipped) == "captcha_required"
    answer, token = read_captcha(challenge.text)
    misread = await enter_email(
        browser, state, world.FAMILY, captcha="ZZZZZ" if answer != "ZZZZZ" else "YYYYY", captcha_token=token
    )
    assert misread.status_code == 400 and "not right" in misread.text
    answer, token = read_captcha(misread.text)
    solved = await enter_email(browser, state, world.FAMILY, captcha=answer.lower(), captcha_token=token)
    assert solved.status_code == 200 and 'name="password"' in solved.text
    clock.advance(seconds=5)  # the short delay after three wrong passwords
    code = await code_after(browser, await enter_password(browser, state, world.FAMILY, world.PASSWORD))
    assert (await redeem(browser, code, verifier)).status_code == 200


async def test_a_quick_retry_after_three_wrong_passwords_is_asked_to_wait(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    state = await start_sign_in(browser)
    await enter_email(browser, state, world.STRANGER)
    for _ in range(stack.settings.login_failures_before_delay):
        await enter_password(browser, state, world.STRANGER, "not-my-password")
    # Now a picture guards the password step too: it is refused until the picture is solved.
    unsolved = await enter_password(browser, state, world.STRANGER, world.PASSWORD)
    assert unsolved.status_code == 400 and page_error_code(unsolved) == "captcha_required"
    await solve_the_picture(browser, state, world.STRANGER)
    hurried = await enter_password(browser, state, world.STRANGER, world.PASSWORD)
    assert hurried.status_code == 429 and page_error_code(hurried) == "slow_down"  # issue 9: 429, Retry-After
    assert int(hurried.headers["Retry-After"]) > 0


async def test_the_password_step_keeps_the_id_of_the_first_step(
    stack: Stack, browser: httpx.AsyncClient
) -> None:
    state = await start_sign_in(browser)
    await enter_email(browser, state, world.STRANGER)
    other = await enter_password(browser, state, world.OWNER, world.PASSWORD)
    assert other.status_code == 400 and page_error_code(other) == "login_mismatch"


# --- the ID's own settings ---------------------------------------------------------------------------------


async def test_a_changed_password_is_needed_from_then_on(stack: Stack, browser: httpx.AsyncClient) -> None:
    client = await stack.as_user(world.STRANGER)
    wrong = await client.post(
        "/api/v1/me/password", json={"current_password": "nope-nope", "new_password": "x" * 12}
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_credentials")
    weak = await client.post(
        "/api/v1/me/password", json={"current_password": world.PASSWORD, "new_password": "x"}
    )
    assert (weak.status_code, weak.json()["error"]["code"]) == (400, "weak_password")
    done = await client.post(
        "/api/v1/me/password", json={"current_password": world.PASSWORD, "new_password": "a-new-password-7"}
    )
    assert done.status_code == 204
    state = await start_sign_in(browser)
    old = await enter_password(browser, state, world.STRANGER, world.PASSWORD)
    assert page_error_code(old) == "invalid_credentials"
    assert "access_token" in await oidc_login(browser, world.STRANGER, "a-new-password-7")


async def test_the_security_pin_is_set_with_the_password(stack: Stack) -> None:
    client = await stack.as_user(world.STRANGER)
    assert (await client.get("/api/v1/me")).json()["pin_set"] is False
    wrong = await client.put("/api/v1/me/pin", json={"password": "nope-nope", "pin": "4321"})
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_credentials")
    letters = await client.put("/api/v1/me/pin", json={"password": world.PASSWORD, "pin": "12a4"})
    assert (letters.status_code, letters.json()["error"]["code"]) == (400, "invalid_pin_format")
    assert (
        await client.put("/api/v1/me/pin", json={"password": world.PASSWORD, "pin": "4321"})
    ).status_code == 204
    assert (await client.get("/api/v1/me")).json()["pin_set"] is True


async def test_signing_out_ends_the_web_session(stack: Stack, browser: httpx.AsyncClient) -> None:
    await authorization_code(browser, world.OWNER)
    cookie = browser.cookies[SESSION_COOKIE]
    assert (await browser.get("/api/v1/me")).json()["email"] == world.OWNER
    # Signed in already: the next app asking gets a code without the pages.
    again = await browser.get(
        "/authorize", params={"client_id": APP, "redirect_uri": APP_REDIRECT, "state": "s"}
    )
    assert httpx.URL(again.headers["location"]).params.get("code")
    # Changing anything with only the cookie needs the page's CSRF token.
    forged = await browser.put("/api/v1/me/pin", json={"password": world.PASSWORD, "pin": "1111"})
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "csrf_failed")
    portal = await browser.get("/vehicles")
    csrf = re.search(r'action="/signout".*?name="csrf_token" value="([^"]+)"', portal.text, re.S)
    assert portal.status_code == 200 and csrf, portal.text
    without_token = await browser.post("/signout", data={})
    assert without_token.status_code == 403
    assert (await browser.get("/api/v1/me")).status_code == 200
    signed_out = await browser.post("/signout", data={"csrf_token": csrf.group(1)})
    assert signed_out.status_code == 303
    # The server forgot the session, not only the browser its cookie.
    gone = await browser.get("/api/v1/me", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"})
    assert (gone.status_code, gone.json()["error"]["code"]) == (401, "unauthorised")
    after = await browser.get(
        "/authorize",
        params={"client_id": APP, "redirect_uri": APP_REDIRECT, "state": "s"},
        headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
    )
    assert httpx.URL(after.headers["location"]).path == "/u/login/identifier"


# --- guessing protection in the use case, on both databases ------------------------------------------------


@pytest.fixture
async def id_service(database_url: str) -> AsyncIterator[tuple[Database, Settings]]:
    settings = Settings(database_url=database_url, secret_key="identity-test-secret-0123")
    db = Database(database_url)
    async with db.transaction() as session:
        await identity.create_account(
            session, email="pat@example.com", password="pats-password", country="DE"
        )
    try:
        yield db, settings
    finally:
        await db.dispose()


async def sign_in(
    db: Database,
    settings: Settings,
    password: str,
    *,
    email: str = "pat@example.com",
    source: str = "198.51.100.1",
) -> Any:
    async with db.transaction() as session:
        return await identity.authenticate(session, settings, email=email, password=password, source=source)


async def refusal(db: Database, settings: Settings, password: str, **where: str) -> CarlinkError:
    with pytest.raises(CarlinkError) as refused:
        await sign_in(db, settings, password, **where)
    return refused.value


async def test_wrong_passwords_bring_a_growing_delay_then_a_lock_that_ends_by_itself(
    id_service: tuple[Database, Settings],
) -> None:
    db, settings = id_service
    delays = []
    for attempt in range(1, settings.login_failures_before_lock + 1):
        assert (await refusal(db, settings, "wrong-password")).code == "invalid_credentials"
        if settings.login_failures_before_delay <= attempt < settings.login_failures_before_lock:
            hurried = await refusal(db, settings, "pats-password")  # even the right password waits
            assert (hurried.code, hurried.status) == ("slow_down", 429)
            delays.append(int(hurried.headers["Retry-After"]))
        clock.advance(seconds=61)
    assert delays == [1, 2, 4, 8, 16, 32, 60]
    clock.reset()
    clock.advance(seconds=61 * settings.login_failures_before_lock)
    locked = await refusal(db, settings, "pats-password")
    assert (locked.code, locked.status) == ("account_locked", 423)
    assert 0 < int(locked.headers["Retry-After"]) <= settings.login_lock_minutes * 60
    clock.advance(minutes=settings.login_lock_minutes)
    account = await sign_in(db, settings, "pats-password")
    assert account.login_failures == 0 and account.login_locked_until is None


async def test_the_right_password_before_the_delay_starts_clears_the_count(
    id_service: tuple[Database, Settings],
) -> None:
    db, settings = id_service
    for _ in range(settings.login_failures_before_delay - 1):
        await refusal(db, settings, "wrong-password")
    assert (await sign_in(db, settings, "pats-password")).login_failures == 0
    assert (await refusal(db, settings, "wrong-password")).code == "invalid_credentials"


async def test_many_failures_from_one_network_are_throttled_for_every_id_from_there(
    id_service: tuple[Database, Settings],
) -> None:
    db, settings = id_service
    settings = settings.model_copy(update={"login_failures_per_source_per_10min": 5})
    for index in range(settings.login_failures_per_source_per_10min):
        # Guessing across IDs, known or not, counts against the network it comes from.
        await refusal(db, settings, "guess", email=f"someone{index}@example.com", source="192.0.2.66")
    throttled = await refusal(db, settings, "pats-password", source="192.0.2.66")
    assert (throttled.status, throttled.headers["Retry-After"]) == (429, "600")
    assert (await sign_in(db, settings, "pats-password", source="198.51.100.1")).email == "pat@example.com"
    clock.advance(minutes=10, seconds=1)
    assert (await sign_in(db, settings, "pats-password", source="192.0.2.66")).email == "pat@example.com"


async def test_a_web_session_ends_when_signed_out_or_expired(id_service: tuple[Database, Settings]) -> None:
    db, _ = id_service
    async with db.transaction() as session:
        account = await identity.find_account(session, "pat@example.com")
        assert account is not None
        first, _ = await identity.start_web_session(session, account)
        second, _ = await identity.start_web_session(session, account)
    async with db.transaction() as session:
        assert await identity.web_session_account(session, first) is not None
        await identity.end_web_session(session, first)
    async with db.transaction() as session:
        assert await identity.web_session_account(session, first) is None
        assert (
            await identity.web_session_account(session, second) is not None
        )  # other browsers stay signed in
    clock.advance(days=identity.SESSION_DAYS, seconds=1)
    async with db.transaction() as session:
        assert await identity.web_session_account(session, second) is None
