"""The car's side of car security (docs/protocol.md "Car security"; SEC-1..4): which signed security sets it
accepts, which alarms a mode suppresses, privacy, the test alarm, driver cards, re-sending until the cloud
acknowledges, and track points."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carlink.protocol import topics as kinds
from carlink.protocol.messages import AlarmTrigger, Position, SecurityMode, SecuritySet
from carlink.protocol.signing import load_public_key, public_key_text, sign_command
from carlink.security import rules
from carlink.security.service import checked_serial
from carlink.sim.car import CarSpec, SimulatedCar
from carlink.sim.security import MODE_COVERS, SENSORS, SecurityUnit, card_hash

TAYCAN_VIN = "WP0ZZZY10PS100001"
PANAMERA_VIN = "WP0ZZZ976JS200002"
KID = "fleet-test"
KEY = Ed25519PrivateKey.generate()
TRUSTED = {KID: public_key_text(KEY.public_key())}
NOW = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
HERE = Position(lat=48.8342, lon=9.1523, heading=270, speed_kmh=0.0)
CARD = "AB12-CD34 EF56"


def seconds(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def security_set(
    revision: int, *, vin: str = TAYCAN_VIN, key: Ed25519PrivateKey = KEY, **fields: Any
) -> bytes:
    message = SecuritySet(vin=vin, revision=revision, issued_at=NOW, kid=KID, **fields)
    return sign_command(message, key).model_dump_json().encode()


def unit(**options: Any) -> SecurityUnit:
    return SecurityUnit(TAYCAN_VIN, {KID: load_public_key(TRUSTED[KID])}, **options)


def holding(revision: int = 1, **fields: Any) -> SecurityUnit:
    """A car that applied a set; the test alarm of its package, if any, was acknowledged already."""
    car = unit()
    assert car.receive(security_set(revision, **fields), NOW)
    for alarm in car.pending:
        car.acknowledge(alarm.id)
    return car


def mode(kind: str, until: dt.datetime) -> SecurityMode:
    return SecurityMode.model_validate({"kind": kind, "until": until})


# --- which sets the car accepts -----------------------------------------------------------------------------


def test_a_tampered_or_forged_set_is_refused_and_changes_nothing() -> None:
    car = unit()
    tampered = json.loads(security_set(1, package="tracking"))
    tampered["tracking"] = "theft"
    assert car.receive(json.dumps(tampered).encode(), NOW) is False
    assert car.receive(security_set(2, package="tracking", key=Ed25519PrivateKey.generate()), NOW) is False
    unsigned = json.loads(security_set(3, package="tracking"))
    unsigned["kid"] = "fleet-unknown"
    assert car.receive(json.dumps(unsigned).encode(), NOW) is False
    assert car.refused == [(1, "BAD_SIGNATURE"), (2, "BAD_SIGNATURE"), (3, "BAD_SIGNATURE")]
    assert (car.revision, car.package, car.tracking, car.pending) == (0, None, "off", [])


def test_a_set_for_another_car_is_refused() -> None:
    car = unit()
    assert car.receive(security_set(1, vin=PANAMERA_VIN, package="tracking"), NOW) is False
    assert car.refused == [(1, "WRONG_VEHICLE")] and car.revision == 0


def test_an_older_set_is_refused_as_a_replay_and_the_same_revision_is_ignored() -> None:
    car = holding(3, package="tracking", tracking="alarm")
    assert car.receive(security_set(2, package="tracking-plus"), NOW) is False
    assert car.receive(security_set(3, package="tracking"), NOW) is False  # the retained set again
    assert car.refused == [(2, "REPLAYED")]
    assert (car.revision, car.package, car.tracking) == (3, "tracking", "alarm")


@pytest.mark.parametrize(
    "payload",
    [b"not json", b'{"v": 1}', b"x" * 70_000],
    ids=["garbage", "incomplete", "oversized"],
)
def test_a_malformed_set_is_recorded_and_ignored(payload: bytes) -> None:
    car = unit()
    assert car.receive(payload, NOW) is False
    assert car.refused == [(0, "MALFORMED")]


def test_a_set_issued_without_a_time_zone_is_malformed() -> None:
    message = SecuritySet(vin=TAYCAN_VIN, revision=1, issued_at=NOW.replace(tzinfo=None), kid=KID)
    payload = sign_command(message, KEY).model_dump_json().encode()
    car = unit()
    assert car.receive(payload, NOW) is False and car.refused == [(0, "MALFORMED")]


def test_the_car_holds_the_newest_set_and_reports_it() -> None:
    cards = [card_hash(CARD).upper()]  # the car compares hashes in any case
    car = holding(
        4,
        package="tracking-plus",
        driver_cards=cards,
        mode=mode("service", NOW + seconds(60)),
        tracking="alarm",
    )
    assert (car.revision, car.package, car.tracking) == (4, "tracking-plus", "alarm")
    assert car.driver_cards == {card_hash(CARD)}
    assert car.mode_in_force(NOW) is not None and car.mode_in_force(NOW + seconds(60)) is None
    report = car.report(NOW)
    assert (report.revision, report.package, report.at) == (4, "tracking-plus", NOW)


# --- the test alarm (SEC-4) ---------------------------------------------------------------------------------


def test_a_new_package_raises_one_silent_test_alarm_and_an_upgrade_another() -> None:
    car = unit()
    assert car.receive(security_set(1), NOW)
    assert car.pending == []  # no package: nothing to test
    assert car.receive(security_set(2, package="tracking"), NOW)
    [test] = car.due_resends(NOW)  # not sent yet: due at once
    assert (test.trigger, test.silent, test.at) == (AlarmTrigger.TEST, True, NOW)
    assert car.receive(security_set(3, package="tracking", tracking="alarm"), NOW)
    assert car.receive(security_set(2, package="tracking"), NOW) is False  # a replay raises nothing
    assert [a.trigger for a in car.pending] == [AlarmTrigger.TEST]
    assert car.receive(security_set(4, package="tracking-plus"), NOW)
    assert [a.trigger for a in car.pending] == [AlarmTrigger.TEST, AlarmTrigger.TEST]


def test_the_same_package_bought_again_is_a_new_install_with_its_own_test_alarm() -> None:
    """The last package ended while the car was offline, so it never held a set without it: the new
    activation's id tells the car that this is a new install (SEC-4)."""
    car = holding(1, package="tracking", activation=7)
    assert car.receive(security_set(2, package="tracking", activation=7, tracking="alarm"), NOW)
    assert car.pending == []  # the same activation: no new install
    assert car.receive(security_set(3, package="tracking", activation=9), NOW)
    assert [a.trigger for a in car.pending] == [AlarmTrigger.TEST]
    assert car.report(NOW).activation == 9


# --- alarms, modes and privacy (SEC-1, SEC-3) ---------------------------------------------------------------


def test_the_cars_mode_table_is_the_clouds() -> None:
    assert MODE_COVERS == rules.MODE_COVERS
    assert set(AlarmTrigger) - SENSORS == {AlarmTrigger.NO_DRIVER_CARD, AlarmTrigger.TEST}


@pytest.mark.parametrize("kind", ["service", "transport"])
def test_a_mode_suppresses_exactly_what_it_covers_until_it_ends_by_the_cars_clock(kind: str) -> None:
    until = NOW + dt.timedelta(hours=2)
    car = holding(package="tracking", mode=mode(kind, until))
    for trigger in sorted(SENSORS):
        raised = car.raise_alarm(trigger, NOW, HERE, privacy_mode=False)
        assert (raised is None) is (trigger in MODE_COVERS[kind]), trigger
    car = holding(package="tracking", mode=mode(kind, until))
    for trigger in MODE_COVERS[kind] & SENSORS:
        assert car.raise_alarm(trigger, until - seconds(1), HERE, privacy_mode=False) is None
        assert car.raise_alarm(trigger, until, HERE, privacy_mode=False) is not None  # the mode has ended


def test_an_alarm_carries_the_position_except_in_privacy_mode_unless_a_theft_is_tracked() -> None:
    car = holding(package="tracking")
    sensor = car.raise_alarm(AlarmTrigger.GLASS_BREAK, NOW, HERE, privacy_mode=False)
    assert sensor is not None and (sensor.location, sensor.silent, sensor.at) == (HERE, False, NOW)
    assert 8 <= len(sensor.id) <= 64
    private = car.raise_alarm(AlarmTrigger.TILT, NOW, HERE, privacy_mode=True)
    assert private is not None and private.location is None
    car.receive(security_set(2, package="tracking", tracking="alarm"), NOW)
    tracked = car.raise_alarm(AlarmTrigger.TILT, NOW, HERE, privacy_mode=True)
    assert tracked is not None and tracked.location is None  # alarm tracking pauses in privacy mode
    car.receive(security_set(3, package="tracking", tracking="theft"), NOW)
    theft = car.raise_alarm(AlarmTrigger.TILT, NOW, HERE, privacy_mode=True)
    assert theft is not None and theft.location == HERE  # REQ: SEC-1 — a confirmed theft overrides


def test_the_car_raises_alarms_without_a_package_too() -> None:
    car = unit()
    assert car.raise_alarm(AlarmTrigger.TOWING, NOW, HERE, privacy_mode=False) is not None


# --- driver cards (SEC-2) -----------------------------------------------------------------------------------


def test_the_card_hash_is_of_the_serial_as_the_cloud_keeps_it() -> None:
    for read in (CARD, "ab12cd34ef56", " AB12 CD34-EF56 "):
        assert card_hash(read) == card_hash(checked_serial(read)) == card_hash("AB12CD34EF56")
    assert len(card_hash(CARD)) == 64 and card_hash(CARD) == card_hash(CARD).lower()


def test_moving_off_without_a_registered_card_raises_the_silent_alarm_with_tracking_plus_only() -> None:
    car = holding(package="tracking-plus", driver_cards=[card_hash(CARD)])
    alarm = car.starts_moving(NOW, HERE, privacy_mode=False)
    assert alarm is not None and (alarm.trigger, alarm.silent) == (AlarmTrigger.NO_DRIVER_CARD, True)
    car.card_present("XX99XX99")  # a card, but not one registered for this car
    assert car.starts_moving(NOW, HERE, privacy_mode=False) is not None
    car.card_present("ab12-cd34-ef56")
    assert car.starts_moving(NOW, HERE, privacy_mode=False) is None
    car.card_present(None)
    assert car.starts_moving(NOW, HERE, privacy_mode=False) is not None
    assert holding(package="tracking").starts_moving(NOW, HERE, privacy_mode=False) is None
    assert unit().starts_moving(NOW, HERE, privacy_mode=False) is None
    workshop = holding(
        package="tracking-plus", driver_cards=[card_hash(CARD)], mode=mode("service", NOW + seconds(3600))
    )
    assert workshop.starts_moving(NOW, HERE, privacy_mode=False) is None  # REQ: SEC-3


def test_tracking_plus_without_registered_cards_raises_no_card_alarm() -> None:
    """REQ: SEC-2 — until a dealer registers the cards (a new purchase, a change of hands) the car knows
    nobody to recognise: driving it is no theft, with or without a card in it."""
    car = holding(package="tracking-plus")
    assert car.starts_moving(NOW, HERE, privacy_mode=False) is None
    car.card_present(CARD)
    assert car.starts_moving(NOW, HERE, privacy_mode=False) is None
    assert not car.pending


# --- re-sending until acknowledged --------------------------------------------------------------------------


def test_pending_alarms_are_re_sent_every_five_seconds_in_order_until_acknowledged() -> None:
    car = holding(package="tracking")
    first = car.raise_alarm(AlarmTrigger.TOWING, NOW, HERE, privacy_mode=False)
    second = car.raise_alarm(AlarmTrigger.TILT, NOW + seconds(1), HERE, privacy_mode=False)
    assert first is not None and second is not None
    assert car.due_resends(NOW + seconds(4.9)) == []  # both were sent when raised
    assert car.next_resend_in(NOW + seconds(4)) == pytest.approx(1.0)
    assert car.due_resends(NOW + seconds(5)) == [first]
    assert car.due_resends(NOW + seconds(6)) == [second]
    assert car.due_resends(NOW + seconds(9.9)) == []
    assert car.acknowledge(first.id) is True
    assert car.due_resends(NOW + seconds(11)) == [second]
    assert car.acknowledge(first.id) is False  # a second ack for a re-send changes nothing
    assert car.receive_ack(json.dumps({"v": 1, "alarm_id": second.id}).encode()) is True
    assert car.pending == [] and car.next_resend_in(NOW) is None


def test_after_a_reconnect_every_pending_alarm_goes_again_at_once() -> None:
    car = holding(package="tracking")
    raised = [car.raise_alarm(trigger, NOW, HERE, privacy_mode=False) for trigger in sorted(SENSORS)]
    assert car.resend_all(NOW + seconds(1)) == raised == car.pending
    assert car.due_resends(NOW + seconds(5.5)) == []  # the reconnect counts as a send


def test_the_resend_interval_is_a_setting_and_malformed_acks_change_nothing() -> None:
    car = unit(resend_interval=0.2)
    alarm = car.raise_alarm(AlarmTrigger.GLASS_BREAK, NOW, HERE, privacy_mode=False)
    assert car.due_resends(NOW + seconds(0.2)) == [alarm]
    for payload in (b"{}", b"nonsense", b'{"v": 1, "alarm_id": "short"}'):
        assert car.receive_ack(payload) is False
    assert car.pending == [alarm]


# --- tracking (SEC-1) ---------------------------------------------------------------------------------------


def test_alarm_tracking_sends_a_point_at_once_then_every_30_s_and_pauses_in_privacy_mode() -> None:
    car = holding(package="tracking")
    assert car.take_track_point(NOW, HERE, privacy_mode=False) is None
    assert car.next_track_in(NOW, privacy_mode=False) is None
    car.receive(security_set(2, package="tracking", tracking="alarm"), NOW)
    assert car.next_track_in(NOW, privacy_mode=False) == 0.0
    point = car.take_track_point(NOW, HERE, privacy_mode=False)
    assert point is not None and (point.at, point.location) == (NOW, HERE)
    assert car.take_track_point(NOW + seconds(29), HERE, privacy_mode=False) is None
    assert car.next_track_in(NOW + seconds(20), privacy_mode=False) == pytest.approx(10.0)
    assert car.take_track_point(NOW + seconds(30), HERE, privacy_mode=False) is not None
    assert car.take_track_point(NOW + seconds(60), HERE, privacy_mode=True) is None
    assert car.next_track_in(NOW + seconds(60), privacy_mode=True) is None
    # Privacy mode off again: tracking starts again with a point at once.
    assert car.take_track_point(NOW + seconds(61), HERE, privacy_mode=False) is not None


def test_theft_tracking_goes_on_in_privacy_mode_and_ends_with_the_set() -> None:
    car = holding(package="tracking", tracking="theft")
    assert car.take_track_point(NOW, HERE, privacy_mode=True) is not None
    assert car.take_track_point(NOW + seconds(30), HERE, privacy_mode=True) is not None
    car.receive(security_set(2, package="tracking", tracking="off"), NOW + seconds(31))
    assert car.take_track_point(NOW + seconds(90), HERE, privacy_mode=False) is None
    car.receive(security_set(3, package="tracking", tracking="alarm"), NOW + seconds(91))
    assert car.take_track_point(NOW + seconds(92), HERE, privacy_mode=False) is not None  # at once


# --- the simulated car -------------------------------------------------------------------------------------


class RecordingLink:
    """Stands in for the car's broker connection and keeps what the car publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool, timeout: float) -> None:
        self.sent.append((topic, json.loads(payload)))

    def on(self, car: SimulatedCar, kind: str) -> list[dict[str, Any]]:
        topic = car.topics.up(car.vin, kind)
        return [payload for sent_to, payload in self.sent if sent_to == topic]


def taycan(*, online: bool) -> tuple[SimulatedCar, RecordingLink]:
    car = SimulatedCar(
        CarSpec(vin=TAYCAN_VIN, variant_code="Y1ADB1", password="unused"),
        broker_url="mqtt://127.0.0.1:1",
        prefix="carlink",
        trusted_keys=TRUSTED,
    )
    link = RecordingLink()
    if online:
        car._client = link  # type: ignore[assignment]
        car.connected.set()
    return car, link


async def deliver(car: SimulatedCar, kind: str, payload: bytes) -> None:
    await car._on_message(car.topics.down(car.vin, kind), payload)


async def test_the_car_reports_a_set_then_sends_its_test_alarm_and_stops_on_the_ack() -> None:
    car, link = taycan(online=True)
    await deliver(car, kinds.DOWN_SECURITY, security_set(1, package="tracking"))
    assert [topic.rsplit("/", 1)[-1] for topic, _ in link.sent] == ["security", "alarm"]
    [report] = link.on(car, kinds.UP_SECURITY)
    assert (report["revision"], report["package"]) == (1, "tracking")
    [test] = link.on(car, kinds.UP_ALARM)
    assert test["trigger"] == "test" and car.pending_alarms == [test["id"]]
    await deliver(car, kinds.DOWN_SECURITY, security_set(1, package="tracking"))  # retained, again
    assert len(link.sent) == 2
    await deliver(car, kinds.DOWN_ALARM_ACK, json.dumps({"v": 1, "alarm_id": test["id"]}).encode())
    assert car.pending_alarms == []
    await deliver(car, kinds.DOWN_SECURITY, security_set(2, vin=PANAMERA_VIN))
    assert car.refused == [("security-2", "WRONG_VEHICLE")]


async def test_only_the_sensors_can_be_triggered() -> None:
    car, _ = taycan(online=False)
    for trigger in ("no_driver_card", "test", "meteorite"):
        with pytest.raises(ValueError):
            await car.trigger_sensor(trigger)


async def test_an_alarm_raised_offline_stays_pending_and_a_mode_suppresses_it() -> None:
    car, link = taycan(online=False)
    alarm_id = await car.trigger_sensor("glass_break")
    assert alarm_id is not None and car.pending_alarms == [alarm_id] and car.alarms_sent == []
    await deliver(
        car, kinds.DOWN_SECURITY, security_set(1, mode=mode("transport", car.now() + seconds(3600)))
    )
    assert await car.trigger_sensor("towing") is None
    assert link.sent == []


async def test_driving_off_without_the_registered_card_raises_the_silent_alarm_once() -> None:
    car, link = taycan(online=True)
    await deliver(
        car, kinds.DOWN_SECURITY, security_set(1, package="tracking-plus", driver_cards=[card_hash(CARD)])
    )
    await car.drive()
    await car.drive()  # already on the way: not a new departure
    assert [a["trigger"] for a in link.on(car, kinds.UP_ALARM)] == ["test", "no_driver_card"]
    await car.park_and_leave()
    car.present_driver_card(CARD)
    await car.drive()
    assert len(link.on(car, kinds.UP_ALARM)) == 2


async def test_a_towed_car_alarms_and_moves() -> None:
    car, link = taycan(online=True)
    before = (car.state.lat, car.state.lon)
    await car.tow_away(km=2.0)
    towing, moving = link.on(car, kinds.UP_ALARM)
    assert (towing["trigger"], moving["trigger"]) == ("towing", "moving_while_locked")
    assert towing["location"]["lat"] == before[0]
    moved = abs(car.state.lat - before[0]) + abs(car.state.lon - before[1])
    assert moved > 0.01  # about 2 km


async def test_a_stolen_car_moves_along_a_line_and_sends_track_points_every_30_s() -> None:
    car, link = taycan(online=True)
    car.state.heading = 0  # due north: latitude rises, longitude stays
    start_lat, start_lon, mileage = car.state.lat, car.state.lon, car.state.mileage
    await car.steal(km=5.0)
    assert [a["trigger"] for a in link.on(car, kinds.UP_ALARM)] == ["ignition_without_key"]
    assert car.state.locked and car.state.power_on
    await deliver(car, kinds.DOWN_SECURITY, security_set(1, package="tracking", tracking="alarm"))
    assert len(car.track_points_sent) == 1  # at once
    await car.pass_time(600)  # at 60 km/h the 5 km take 5 minutes, then the car stands
    points = link.on(car, kinds.UP_TRACK)
    assert len(points) == 1 + 20 and len(car.track_points_sent) == 21
    lats = [p["location"]["lat"] for p in points]
    assert lats == sorted(lats) and len(set(lats)) == 11  # the start, 10 steps along the line, then parked
    assert {p["location"]["lon"] for p in points} == {start_lon}
    assert car.state.lat - start_lat == pytest.approx(5.0 / 111.32, abs=1e-5)
    assert car.state.mileage == mileage + 5 and not car.state.moving
    await car.set_privacy_mode(True)
    await car.pass_time(120)
    assert len(link.on(car, kinds.UP_TRACK)) == 21  # REQ: SEC-1 — alarm tracking pauses in privacy mode
    await deliver(car, kinds.DOWN_SECURITY, security_set(2, package="tracking", tracking="theft"))
    assert len(link.on(car, kinds.UP_TRACK)) == 22  # a confirmed theft is tracked in privacy mode too


async def test_a_trip_ends_where_the_car_is_parked() -> None:
    car, _ = taycan(online=False)
    await car.steal(km=5.0)
    await car.pass_time(60)  # 1 km at 60 km/h
    await car.park_and_leave()
    parked = (car.state.lat, car.state.lon)
    await car.pass_time(600)
    assert (car.state.lat, car.state.lon) == parked and not car.state.moving


async def test_tracking_that_starts_on_a_standing_car_starts_now_and_goes_on_every_30_s() -> None:
    car, link = taycan(online=True)
    car.clock_offset = dt.timedelta(hours=1)  # an hour since the car last followed its time
    await deliver(car, kinds.DOWN_SECURITY, security_set(1, package="tracking", tracking="alarm"))
    [first] = car.track_points_sent
    assert abs((first.at - car.now()).total_seconds()) < 1  # no point dated before tracking started
    await car.pass_time(95)
    assert [(p.at - first.at).total_seconds() for p in car.track_points_sent] == [0, 30, 60, 90]
    assert len(link.on(car, kinds.UP_TRACK)) == 4
