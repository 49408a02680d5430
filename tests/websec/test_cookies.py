"""Every cookie carlink sets is HttpOnly and SameSite, and Secure wherever the site is not plain http on the
machine itself (issue 9, point 4; docs/security/web.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from carlink.demo import world
from carlink.identity.access import secure_cookies
from carlink.settings import Settings
from tests.conftest import STACKS
from tests.support.stack import Stack

OUR_COOKIES = {"carlink_session", "carlink_signin", "carlink_register", "carlink_authorize"}


@pytest.mark.parametrize(
    ("base_url", "secure"),
    [
        ("https://connect.carlink.example.com", True),
        ("https://127.0.0.1:8443", True),
        ("http://carlink.example.com", True),  # production must be https: the cookies then fail loudly
        ("http://192.168.1.20:8080", True),
        ("http://127.0.0.1:8080", False),  # the demo
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
    ],
)
def test_cookies_are_secure_unless_the_site_is_plain_http_on_a_loopback_host(
    base_url: str, secure: bool
) -> None:
    assert secure_cookies(Settings(base_url=base_url)) is secure


def test_the_setting_overrides_the_guess() -> None:
    assert secure_cookies(Settings(base_url="http://127.0.0.1:8080", secure_cookies=True)) is True
    assert secure_cookies(Settings(base_url="https://carlink.example.com", secure_cookies=False)) is False


def set_cookies(response: httpx.Response) -> Iterator[str]:
    """Every Set-Cookie of the response and of the redirects that led to it."""
    for answer in [*response.history, response]:
        yield from answer.headers.get_list("set-cookie")


async def journey(stack: Stack) -> list[str]:
    """Every place a cookie is set or ended: the sign-in form and sign-in, registration's form, the app's
    sign-in from /authorize to /authorize/resume, and signing out."""
    headers: list[str] = []
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        form = await http.get("/signin")
        headers += set_cookies(form)
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        # The cookie jar only sends Secure cookies over https: the double-submit cookie is sent by hand.
        signed_in = await http.post(
            "/signin",
            data={"email": world.OWNER, "password": world.PASSWORD, "login_token": token.group(1)},
            headers={"Cookie": f"carlink_signin={token.group(1)}"},
        )
        assert signed_in.status_code == 303, signed_in.text
        headers += set_cookies(signed_in)
        session = cookie_value(signed_in, "carlink_session")
        page = await http.get("/account", headers={"Cookie": f"carlink_session={session}"})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        signed_out = await http.post(
            "/signout", data={"csrf_token": csrf.group(1)}, headers={"Cookie": f"carlink_session={session}"}
        )
        headers += set_cookies(signed_out)
        headers += set_cookies(await http.get("/register"))
        params = {"client_id": "carlink-app", "redirect_uri": "carlink://callback", "scope": "openid"}
        started = await http.get("/authorize", params=params)
        headers += set_cookies(started)
        state = httpx.URL(started.headers["location"]).params["state"]
        login = {"state": state, "username": world.OWNER, "password": world.PASSWORD}
        await http.post("/u/login/identifier", data=login)
        done = await http.post("/u/login/password", data=login)
        resumed = await http.get(done.headers["location"], headers={"Cookie": f"carlink_authorize={state}"})
        assert resumed.status_code == 302, resumed.text
        headers += set_cookies(resumed)
    return headers


def cookie_value(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie set")


def attributes(header: str) -> tuple[str, dict[str, str]]:
    name = header.split("=", 1)[0].strip()
    parts = [part.strip() for part in header.split(";")[1:]]
    return name, {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts}


@pytest.mark.parametrize("stack", [STACKS[0]], indirect=True)
async def test_every_cookie_is_httponly_samesite_and_secure_as_the_base_url_says(stack: Stack) -> None:
    demo = await journey(stack)  # the stack's base URL: http://127.0.0.1:<port>
    production = stack.settings.model_copy(update={"base_url": "https://connect.carlink.example.com"})
    stack.platform.settings = production
    try:
        secure = await journey(stack)
    finally:
        stack.platform.settings = stack.settings
    for headers, expect_secure in ((demo, False), (secure, True)):
        names = set()
        for header in headers:
            name, flags = attributes(header)
            names.add(name)
            assert "httponly" in flags, header
            assert flags.get("samesite", "").lower() in ("lax", "strict"), header
            assert ("secure" in flags) is expect_secure, header
        assert names == OUR_COOKIES, names
