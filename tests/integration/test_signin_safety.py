"""Sign-in safety (ACC-7): a solved picture challenge is good once, and another site cannot post a sign-in
into the portal (login CSRF)."""

from __future__ import annotations

import re

from carlink.db.base import Database
from carlink.demo import world
from carlink.identity import service as identity
from carlink.identity.captcha import new_captcha
from tests.support.stack import Stack
from tests.unit.test_captcha import read_picture

SECRET = "captcha-test-secret-0123456789"


async def test_a_solved_picture_challenge_cannot_be_replayed(database_url: str) -> None:
    db = Database(database_url)
    try:
        image, token = new_captcha(SECRET)
        answer = read_picture(image)
        async with db.transaction() as session:
            assert await identity.spend_captcha(session, SECRET, token, answer) is True
        async with db.transaction() as session:
            assert await identity.spend_captcha(session, SECRET, token, answer) is False
    finally:
        await db.dispose()


async def test_portal_sign_in_needs_the_forms_own_token(stack: Stack) -> None:
    http = stack.http
    forged = await http.post("/signin", data={"email": world.OWNER, "password": world.PASSWORD})
    assert forged.status_code == 400
    assert "carlink_session" not in forged.cookies
    form = await http.get("/signin")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token is not None
    signed_in = await http.post(
        "/signin", data={"email": world.OWNER, "password": world.PASSWORD, "login_token": token.group(1)}
    )
    assert signed_in.status_code == 303
    assert "carlink_session" in signed_in.cookies
