"""The car's side of deliveries (docs/protocol.md, 'Deliveries'): which signed sets it accepts, when it
downloads (FOD-3, OTA-3), when it installs (FOD-4..6), how a failure recovers (FOD-8, OTA-4) and when an
ended function goes off (FOD-7). A real PackageClient fetches from a small signed package server in memory."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carlink.protocol.catalogue import find_variant
from carlink.protocol.messages import Deliveries, DeliveryItem, DeliveryReport
from carlink.protocol.packages import root_document, sign_envelope, target_entry, targets_document
from carlink.protocol.signing import load_public_key, public_key_text, sign_command
from carlink.sim.deliveries import END_SECONDS, RECOVERY_SECONDS, DeliveryUnit, can_install
from carlink.sim.fleet import Fleet, Manifest
from carlink.sim.packages import FILES, METADATA, PackageClient
from carlink.sim.state import CarState

TAYCAN_VIN = "WP0ZZZY10PS100001"
PANAMERA_VIN = "WP0ZZZ976JS200002"
KID = "fleet-test"
KEY = Ed25519PrivateKey.generate()
NOW = dt.datetime(2026, 11, 25, 16, 0, tzinfo=dt.UTC)
CRUISE = DeliveryItem(id=1, kind="function", package="function-adaptive-cruise", function="adaptive-cruise")
UPDATE = DeliveryItem(id=2, kind="update", package="update-2-0-0", version="2.0.0")
FILES_OF = {
    CRUISE.package: b"cruise" * 50_000,  # 300 kB: an interrupted download has something left to resume
    UPDATE.package: b"update" * 10_000,
}


def signed(revision: int, *items: DeliveryItem, vin: str = TAYCAN_VIN, key: Ed25519PrivateKey = KEY) -> bytes:
    message = Deliveries(vin=vin, revision=revision, issued_at=NOW, deliveries=list(items), kid=KID)
    return sign_command(message, key).model_dump_json().encode()


@dataclass
class PackageServer:
    """The cloud's package endpoints: signed root and targets naming FILES_OF, files with Range requests.
    `serve` may hand out other bytes than the targets name (a damaged copy); `down` answers 503."""

    root_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    targets_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    serve: dict[str, bytes] = field(default_factory=dict)
    down: bool = False
    ranges: list[str | None] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if self.down:
            return httpx.Response(503)
        if path == f"{METADATA}/1.root.json":
            root = root_document(
                version=1,
                expires=NOW + dt.timedelta(days=365),
                root_keys=[self.root_key.public_key()],
                targets_keys=[self.targets_key.public_key()],
            )
            return httpx.Response(200, json=sign_envelope(root, [self.root_key]))
        if path == f"{METADATA}/targets.json":
            targets = {name: target_entry(data) for name, data in FILES_OF.items()}
            document = targets_document(version=1, expires=NOW + dt.timedelta(days=30), targets=targets)
            return httpx.Response(200, json=sign_envelope(document, [self.targets_key]))
        name = path.removeprefix(f"{FILES}/")
        if path.startswith(FILES) and name in FILES_OF:
            data = self.serve.get(name, FILES_OF[name])
            wanted = request.headers.get("Range")
            self.ranges.append(wanted)
            if wanted:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                headers = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                return httpx.Response(206, content=data[start:], headers=headers)
            return httpx.Response(200, content=data)
        return httpx.Response(404)


@dataclass
class Car:
    unit: DeliveryUnit
    state: CarState
    server: PackageServer
    reports: list[DeliveryReport] = field(default_factory=list)
    online: bool = True
    entitled: set[str] = field(default_factory=set)

    async def process(self) -> list[tuple[int, str]]:
        """Processes once; returns the new reports as (delivery, state)."""
        new = await self.unit.process(self.state, NOW, online=self.online, entitled=self.entitled)
        self.reports += new
        return [(report.delivery, report.state) for report in new]

    async def rest(self, seconds: float) -> list[tuple[int, str]]:
        """Time passes in the car, as its tick does it."""
        self.unit.rest(seconds, self.state, self.entitled)
        return await self.process()


def parked() -> CarState:
    """The Taycan parked, left and locked, unplugged, charged: every install precondition holds."""
    model, variant = find_variant("Y1ADB1")
    state = CarState.for_vehicle(TAYCAN_VIN, model, variant)
    state.plugged, state.battery = False, 70.0
    return state


@pytest.fixture
async def car(tmp_path: Path) -> AsyncIterator[Car]:
    server = PackageServer()
    async with httpx.AsyncClient(
        base_url="http://cloud", transport=httpx.MockTransport(server.handle)
    ) as http:
        packages = PackageClient("http://cloud", TAYCAN_VIN, "secret", tmp_path / "car", http=http)
        unit = DeliveryUnit(TAYCAN_VIN, {KID: load_public_key(public_key_text(KEY.public_key()))}, packages)
        yield Car(unit, parked(), server)


def driving(car: Car) -> Car:
    car.state.drive()
    return car


# --- which sets the car accepts ----------------------------------------------------------------------------


def test_a_set_tampered_with_signed_by_another_key_or_for_another_car_is_refused(car: Car) -> None:
    payload = json.loads(signed(1, CRUISE))
    payload["deliveries"][0]["package"] = "function-power-boost"
    assert car.unit.receive(json.dumps(payload).encode()) is False
    assert car.unit.receive(signed(2, CRUISE, key=Ed25519PrivateKey.generate())) is False
    assert car.unit.receive(signed(3, CRUISE, vin=PANAMERA_VIN)) is False
    assert car.unit.receive(b"{not json") is False
    assert car.unit.refused == [
        (1, "BAD_SIGNATURE"),
        (2, "BAD_SIGNATURE"),
        (3, "WRONG_VEHICLE"),
        (0, "MALFORMED"),
    ]
    assert car.unit.held == {} and car.unit.revision == 0


def test_an_older_set_is_refused_and_the_retained_set_again_is_ignored_silently(car: Car) -> None:
    assert car.unit.receive(signed(2, CRUISE)) is True
    assert car.unit.receive(signed(2, CRUISE)) is False  # the same bytes again, on a reconnect
    assert car.unit.receive(signed(1)) is False
    assert car.unit.refused == [(1, "REPLAYED")]
    assert list(car.unit.held) == [CRUISE.id]


# --- downloads (FOD-3, OTA-3) ----------------------------------------------------------------------------


async def test_a_function_downloads_while_driving_shows_its_message_and_waits_for_the_driver_to_leave(
    car: Car,
) -> None:
    driving(car).unit.receive(signed(1, CRUISE))
    assert await car.process() == [(1, "downloading"), (1, "downloaded")]
    length = len(FILES_OF[CRUISE.package])
    assert (car.reports[-1].have, car.reports[-1].length) == (length, length)
    assert [(m.kind, m.delivery, m.subject) for m in car.unit.messages] == [
        ("function", 1, "adaptive-cruise")
    ]
    assert await car.process() == []  # nothing to do while someone drives
    assert car.unit.active_functions == {}


@pytest.mark.parametrize(
    "situation",
    [
        pytest.param(lambda car: setattr(car, "online", False), id="offline or data off"),
        pytest.param(lambda car: setattr(car.state, "privacy_mode", True), id="privacy mode"),
    ],
)
async def test_nothing_downloads_and_no_message_shows_offline_or_in_privacy_mode(
    car: Car, situation: Callable[[Car], None]
) -> None:
    situation(car)
    car.unit.receive(signed(1, CRUISE, UPDATE))
    assert await car.process() == []
    assert car.unit.messages == [] and car.server.ranges == []


async def test_an_update_waits_for_a_charged_battery_a_function_does_not(car: Car) -> None:
    driving(car).state.battery = 29.0
    car.unit.receive(signed(1, CRUISE, UPDATE))
    assert await car.process() == [(1, "downloading"), (1, "downloaded")]
    car.state.battery = 30.0
    assert await car.process() == [(2, "downloading"), (2, "downloaded")]
    assert [m.subject for m in car.unit.messages] == ["adaptive-cruise", "2.0.0"]


async def test_an_interrupted_download_reports_its_progress_and_resumes_where_it_stopped(car: Car) -> None:
    driving(car).unit.receive(signed(1, CRUISE))
    car.unit.download_limit = 100_000
    assert await car.process() == [(1, "downloading")]
    assert (car.reports[-1].have, car.reports[-1].length) == (100_000, len(FILES_OF[CRUISE.package]))
    assert car.unit.messages == []
    car.unit.download_limit = None
    assert await car.process() == [(1, "downloading"), (1, "downloaded")]
    assert car.server.ranges == [None, "bytes=100000-"]
    assert len(car.unit.messages) == 1


async def test_a_refused_package_is_reported_and_tried_again_only_after_a_new_set_or_a_restart(
    car: Car,
) -> None:
    car.server.serve[CRUISE.package] = b"x" * len(FILES_OF[CRUISE.package])  # a damaged copy on the server
    driving(car).unit.receive(signed(1, CRUISE))
    assert await car.process() == [(1, "failed")]
    assert car.reports[-1].reason == "hash_mismatch"
    assert await car.process() == []  # not again and again
    car.unit.receive(signed(2, CRUISE))
    assert await car.process() == [(1, "failed")]
    car.server.serve.clear()  # repaired
    assert await car.process() == []
    car.unit.restart()
    assert await car.process() == [(1, "downloading"), (1, "downloaded")]
    assert len(car.unit.messages) == 1


async def test_an_unavailable_cloud_is_tried_again_silently(car: Car) -> None:
    car.server.down = True
    driving(car).unit.receive(signed(1, CRUISE))
    assert await car.process() == []
    car.server.down = False
    assert await car.process() == [(1, "downloading"), (1, "downloaded")]


async def test_without_a_package_client_the_car_holds_deliveries_but_never_downloads(car: Car) -> None:
    car.unit.packages = None
    car.unit.receive(signed(1, CRUISE))
    assert await car.process() == []
    assert list(car.unit.held) == [1]


# --- install and activation (FOD-4..6) -------------------------------------------------------------------


def unlocked(state: CarState) -> None:
    state.locked = False


def in_drive(state: CarState) -> None:
    state.gear = "D"


def brake_off(state: CarState) -> None:
    state.parking_brake = False


def power_on(state: CarState) -> None:
    state.power_on = True


def someone_inside(state: CarState) -> None:
    state.occupied = True


def plugged_in(state: CarState) -> None:
    state.plugged = True


def battery_low(state: CarState) -> None:
    state.battery = 29.0


@pytest.mark.parametrize(
    "breach", [unlocked, in_drive, brake_off, power_on, someone_inside, plugged_in, battery_low]
)
async def test_a_function_activates_only_when_every_install_precondition_holds(
    car: Car, breach: Callable[[CarState], None]
) -> None:
    driving(car).unit.receive(signed(1, CRUISE))
    await car.process()
    car.state.park_and_leave()
    breach(car.state)
    assert await car.process() == []
    car.state = parked()
    assert await car.process() == [(1, "installing"), (1, "activated")]
    assert car.unit.active_functions == {"adaptive-cruise": 1}


async def test_a_downloaded_update_installs_before_the_function(car: Car) -> None:
    driving(car).unit.receive(signed(1, CRUISE, UPDATE))
    await car.process()
    car.state.park_and_leave()
    assert await car.process() == [(2, "installing"), (2, "installed"), (1, "installing"), (1, "activated")]
    installed = next(r for r in car.reports if r.state == "installed")
    assert installed.version == "2.0.0" and car.unit.software_version == "2.0.0"


async def test_a_parked_car_installs_right_after_the_download(car: Car) -> None:
    car.unit.receive(signed(1, CRUISE))
    assert await car.process() == [(1, "downloading"), (1, "downloaded"), (1, "installing"), (1, "activated")]


# --- failures and their recovery (FOD-8, OTA-4) ----------------------------------------------------------


async def test_a_failed_install_recovers_only_after_the_recovery_routine_and_a_restart(car: Car) -> None:
    driving(car).unit.receive(signed(1, UPDATE))
    await car.process()
    car.unit.fail_next_install = "flash_error"
    car.state.park_and_leave()
    assert await car.process() == [(2, "installing"), (2, "failed")]
    assert car.reports[-1].reason == "flash_error"
    car.unit.restart()  # a restart alone recovers nothing
    assert await car.rest(RECOVERY_SECONDS - 1) == []
    car.state.drive()
    assert await car.rest(1) == []  # the wait starts again when someone powers the car on
    car.state.park_and_leave()
    car.unit.restart()
    assert await car.process() == []
    assert await car.rest(RECOVERY_SECONDS) == []
    car.unit.restart()
    assert await car.process() == [
        (2, "downloading"),
        (2, "downloaded"),
        (2, "installing"),
        (2, "installed"),
    ]
    assert [m.subject for m in car.unit.messages] == ["2.0.0", "2.0.0"]  # the update reappears


# --- the end of a function (FOD-7) -----------------------------------------------------------------------


async def activated(car: Car) -> Car:
    car.unit.receive(signed(1, CRUISE))
    await car.process()
    car.unit.receive(signed(2))  # the cloud took the activated delivery out of the set ...
    car.entitled = {"adaptive-cruise"}  # ... and the function is in the entitlements
    return car


async def test_an_entitled_function_stays_on(car: Car) -> None:
    await activated(car)
    assert await car.rest(END_SECONDS * 10) == []
    assert car.unit.active_functions == {"adaptive-cruise": 1}


async def test_an_ended_function_goes_off_after_ten_minutes_locked_and_unplugged(car: Car) -> None:
    await activated(car)
    car.entitled = set()
    car.state.plugged = True
    assert await car.rest(END_SECONDS) == []  # charging: it stays on
    car.state.plugged = False
    assert await car.rest(END_SECONDS - 1) == []
    assert await car.rest(1) == [(1, "deactivated")]
    assert car.unit.active_functions == {}
    assert await car.rest(END_SECONDS) == []


async def test_a_function_whose_delivery_is_still_open_stays_on(car: Car) -> None:
    car.unit.receive(signed(1, CRUISE))
    await car.process()  # activated; the cloud has not yet taken it out of the set
    assert await car.rest(END_SECONDS) == []
    assert car.unit.active_functions == {"adaptive-cruise": 1}


# --- reconnect ---------------------------------------------------------------------------------------------


async def test_on_reconnect_the_car_reports_each_held_delivery_and_each_switch_off_again(car: Car) -> None:
    driving(car).unit.receive(signed(1, CRUISE, UPDATE))
    car.unit.download_limit = 1000
    await car.process()
    again = [(r.delivery, r.state, r.have) for r in car.unit.reports_on_connect(NOW)]
    assert again == [(1, "downloading", 1000), (2, "downloading", 1000)]
    car.unit.download_limit = None
    await car.process()
    car.unit.fail_next_install = "flash_error"
    car.state.park_and_leave()
    assert await car.process() == [(2, "installing"), (2, "failed"), (1, "installing"), (1, "activated")]
    again = [(r.delivery, r.state, r.reason) for r in car.unit.reports_on_connect(NOW)]
    assert again == [(1, "activated", None), (2, "failed", "flash_error")]
    car.unit.receive(signed(2))  # both taken out of the set; the function was never paid for
    assert await car.rest(END_SECONDS) == [(1, "deactivated")]
    assert [(r.delivery, r.state) for r in car.unit.reports_on_connect(NOW)] == [(1, "deactivated")]


# --- the person in the car, and the fleet manifest ----------------------------------------------------------


def test_driving_ends_every_install_precondition_and_parking_and_leaving_restores_them() -> None:
    state = parked()
    assert can_install(state)
    state.doors_open["front_left"] = True
    state.drive()
    assert (state.gear, state.parking_brake, state.power_on, state.occupied, state.locked) == (
        "D",
        False,
        True,
        True,
        False,
    )
    assert not can_install(state)
    state.park_and_leave()
    assert not any(state.doors_open.values()) and can_install(state)


def test_an_old_manifest_still_loads_and_a_new_one_hands_its_cars_where_to_fetch_packages() -> None:
    old: dict[str, Any] = {
        "broker_url": "mqtt://127.0.0.1:1883",
        "prefix": "carlink",
        "trusted_keys": {},
        "cars": [{"vin": TAYCAN_VIN, "variant_code": "Y1ADB1", "password": "secret"}],
    }
    assert Fleet(Manifest.from_json(old))[TAYCAN_VIN].package_url is None
    new = Manifest.from_json(
        {**old, "api_url": "http://cloud", "trusted_root": {"signed": {}, "signatures": []}}
    )
    assert Manifest.from_json(new.to_json()) == new
    car = Fleet(new)[TAYCAN_VIN]
    assert (car.package_url, car.trusted_root) == ("http://cloud", {"signed": {}, "signatures": []})
