"""The portal as a test reads it without a browser: an httpx client signed in through the sign-in form that
sends the pages' CSRF token with every form, and lookups of demo ids."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from carlink.demo import world
from carlink.identity.models import Account
from carlink.partners.models import Partner
from tests.support.stack import Stack


class Browser:
    """An httpx client that signs in through the portal's form and sends the pages' CSRF token."""

    def __init__(self, stack: Stack) -> None:
        self.http = httpx.AsyncClient(base_url=stack.base_url, timeout=30, headers={"Accept": "text/html"})
        self.csrf = ""

    async def sign_in(self, email: str, password: str = world.PASSWORD) -> Browser:
        form = await self.http.get("/signin")
        token = re.search(r'name="login_token" value="([^"]+)"', form.text)
        assert token is not None
        data = {"email": email, "password": password, "login_token": token.group(1)}
        response = await self.http.post("/signin", data=data)
        assert response.status_code == 303, response.text
        self.csrf = csrf_of((await self.http.get("/account")).text)
        return self

    async def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(path, data={"csrf_token": self.csrf, **(data or {})})

    async def close(self) -> None:
        await self.http.aclose()


def csrf_of(html: str) -> str:
    return hidden_field(html, "csrf_token")


def hidden_field(html: str, name: str) -> str:
    """The value of a form's hidden field (a CSRF token, the sign-in form's own token …)."""
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found is not None, f"the page has no form field {name}"
    return found.group(1)


async def account_id(stack: Stack, email: str) -> int:
    async with stack.db.session() as session:
        found = await session.scalar(select(Account.id).where(Account.email == email))
    assert found is not None, email
    return int(found)


async def partner_id(stack: Stack, code: str) -> int:
    async with stack.db.session() as session:
        found = await session.scalar(select(Partner.id).where(Partner.code == code))
    assert found is not None, code
    return int(found)
