"""The decisions of car security, apart from the database: the SOC workflow of an alarm, how severe each
trigger is, what service and transport mode suppress, and the steps of a tracking activation (SEC-1..4)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from carlink.errors import CarlinkError, Conflict
from carlink.i18n import N_
from carlink.protocol.messages import AlarmTrigger

PACKAGES = ("tracking", "tracking-plus")
# SEC-2: only tracking plus knows driver cards and raises the silent alarm.
DRIVER_CARD_PACKAGE = "tracking-plus"


class AlarmState(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"  # a SOC operator took the case
    CUSTOMER_CONTACTED = "customer_contacted"
    FALSE_ALARM = "false_alarm"
    THEFT_CONFIRMED = "theft_confirmed"  # tracking goes on, in privacy mode too (SEC-1)
    POLICE_INFORMED = "police_informed"
    CLOSED = "closed"


# The SOC workflow (issue 7): each state and where an operator may move a case from it.
TRANSITIONS: dict[AlarmState, frozenset[AlarmState]] = {
    AlarmState.NEW: frozenset({AlarmState.ACKNOWLEDGED}),
    AlarmState.ACKNOWLEDGED: frozenset({AlarmState.CUSTOMER_CONTACTED}),
    AlarmState.CUSTOMER_CONTACTED: frozenset({AlarmState.FALSE_ALARM, AlarmState.THEFT_CONFIRMED}),
    AlarmState.FALSE_ALARM: frozenset({AlarmState.CLOSED}),
    AlarmState.THEFT_CONFIRMED: frozenset({AlarmState.POLICE_INFORMED}),
    AlarmState.POLICE_INFORMED: frozenset({AlarmState.CLOSED}),
    AlarmState.CLOSED: frozenset(),
}

# A case takes in the car's further alarms until it is judged a false alarm or closed; after that a new
# alarm of the car opens a new case.
MERGING = frozenset(
    {
        AlarmState.NEW,
        AlarmState.ACKNOWLEDGED,
        AlarmState.CUSTOMER_CONTACTED,
        AlarmState.THEFT_CONFIRMED,
        AlarmState.POLICE_INFORMED,
    }
)


def check_move(current: str, target: str) -> AlarmState:
    """The state to move to, or a Conflict naming why the workflow does not allow it."""
    try:
        to = AlarmState(target)
    except ValueError:
        raise CarlinkError(
            "'%(target)s' is not a state of an alarm", code="invalid_alarm_state", target=target
        ) from None
    if to not in TRANSITIONS[AlarmState(current)]:
        raise Conflict(
            "an alarm that is %(state)s cannot become %(target)s",
            code="alarm_transition",
            state=current,
            target=to.value,
        )
    return to


def tracking_for(state: str | None) -> str:
    """What the car is asked to track (docs/protocol.md "Car security"): nothing without an open case,
    `alarm` while one is open, `theft` once the theft is confirmed, also in privacy mode (SEC-1)."""
    if state in (AlarmState.THEFT_CONFIRMED, AlarmState.POLICE_INFORMED):
        return "theft"
    if state is not None and AlarmState(state) in MERGING:
        return "alarm"
    return "off"


# Higher first in the SOC queue. A car that moves or starts without its owner is the likeliest theft.
SEVERITY: dict[AlarmTrigger, int] = {
    AlarmTrigger.IGNITION_WITHOUT_KEY: 4,
    AlarmTrigger.MOVING_WHILE_LOCKED: 4,
    AlarmTrigger.NO_DRIVER_CARD: 4,
    AlarmTrigger.TOWING: 3,
    AlarmTrigger.GLASS_BREAK: 3,
    AlarmTrigger.INTERIOR_MOTION: 2,
    AlarmTrigger.TILT: 1,
    AlarmTrigger.TEST: 0,
}

# SEC-3: what each mode suppresses. In a workshop the car is lifted, worked in and moved by mechanics
# without a driver card; on a lorry, train or ferry it is tilted and moves while locked. Everything else
# (a broken window, an engine started without a key) still alarms.
MODE_COVERS: dict[str, frozenset[AlarmTrigger]] = {
    "service": frozenset(
        {
            AlarmTrigger.TILT,
            AlarmTrigger.INTERIOR_MOTION,
            AlarmTrigger.MOVING_WHILE_LOCKED,
            AlarmTrigger.NO_DRIVER_CARD,
        }
    ),
    "transport": frozenset({AlarmTrigger.TOWING, AlarmTrigger.TILT, AlarmTrigger.MOVING_WHILE_LOCKED}),
}
# A mode always ends by itself (SEC-3: the service cannot be switched off).
MODE_LONGEST: dict[str, dt.timedelta] = {
    "service": dt.timedelta(days=14),
    "transport": dt.timedelta(days=3),
}
# The refusal of a mode's length, one text per mode (translated where it is read: CarlinkError.message).
MODE_DURATION = {
    "service": N_("service mode lasts 1 to %(hours)s hours"),
    "transport": N_("transport mode lasts 1 to %(hours)s hours"),
}


def mode_until(kind: str, hours: int, now: dt.datetime) -> dt.datetime:
    longest = MODE_LONGEST.get(kind)
    if longest is None:
        raise CarlinkError("the mode is service or transport", code="invalid_mode")
    if not 1 <= hours <= longest / dt.timedelta(hours=1):
        raise CarlinkError(
            MODE_DURATION[kind], code="invalid_mode_duration", hours=int(longest / dt.timedelta(hours=1))
        )
    return now + dt.timedelta(hours=hours)


def suppressed_by(trigger: AlarmTrigger, mode: str | None) -> str | None:
    """The mode that covers this trigger, if one is in force and covers it."""
    return mode if mode is not None and trigger in MODE_COVERS.get(mode, frozenset()) else None


class ActivationState(StrEnum):
    ORDERED = "ordered"  # the contract is concluded; the security set with the package is on its way
    INSTALLING = "installing"  # the car has the set; its test alarm has not come yet
    TEST_PASSED = "test_passed"  # the SOC received the car's test alarm; it confirms with the customer
    ACTIVE = "active"  # confirmed by the SOC: the certificate can be downloaded (SEC-4)
    ENDED = "ended"  # the contract ended (expired, withdrawn, not renewed) or another package replaced it


ACTIVATION_STEPS: dict[ActivationState, frozenset[ActivationState]] = {
    ActivationState.ORDERED: frozenset({ActivationState.INSTALLING, ActivationState.ENDED}),
    ActivationState.INSTALLING: frozenset({ActivationState.TEST_PASSED, ActivationState.ENDED}),
    ActivationState.TEST_PASSED: frozenset({ActivationState.ACTIVE, ActivationState.ENDED}),
    ActivationState.ACTIVE: frozenset({ActivationState.ENDED}),
    ActivationState.ENDED: frozenset(),
}


def may_step(current: str, target: ActivationState) -> bool:
    return target in ACTIVATION_STEPS[ActivationState(current)]


CALL_OUTCOMES = ("reached", "no_answer", "voicemail", "wrong_number", "police")
