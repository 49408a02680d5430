"""The car's security set: one signed, retained message per change with the tracking package, the driver
cards, the mode in force and what to track (docs/protocol.md "Car security"; SEC-1..3).

Published like entitlements (store/entitlements.py): the revision rises in the unit of work that changed
something, the change is published after it commits, and the jobs role re-publishes what the broker has not
taken yet. A mode that runs out is a change too: the jobs role ends it and publishes the car's set again.
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.db.base import locked_row
from carlink.garage.models import Vehicle
from carlink.platform import Platform
from carlink.protocol.messages import SecurityReport, SecuritySet
from carlink.protocol.topics import DOWN_SECURITY
from carlink.security import activations, alarms, modes, service
from carlink.security.models import VehicleSecurity
from carlink.security.rules import DRIVER_CARD_PACKAGE

log = logging.getLogger("carlink.security")
MAX_DRIVER_CARDS = 64  # docs/protocol.md "Car security"


async def state_row(session: AsyncSession, vehicle_id: int) -> VehicleSecurity:
    """The car's row, locked for this unit of work (created at the first change, race-safe)."""
    return await locked_row(session, VehicleSecurity, vehicle_id)


async def bump(session: AsyncSession, vehicle_id: int) -> int:
    """The car's security set changed in this unit of work; returns the new revision."""
    row = await state_row(session, vehicle_id)
    row.revision += 1
    return row.revision


def card_hash(serial: str) -> str:
    """What the car gets of a driver card: the SHA-256 (hex, lower case) of its normalised serial, so a
    set read off the car names no card (SEC-2)."""
    return hashlib.sha256(serial.encode()).hexdigest()


async def build(session: AsyncSession, vehicle: Vehicle, revision: int) -> SecuritySet:
    """The car's set as the cloud sees it now, unsigned. Any activation that has not ended puts its
    package in force for the car, so an ordered package reaches the car and starts installing (SEC-4)."""
    activation = await activations.live(session, vehicle.id)
    package = activation.package if activation is not None else None
    cards: list[str] = []
    if package == DRIVER_CARD_PACKAGE:  # REQ: SEC-2 — driver cards count with tracking plus only
        cards = sorted({card_hash(card.serial) for card in await service.active_cards(session, vehicle.id)})
    now = clock.now()
    mode = await modes.in_force(session, vehicle.id, now)  # by the cloud's clock (SEC-3)
    case = await alarms.open_case(session, vehicle.id)
    return SecuritySet.model_validate(
        {
            "vin": vehicle.vin,
            "revision": revision,
            "issued_at": now,
            "package": package,
            "activation": activation.id if activation is not None else None,
            "driver_cards": cards[:MAX_DRIVER_CARDS],
            "mode": {"kind": mode.kind, "until": mode.until} if mode is not None else None,
            # REQ: SEC-1, PRV-4 — no tracking for a car without a package (alarms.tracking_of).
            "tracking": alarms.tracking_of(case),
            "kid": "unsigned",
        }
    )


async def publish(platform: Platform, vehicle_id: int) -> bool:
    """Signs the car's current set and hands it to the broker, retained; False while the broker is away
    (the jobs role tries again)."""
    link = platform.link
    if link is None or not link.connected.is_set():
        return False
    async with platform.db.session() as session:
        vehicle = await session.get(Vehicle, vehicle_id)
        state = await session.get(VehicleSecurity, vehicle_id)
        if vehicle is None or state is None or state.revision == 0:
            return True
        # The revision is read before the content: a set is never older than the revision it carries.
        revision = state.revision
        message = platform.signer.sign(await build(session, vehicle, revision))
    topic = link.topics.down(vehicle.vin, DOWN_SECURITY)
    if not await link.publish(topic, message.model_dump_json().encode(), retain=True):
        return False
    async with platform.db.transaction() as session:
        state = await session.get(VehicleSecurity, vehicle_id, with_for_update=True)
        if state is not None and state.published_revision < revision:
            state.published_revision = revision
    return True


async def publish_due(platform: Platform, limit: int = 200) -> int:
    """Jobs: ends the modes that ran out (a change of their cars' sets), then publishes every revision not
    yet on the broker (it was away, or the publisher crashed)."""
    async with platform.db.transaction() as session:
        ended = await modes.end_expired(session, clock.now())
    if ended:
        log.info("modes ran out for %d cars; publishing their sets", len(ended))
    async with platform.db.session() as session:
        due = list(
            await session.scalars(
                select(VehicleSecurity.vehicle_id)
                .where(VehicleSecurity.published_revision < VehicleSecurity.revision)
                .order_by(VehicleSecurity.vehicle_id)
                .limit(limit)
            )
        )
    done = 0
    for vehicle_id in due:
        done += await publish(platform, vehicle_id)
    return done


async def record_report(session: AsyncSession, vehicle: Vehicle, report: SecurityReport) -> bool:
    """Notes the set the car applied and moves an ordered activation to installing (SEC-4); True when the
    car is behind the cloud's revision, so the gateway publishes the set again."""
    row = await state_row(session, vehicle.id)
    if report.revision > row.applied_revision:
        row.applied_revision = min(report.revision, row.revision)
        # The car's time, believed as an alarm's is (a time that cannot be stored is the received time).
        row.applied_at = alarms.alarm_time(report.at, clock.now())
    await activations.car_applied(session, vehicle.id, report.package, report.activation)
    return row.applied_revision < row.revision


async def state(session: AsyncSession, vehicle_id: int) -> VehicleSecurity | None:
    """Where the car's set stands (revision, published, applied), for pages and the API."""
    return await session.get(VehicleSecurity, vehicle_id)
