"""/api/v1/me/notifications: the person's notification centre as JSON (ACC-8). Another person's notification
is the same 404 as a missing one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from carlink.identity.access import platform_of, require_caller
from carlink.notify.models import Notification
from carlink.notify.service import mark_all_read, mark_read, notifications_of, unread_count

router = APIRouter(prefix="/api/v1/me/notifications", tags=["notifications"])


# --- JSON ---------------------------------------------------------------------------------------------


class NotificationOut(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    link: str
    created_at: dt.datetime
    read: bool
    read_at: dt.datetime | None


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        kind=row.kind,
        title=row.title,
        body=row.body,
        link=row.link,
        created_at=row.created_at,
        read=row.read_at is not None,
        read_at=row.read_at,
    )


class NotificationsOut(BaseModel):
    unread: int
    notifications: list[NotificationOut]


class MarkedOut(BaseModel):
    marked: int
    unread: int


@router.get("", response_model=NotificationsOut)
async def list_notifications(request: Request, unread: bool = False) -> dict[str, Any]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        rows = await notifications_of(session, caller.account.id, unread_only=unread)
        count = await unread_count(session, caller.account.id)
    return {"unread": count, "notifications": [notification_out(row) for row in rows]}


@router.post("/read-all", response_model=MarkedOut)
async def read_all(request: Request) -> dict[str, int]:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        marked = await mark_all_read(session, caller.account.id)
    return {"marked": marked, "unread": 0}


@router.post("/{notification_id}/read")
async def read_one(notification_id: int, request: Request) -> NotificationOut:
    async with platform_of(request).db.transaction() as session:
        caller = await require_caller(request, session)
        return notification_out(await mark_read(session, caller.account.id, notification_id))
