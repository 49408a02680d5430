"""Service and transport mode (SEC-3): the owner or a dealer suspends some alarm triggers for a bounded time.

The package itself cannot be switched off; a mode only covers the triggers of `rules.MODE_COVERS` and always
ends by itself at `until`. A period whose `ended_at` is set has stopped: earlier than `until` when the owner
or a dealer ended it, at `until` when it ran out and the jobs role told the car (`end_expired`). Every change
is a change of the car's security set (`config.bump`): the caller publishes the set after its commit.
Who may set or end a mode is the caller's decision (owner pages and API, the dealer console).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.security import config
from carlink.security.models import SecurityModePeriod
from carlink.security.rules import mode_until

log = logging.getLogger("carlink.security")


async def in_force(session: AsyncSession, vehicle_id: int, now: dt.datetime) -> SecurityModePeriod | None:
    """The mode that covers triggers at `now`, if any (at most one: a new mode ends the previous one under
    the car's security row lock). Alarms ask at their own time (alarms.ingest), the car's set at the
    cloud's."""
    found: SecurityModePeriod | None = await session.scalar(
        select(SecurityModePeriod)
        .where(
            SecurityModePeriod.vehicle_id == vehicle_id,
            or_(SecurityModePeriod.ended_at.is_(None), SecurityModePeriod.ended_at > now),
            SecurityModePeriod.starts_at <= now,
            SecurityModePeriod.until > now,
        )
        .order_by(SecurityModePeriod.starts_at.desc(), SecurityModePeriod.id.desc())
        .limit(1)
    )
    return found


async def set_mode(
    session: AsyncSession,
    vehicle_id: int,
    kind: str,
    hours: int,
    *,
    account_id: int | None,
    partner_id: int | None = None,
    now: dt.datetime | None = None,
) -> SecurityModePeriod:
    """REQ: SEC-3 — puts the car into service or transport mode for `hours`; a mode in force is replaced
    (ended now), so the car never holds two. Raises `invalid_mode` / `invalid_mode_duration`."""
    mode_until(kind, hours, now or clock.now())  # validates before anything changes
    # The car's security row lock first: two setters at once (owner and dealer) serialise here, and the
    # second ends whatever the first left running, so two modes are never in force. The time is read
    # after the lock, so the second setter's mode starts after the first one's.
    await config.state_row(session, vehicle_id)
    at = now or clock.now()
    until = mode_until(kind, hours, at)
    running = await session.scalars(
        select(SecurityModePeriod).where(
            SecurityModePeriod.vehicle_id == vehicle_id,
            SecurityModePeriod.ended_at.is_(None),
            SecurityModePeriod.until > at,
        )
    )
    for current in running:
        current.ended_at = max(at, current.starts_at)
    period = SecurityModePeriod(
        vehicle_id=vehicle_id, kind=kind, starts_at=at, until=until, set_by=account_id, partner_id=partner_id
    )
    session.add(period)
    await session.flush()
    await config.bump(session, vehicle_id)
    log.info("vehicle %s: %s mode until %s set by account %s", vehicle_id, kind, until, account_id)
    return period


async def end_mode(
    session: AsyncSession, vehicle_id: int, *, account_id: int | None, now: dt.datetime | None = None
) -> bool:
    """REQ: SEC-3 — ends the mode in force early; False when none was in force (nothing changes)."""
    at = now or clock.now()
    await config.state_row(session, vehicle_id)  # serialised with set_mode (see there)
    current = await in_force(session, vehicle_id, at)
    if current is None:
        return False
    current.ended_at = at
    await config.bump(session, vehicle_id)
    log.info("vehicle %s: %s mode ended early by account %s", vehicle_id, current.kind, account_id)
    return True


async def recent(session: AsyncSession, vehicle_id: int, limit: int = 10) -> list[SecurityModePeriod]:
    """The car's latest modes, newest first (the owner's and dealer's history)."""
    rows = await session.scalars(
        select(SecurityModePeriod)
        .where(SecurityModePeriod.vehicle_id == vehicle_id)
        .order_by(SecurityModePeriod.starts_at.desc(), SecurityModePeriod.id.desc())
        .limit(limit)
    )
    return list(rows)


def ended_early(period: SecurityModePeriod) -> bool:
    """Whether the owner or a dealer ended the mode before its time (not: it ran out)."""
    return period.ended_at is not None and period.ended_at < period.until


async def end_expired(session: AsyncSession, now: dt.datetime, limit: int = 500) -> list[int]:
    """Jobs: marks modes that ran out as ended (at their `until`) and bumps their cars' sets, whose mode
    field changes; returns the cars to publish. One statement claims the rows, so two jobs instances never
    bump a car twice for the same end."""
    due = select(SecurityModePeriod.id).where(
        SecurityModePeriod.ended_at.is_(None), SecurityModePeriod.until <= now
    )
    ids = list(await session.scalars(due.order_by(SecurityModePeriod.until).limit(limit)))
    if not ids:
        return []
    claimed = await session.execute(
        update(SecurityModePeriod)
        .where(SecurityModePeriod.id.in_(ids), SecurityModePeriod.ended_at.is_(None))
        .values(ended_at=SecurityModePeriod.until)
        .returning(SecurityModePeriod.vehicle_id)
        .execution_options(synchronize_session=False)
    )
    vehicles = sorted(set(claimed.scalars()))
    for vehicle_id in vehicles:
        await config.bump(session, vehicle_id)
    return vehicles
