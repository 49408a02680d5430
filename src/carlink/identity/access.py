"""Who is calling: a bearer access token (apps, community clients) or a portal session cookie."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import i18n
from carlink.errors import Forbidden, Unauthorised
from carlink.identity.models import Account, WebSession
from carlink.identity.service import web_session_account
from carlink.platform import Platform

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
    if caller.web_session is None or not token or token != caller.web_session.csrf_token:
        raise Forbidden("the form is out of date; reload the page and try again", code="csrf_failed")
