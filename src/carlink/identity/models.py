"""Tables of the identity domain."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class Account(Base):
    """One ID per person, keyed by a personal email address (ACC-1)."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(120), default="")
    country: Mapped[str] = mapped_column(String(2), default="DE")
    locale: Mapped[str] = mapped_column(String(8), default="en")
    pin_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    pin_failures: Mapped[int] = mapped_column(default=0)
    pin_locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    login_failures: Mapped[int] = mapped_column(default=0)
    login_locked_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # Set when the person showed they read this mailbox (a registration link from it was used). Only then does
    # a dealer's sale to the address put a car straight into this ID; otherwise the mail's link must be used.
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class WebSession(Base):
    """A signed-in browser. Only the token's hash is stored; deleting the row signs the browser out."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


class LoginFailure(Base):
    """Failed sign-ins per source address, for the per-source throttle (ACC-7)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_source_at", "source", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SpentCaptcha(Base):
    """A solved picture challenge; each is good for one sign-in only (ACC-7)."""

    __tablename__ = "spent_captchas"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[dt.datetime]


class LoginTransaction(Base):
    """An authorization request in progress: from /authorize through sign-in to the code."""

    __tablename__ = "login_transactions"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    client_state: Mapped[str | None] = mapped_column(String(500), default=None)
    scope: Mapped[str] = mapped_column(String(1000), default="")
    code_challenge: Mapped[str | None] = mapped_column(String(128), default=None)
    nonce: Mapped[str | None] = mapped_column(String(255), default=None)
    username: Mapped[str | None] = mapped_column(String(254), default=None)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), default=None
    )
    # Set when this sign-in must first solve a captcha (ACC-7); cleared when it is solved.
    captcha_token: Mapped[str | None] = mapped_column(String(100), default=None)
    captcha_solved: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    scope: Mapped[str] = mapped_column(String(1000), default="")
    code_challenge: Mapped[str | None] = mapped_column(String(128), default=None)
    nonce: Mapped[str | None] = mapped_column(String(255), default=None)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class RefreshToken(Base):
    """Long-lived, so clients never need the password again to keep working (ACC-7)."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class SigningKey(Base):
    """Keys for JWT access tokens; published as JWKS, rotated by adding a newer one."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), default="jwt")
    private_key: Mapped[str] = mapped_column(String(4000))
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class StaffRole(Base):
    """A console role held by an ID: `dealer` (staff of one partner), `operator` or `soc`.

    Staff sign in with their ID like everyone else; each console checks the role it needs.
    """

    __tablename__ = "staff_roles"
    __table_args__ = (UniqueConstraint("account_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # The partner a dealer works for; empty for operators and the SOC.
    partner_id: Mapped[int | None] = mapped_column(
        ForeignKey("partners.id", ondelete="CASCADE"), index=True, default=None
    )
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    """A registration link mailed to the buyer of a car (ACC-2); single-use and expiring (ACC-4).

    Only the SHA-256 hash of the token is kept. A resend makes a new row and marks this one replaced, so
    the older link stops working.
    """

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sale_id: Mapped[int] = mapped_column(ForeignKey("sales.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    # The buyer's country (for the partner list and the new ID) and the language of the mail and the ID.
    country: Mapped[str] = mapped_column(String(2))
    language: Mapped[str] = mapped_column(String(8), default="en")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    replaced_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )


class InvitationRequest(Base):
    """A person asked for their registration mail again (ACC-4); counted per address for the rate limit,
    whether or not the address is invited, so the limit tells nobody anything."""

    __tablename__ = "invitation_requests"
    __table_args__ = (Index("ix_invitation_requests_email_at", "email", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
