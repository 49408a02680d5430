"""The car's side of entitlements (docs/protocol.md, 'Entitlements'): which signed sets it accepts (STO-7),
when bought services appear and end in the car, and hotspot sharing that needs a data package (CON-3)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carlink.protocol import topics as kinds
from carlink.protocol.catalogue import find_variant
from carlink.protocol.messages import Entitlement, Entitlements
from carlink.protocol.signing import load_public_key, public_key_text, sign_command
from carlink.sim.car import CarSpec, SimulatedCar
from carlink.sim.entitlements import CarEntitlements
from carlink.sim.state import HOTSPOT_MB_PER_MINUTE, CarState

TAYCAN_VIN = "WP0ZZZY10PS100001"
PANAMERA_VIN = "WP0ZZZ976JS200002"
KID = "fleet-test"
KEY = Ed25519PrivateKey.generate()
TRUSTED = {KID: public_key_text(KEY.public_key())}
NOW = dt.datetime(2026, 11, 25, 16, 0, tzinfo=dt.UTC)
YEAR = dt.timedelta(days=365)


def service(code: str, until: dt.datetime, *, volume_mb: int | None = None) -> Entitlement:
    kind = "data_package" if volume_mb is not None else "service"
    return Entitlement(service=code, kind=kind, until=until, volume_mb=volume_mb)


def signed(
    revision: int, *entitlements: Entitlement, vin: str = TAYCAN_VIN, key: Ed25519PrivateKey = KEY
) -> bytes:
    message = Entitlements(
        vin=vin, revision=revision, issued_at=NOW, entitlements=list(entitlements), kid=KID
    )
    return sign_command(message, key).model_dump_json().encode()


def held_by_car() -> CarEntitlements:
    return CarEntitlements(TAYCAN_VIN, {KID: load_public_key(TRUSTED[KID])})


def reported(car: CarEntitlements) -> tuple[int, list[str]]:
    report = car.report(NOW)
    return report.revision, report.services


# --- which messages the car accepts ----------------------------------------------------------------------


def test_a_set_whose_signature_was_tampered_with_is_refused() -> None:
    car = held_by_car()
    payload = json.loads(signed(1, service("navigation-plus", NOW + YEAR)))
    payload["entitlements"][0]["until"] = "2099-01-01T00:00:00Z"
    assert car.receive(json.dumps(payload).encode(), NOW) is False
    forged = signed(2, service("navigation-plus", NOW + YEAR), key=Ed25519PrivateKey.generate())
    assert car.receive(forged, NOW) is False
    assert car.refused == [(1, "BAD_SIGNATURE"), (2, "BAD_SIGNATURE")]
    assert (car.revision, car.held, car.pending) == (0, {}, {})


def test_a_set_for_another_car_is_refused() -> None:
    car = held_by_car()
    assert car.receive(signed(1, service("navigation-plus", NOW + YEAR), vin=PANAMERA_VIN), NOW) is False
    assert car.refused == [(1, "WRONG_VEHICLE")]
    assert car.revision == 0 and not car.pending


def test_an_older_revision_is_refused_as_replayed_and_changes_nothing() -> None:
    car = held_by_car()
    car.receive(signed(3, service("navigation-plus", NOW + YEAR)), NOW)
    car.receive(signed(2, service("navigation-plus", NOW + YEAR), service("tracking", NOW + YEAR)), NOW)
    car.receive(signed(3), NOW)  # the same revision with other content
    assert car.refused == [(2, "REPLAYED"), (3, "REPLAYED")]
    assert (car.revision, set(car.held)) == (3, {"navigation-plus"})


def test_the_retained_set_delivered_again_on_reconnect_is_ignored_silently() -> None:
    car = held_by_car()
    message = signed(1, service("navigation-plus", NOW + YEAR))
    car.receive(message, NOW)
    assert car.receive(message, NOW) is False
    assert car.refused == []
    assert set(car.pending) == {"navigation-plus"}


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"v": 2, "vin": TAYCAN_VIN, "revision": 1}).encode(),
        signed(1).replace(b'"issued_at":"2026-11-25T16:00:00Z"', b'"issued_at":"2026-11-25T16:00:00"'),
        b'{"pad": "' + b"x" * 70_000 + b'"}',
    ],
    ids=["not-json", "not-an-object", "unknown-version", "time-without-offset", "oversized"],
)
def test_a_malformed_message_is_ignored_and_logged(payload: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="carlink.sim")
    car = held_by_car()
    assert car.receive(payload, NOW) is False
    assert (car.revision, car.refused) == (0, [])
    assert any("malformed entitlements" in record.getMessage() for record in caplog.records)


# --- when services appear and end (STO-7) ---------------------------------------------------------------


def test_bought_services_wait_for_the_next_restart_while_online() -> None:
    car = held_by_car()
    assert car.receive(signed(1, service("navigation-plus", NOW + YEAR)), NOW) is False
    assert set(car.pending) == {"navigation-plus"} and car.applied == {}
    assert reported(car) == (0, [])
    assert car.restart(NOW, online=True) is True
    assert set(car.applied) == {"navigation-plus"} and car.pending == {}
    assert reported(car) == (1, ["navigation-plus"])
    assert car.restart(NOW, online=True) is False  # nothing new: nothing to report


def test_a_restart_without_a_data_connection_keeps_them_pending() -> None:
    car = held_by_car()
    car.receive(signed(1, service("navigation-plus", NOW + YEAR)), NOW)
    assert car.restart(NOW, online=False) is False
    assert set(car.pending) == {"navigation-plus"} and car.applied == {}
    assert car.restart(NOW, online=True) is True
    assert set(car.applied) == {"navigation-plus"}


def test_a_service_that_leaves_the_set_ends_at_once_while_additions_still_wait() -> None:
    car = held_by_car()
    car.receive(signed(1, service("navigation-plus", NOW + YEAR), service("tracking", NOW + YEAR)), NOW)
    car.restart(NOW, online=True)
    assert car.receive(signed(2, service("tracking", NOW + YEAR), service("car-security", NOW + YEAR)), NOW)
    assert set(car.applied) == {"tracking"} and set(car.pending) == {"car-security"}
    # Revision 2 is not applied in full yet; what the car offers is exact all the same.
    assert reported(car) == (1, ["tracking"])
    car.restart(NOW, online=True)
    assert car.report(NOW).revision == 2
    assert car.receive(signed(3, service("car-security", NOW + YEAR)), NOW) is True
    assert reported(car) == (3, ["car-security"])


def test_a_renewal_of_a_service_in_the_car_takes_effect_at_once() -> None:
    car = held_by_car()
    car.receive(signed(1, service("navigation-plus", NOW + YEAR)), NOW)
    car.restart(NOW, online=True)
    assert car.receive(signed(2, service("navigation-plus", NOW + 2 * YEAR)), NOW) is True
    assert car.applied["navigation-plus"].until == NOW + 2 * YEAR
    assert car.report(NOW).revision == 2


def test_a_service_ends_when_its_term_has_passed_by_the_cars_clock() -> None:
    car = held_by_car()
    car.receive(signed(1, service("navigation-plus", NOW + YEAR), service("tracking", NOW + 2 * YEAR)), NOW)
    car.restart(NOW, online=True)
    assert car.expire(NOW + YEAR - dt.timedelta(seconds=1)) is False
    assert car.expire(NOW + YEAR) is True
    assert set(car.applied) == {"tracking"}
    # A set that arrives with a term already over offers nothing of it.
    car.receive(signed(2, service("car-security", NOW)), NOW)
    assert car.pending == {} and car.applied == {} and car.report(NOW).revision == 2


def test_the_data_package_is_the_applied_one_that_runs_longest() -> None:
    car = held_by_car()
    car.receive(signed(1, service("navigation-plus", NOW + 2 * YEAR)), NOW)
    car.restart(NOW, online=True)
    assert car.data_package() is None
    car.receive(
        signed(
            2,
            service("navigation-plus", NOW + 2 * YEAR),
            service("wifi-1gb", NOW + YEAR, volume_mb=1024),
            service("wifi-5gb", NOW + YEAR / 2, volume_mb=5120),
        ),
        NOW,
    )
    assert car.data_package() is None  # still pending
    car.restart(NOW, online=True)
    package = car.data_package()
    assert package is not None and (package.service, package.volume_mb) == ("wifi-1gb", 1024)


# --- the WiFi hotspot in the car's state (CON-3) ----------------------------------------------------------


def taycan_state() -> CarState:
    model, variant = find_variant("Y1ADB1")
    return CarState.for_vehicle(TAYCAN_VIN, model, variant)


def test_sharing_is_refused_without_a_data_package() -> None:
    state = taycan_state()
    assert state.share_hotspot(True) is False
    assert state.hotspot_sharing is False
    assert state.share_hotspot(False) is True


def test_shared_data_grows_with_simulated_time_at_a_fixed_rate() -> None:
    state = taycan_state()
    state.set_hotspot_package(service("wifi-1gb", NOW + YEAR, volume_mb=1024))
    state.advance(600)
    assert state.hotspot_used_mb == 0  # not shared: nothing used
    assert state.share_hotspot(True) is True
    state.advance(600)
    assert state.hotspot_used_mb == 10 * HOTSPOT_MB_PER_MINUTE
    for _ in range(60):
        state.advance(1)  # fractions add up
    assert state.hotspot_used_mb == 11 * HOTSPOT_MB_PER_MINUTE
    state.share_hotspot(False)
    state.advance(600)
    assert state.hotspot_used_mb == 11 * HOTSPOT_MB_PER_MINUTE


def test_a_new_package_or_term_starts_unused_and_the_end_of_the_last_one_stops_sharing() -> None:
    state = taycan_state()
    first = service("wifi-1gb", NOW + YEAR, volume_mb=1024)
    assert state.set_hotspot_package(first) is True
    state.share_hotspot(True)
    state.advance(300)
    assert state.set_hotspot_package(first) is False  # the same term: nothing changes
    assert state.hotspot_used_mb == 10
    assert state.set_hotspot_package(service("wifi-1gb", NOW + 2 * YEAR, volume_mb=1024)) is True
    assert state.hotspot_used_mb == 0 and state.hotspot_sharing is True
    state.advance(300)
    assert state.set_hotspot_package(None) is True
    assert state.hotspot_sharing is False
    state.measurements |= {"hotspot"}
    assert state.values()["hotspot"] == {"sharing": False, "used_mb": 10, "package": None, "volume_mb": None}
    assert state.share_hotspot(True) is False


def test_the_hotspot_is_reported_only_by_models_whose_profile_lists_it() -> None:
    state = taycan_state()
    assert "hotspot" in state.measurements  # every model has a data connection to share
    state.measurements -= {"hotspot"}
    assert "hotspot" not in state.values()
    state.measurements |= {"hotspot"}
    state.set_hotspot_package(service("wifi-2gb", NOW + YEAR, volume_mb=2048))
    state.share_hotspot(True)
    expected = {"sharing": True, "used_mb": 0, "package": "wifi-2gb", "volume_mb": 2048}
    assert state.values()["hotspot"] == expected
    assert state.values(frozenset({"hotspot"})) == {"hotspot": state.values()["hotspot"]}


# --- the simulated car: what it does and publishes ---------------------------------------------------------


class RecordingLink:
    """Stands in for the car's broker connection and keeps what the car publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], int, bool]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool, timeout: float) -> None:
        self.sent.append((topic, json.loads(payload), qos, retain))

    def on(self, car: SimulatedCar, kind: str) -> list[dict[str, Any]]:
        topic = car.topics.up(car.vin, kind)
        return [payload for sent_to, payload, _, _ in self.sent if sent_to == topic]


def taycan() -> SimulatedCar:
    car = SimulatedCar(
        CarSpec(vin=TAYCAN_VIN, variant_code="Y1ADB1", password="unused"),
        broker_url="mqtt://127.0.0.1:1",
        prefix="carlink",
        trusted_keys=TRUSTED,
    )
    car.state.measurements |= {"hotspot"}  # as a model whose profile lists the hotspot
    return car


def online(car: SimulatedCar) -> RecordingLink:
    link = RecordingLink()
    car._client = link  # type: ignore[assignment]
    car.connected.set()
    return link


async def deliver(car: SimulatedCar, payload: bytes) -> None:
    await car._on_message(car.topics.down(car.vin, kinds.DOWN_ENTITLEMENTS), payload)


def in_a_year() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + YEAR


async def test_the_car_applies_bought_services_at_a_restart_and_reports_them() -> None:
    car = taycan()
    link = online(car)
    await deliver(car, signed(1, service("navigation-plus", in_a_year())))
    assert set(car.entitlements.pending) == {"navigation-plus"}
    assert link.on(car, kinds.UP_ENTITLEMENTS) == []
    await car.restart()
    assert set(car.entitlements.applied) == {"navigation-plus"}
    [report] = link.on(car, kinds.UP_ENTITLEMENTS)
    assert (report["revision"], report["services"]) == (1, ["navigation-plus"])
    assert all(qos == 1 and not retain for _, _, qos, retain in link.sent)


async def test_a_car_restarted_with_data_off_keeps_the_services_pending() -> None:
    car = taycan()
    link = online(car)
    await deliver(car, signed(1, service("navigation-plus", in_a_year())))
    car.data_on = False
    car.connected.clear()
    await car.restart()
    assert set(car.entitlements.pending) == {"navigation-plus"}
    assert link.sent == []


async def test_the_car_refuses_tampered_and_foreign_sets_without_answering() -> None:
    car = taycan()
    link = online(car)
    await deliver(car, signed(1, service("navigation-plus", in_a_year()), vin=PANAMERA_VIN))
    await deliver(car, signed(2, service("navigation-plus", in_a_year()), key=Ed25519PrivateKey.generate()))
    assert car.entitlements.refused == [(1, "WRONG_VEHICLE"), (2, "BAD_SIGNATURE")]
    assert car.refused == []  # the commands' record is not mixed with it
    assert link.sent == []


async def test_removing_the_data_package_switches_sharing_off_at_once_and_reports_it() -> None:
    car = taycan()
    link = online(car)
    package = service("wifi-1gb", in_a_year(), volume_mb=1024)
    await deliver(car, signed(1, service("navigation-plus", in_a_year()), package))
    assert await car.set_hotspot_sharing(True) is False  # pending is not applied
    await car.restart()
    assert await car.set_hotspot_sharing(True) is True
    await car.pass_time(120)
    link.sent.clear()
    await deliver(car, signed(2, service("navigation-plus", in_a_year())))
    assert car.state.hotspot_sharing is False
    hotspot = [t["values"]["hotspot"] for t in link.on(car, kinds.UP_TELEMETRY)]
    assert hotspot == [{"sharing": False, "used_mb": 4, "package": None, "volume_mb": None}]
    [report] = link.on(car, kinds.UP_ENTITLEMENTS)
    assert (report["revision"], report["services"]) == (2, ["navigation-plus"])
    # The telemetry goes first, so the cloud has the hotspot's state when it records the report.
    assert [topic.rsplit("/", 1)[1] for topic, _, _, _ in link.sent] == ["telemetry", "entitlements"]


async def test_a_data_package_that_expires_by_the_cars_clock_ends_sharing() -> None:
    car = taycan()
    link = online(car)
    now = dt.datetime.now(dt.UTC)
    package = service("wifi-1gb", now + dt.timedelta(hours=1), volume_mb=1024)
    await deliver(car, signed(1, service("navigation-plus", now + YEAR), package))
    await car.restart()
    assert await car.set_hotspot_sharing(True) is True
    link.sent.clear()
    await car.pass_time(30 * 60)
    assert car.state.hotspot_sharing is True
    assert car.state.hotspot_used_mb == 30 * HOTSPOT_MB_PER_MINUTE
    await car.pass_time(30 * 60)
    assert set(car.entitlements.applied) == {"navigation-plus"}
    assert car.state.hotspot_sharing is False
    [report] = link.on(car, kinds.UP_ENTITLEMENTS)
    assert (report["revision"], report["services"]) == (1, ["navigation-plus"])
    assert await car.set_hotspot_sharing(True) is False


async def test_switching_sharing_reports_the_hotspot_only_when_it_changes() -> None:
    car = taycan()
    link = online(car)
    await deliver(car, signed(1, service("wifi-2gb", in_a_year(), volume_mb=2048)))
    await car.restart()
    link.sent.clear()
    assert await car.set_hotspot_sharing(True) is True
    assert await car.set_hotspot_sharing(True) is True
    assert await car.set_hotspot_sharing(False) is True
    sharing = [t["values"]["hotspot"]["sharing"] for t in link.on(car, kinds.UP_TELEMETRY)]
    assert sharing == [True, False]
