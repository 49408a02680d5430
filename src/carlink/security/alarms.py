"""Alarms from the car's theft sensors, into the SOC's cases (SEC-1, SEC-2, SEC-3; docs/security.md "Alarms").

Every signal is stored before the gateway acknowledges it, once per car and alarm id: a re-send is the same
alarm. A signal then either moves the tracking activation (the car's `test` alarm), is kept as suppressed (a
mode in force covers its trigger, by the cloud's clock), joins the car's open case, or opens a new one. A
case takes in signals while its state is in `rules.MERGING`; `after_move` closes it to further signals when
the SOC judges it a false alarm or closes it, and the partial unique index `uq_alarms_open_vehicle` keeps one
open case per car.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.clock import clock
from carlink.db.base import add_unique
from carlink.garage.models import Vehicle
from carlink.protocol.messages import AlarmSignal, AlarmTrigger, Position, TrackPoint
from carlink.security import activations, config, modes
from carlink.security.models import Alarm, AlarmSignalRecord, TrackingActivation, TrackPointRecord
from carlink.security.rules import (
    MERGING,
    SEVERITY,
    ActivationState,
    AlarmState,
    suppressed_by,
    tracking_for,
)

log = logging.getLogger("carlink.security")
# How far the car's clock may run ahead of the cloud's before its alarm time is not believed.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
# The EventHub key of the SOC's live queue. Vehicle ids start at 1, so no car's events land there.
SOC_CHANNEL = 0


@dataclass(frozen=True)
class IngestOutcome:
    """What one signal did. The gateway acknowledges every outcome (after the commit) and tells the SOC
    about `alarm` (the case it opened or joined) and `activation` (now waiting for the SOC's welcome call);
    `opened`: the signal opened the case; `set_changed`: the car's security set changed (it now tracks for
    the case — not for a car without a package), so the gateway publishes it."""

    duplicate: bool = False
    alarm: Alarm | None = None
    opened: bool = False
    set_changed: bool = False
    suppressed_by: str | None = None
    activation: TrackingActivation | None = None


async def known(session: AsyncSession, vehicle_id: int, car_alarm_id: str) -> bool:
    """Whether the car's alarm with this id is stored already (a re-send)."""
    found = await session.scalar(
        select(AlarmSignalRecord.id).where(
            AlarmSignalRecord.vehicle_id == vehicle_id, AlarmSignalRecord.car_alarm_id == car_alarm_id
        )
    )
    return found is not None


async def ingest(
    session: AsyncSession, vehicle: Vehicle, signal: AlarmSignal, now: dt.datetime | None = None
) -> IngestOutcome:
    """REQ: SEC-1 — stores one alarm signal and files it; a re-send changes nothing (`duplicate`)."""
    at = now or clock.now()
    if await known(session, vehicle.id, signal.id):
        return IngestOutcome(duplicate=True)
    happened = alarm_time(signal.at, at)
    if happened != signal.at:
        log.warning(
            "alarm %s of vehicle %s: the car's time %r is not usable; stored with the received time",
            signal.id,
            vehicle.id,
            signal.at.isoformat(),
        )
    record = AlarmSignalRecord(
        vehicle_id=vehicle.id,
        car_alarm_id=signal.id,
        trigger=signal.trigger.value,
        silent=signal.silent,
        at=happened,
        received_at=at,
    )
    _keep_position(record, vehicle, _located(vehicle, None, signal.location))
    # Two gateway workers may hold the same re-send (PostgreSQL, shared subscriptions): one stores it.
    if not await add_unique(session, record):
        return IngestOutcome(duplicate=True)
    if signal.trigger == AlarmTrigger.TEST:  # REQ: SEC-4 — the installed package reached the SOC
        activation = await activations.test_alarm_received(session, vehicle.id, at=happened)
        # The SOC hears of it only while it waits for the welcome call (not again once active).
        waiting = activation is not None and activation.state == ActivationState.TEST_PASSED
        return IngestOutcome(activation=activation if waiting else None)
    # REQ: SEC-3 — judged at the alarm's own time: one raised before the mode started and re-sent after it
    # (the car was offline) is not covered. The car's clock may run ahead: never later than its arrival.
    mode = await modes.in_force(session, vehicle.id, min(happened, at))
    covered = suppressed_by(signal.trigger, mode.kind if mode is not None else None)
    if covered is not None:  # REQ: SEC-3 — kept for the record, but no case
        record.suppressed_by = covered
        return IngestOutcome(suppressed_by=covered)
    alarm, opened = await _file(session, vehicle, signal, happened, at)
    record.alarm_id = alarm.id
    _keep_position(record, vehicle, _case_position(vehicle, alarm, signal.location))
    set_changed = opened and tracking_of(alarm) != "off"
    if set_changed:
        await config.bump(session, vehicle.id)  # the car now tracks for the case
    return IngestOutcome(alarm=alarm, opened=opened, set_changed=set_changed)


def alarm_time(car_time: dt.datetime, received_at: dt.datetime) -> dt.datetime:
    """When the alarm happened, as stored and ordered by: the car's time in UTC, or the received time when
    the car's time cannot be converted or lies more than MAX_CLOCK_SKEW ahead of the cloud (REQ: SEC-1 —
    such an alarm is still stored and acknowledged, and cannot pin its case at the top of the queue)."""
    try:
        happened = car_time.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return received_at
    return happened if happened <= received_at + MAX_CLOCK_SKEW else received_at


def tracking_of(case: Alarm | None) -> str:
    """What the car tracks for its case (docs/security.md "Alarms"): nothing without an open case, and
    nothing for a car without a tracking package — the SOC has no mandate to locate its customer (PRV-4);
    otherwise as the case's state asks (rules.tracking_for)."""
    if case is None or case.closed_at is not None or case.without_package:
        return "off"
    return tracking_for(case.state)


async def open_case(session: AsyncSession, vehicle_id: int, *, lock: bool = False) -> Alarm | None:
    """The car's case that still takes in its alarms (`lock`: for this unit of work, to merge into it)."""
    query = select(Alarm).where(Alarm.vehicle_id == vehicle_id, Alarm.closed_at.is_(None))
    found: Alarm | None = await session.scalar(query.with_for_update() if lock else query)
    return found


async def _file(
    session: AsyncSession, vehicle: Vehicle, signal: AlarmSignal, happened: dt.datetime, now: dt.datetime
) -> tuple[Alarm, bool]:
    """Merges the signal into the car's open case, or opens one; True when it opened one."""
    case = await open_case(session, vehicle.id, lock=True)
    if case is None:
        # REQ: SEC-1 — a car without a tracking package in force still gets a case, flagged (issue 7).
        without_package = await activations.live(session, vehicle.id) is None
        case = _new_case(vehicle, signal, happened, now, without_package=without_package)
        if await add_unique(session, case):
            return case, True
        # Another gateway instance opened it a moment ago.
        case = await open_case(session, vehicle.id, lock=True)
        if case is None:
            raise RuntimeError(f"vehicle {vehicle.id}: an open case appeared and vanished; the car re-sends")
    _merge(case, vehicle, signal, happened, now)
    return case, False


def _new_case(
    vehicle: Vehicle, signal: AlarmSignal, happened: dt.datetime, now: dt.datetime, *, without_package: bool
) -> Alarm:
    position = None if without_package else _located(vehicle, None, signal.location)
    return Alarm(
        vehicle_id=vehicle.id,
        state=AlarmState.NEW.value,
        severity=SEVERITY[signal.trigger],
        trigger=signal.trigger.value,
        triggers=[signal.trigger.value],
        silent=signal.silent,
        without_package=without_package,
        signals=1,
        first_at=happened,
        last_at=happened,
        received_at=now,
        updated_at=now,
        lat=position.lat if position is not None else None,
        lon=position.lon if position is not None else None,
        position_privacy=_in_privacy(vehicle, position),
        version=1,
    )


def _merge(
    case: Alarm, vehicle: Vehicle, signal: AlarmSignal, happened: dt.datetime, now: dt.datetime
) -> None:
    """An alarm storm is one case whose counter rises (issue 7): the most severe trigger names the case; the
    newest signal (by the car's time; re-sends may come late) gives the last position."""
    severity = SEVERITY[signal.trigger]
    if severity > case.severity:
        case.severity, case.trigger = severity, signal.trigger.value
    if signal.trigger.value not in case.triggers:
        case.triggers = [*case.triggers, signal.trigger.value]  # a new list: the JSON column sees the change
    case.silent = case.silent and signal.silent  # a siren sounded once: the case is not silent
    case.signals += 1
    case.first_at = min(case.first_at, happened)
    if happened >= case.last_at:
        case.last_at = happened
        position = _case_position(vehicle, case, signal.location)
        if position is not None:  # the flag goes with the position it describes (SEC-1)
            case.lat, case.lon = position.lat, position.lon
            case.position_privacy = _in_privacy(vehicle, position)
    case.updated_at = now
    case.version += 1


def _located(vehicle: Vehicle, tracking: str | None, location: Position | None) -> Position | None:
    """REQ: PRV-4, VEH-6 — a car in privacy mode is located only while its case tracks a confirmed theft
    (`tracking` of the case, tracking_of; None before a case exists) (SEC-1)."""
    if location is None or (vehicle.privacy_mode and tracking != "theft"):
        return None
    return location


def _case_position(vehicle: Vehicle, case: Alarm, location: Position | None) -> Position | None:
    """REQ: PRV-4 — the position a case and its signals keep: none for a car without a tracking package
    (the SOC has no mandate to locate it, and the case does without: it is the car's alarm, not its place),
    otherwise as _located allows."""
    return None if case.without_package else _located(vehicle, tracking_of(case), location)


def _in_privacy(vehicle: Vehicle, position: Position | None) -> bool:
    """REQ: SEC-1, PRV-4 — whether a kept position was taken under the theft override: the car reported
    privacy mode on when it came (_located keeps such a position only for a confirmed theft). Stored with
    the position, so the SOC's page and access log say exactly which positions the override showed, whatever
    the car's privacy mode is later."""
    return position is not None and vehicle.privacy_mode


def _keep_position(record: AlarmSignalRecord, vehicle: Vehicle, position: Position | None) -> None:
    record.lat = position.lat if position is not None else None
    record.lon = position.lon if position is not None else None
    record.privacy = _in_privacy(vehicle, position)


def after_move(alarm: Alarm, to_state: str, now: dt.datetime) -> None:
    """The SOC moved a case (security.soc): once judged a false alarm or closed, it takes no more alarms,
    and the car's next alarm opens a new case."""
    if AlarmState(to_state) not in MERGING and alarm.closed_at is None:
        alarm.closed_at = now


async def record_track(session: AsyncSession, vehicle: Vehicle, point: TrackPoint) -> TrackPointRecord | None:
    """REQ: SEC-1 — a track point for the car's open case; None (dropped) without one, or in privacy mode
    unless the theft is confirmed, or for a car without a package: the cloud keeps a position only for a
    case that may use it (PRV-4)."""
    case = await open_case(session, vehicle.id)
    tracking = tracking_of(case)
    if case is None or tracking == "off" or _located(vehicle, tracking, point.location) is None:
        log.info("track point of vehicle %s without a case that may use it: dropped", vehicle.id)
        return None
    row = TrackPointRecord(
        vehicle_id=vehicle.id,
        alarm_id=case.id,
        at=alarm_time(point.at, clock.now()),  # a time that cannot be stored loses no point (as alarms)
        lat=point.location.lat,
        lon=point.location.lon,
        heading=point.location.heading,
        speed_kmh=point.location.speed_kmh,
        privacy=vehicle.privacy_mode,
    )
    session.add(row)
    return row


def event_of(alarm: Alarm, vin: str) -> dict[str, Any]:
    """The SOC live queue's event for a case (server-sent, JSON): everything a queue row shows and nothing
    more — no position: every SOC browser gets every event, and positions are shown (and logged) only on
    the case page (issue 7, point 5)."""
    return {
        "type": "alarm",
        "id": alarm.id,
        "vehicle_id": alarm.vehicle_id,
        "vin": vin,
        "state": alarm.state,
        "severity": alarm.severity,
        "trigger": alarm.trigger,
        "triggers": list(alarm.triggers),
        "signals": alarm.signals,
        "silent": alarm.silent,
        "without_package": alarm.without_package,
        "last_at": alarm.last_at.isoformat(),
        "version": alarm.version,
    }


def activation_event(activation: TrackingActivation, vin: str) -> dict[str, Any]:
    """The SOC live queue's event when a car's test alarm came: its activation awaits the welcome call."""
    return {
        "type": "activation",
        "id": activation.id,
        "vehicle_id": activation.vehicle_id,
        "vin": vin,
        "package": activation.package,
        "state": activation.state,
    }
