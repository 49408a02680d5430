"""The decisions of car security without a database (carlink.security.rules; docs/security.md): the SOC
workflow of a case, which states take in further alarms, what the car tracks, how severe each trigger is,
what service and transport mode suppress and for how long, and the steps of a tracking activation."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from carlink.errors import CarlinkError, Conflict
from carlink.protocol.messages import AlarmTrigger
from carlink.security import alarms
from carlink.security.alarms import alarm_time, tracking_of
from carlink.security.models import Alarm
from carlink.security.rules import (
    ACTIVATION_STEPS,
    MERGING,
    MODE_COVERS,
    MODE_LONGEST,
    SEVERITY,
    TRANSITIONS,
    ActivationState,
    AlarmState,
    check_move,
    may_step,
    mode_until,
    suppressed_by,
    tracking_for,
)

A = AlarmState
S = ActivationState
T = AlarmTrigger
NOW = dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC)

# The workflow of issue 7, written out once more by hand: the table in rules.py must say exactly this.
WORKFLOW = {
    (A.NEW, A.ACKNOWLEDGED),
    (A.ACKNOWLEDGED, A.CUSTOMER_CONTACTED),
    (A.CUSTOMER_CONTACTED, A.FALSE_ALARM),
    (A.CUSTOMER_CONTACTED, A.THEFT_CONFIRMED),
    (A.THEFT_CONFIRMED, A.POLICE_INFORMED),
    (A.POLICE_INFORMED, A.CLOSED),
    (A.FALSE_ALARM, A.CLOSED),
}
ACTIVATION = {
    (S.ORDERED, S.INSTALLING),
    (S.INSTALLING, S.TEST_PASSED),
    (S.TEST_PASSED, S.ACTIVE),
    (S.ORDERED, S.ENDED),
    (S.INSTALLING, S.ENDED),
    (S.TEST_PASSED, S.ENDED),
    (S.ACTIVE, S.ENDED),
}


def test_the_transition_table_is_the_workflow_of_the_issue() -> None:
    table = {(origin, target) for origin, targets in TRANSITIONS.items() for target in targets}
    assert table == WORKFLOW
    assert set(TRANSITIONS) == set(AlarmState)


@pytest.mark.parametrize(("origin", "target"), sorted(WORKFLOW))
def test_a_soc_operator_may_move_a_case_along_the_workflow(origin: AlarmState, target: AlarmState) -> None:
    assert check_move(origin.value, target.value) == target


@pytest.mark.parametrize(
    ("origin", "target"),
    sorted(set(itertools.product(AlarmState, AlarmState)) - WORKFLOW),
)
def test_every_other_move_of_a_case_is_refused_with_a_stable_code(
    origin: AlarmState, target: AlarmState
) -> None:
    with pytest.raises(Conflict) as refused:
        check_move(origin.value, target.value)
    assert refused.value.code == "alarm_transition" and refused.value.status == 409


def test_a_state_that_does_not_exist_is_bad_input_not_a_conflict() -> None:
    with pytest.raises(CarlinkError) as refused:
        check_move(A.NEW.value, "stolen")
    assert refused.value.code == "invalid_alarm_state" and refused.value.status == 400


def test_a_closed_case_goes_nowhere() -> None:
    assert TRANSITIONS[A.CLOSED] == frozenset()


def test_a_case_takes_in_alarms_until_it_is_judged_a_false_alarm_or_closed() -> None:
    assert frozenset(AlarmState) - MERGING == {A.FALSE_ALARM, A.CLOSED}


@pytest.mark.parametrize(
    ("state", "tracking"),
    [
        (None, "off"),
        (A.NEW.value, "alarm"),
        (A.ACKNOWLEDGED.value, "alarm"),
        (A.CUSTOMER_CONTACTED.value, "alarm"),
        (A.THEFT_CONFIRMED.value, "theft"),
        (A.POLICE_INFORMED.value, "theft"),
        (A.FALSE_ALARM.value, "off"),
        (A.CLOSED.value, "off"),
    ],
)
def test_what_the_car_tracks_follows_its_open_case(state: str | None, tracking: str) -> None:
    # SEC-1: a confirmed theft is tracked in privacy mode too ("theft"); an open case without it ("alarm").
    assert tracking_for(state) == tracking


def test_every_trigger_has_a_severity_and_a_moving_or_started_car_is_the_most_severe() -> None:
    assert set(SEVERITY) == set(AlarmTrigger)
    order = sorted(AlarmTrigger, key=lambda trigger: -SEVERITY[trigger])
    assert [SEVERITY[trigger] for trigger in order] == [4, 4, 4, 3, 3, 2, 1, 0]
    assert set(order[:3]) == {T.IGNITION_WITHOUT_KEY, T.MOVING_WHILE_LOCKED, T.NO_DRIVER_CARD}
    assert set(order[3:5]) == {T.TOWING, T.GLASS_BREAK}
    assert order[5:] == [T.INTERIOR_MOTION, T.TILT, T.TEST]


def test_service_mode_suppresses_the_workshop_triggers_and_nothing_else() -> None:
    covered = {trigger for trigger in AlarmTrigger if suppressed_by(trigger, "service") == "service"}
    assert covered == {T.TILT, T.INTERIOR_MOTION, T.MOVING_WHILE_LOCKED, T.NO_DRIVER_CARD}
    assert covered == MODE_COVERS["service"]


def test_transport_mode_suppresses_towing_tilt_and_moving_and_nothing_else() -> None:
    covered = {trigger for trigger in AlarmTrigger if suppressed_by(trigger, "transport") == "transport"}
    assert covered == {T.TOWING, T.TILT, T.MOVING_WHILE_LOCKED}


@pytest.mark.parametrize("trigger", [T.GLASS_BREAK, T.IGNITION_WITHOUT_KEY, T.TEST])
def test_a_broken_window_or_a_start_without_key_alarms_in_every_mode(trigger: AlarmTrigger) -> None:
    # SEC-3: only some triggers can be suspended; these always reach the SOC.
    assert all(suppressed_by(trigger, mode) is None for mode in (None, "service", "transport"))


def test_without_a_mode_nothing_is_suppressed() -> None:
    assert all(suppressed_by(trigger, None) is None for trigger in AlarmTrigger)


@pytest.mark.parametrize(("kind", "longest_hours"), [("service", 14 * 24), ("transport", 3 * 24)])
def test_a_mode_lasts_one_hour_up_to_its_longest(kind: str, longest_hours: int) -> None:
    assert MODE_LONGEST[kind] == dt.timedelta(hours=longest_hours)
    assert mode_until(kind, 1, NOW) == NOW + dt.timedelta(hours=1)
    assert mode_until(kind, longest_hours, NOW) == NOW + dt.timedelta(hours=longest_hours)
    for hours in (0, -1, longest_hours + 1):
        with pytest.raises(CarlinkError) as refused:
            mode_until(kind, hours, NOW)
        assert refused.value.code == "invalid_mode_duration"


@pytest.mark.parametrize("kind", ["", "off", "valet", "SERVICE"])
def test_a_mode_is_service_or_transport(kind: str) -> None:
    with pytest.raises(CarlinkError) as refused:
        mode_until(kind, 1, NOW)
    assert refused.value.code == "invalid_mode"


def test_the_activation_steps_are_the_documented_ones() -> None:
    table = {(origin, target) for origin, targets in ACTIVATION_STEPS.items() for target in targets}
    assert table == ACTIVATION
    assert set(ACTIVATION_STEPS) == set(ActivationState)


@pytest.mark.parametrize(("origin", "target"), sorted(itertools.product(ActivationState, ActivationState)))
def test_an_activation_steps_only_forward_or_ends(origin: ActivationState, target: ActivationState) -> None:
    assert may_step(origin.value, target) == ((origin, target) in ACTIVATION)


# --- the alarm's time and what the car tracks for a case (carlink.security.alarms) -------------------------


def test_an_alarm_keeps_the_cars_time_unless_it_is_unusable() -> None:
    # REQ: SEC-1 — review F5: an unusable time never keeps an alarm from being stored and acknowledged.
    received = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
    earlier = dt.datetime(2026, 11, 26, 11, 55, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert alarm_time(earlier, received) == dt.datetime(2026, 11, 26, 9, 55, tzinfo=dt.UTC)
    slightly_ahead = received + alarms.MAX_CLOCK_SKEW
    assert alarm_time(slightly_ahead, received) == slightly_ahead
    assert alarm_time(received + alarms.MAX_CLOCK_SKEW + dt.timedelta(seconds=1), received) == received
    assert alarm_time(dt.datetime(2099, 1, 1, tzinfo=dt.UTC), received) == received
    overflowing = dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert alarm_time(overflowing, received) == received


def test_a_case_of_a_car_without_a_package_asks_for_no_tracking() -> None:
    # REQ: SEC-1, PRV-4 — review F4.
    def case(state: AlarmState, *, without_package: bool = False, closed: bool = False) -> Alarm:
        return Alarm(
            state=state.value,
            without_package=without_package,
            closed_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC) if closed else None,
        )

    assert tracking_of(None) == "off"
    assert tracking_of(case(A.NEW)) == "alarm"
    assert tracking_of(case(A.THEFT_CONFIRMED)) == "theft"
    assert tracking_of(case(A.FALSE_ALARM, closed=True)) == "off"
    for state in A:
        assert tracking_of(case(state, without_package=True)) == "off"
