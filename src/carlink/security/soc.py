"""What the 24/7 security operations centre (SOC) sees and does: the live queue of cases, one case with the
car, its track and the customer to call, the workflow, the call log, and the welcome calls of new
activations (SEC-1, SEC-4; docs/security.md "The SOC console").

Authorisation lives here, not only in the pages: every function that shows a customer's data or changes a
case takes the SOC operator's account id and refuses anyone without the `soc` staff role (`403 staff_only`,
identity.service.require_staff). Every view of a customer's data is written to `soc_access_log` in the same
unit of work (issue 7, point 5): that is why opening a case is `view_case`, not a plain query. The queue
itself shows cars, never customers or positions. A car without a tracking package gets a case, but the SOC
has no mandate for its customer: no name, no number, no tracking (PRV-4).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from carlink.db.base import utcnow
from carlink.errors import CarlinkError, Conflict, Forbidden, NotFound
from carlink.garage.models import Vehicle, VehicleUser
from carlink.i18n import _
from carlink.identity.models import Account
from carlink.identity.service import SOC, require_staff
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
from carlink.security.rules import CALL_OUTCOMES, TRANSITIONS, AlarmState, check_move

QUEUE_LIMIT = 200
# A theft tracked every 30 s for days is thousands of points; the map draws the latest ones.
TRACK_LIMIT = 1000
NOTE_LIMIT = 500
# The cases still in the queue. Written as the partial index `ix_alarms_queue` states it (models.Alarm), with
# the literal in the SQL, so the planner can prove the index covers the query even for a prepared statement.
OPEN_CASES = text("alarms.state <> 'closed'")
# Moves that end a case: decided only on every alarm the operator saw (see move).
CLOSING = frozenset({AlarmState.FALSE_ALARM, AlarmState.CLOSED})
# A number in the call log: an emergency number (112) up to a full international one (E.164: 15 digits).
DIALLED_DIGITS = (3, 15)
_DIALLED = re.compile(r"\+?[0-9][0-9 \-]*")


# --- who may look -------------------------------------------------------------------------------------------


async def require_soc(session: AsyncSession, account_id: int) -> None:
    """Only SOC operators see cases and the customer data they need; dealers, operators and owners do not
    (`403 staff_only`, the same refusal as every console's)."""
    account = await session.get(Account, account_id)
    if account is None:
        raise Forbidden("this console is for staff with the right role", code="staff_only")
    await require_staff(session, account, SOC)


def model_name(vehicle: Vehicle) -> str:
    """'Taycan 4S · 1st generation': what the SOC reads out to the police; the key if the catalogue has
    no such model any more."""
    try:
        model = profile(vehicle.model_key)
        return f"{model.variant(vehicle.variant_code).name} · {_(model.generation)}"
    except KeyError:
        return vehicle.model_key


# --- the live queue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """One case in the queue: the car, never its customer."""

    alarm: Alarm
    vin: str
    model: str


@dataclass(frozen=True)
class Queue:
    """The queue's rows, and how many open cases the limit left out: the page says "N more cases" rather
    than hiding them."""

    rows: list[QueueRow]
    more: int


async def queue(session: AsyncSession, *, limit: int | None = None) -> Queue:
    """Open cases, most severe first, then newest; cases of cars without a tracking package at the end
    (served by the partial index `ix_alarms_queue`, which holds only the open cases).

    A storming car is one row (its case merges the alarms), so the queue stays short. False alarms stay
    until an operator closes them."""
    limit = max(1, min(limit or QUEUE_LIMIT, QUEUE_LIMIT))
    found = await session.execute(
        select(Alarm, Vehicle)
        .join(Vehicle, Vehicle.id == Alarm.vehicle_id)
        .where(OPEN_CASES)
        .order_by(Alarm.without_package, Alarm.severity.desc(), Alarm.last_at.desc(), Alarm.id.desc())
        .limit(limit)
    )
    rows = [QueueRow(alarm, vehicle.vin, model_name(vehicle)) for alarm, vehicle in found]
    more = 0
    if len(rows) == limit:  # cut, perhaps: count what the page does not show
        total = await session.scalar(select(func.count()).select_from(Alarm).where(OPEN_CASES))
        more = max(0, int(total or 0) - limit)
    return Queue(rows, more)


# --- one case ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseView:
    """Everything the SOC needs to work a case, and nothing more of the customer's account."""

    alarm: Alarm
    vehicle: Vehicle
    model: str
    # False for a case of a car without a tracking package (alarm.without_package): no customer is shown.
    mandate: bool
    customer_name: str | None  # None: the car has no main user (customer_name)
    phone: str  # the activation's SOC number; empty when the car has none (the page says "no number")
    package: str | None
    track: list[TrackPointRecord]  # oldest first
    calls: list[AlarmCall]  # newest first
    events: list[AlarmEvent]  # oldest first
    moves: list[AlarmState]  # what the workflow allows from here
    # Shown positions taken in privacy mode for a confirmed theft (SEC-1): track points, or the case's own.
    privacy_override: bool

    @property
    def tracking(self) -> str:
        return alarms.tracking_of(self.alarm)


async def _alarm(session: AsyncSession, alarm_id: int) -> Alarm:
    found = await session.get(Alarm, alarm_id, populate_existing=True)
    if found is None:
        raise NotFound("there is no such alarm", code="alarm_not_found")
    return found


async def customer_name(session: AsyncSession, vehicle_id: int) -> str | None:
    """The car's main user, whom the SOC asks for on the phone; None when the car has none (the page says
    "no main user"). Never the package's buyer: after a change of hands that is the former owner, whom the
    SOC must not call about the car (PRV-5)."""
    found = await session.execute(
        select(Account.display_name)
        .join(VehicleUser, VehicleUser.account_id == Account.id)
        .where(VehicleUser.vehicle_id == vehicle_id, VehicleUser.role == "main")
    )
    row = found.first()
    return None if row is None else row[0] or ""


async def view_case(session: AsyncSession, alarm_id: int, viewer_account_id: int) -> CaseView:
    """The case as a SOC operator sees it; the view is written to the access log (issue 7, point 5):
    the case, the customer, and the track — marked privacy_override when positions taken in privacy mode
    are shown (SEC-1). A case of a car without a package shows the alarm, the car and its position, but no
    customer (PRV-4: the SOC has no mandate), and logs none."""
    await require_soc(session, viewer_account_id)
    alarm = await _alarm(session, alarm_id)
    vehicle = await session.get(Vehicle, alarm.vehicle_id)
    assert vehicle is not None  # a case goes with its car (ON DELETE CASCADE)
    mandate = not alarm.without_package
    activation = await activations.live(session, vehicle.id) if mandate else None
    track = await _track(session, alarm.id)
    events = list(
        await session.scalars(
            select(AlarmEvent).where(AlarmEvent.alarm_id == alarm.id).order_by(AlarmEvent.id)
        )
    )
    track_override = any(point.privacy for point in track)
    position_override = _position_override(alarm)
    view = CaseView(
        alarm=alarm,
        vehicle=vehicle,
        model=model_name(vehicle),
        mandate=mandate,
        customer_name=await customer_name(session, vehicle.id) if mandate else None,
        phone=activation.phone if activation is not None else "",
        package=activation.package if activation is not None else None,
        track=track,
        calls=list(
            await session.scalars(
                select(AlarmCall).where(AlarmCall.alarm_id == alarm.id).order_by(AlarmCall.id.desc())
            )
        ),
        events=events,
        moves=sorted(TRANSITIONS[AlarmState(alarm.state)], key=list(AlarmState).index),
        privacy_override=track_override or position_override,
    )
    seen = {"alarm": position_override}
    if mandate:
        seen["customer"] = False
    if track:
        seen["track"] = track_override
    for what, override in seen.items():
        session.add(
            SocAccess(
                account_id=viewer_account_id,
                vehicle_id=vehicle.id,
                alarm_id=alarm.id,
                what=what,
                privacy_override=override,
            )
        )
    return view


def _position_override(alarm: Alarm) -> bool:
    """REQ: SEC-1 — whether the case's own position is shown only because of the theft override: it was
    taken while the car was in privacy mode (alarms.ingest stores that with the position, and keeps such a
    position only for a confirmed theft). Not the car's privacy mode now: a position taken before the owner
    switched it on is no override, and one taken under it stays one after it is switched off."""
    return alarm.position_privacy and alarm.lat is not None and alarm.lon is not None


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
    seen_severity: int | None = None,
    seen_triggers: int | None = None,
    now: dt.datetime | None = None,
) -> Moved:
    """Moves a case along the workflow (rules.TRANSITIONS), never over another operator's move and never
    on evidence the operator did not see.

    The form carries what the page showed: version, state, severity and the number of distinct triggers.
    The same version always goes ahead. A newer one means another move or the car's further alarms merged
    since: a car storming hundreds of alarms a minute must not make its case impossible to move, not even
    to close it, so a merge alone does not refuse the move — unless it changed what the decision rests on
    (`409 alarm_changed`): the state moved on, the severity rose, or, for a move that ends the case (false
    alarm, close), a kind of trigger came that the page did not show. More of the same trigger (the wind
    tilting the car again) is no new evidence. The check is the UPDATE's WHERE (`_still_as_seen`), so it holds
    against a merge or a move committed a moment before, and on PostgreSQL it is evaluated again on the row
    a concurrent merge committed: a move racing a merge is refused only when the merge changed something
    that matters."""
    await require_soc(session, account_id)
    alarm = await _alarm(session, alarm_id)
    if alarm.state != (seen_state or alarm.state) or (
        seen_state is None and alarm.version != expected_version
    ):
        raise _changed(alarm)  # plainly stale: said before the workflow's own refusals
    from_state = alarm.state
    target = check_move(from_state, to_state)  # 409 alarm_transition, 400 invalid_alarm_state
    seen = _still_as_seen(target, expected_version, seen_state, seen_severity, seen_triggers)
    tracked_before = alarms.tracking_of(alarm)
    at = now or utcnow()
    # An UPDATE answers with a cursor result: its rowcount tells whether the case was still as seen.
    result = cast(
        CursorResult[Any],
        await session.execute(
            update(Alarm)
            .where(Alarm.id == alarm.id, Alarm.state == from_state, seen)
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
    # What the car tracks follows the case (SEC-1): `theft` once confirmed, nothing once it is over, and
    # nothing ever for a car without a package.
    set_changed = tracked_before != alarms.tracking_of(alarm)
    if set_changed:
        await config.bump(session, alarm.vehicle_id)
    await session.flush()
    vin = await session.scalar(select(Vehicle.vin).where(Vehicle.id == alarm.vehicle_id))
    return Moved(alarm, set_changed, alarms.event_of(alarm, vin or ""))


def _still_as_seen(
    target: AlarmState,
    version: int,
    state: str | None,
    severity: int | None,
    triggers: int | None,
) -> ColumnElement[bool]:
    """REQ: SEC-1 — the case is still as the operator saw it, as far as the move is concerned: the same
    version, or only alarms merged since that change nothing the decision rests on (see move). Without
    the page's state and severity (an older form) only the same version counts.

    A case's triggers only grow, each kind once (alarms._merge), so "no kind the page did not show" is "no
    more kinds than the page showed": `json_array_length`, which SQLite and PostgreSQL (`json`) both have."""
    same = Alarm.version == version
    if state is None or severity is None:
        return same
    merged_only = and_(Alarm.state == state, Alarm.severity <= severity)
    if target in CLOSING:
        if triggers is None:
            return same
        merged_only = and_(merged_only, func.json_array_length(Alarm.triggers) <= triggers)
    return or_(same, merged_only)


def _changed(alarm: Alarm) -> Conflict:
    # The page shows the case as it is now (its state in the operator's language); this names the version.
    return Conflict(
        "Someone else changed this case while you had it open (it is at version %(version)s now). Check it "
        "and decide again.",
        code="alarm_changed",
        version=alarm.version,
    )


# --- the call log -----------------------------------------------------------------------------------------


async def log_call(
    session: AsyncSession, alarm_id: int, *, account_id: int, number: str, outcome: str, note: str = ""
) -> AlarmCall:
    """Records a call about a case (SEC-1: the SOC calls the number the customer gave when buying). The
    number defaults to the activation's (none for a car without a package: no mandate); any other number
    (the police station, a relative) is typed in, checked and normalised like every number the platform
    takes (dialled_number)."""
    await require_soc(session, account_id)
    alarm = await _alarm(session, alarm_id)
    if outcome not in CALL_OUTCOMES:
        raise CarlinkError(
            "the outcome of a call is one of: %(outcomes)s",
            code="invalid_call_outcome",
            outcomes=", ".join(CALL_OUTCOMES),
        )
    if number.strip():
        number = dialled_number(number)
    elif not alarm.without_package:  # the number the customer gave, checked when they gave it
        activation = await activations.live(session, alarm.vehicle_id)
        number = activation.phone if activation is not None else ""
    if not number:
        raise CarlinkError(
            "The car has no SOC phone number: type the number you called.", code="call_number_missing"
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


def dialled_number(raw: str) -> str:
    """REQ: SEC-1 — a number the SOC dialled, for its call log: a record of the call, not a number the SOC
    will call back, so short emergency and police numbers (110, 112, 17, 911) count — 3 to 15 digits, an
    optional `+`, spaces and dashes; normalised like activations.checked_phone, which stays the rule for the
    numbers customers give. 422 invalid_phone otherwise."""
    text = raw.strip()
    digits = re.sub(r"[ \-]", "", text)
    low, high = DIALLED_DIGITS
    if not _DIALLED.fullmatch(text) or not low <= len(digits.lstrip("+")) <= high:
        raise CarlinkError(
            "Please give the number you dialled, %(low)s to %(high)s digits, like 110 or +49 711 555 0100.",
            code="invalid_phone",
            status=422,
            low=low,
            high=high,
        )
    return digits


# --- welcome calls of new activations (SEC-4) --------------------------------------------------------------


@dataclass(frozen=True)
class WelcomeCall:
    """An activation whose test alarm reached the SOC: the SOC calls the customer, then confirms it."""

    activation: TrackingActivation
    vin: str
    model: str
    customer_name: str | None  # None: the car has no main user


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
                await customer_name(session, vehicle.id),
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
