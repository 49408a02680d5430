"""The OAuth2 / OpenID Connect provider for app clients (ACC-1, ACC-7).

Authorization code with PKCE, refresh tokens, JWT access tokens and JWKS, discovery. The sign-in pages
use the paths the maker's identity service uses (/authorize, /u/login/identifier, /u/login/password,
/authorize/resume, /oauth/token), so existing community clients sign in unchanged (RMT-4).
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError
from carlink.i18n import N_, _
from carlink.identity import service as identity
from carlink.identity import tokens
from carlink.identity.access import (
    SESSION_COOKIE,
    client_address,
    cookie_caller,
    delete_cookie,
    platform_of,
    require_caller,
    set_cookie,
)
from carlink.identity.captcha import new_captcha
from carlink.identity.models import Account, LoginFailure, LoginTransaction
from carlink.settings import Settings
from carlink.web.headers import content_security_policy, redirect_source
from carlink.web.templating import page

router = APIRouter(tags=["identity"])
TRANSACTION_MINUTES = 15
AUTHORIZE_COOKIE = "carlink_authorize"
CAPTCHA_AFTER_SOURCE_FAILURES = 5


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> dict[str, Any]:
    base = platform_of(request).settings.base_url.rstrip("/")
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "userinfo_endpoint": f"{base}/userinfo",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [tokens.ALGORITHM],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "profile", "email", "offline_access", "vehicles"],
    }


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    return platform_of(request).tokens.jwks()


@router.get("/userinfo")
async def userinfo(request: Request) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return {
            "sub": str(caller.account.id),
            "email": caller.account.email,
            "name": caller.account.display_name,
        }


def _oauth_error(request: Request, message: str) -> HTMLResponse:
    return page(request, "message.html", status=400, title=_("Sign-in request not valid"), message=_(message))


@router.get("/authorize", response_model=None)
async def authorize(
    request: Request,
    client_id: str = "",
    redirect_uri: str = "",
    response_type: str = "code",
    scope: str = "openid",
    state: str | None = None,
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    nonce: str | None = None,
) -> Response:
    client = tokens.CLIENTS.get(client_id)
    if client is None or redirect_uri not in client.redirect_uris:
        # Never redirect to an unregistered URI: show the error here.
        return _oauth_error(request, N_("unknown client or redirect URI"))
    if response_type != "code":
        return _redirect_with(redirect_uri, {"error": "unsupported_response_type", "state": state})
    if code_challenge is not None and (code_challenge_method or "plain") != "S256":
        return _redirect_with(
            redirect_uri,
            {
                "error": "invalid_request",
                "state": state,
                "error_description": "only S256 code challenges are accepted",
            },
        )
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        caller = await cookie_caller(request, session)
        if caller is not None:  # signed in already in this browser: straight back with a code
            code = await tokens.issue_code(
                session,
                account_id=caller.account.id,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scope=scope,
                code_challenge=code_challenge,
                nonce=nonce,
            )
            return _redirect_with(redirect_uri, {"code": code, "state": state})
        transaction = LoginTransaction(
            state=secrets.token_urlsafe(24),
            client_id=client_id,
            redirect_uri=redirect_uri,
            client_state=state,
            scope=scope,
            code_challenge=code_challenge,
            nonce=nonce,
            expires_at=utcnow() + dt.timedelta(minutes=TRANSACTION_MINUTES),
        )
        session.add(transaction)
    started = RedirectResponse(f"/u/login/identifier?state={transaction.state}", status_code=302)
    # Binds the sign-in to this browser: only the browser that started it gets the portal session at the
    # end, so another site cannot sign a victim's browser into an ID of its choosing (login CSRF).
    set_cookie(
        started,
        platform.settings,
        AUTHORIZE_COOKIE,
        transaction.state,
        max_age=TRANSACTION_MINUTES * 60,
        path="/authorize",
        samesite="lax",
    )
    return started


def _redirect_with(uri: str, params: dict[str, str | None]) -> RedirectResponse:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302)


async def _transaction(session: AsyncSession, state: str) -> LoginTransaction:
    row = await session.get(LoginTransaction, state[:64])
    if row is None or row.expires_at <= utcnow():
        raise CarlinkError("this sign-in has expired; start again from your app", code="login_expired")
    return row


async def captcha_needed(session: AsyncSession, settings: Settings, source: str, email: str | None) -> bool:
    """After a few failures from one network or on one ID, a person proves they are one (ACC-7)."""
    since = utcnow() - dt.timedelta(minutes=10)
    recent = await session.scalar(
        select(func.count()).where(LoginFailure.source == source, LoginFailure.at >= since)
    )
    if (recent or 0) >= CAPTCHA_AFTER_SOURCE_FAILURES:
        return True
    account = await identity.find_account(session, email) if email else None
    return account is not None and account.login_failures >= settings.login_failures_before_delay


@router.get("/u/login/identifier", response_class=HTMLResponse)
async def identifier_page(request: Request, state: str = "") -> HTMLResponse:
    async with platform_of(request).db.transaction() as session:
        await _transaction(session, state)
    return page(request, "login_identifier.html", state=state, error=None, captcha=None)


@router.post("/u/login/identifier", response_class=HTMLResponse)
async def identifier_submit(
    request: Request,
    state: str = Form(""),
    username: str = Form(""),
    captcha: str = Form(""),
    captcha_token: str = Form(""),
) -> HTMLResponse:
    platform = platform_of(request)
    secret = platform.settings.secret_key
    async with platform.db.transaction() as session:
        transaction = await _transaction(session, state or request.query_params.get("state", ""))
        transaction.username = username.strip()[:254]
        token = transaction.captcha_token or captcha_token
        if await identity.spend_captcha(session, secret, token or "", captcha):
            transaction.captcha_token = None
            transaction.captcha_solved = True
        elif await captcha_needed(session, platform.settings, client_address(request), username):
            image, transaction.captcha_token = new_captcha(secret)
            message = (
                _("Type the characters in the picture.")
                if not captcha
                else _("Those characters were not right.")
            )
            return page(
                request,
                "login_identifier.html",
                status=400,
                state=transaction.state,
                error=message,
                captcha={"image": image, "token": transaction.captcha_token},
                username=username,
            )
        password_page = page(
            request, "login_password.html", state=transaction.state, username=username, error=None
        )
        return _to_client(password_page, transaction.redirect_uri)


def _to_client(response: HTMLResponse, redirect_uri: str) -> HTMLResponse:
    """The password form's post ends in a redirect to the app (carlink://callback, or a client's https
    address); browsers hold that redirect to the page's form-action, so the page allows the client's one."""
    response.headers["Content-Security-Policy"] = content_security_policy(
        form_action=redirect_source(redirect_uri)
    )
    return response


@router.post("/u/login/password", response_model=None)
async def password_submit(
    request: Request, state: str = Form(""), username: str = Form(""), password: str = Form("")
) -> Response:
    platform = platform_of(request)
    state = state or request.query_params.get("state", "")
    redirect_uri = ""
    try:
        async with platform.db.transaction() as session:
            transaction = await _transaction(session, state)
            redirect_uri = transaction.redirect_uri
            email = transaction.username or username
            if username.strip().lower() not in ("", email.strip().lower()):
                # The ID was chosen at the first step; a script may not try other IDs past its challenge.
                raise CarlinkError("sign in with the email address you entered first", code="login_mismatch")
            source = client_address(request)
            if transaction.captcha_token or (
                not transaction.captcha_solved
                and await captcha_needed(session, platform.settings, source, email)
            ):
                raise CarlinkError("solve the picture challenge first", code="captcha_required")
            try:
                account = await identity.authenticate(
                    session, platform.settings, email=email, password=password, source=source
                )
            except CarlinkError:
                transaction.captcha_solved = False  # a solved picture is good for one password only
                raise
            transaction.account_id = account.id
    except CarlinkError as error:
        refused = page(
            request,
            "login_password.html",
            # Throttling and locks keep their status and Retry-After (ACC-7); other refusals are 400.
            status=error.status if error.status in (423, 429) else 400,
            state=state,
            username=username,
            error=error.message,
            code=error.code,
        )
        refused.headers.update(error.headers)
        return _to_client(refused, redirect_uri) if redirect_uri else refused
    # A relative Location: older clients append it to the identity host themselves.
    return RedirectResponse(f"/authorize/resume?state={state}", status_code=302)


@router.get("/authorize/resume", response_model=None)
async def resume(request: Request, state: str = "") -> Response:
    platform = platform_of(request)
    async with platform.db.transaction() as session:
        transaction = await _transaction(session, state)
        if transaction.account_id is None:
            return RedirectResponse(f"/u/login/identifier?state={state}", status_code=302)
        code = await tokens.issue_code(
            session,
            account_id=transaction.account_id,
            client_id=transaction.client_id,
            redirect_uri=transaction.redirect_uri,
            scope=transaction.scope,
            code_challenge=transaction.code_challenge,
            nonce=transaction.nonce,
        )
        account = await session.get(Account, transaction.account_id)
        assert account is not None
        started_here = request.cookies.get(AUTHORIZE_COOKIE, "")
        cookie = None
        if started_here and secrets.compare_digest(started_here.encode(errors="replace"), state.encode()):
            cookie, _ = await identity.start_web_session(session, account)
        await session.delete(transaction)
    response = _redirect_with(transaction.redirect_uri, {"code": code, "state": transaction.client_state})
    if cookie is not None:
        set_session_cookie(response, cookie, platform.settings)
    if started_here:  # used up: the next sign-in in this browser starts its own
        delete_cookie(response, platform.settings, AUTHORIZE_COOKIE, path="/authorize", samesite="lax")
    return response


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    # Lax, not strict: a link from a mail or another site into the portal must find the person signed in.
    # Every state change needs the CSRF token as well (identity.access.check_csrf).
    set_cookie(
        response,
        settings,
        SESSION_COOKIE,
        token,
        max_age=identity.SESSION_DAYS * 86400,
        path="/",
        samesite="lax",
    )


@router.post("/oauth/token")
async def token(
    request: Request,
    grant_type: str = Form(""),
    client_id: str = Form(""),
    code: str = Form(""),
    redirect_uri: str = Form(""),
    code_verifier: str | None = Form(None),
    refresh_token: str = Form(""),
) -> JSONResponse:
    platform = platform_of(request)
    try:
        async with platform.db.transaction() as session:
            tokens.client(client_id)
            if grant_type == "authorization_code":
                body = await tokens.redeem_code(
                    session,
                    platform.tokens,
                    code=code,
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    code_verifier=code_verifier,
                )
            elif grant_type == "refresh_token":
                body = await tokens.use_refresh_token(session, platform.tokens, refresh_token, client_id)
            else:
                raise tokens.OAuthError("unsupported_grant_type", "this grant type is not supported")
    except tokens.OAuthError as error:
        return JSONResponse(
            {"error": error.code, "error_description": error.message},
            status_code=error.status,
            headers={"Cache-Control": "no-store"},
        )
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
