"""Deliveries: packages on their way into cars, for functions on demand and software updates.

Each car has one signed, retained delivery set on `down/deliveries` (docs/protocol.md "Deliveries"): every
delivery still open for it. Its revision rises with every change; the jobs role publishes any revision the
broker has not taken yet, exactly as for entitlements. The car reports each step on `up/deliveries`; a
report moves a delivery forward only along `rules.REPORTED`, so repeated or late reports change nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.fod.models import Delivery, FunctionOrder, UpdateCampaign, VehicleDeliveries
from carlink.fod.rules import OPEN, DeliveryState, reported_move
from carlink.garage.models import Vehicle
from carlink.gateway.link import CloudLink
from carlink.platform import Platform
from carlink.protocol.messages import Deliveries, DeliveryItem, DeliveryReport
from carlink.protocol.topics import DOWN_DELIVERIES

log = logging.getLogger("carlink.fod")
PUBLISH_BATCH = 500
PUBLISH_CONCURRENCY = 64
_SENDING: dict[int, set[int]] = {}  # id(platform) -> vehicle ids whose set this process is sending


async def bump(session: AsyncSession, vehicle_ids: Iterable[int]) -> None:
    """The delivery sets of these cars changed in this unit of work."""
    ids = sorted(set(vehicle_ids))
    for start in range(0, len(ids), PUBLISH_BATCH):  # bounded IN lists, also for a whole fleet
        chunk = ids[start : start + PUBLISH_BATCH]
        have = select(VehicleDeliveries.vehicle_id).where(VehicleDeliveries.vehicle_id.in_(chunk))
        known = set(await session.scalars(have))
        missing = [
            {"vehicle_id": vid, "revision": 0, "published_revision": 0} for vid in chunk if vid not in known
        ]
        if missing:
            await session.execute(insert(VehicleDeliveries), missing)
        await session.execute(
            update(VehicleDeliveries)
            .where(VehicleDeliveries.vehicle_id.in_(chunk))
            .values(revision=VehicleDeliveries.revision + 1)
            .execution_options(synchronize_session=False)
        )


async def open_deliveries(session: AsyncSession, vehicle_ids: list[int]) -> dict[int, list[DeliveryItem]]:
    rows = await session.execute(
        select(Delivery, FunctionOrder.service_code, FunctionOrder.download_by, UpdateCampaign.to_version)
        .outerjoin(FunctionOrder, FunctionOrder.id == Delivery.function_order_id)
        .outerjoin(UpdateCampaign, UpdateCampaign.id == Delivery.campaign_id)
        .where(Delivery.vehicle_id.in_(vehicle_ids), Delivery.state.in_([s.value for s in OPEN]))
        .order_by(Delivery.id)
    )
    found: dict[int, list[DeliveryItem]] = {vid: [] for vid in vehicle_ids}
    for delivery, function, download_by, version in rows:
        found[delivery.vehicle_id].append(
            DeliveryItem(
                id=delivery.id,
                kind="function" if delivery.kind == "function" else "update",
                package=delivery.package,
                function=function,
                version=version,
                download_by=download_by,
                state=delivery.state,
            )
        )
    return found


async def publish(platform: Platform, vehicle_ids: Iterable[int]) -> int:
    """Signs each car's current set and hands it to the broker, retained; returns how many went out (none
    while the broker is away: the jobs role tries again)."""
    link = platform.link
    ids = sorted(set(vehicle_ids))
    if link is None or not link.connected.is_set() or not ids:
        return 0
    sent = 0
    gate = asyncio.Semaphore(PUBLISH_CONCURRENCY)

    async def send(topic: str, payload: bytes) -> bool:
        async with gate:
            return await link.publish(topic, payload, retain=True)

    # Sets this process is sending right now (the api after a change, the jobs round at the same moment)
    # are not sent twice; another process may still send one again, which the car ignores.
    sending = _SENDING.setdefault(id(platform), set())
    for start in range(0, len(ids), PUBLISH_BATCH):
        chunk = [vid for vid in ids[start : start + PUBLISH_BATCH] if vid not in sending]
        sending.update(chunk)
        try:
            sent += await _publish_chunk(platform, link, chunk, send)
        finally:
            sending.difference_update(chunk)
    return sent


async def _publish_chunk(
    platform: Platform, link: CloudLink, chunk: list[int], send: Callable[[str, bytes], Awaitable[bool]]
) -> int:
    async with platform.db.session() as session:
        rows = (
            await session.execute(
                select(Vehicle.id, Vehicle.vin, VehicleDeliveries.revision)
                .join(VehicleDeliveries, VehicleDeliveries.vehicle_id == Vehicle.id)
                .where(
                    Vehicle.id.in_(chunk),
                    VehicleDeliveries.revision > VehicleDeliveries.published_revision,
                )
            )
        ).all()
        items = await open_deliveries(session, [row[0] for row in rows])
    now = clock.now()
    messages = [
        (
            vehicle_id,
            revision,
            link.topics.down(vin, DOWN_DELIVERIES),
            platform.signer.sign(
                Deliveries(
                    vin=vin,
                    revision=revision,
                    issued_at=now,
                    deliveries=items[vehicle_id],
                    kid=platform.signer.kid,
                )
            )
            .model_dump_json()
            .encode(),
        )
        for vehicle_id, vin, revision in rows
    ]
    results = await asyncio.gather(*(send(topic, payload) for _, _, topic, payload in messages))
    done = [{"vid": vid, "rev": rev} for (vid, rev, _, _), ok in zip(messages, results, strict=True) if ok]
    if done:
        table = cast(Table, VehicleDeliveries.__table__)
        async with platform.db.transaction() as session:
            connection = await session.connection()
            await connection.execute(  # one statement for the chunk, executed with many parameter sets
                table.update()
                .where(table.c.vehicle_id == bindparam("vid"), table.c.published_revision < bindparam("rev"))
                .values(published_revision=bindparam("rev")),
                done,
            )
    return len(done)


async def publish_due(platform: Platform, limit: int = 5000) -> int:
    """Jobs: publishes every revision not yet on the broker (it was away, or the publisher crashed)."""
    async with platform.db.session() as session:
        due = list(
            await session.scalars(
                select(VehicleDeliveries.vehicle_id)
                .where(VehicleDeliveries.published_revision < VehicleDeliveries.revision)
                .limit(limit)
            )
        )
    return await publish(platform, due)


@dataclass(frozen=True)
class ReportOutcome:
    """What a car's report changed: the delivery and its new state (None when the report did not apply),
    and whether the car's set changed (publish again)."""

    delivery: Delivery | None
    moved_to: DeliveryState | None = None
    set_changed: bool = False


async def record_report(session: AsyncSession, vehicle: Vehicle, report: DeliveryReport) -> ReportOutcome:
    delivery = await session.get(Delivery, report.delivery, with_for_update=True)
    if delivery is None or delivery.vehicle_id != vehicle.id:
        log.info("delivery report %s from %s about no delivery of it: ignored", report.delivery, vehicle.vin)
        return ReportOutcome(None)
    if report.state == "downloading" and delivery.state == DeliveryState.DOWNLOADING:
        delivery.have, delivery.length = report.have, report.length  # progress only
        delivery.updated_at = clock.now()
        return ReportOutcome(delivery)
    target = reported_move(delivery.state, report.state, delivery.kind)
    if target is None:
        return ReportOutcome(None)
    was_open = DeliveryState(delivery.state) in OPEN
    delivery.state, delivery.updated_at = target.value, clock.now()
    delivery.reason = report.reason[:200] if target == DeliveryState.FAILED and report.reason else None
    if report.have is not None:
        delivery.have, delivery.length = report.have, report.length
    if target == DeliveryState.FAILED:
        delivery.failures += 1
    if target in (DeliveryState.DOWNLOADED, DeliveryState.INSTALLED, DeliveryState.ACTIVE):
        delivery.downloaded_at = delivery.downloaded_at or clock.now()
    if target == DeliveryState.INSTALLED and delivery.campaign_id is not None:
        campaign = await session.get(UpdateCampaign, delivery.campaign_id)
        if campaign is not None:
            vehicle.software_version = report.version or campaign.to_version
    set_changed = was_open != (target in OPEN)
    if set_changed:
        await bump(session, [vehicle.id])
    return ReportOutcome(delivery, target, set_changed)


async def cancel(session: AsyncSession, rows: Iterable[Delivery], reason: str) -> list[int]:
    """Takes open deliveries out of their cars' sets; returns the vehicle ids to publish again."""
    now = clock.now()
    vehicles = []
    for row in rows:
        if DeliveryState(row.state) in OPEN:
            row.state, row.reason, row.updated_at = DeliveryState.CANCELLED.value, reason, now
            vehicles.append(row.vehicle_id)
    await bump(session, vehicles)
    return vehicles
