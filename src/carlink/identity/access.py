"""Who is calling: a bearer access token (apps, community clients) or a portal session cookie."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import Forbidden, Unauthorised
from carlink.identity.models import Account, WebSession
from carlink.identity.service import web_session_account
from carlink.platform import Platform
from carlink.settings import Settings

SESSION_COOKIE = "carlink_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Caller:
    account: Account
    web_session: WebSession | None = None
    client_id: str = "carlink-portal"


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def bearer_caller(request: Request, session: AsyncSession) -> Caller | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    claims = platform_of(request).tokens.verify(token.strip())
    account = await session.get(Account, int(claims["sub"]))
    if account is None or account.deleted_at is not None:
        raise Unauthorised("this ID no longer exists", code="invalid_token")
    i18n.use(account.locale)
    return Caller(account=account, client_id=str(claims.get("client_id", "")))


async def cookie_caller(request: Request, session: AsyncSession) -> Caller | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    found = await web_session_account(session, token)
    if found is None:
        return None
    account, web_session = found
    i18n.use(account.locale)
    return Caller(account=account, web_session=web_session)


async def require_caller(request: Request, session: AsyncSession) -> Caller:
    """A bearer token, or a session cookie (with the CSRF token on anything that changes state)."""
    caller = await bearer_caller(request, session)
    if caller is None:
        caller = await cookie_caller(request, session)
        if caller is not None and request.method not in SAFE_METHODS:
            check_csrf(caller, request.headers.get(CSRF_HEADER, ""))
    if caller is None:
        raise Unauthorised("sign in first", code="unauthorised")
    return caller


def check_csrf(caller: Caller, token: str) -> None:
    expected = caller.web_session.csrf_token if caller.web_session is not None else ""
    if not expected or not secrets.compare_digest(token.encode(errors="replace"), expected.encode()):
        raise Forbidden("the form is out of date; reload the page and try again", code="csrf_failed")


def secure_cookies(settings: Settings) -> bool:
    """Secure on every cookie we set, so a session never travels over plain http. The one exception is a
    base URL of plain http on a loopback host (the demo and the tests on 127.0.0.1): there a Secure cookie
    would not come back from clients that follow the rule strictly (httpx, curl). CARLINK_SECURE_COOKIES
    overrides (docs/security/web.md)."""
    if settings.secure_cookies is not None:
        return settings.secure_cookies
    url = urlsplit(settings.base_url)
    return not (url.scheme == "http" and _is_loopback(url.hostname or ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def set_cookie(
    response: Response,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int,
    path: str,
    samesite: Literal["lax", "strict"] = "strict",
) -> None:
    """Every cookie of ours: HttpOnly (no script reads it), SameSite, and Secure as `secure_cookies` says."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite=samesite,
        secure=secure_cookies(settings),
    )


def delete_cookie(
    response: Response, settings: Settings, name: str, *, path: str, samesite: Literal["lax", "strict"]
) -> None:
    """Ends a cookie with the same attributes it was set with (browsers match on them)."""
    response.delete_cookie(name, path=path, httponly=True, samesite=samesite, secure=secure_cookies(settings))
