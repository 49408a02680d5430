"""JSON shapes of the remote-services API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from carlink.protocol.messages import CommandType
from carlink.remote.models import RemoteCommand


class SpinAnswer(BaseModel):
    challenge: str = Field(pattern="^[0-9A-Fa-f]{8,64}$")
    hash: str = Field(pattern="^[0-9A-Fa-f]{128}$", description="SHA-512 of hex(pin + challenge), hex")


class CommandIn(BaseModel):
    type: CommandType
    params: dict[str, Any] = Field(default_factory=dict)
    spin: SpinAnswer | None = Field(default=None, description="required for UNLOCK")


class CommandOut(BaseModel):
    id: str
    type: str
    params: dict[str, Any]
    state: str = Field(description="accepted, delivered, performed, error or expired")
    reason: str | None
    created_at: dt.datetime
    expires_at: dt.datetime
    delivered_at: dt.datetime | None
    finished_at: dt.datetime | None


class AuditOut(BaseModel):
    at: dt.datetime
    action: str = Field(
        description="command.accepted, command.performed, command.error, command.expired, pin.wrong"
    )
    account_id: int | None
    detail: dict[str, Any]


class ChallengeOut(BaseModel):
    challenge_id: str
    challenge: str
    expires_at: dt.datetime


def command_out(row: RemoteCommand) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "params": row.params,
        "state": row.state,
        "reason": row.reason,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        "delivered_at": row.delivered_at,
        "finished_at": row.finished_at,
    }
