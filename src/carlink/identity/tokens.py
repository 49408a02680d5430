"""OAuth2 tokens: JWT access tokens signed with keys published as JWKS, refresh tokens, codes with PKCE."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Unauthorised
from carlink.identity.models import Account, AuthorizationCode, RefreshToken, SigningKey
from carlink.identity.service import token_hash
from carlink.settings import Settings

AUDIENCE = "carlink-api"
ALGORITHM = "ES256"
CODE_SECONDS = 120


class OAuthError(CarlinkError):
    """An RFC 6749 error: rendered as {"error": code, "error_description": message}."""

    message_position = 2

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message, code=code, status=status)


@dataclass(frozen=True)
class Client:
    client_id: str
    redirect_uris: tuple[str, ...]
    name: str


# Public clients (no secret; PKCE where the client supports it).
CLIENTS = {
    client.client_id: client
    for client in (
        Client("carlink-app", ("carlink://callback", "http://127.0.0.1/callback"), "carlink app"),
        # The community clients of the maker's app API (RMT-4, reference doc section 4).
        Client("XhygisuebbrqQ80byOuU5VncxLIm8E6H", ("my-porsche-app://auth0/callback",), "connect app API"),
    )
}


def client(client_id: str) -> Client:
    found = CLIENTS.get(client_id)
    if found is None:
        raise OAuthError("invalid_client", "unknown client_id", status=401)
    return found


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_s256(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


class TokenIssuer:
    """Holds the signing keys in memory; the database is their home, so every instance signs alike."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issuer = settings.base_url.rstrip("/")
        self._private: dict[str, Any] = {}
        self._public: dict[str, Any] = {}
        self._jwks: list[dict[str, str]] = []
        self._current_kid = ""

    async def load(self, session: AsyncSession) -> None:
        keys = list(await session.scalars(select(SigningKey).where(SigningKey.purpose == "jwt")))
        if not any(key.retired_at is None for key in keys):
            keys.append(await self.rotate(session))
        self._private.clear()
        self._public.clear()
        self._jwks = []
        for key in sorted(keys, key=lambda k: k.created_at):
            private = serialization.load_pem_private_key(key.private_key.encode(), password=None)
            self._private[key.kid] = private
            self._public[key.kid] = private.public_key()
            self._jwks.append(key.public_jwk)
            if key.retired_at is None:
                self._current_kid = key.kid

    async def rotate(self, session: AsyncSession) -> SigningKey:
        """Adds a new current key; older keys stay published until their tokens have expired."""
        private = ec.generate_private_key(ec.SECP256R1())
        kid = uuid.uuid4().hex[:16]
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))
        jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
        for old in await session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
            old.retired_at = utcnow()
        key = SigningKey(
            kid=kid,
            private_key=private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode(),
            public_jwk=jwk,
        )
        session.add(key)
        await session.flush()
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._jwks)}

    def access_token(self, account: Account, client_id: str, scope: str) -> str:
        now = utcnow()
        claims = {
            "iss": self.issuer,
            "sub": str(account.id),
            "aud": [AUDIENCE],
            "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + self.settings.access_token_seconds,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "scope": scope,
            "email": account.email,
        }
        return jwt.encode(
            claims, self._private[self._current_kid], algorithm=ALGORITHM, headers={"kid": self._current_kid}
        )

    def id_token(self, account: Account, client_id: str, nonce: str | None) -> str:
        now = int(utcnow().timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": str(account.id),
            "aud": client_id,
            "iat": now,
            "exp": now + self.settings.access_token_seconds,
            "email": account.email,
            "email_verified": True,
            "name": account.display_name,
        }
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(
            claims, self._private[self._current_kid], algorithm=ALGORITHM, headers={"kid": self._current_kid}
        )

    def verify(self, token: str) -> dict[str, Any]:
        try:
            kid = jwt.get_unverified_header(token).get("kid", "")
            key = self._public.get(kid)
            if key is None:
                raise Unauthorised("the access token was signed with an unknown key", code="invalid_token")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"verify_iat": False},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorised("the access token has expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorised("the access token is not valid", code="invalid_token") from exc
        now = int(utcnow().timestamp())
        if claims["exp"] < now - 5:  # the process clock may be moved by tests; check against ours too
            raise Unauthorised("the access token has expired", code="token_expired")
        return claims

    async def token_response(
        self, session: AsyncSession, account: Account, client_id: str, scope: str, nonce: str | None = None
    ) -> dict[str, Any]:
        refresh = await issue_refresh_token(session, self.settings, account, client_id, scope)
        body: dict[str, Any] = {
            "access_token": self.access_token(account, client_id, scope),
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_seconds,
            "refresh_token": refresh,
            "scope": scope,
        }
        if "openid" in scope.split():
            body["id_token"] = self.id_token(account, client_id, nonce)
        return body


async def issue_refresh_token(
    session: AsyncSession, settings: Settings, account: Account, client_id: str, scope: str
) -> str:
    token = secrets.token_urlsafe(48)
    session.add(
        RefreshToken(
            token_hash=token_hash(token),
            account_id=account.id,
            client_id=client_id,
            scope=scope,
            expires_at=utcnow() + dt.timedelta(days=settings.refresh_token_days),
        )
    )
    await session.flush()
    return token


async def use_refresh_token(
    session: AsyncSession, issuer: TokenIssuer, token: str, client_id: str
) -> dict[str, Any]:
    """A new access token for a valid refresh token; the refresh token itself stays valid (ACC-7)."""
    row = await session.get(RefreshToken, token_hash(token))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now or row.client_id != client_id:
        raise OAuthError("invalid_grant", "the refresh token is not valid", status=403)
    account = await session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None:
        raise OAuthError("invalid_grant", "the refresh token is not valid", status=403)
    row.last_used_at = now
    return {
        "access_token": issuer.access_token(account, client_id, row.scope),
        "token_type": "Bearer",
        "expires_in": issuer.settings.access_token_seconds,
        "refresh_token": token,
        "scope": row.scope,
    }


async def issue_code(
    session: AsyncSession,
    *,
    account_id: int,
    client_id: str,
    redirect_uri: str,
    scope: str,
    code_challenge: str | None,
    nonce: str | None,
) -> str:
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=token_hash(code),
            client_id=client_id,
            account_id=account_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            nonce=nonce,
            expires_at=utcnow() + dt.timedelta(seconds=CODE_SECONDS),
        )
    )
    await session.flush()
    return code


async def redeem_code(
    session: AsyncSession,
    issuer: TokenIssuer,
    *,
    code: str,
    client_id: str,
    redirect_uri: str,
    code_verifier: str | None,
) -> dict[str, Any]:
    row = await session.get(AuthorizationCode, token_hash(code))
    now = utcnow()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise OAuthError("invalid_grant", "the authorization code is not valid or was used already")
    if row.client_id != client_id or row.redirect_uri != redirect_uri:
        raise OAuthError("invalid_grant", "the code was issued to another client or redirect URI")
    # PKCE is checked whenever the authorization request carried a challenge (older clients send none).
    if row.code_challenge is not None and (
        not code_verifier or pkce_s256(code_verifier) != row.code_challenge
    ):
        raise OAuthError("invalid_grant", "the PKCE code verifier does not match")
    row.used_at = now
    account = await session.get(Account, row.account_id)
    if account is None or account.deleted_at is not None:
        raise OAuthError("invalid_grant", "the account no longer exists")
    return await issuer.token_response(session, account, client_id, row.scope, row.nonce)
