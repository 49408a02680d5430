"""What the 24/7 security operations centre (SOC) sees and does: the live queue of cases, one case with the
car, its track and the customer to call, the workflow, the call log, and the welcome calls of new
activations (SEC-1, SEC-4; docs/security.md "The SOC console").

Authorisation lives here, not only in the pages: every function that shows a customer's data or changes a
case takes the SOC operator's account id and refuses anyone without the `soc` staff role (`403 staff_only`).
Every view of a customer's data is written to `soc_access_log` in the same unit of work (issue 7, point 5).
The queue itself shows cars, never customers.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound
from carlink.garage.models import Vehicle, VehicleUser
from carlink.identity.models import Account, StaffRole
from carlink.identity.service import SOC
from carlink.protocol.catalogue import profile
from carlink.security import activations, alarms, config
from carlink.security.models import (
    Alarm,
    AlarmCall,
    AlarmEvent,
    SocAccess,
    TrackingActivation,
    TrackPointRecord,
)
from carlink.security.rules import CALL_OUTCOMES, TRANSITIONS, AlarmState, check_move, tracking_for
from carlink.store.models import Contract

QUEUE_LIMIT = 200
# A theft tracked every 30 s for days is thousands of points; the map draws the latest ones.
TRACK_LIMIT = 1000
NOTE_LIMIT = 500
_PHONE = re.compile(r"\+?[0-9][0-9 ()/-]{2,19}")


# --- who may look -------------------------------------------------------------------------------------------


async def require_soc(session: AsyncSession, account_id: int) -> None:
    """Only SOC operators see cases and the customer data they need; dealers, operators and owners do not."""
    found = await session.scalar(
        select(StaffRole.id).where(StaffRole.account_id == account_id, StaffRole.role == SOC)
    )
    if found is None:
        raise Forbidden("this console is for staff with the right role", code="staff_only")


def model_name(vehicle: Vehicle) -> str:
    """'Taycan 4S · 1st generation': what the SOC reads out to the police; the key if the catalogue has
    no such model any more."""
    try:
        model = profile(vehicle.model_key)
        return f"{model.variant(vehicle.variant_code).name} · {model.generation}"
    except KeyError:
        return vehicle.model_key


# --- the live queue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """One case in the queue: the car, never its customer."""

    alarm: Alarm
    vin: str
    model: str


async def queue(
    session: AsyncSession, *, include_closed: bool = False, limit: int = QUEUE_LIMIT
) -> list[QueueRow]:
    """Open cases, most severe first, then newest; cases of cars without a tracking package at the end.

    A storming car is one row (its case merges the alarms), so the queue stays short. False alarms stay
    until an operator closes them."""
    query = (
        select(Alarm, Vehicle)
        .join(Vehicle, Vehicle.id == Alarm.vehicle_id)
        .order_by(Alarm.without_package, Alarm.severity.desc(), Alarm.last_at.desc(), Alarm.id.desc())
        .limit(max(1, min(limit, QUEUE_LIMIT)))
    )
    if not include_closed:
        query = query.where(Alarm.state != AlarmState.CLOSED)
    rows = await session.execute(query)
    return [QueueRow(alarm, vehicle.vin, model_name(vehicle)) for alarm, vehicle in rows]


# --- one case ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseView:
    """Everything the SOC needs to work a case, and nothing more of the customer's account."""

    alarm: Alarm
    vehicle: Vehicle
    model: str
    customer_name: str
    phone: str  # the activation's SOC number; empty when the car has none (the page says "no number")
    package: str | None
    track: list[TrackPointRecord]  # oldest first
    calls: list[AlarmCall]  # newest first
    events: list[AlarmEvent]  # oldest first
    moves: list[AlarmState]  # what the workflow allows from here
    privacy_override: bool  # some shown points were taken in privacy mode for a confirmed theft (SEC-1)

    @property
    def tracking(self) -> str:
        return tracking_for(self.alarm.state if self.alarm.closed_at is None else None)


async def _alarm(session: AsyncSession, alarm_id: int) -> Alarm:
    found = await session.get(Alarm, alarm_id, populate_existing=True)
    if found is None:
        raise NotFound("there is no such alarm", code="alarm_not_found")
    return found


async def customer_name(session: AsyncSession, vehicle_id: int, activation: TrackingActivation | None) -> str:
    """The car's main user, whom the SOC asks for on the phone; the package's buyer if nobody is."""
    name = await session.scalar(
        select(Account.display_name)
        .join(VehicleUser, VehicleUser.account_id == Account.id)
        .where(VehicleUser.vehicle_id == vehicle_id, VehicleUser.role == "main")
    )
    if name is None and activation is not None:
        name = await session.scalar(
            select(Account.display_name)
            .join(Contract, Contract.buyer_account_id == Account.id)
            .where(Contract.id == activation.contract_id)
        )
    return name or ""


async def open_case(session: AsyncSession, alarm_id: int, viewer_account_id: int) -> CaseView:
    """The case as a SOC operator sees it; the view is written to the access log (issue 7, point 5):
    the case, the customer, and the track — marked privacy_override when points taken in privacy mode
    are shown (SEC-1)."""
    await require_soc(session, viewer_account_id)
    alarm = await _alarm(session, alarm_id)
    vehicle = await session.get(Vehicle, alarm.vehicle_id)
    assert vehicle is not None  # a case goes with its car (ON DELETE CASCADE)
    activation = await activations.live(session, vehicle.id)
    track = await _track(session, alarm.id)
    override = any(point.privacy for point in track)
    view = CaseView(
        alarm=alarm,
        vehicle=vehicle,
        model=model_name(vehicle),
        customer_name=await customer_name(session, vehicle.id, activation),
        phone=activation.phone if activation is not None else "",
        package=activation.package if activation is not None else None,
        track=track,
        calls=list(
            await session.scalars(
                select(AlarmCall).where(AlarmCall.alarm_id == alarm.id).order_by(AlarmCall.id.desc())
            )
        ),
        events=list(
            await session.scalars(
                select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id).order_by(AlarmEvent.id)
            )
        ),
        moves=sorted(TRANSITIONS[AlarmState(alarm.state)], key=list(AlarmState).index),
        privacy_override=override,
    )
    seen = ["alarm", "customer"] + (["track"] if track else [])
    for what in seen:
        session.add(
            SocAccess(
                account_id=viewer_account_id,
                vehicle_id=vehicle.id,
                alarm_id=alarm.id,
                what=what,
                privacy_override=override and what == "track",
            )
        )
    return view


async def _track(session: AsyncSession, alarm_id: int) -> list[TrackPointRecord]:
    latest = list(
        await session.scalars(
            select(TrackPointRecord)
            .where(TrackPointRecord.alarm_id == alarm_id)
            .order_by(TrackPointRecord.at.desc(), TrackPointRecord.id.desc())
            .limit(TRACK_LIMIT)
        )
    )
    return latest[::-1]


# --- the workflow -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """A move done in this unit of work; after the commit the handler publishes the car's security set
    when `set_changed` (config.publish) and emits `event` to the live queues (alarms.SOC_CHANNEL)."""

    alarm: Alarm
    set_changed: bool
    event: dict[str, Any]


async def move(
    session: AsyncSession,
    alarm_id: int,
    to_state: str,
    *,
    expected_version: int,
    account_id: int,
    note: str = "",
    seen_state: str | None = None,
    now: dt.datetime | None = None,
) -> Moved:
    """Moves a case along the workflow (rules.TRANSITIONS), never over another operator's move.

    The form carries the version the operator saw. A stale version is refused with `409 alarm_changed`,
    except when the page also says which state it showed (`seen_state`) and the case is still in it: then
    only the car's further alarms were merged since, and they do not change what the operator decided on —
    a case judged a false alarm takes no more alarms, the next one opens a new case. Without that, a car
    storming hundreds of alarms a minute would make its case impossible to move. Two moves at once are
    serialised by the version in the UPDATE's WHERE: the second finds 0 rows and is refused."""
    await require_soc(session, account_id)
    alarm = await _alarm(session, alarm_id)
    base_version = expected_version
    if alarm.version != expected_version and seen_state is not None and alarm.state == seen_state:
        base_version = alarm.version
    if alarm.version != base_version:
        raise _changed(alarm)
    from_state = alarm.state
    target = check_move(from_state, to_state)  # 409 alarm_transition, 400 invalid_alarm_state
    at = now or utcnow()
    # An UPDATE answers with a cursor result: its rowcount tells whether our version still held.
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Alarm)
            .where(Alarm.id == alarm.id, Alarm.version == base_version, Alarm.state == from_state)
            .values(state=target.value, version=Alarm.version + 1, updated_at=at)
            .execution_options(synchronize_session=False)
        ),
    )
    if result.rowcount == 0:
        raise _changed(await _alarm(session, alarm.id))
    alarm = await _alarm(session, alarm.id)
    alarms.after_move(alarm, target.value, at)
    session.add(
        AlarmEvent(
            alarm_id=alarm.id,
            at=at,
            account_id=account_id,
            from_state=from_state,
            to_state=target.value,
            note=note.strip()[:NOTE_LIMIT],
        )
    )
    # What the car tracks follows the case (SEC-1): `theft` once confirmed, nothing once it is over.
    set_changed = tracking_for(from_state) != tracking_for(target.value)
    if set_changed:
        await config.bump(session, alarm.vehicle_id)
    await session.flush()
    vin = await session.scalar(select(Vehicle.vin).where(Vehicle.id == alarm.vehicle_id))
    return Moved(alarm, set_changed, alarms.event_of(alarm, vin or ""))


def _changed(alarm: Alarm) -> Conflict:
    return Conflict(
        f"Someone else changed this case while you had it open: it is now {alarm.state.replace('_', ' ')} "
        f"(version {alarm.version}). Check it and decide again.",
        code="alarm_changed",
    )


# --- the call log -----------------------------------------------------------------------------------------


async def log_call(
    session: AsyncSession, alarm_id: int, *, account_id: int, number: str, outcome: str, note: str = ""
) -> AlarmCall:
    """Records a call about a case (SEC-1: the SOC calls the number the customer gave when buying). The
    number defaults to the activation's; any other number (the police, a relative) is typed in."""
    await require_soc(session, account_id)
    alarm = await _alarm(session, alarm_id)
    if outcome not in CALL_OUTCOMES:
        raise CarlinkError(
            f"the outcome of a call is one of: {', '.join(CALL_OUTCOMES)}", code="invalid_call_outcome"
        )
    number = " ".join(number.split())
    if not number:
        activation = await activations.live(session, alarm.vehicle_id)
        number = activation.phone if activation is not None else ""
    if not number:
        raise CarlinkError(
            "The car has no SOC phone number: type the number you called.", code="call_number_missing"
        )
    if not _PHONE.fullmatch(number):
        raise CarlinkError(
            "A phone number has 3 to 20 digits, spaces, +, -, / or brackets.", code="invalid_phone"
        )
    call = AlarmCall(
        alarm_id=alarm.id,
        account_id=account_id,
        number=number,
        outcome=outcome,
        note=note.strip()[:NOTE_LIMIT],
    )
    session.add(call)
    await session.flush()
    return call


# --- welcome calls of new activations (SEC-4) --------------------------------------------------------------


@dataclass(frozen=True)
class WelcomeCall:
    """An activation whose test alarm reached the SOC: the SOC calls the customer, then confirms it."""

    activation: TrackingActivation
    vin: str
    model: str
    customer_name: str


async def welcome_calls(session: AsyncSession, viewer_account_id: int) -> list[WelcomeCall]:
    """The activations waiting for the welcome call, with the name and number to call; each shown
    customer is written to the access log (what=activation)."""
    await require_soc(session, viewer_account_id)
    waiting = []
    for activation in await activations.awaiting_confirmation(session):
        vehicle = await session.get(Vehicle, activation.vehicle_id)
        assert vehicle is not None
        waiting.append(
            WelcomeCall(
                activation,
                vehicle.vin,
                model_name(vehicle),
                await customer_name(session, vehicle.id, activation),
            )
        )
        session.add(SocAccess(account_id=viewer_account_id, vehicle_id=vehicle.id, what="activation"))
    return waiting


async def confirm_activation(
    session: AsyncSession, activation_id: int, account_id: int
) -> TrackingActivation:
    """REQ: SEC-4 — the welcome call is done: the activation is active and its certificate can be had."""
    await require_soc(session, account_id)
    return await activations.confirm(session, activation_id, account_id)
