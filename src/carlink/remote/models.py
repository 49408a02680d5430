"""Tables of the remote domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from carlink.db.base import Base, utcnow


class RemoteCommand(Base):
    __tablename__ = "remote_commands"
    __table_args__ = (Index("ix_remote_commands_state_expires", "state", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default="accepted")
    reason: Mapped[str | None] = mapped_column(String(200), default=None)
    channel: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    published_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    publish_count: Mapped[int] = mapped_column(default=0)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The signed message as sent, so a re-send after a broker restart is the very same command.
    envelope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PinChallenge(Base):
    """A single-use challenge for the 4-digit security PIN (RMT-1: unlock)."""

    __tablename__ = "pin_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    challenge: Mapped[str] = mapped_column(String(64), unique=True)
    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    used_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class CommandSigningKey(Base):
    """Ed25519 key per fleet; cars trust the public half (docs/protocol.md, 'Signing')."""

    __tablename__ = "command_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class WakeUp(Base):
    """When a car was last woken, for the per-vehicle rate limit (RMT-2)."""

    __tablename__ = "wake_ups"

    vehicle_id: Mapped[int] = mapped_column(ForeignKey("vehicles.id", ondelete="CASCADE"), primary_key=True)
    last_wake_at: Mapped[dt.datetime]


class AuditEntry(Base):
    """Who did what to which vehicle, and what came of it."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    vehicle_id: Mapped[int | None] = mapped_column(ForeignKey("vehicles.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
