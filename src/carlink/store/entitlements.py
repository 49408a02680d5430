"""What each car may offer, sent to it as one signed, retained message per change (STO-7, CON-3).

The revision rises with every change of the car's contracts; the jobs role re-publishes any revision the
broker has not taken yet, and the gateway re-sends when a car comes online behind (docs/protocol.md).
"""

from __future__ import annotations

import logging
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import locked_row, utcnow
from carlink.garage.models import Vehicle
from carlink.platform import Platform
from carlink.protocol.messages import Entitlement, EntitlementReport, Entitlements
from carlink.protocol.topics import DOWN_ENTITLEMENTS
from carlink.store.models import Contract, VehicleEntitlements
from carlink.store.rules import ENTITLED

log = logging.getLogger("carlink.store")
KINDS: dict[str, Literal["data_package", "function"]] = {
    "data_package": "data_package",
    "function": "function",
}


async def _row(session: AsyncSession, vehicle_id: int) -> VehicleEntitlements:
    return await locked_row(session, VehicleEntitlements, vehicle_id)


async def bump(session: AsyncSession, vehicle_id: int) -> int:
    """The car's entitlements changed in this unit of work; returns the new revision."""
    row = await _row(session, vehicle_id)
    row.revision += 1
    return row.revision


async def current(session: AsyncSession, vehicle_id: int) -> list[Entitlement]:
    now = utcnow()
    contracts = await session.scalars(
        select(Contract)
        .where(
            Contract.vehicle_id == vehicle_id,
            Contract.state.in_([s.value for s in ENTITLED]),
            Contract.ends_at > now,
        )
        .order_by(Contract.service_code, Contract.ends_at.desc())
    )
    chosen: dict[str, Entitlement] = {}
    for contract in contracts:  # two contracts for one service: the one that runs longest counts
        if contract.service_code not in chosen:
            chosen[contract.service_code] = Entitlement(
                service=contract.service_code,
                kind=KINDS.get(contract.kind, "service"),
                until=contract.ends_at,
                volume_mb=contract.volume_mb,
            )
    return list(chosen.values())


async def publish(platform: Platform, vehicle_id: int) -> bool:
    """Signs the car's current set and hands it to the broker, retained; False while the broker is away."""
    if platform.link is None or not platform.link.connected.is_set():
        return False
    async with platform.db.transaction() as session:
        vehicle = await session.get(Vehicle, vehicle_id)
        state = await session.get(VehicleEntitlements, vehicle_id)
        if vehicle is None or state is None or state.revision == 0:
            return True
        message = platform.signer.sign(
            Entitlements(
                vin=vehicle.vin,
                revision=state.revision,
                issued_at=utcnow(),
                entitlements=await current(session, vehicle_id),
                kid=platform.signer.kid,
            )
        )
        revision = state.revision
    topic = platform.link.topics.down(vehicle.vin, DOWN_ENTITLEMENTS)
    if not await platform.link.publish(topic, message.model_dump_json().encode(), retain=True):
        return False
    async with platform.db.transaction() as session:
        state = await session.get(VehicleEntitlements, vehicle_id, with_for_update=True)
        if state is not None and state.published_revision < revision:
            state.published_revision = revision
    return True


async def publish_due(platform: Platform, limit: int = 200) -> int:
    """Jobs: publishes every revision not yet on the broker (it was away, or the publisher crashed)."""
    async with platform.db.session() as session:
        due = list(
            await session.scalars(
                select(VehicleEntitlements.vehicle_id)
                .where(VehicleEntitlements.published_revision < VehicleEntitlements.revision)
                .limit(limit)
            )
        )
    done = 0
    for vehicle_id in due:
        done += await publish(platform, vehicle_id)
    return done


async def record_report(session: AsyncSession, vehicle_id: int, report: EntitlementReport) -> bool:
    """Notes what the car applied; True when the car is behind the published revision."""
    row = await _row(session, vehicle_id)
    if report.revision > row.applied_revision:
        row.applied_revision = min(report.revision, row.revision)
        row.applied_at = report.at
    return row.applied_revision < row.revision


async def state(session: AsyncSession, vehicle_id: int) -> VehicleEntitlements | None:
    return await session.get(VehicleEntitlements, vehicle_id)
