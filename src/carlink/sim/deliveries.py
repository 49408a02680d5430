"""What a car does with the packages the cloud delivers (FOD-3..8, OTA-3, OTA-4; docs/protocol.md
'Deliveries'), apart from MQTT so the rules can be tested alone: the car hands in the signed sets it
receives, its state and the passing time, and publishes the `DeliveryReport`s it gets back.

The car holds the highest verified revision of its delivery set. It downloads a package while it is online
with data on and privacy mode off (an update also needs a charged battery), shows a message once the
package is verified, and installs at the next chance the driver has left the parked car (FOD-5): updates
first, then functions (FOD-6). A failed install waits for the recovery routine (FOD-8); a function that is
neither entitled nor on its way is switched off after the car rested locked and unplugged (FOD-7).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carlink.protocol.catalogue import Engine
from carlink.protocol.messages import (
    Deliveries,
    DeliveryItem,
    DeliveryReport,
    DeliveryReportState,
)
from carlink.protocol.packages import PackageRefused, parse_targets
from carlink.protocol.signing import parse_signed_set, refusal_of_set
from carlink.sim.packages import PackageClient
from carlink.sim.state import CarState

log = logging.getLogger("carlink.sim")
INSTALL_MIN_BATTERY = 30.0  # percent, BEV and PHEV (FOD-5, OTA-3)
RECOVERY_SECONDS = 600.0  # REQ: FOD-8 — "wait about 10 minutes" powered off, left and locked
END_SECONDS = 600.0  # REQ: FOD-7 — "about 10 minutes after being locked with charging unplugged"
ENDED_KEPT = 32  # deactivations re-reported on connect (the cloud ignores repeats)

# Where one delivery stands in the car. `failed` is either a refused package (waits for a new revision or a
# restart) or a failed install (waits for the recovery routine).
Phase = Literal["offered", "downloading", "downloaded", "installing", "installed", "activated", "failed"]
DONE: frozenset[Phase] = frozenset({"installed", "activated"})


@dataclass(frozen=True)
class CarMessage:
    """What the car shows the driver about a delivery (never before its package is in the car)."""

    kind: Literal["function", "update"]
    delivery: int
    subject: str  # the function's service code, or the update's new software version
    text: str


@dataclass
class HeldDelivery:
    item: DeliveryItem
    phase: Phase = "offered"
    have: int | None = None
    length: int | None = None
    reason: str | None = None
    refused: bool = False  # the package was refused: not fetched again until a new revision or a restart
    install_failed: bool = False  # waits for the recovery routine (FOD-8)
    rested: float = 0.0  # seconds resting since the failed install
    recovery_ready: bool = False  # the routine's wait is over: the next restart recovers the item

    @property
    def needs_download(self) -> bool:
        return self.phase in ("offered", "downloading", "failed") and not (
            self.refused or self.install_failed
        )

    def report(self, now: dt.datetime) -> DeliveryReport | None:
        """The current state again, for the cloud after a reconnect; None when there is nothing to say."""
        if self.phase == "offered" or (self.phase == "downloading" and self.have is None):
            return None
        version = self.item.version if self.phase == "installed" else None
        return _report(
            self.item.id,
            self.phase,
            now,
            reason=self.reason,
            have=self.have,
            length=self.length,
            version=version,
        )


def _report(delivery: int, state: DeliveryReportState, now: dt.datetime, **fields: Any) -> DeliveryReport:
    return DeliveryReport(delivery=delivery, state=state, at=now, **fields)


class DeliveryUnit:
    """The deliveries one car holds, the functions it has activated and the messages it shows.

    `packages` is the car's PackageClient; without one the car holds deliveries but never downloads.
    """

    def __init__(
        self, vin: str, keys: dict[str, Ed25519PublicKey], packages: PackageClient | None = None
    ) -> None:
        self.vin = vin
        self.keys = keys
        self.packages = packages
        self.revision = 0
        self.held: dict[int, HeldDelivery] = {}
        self.active_functions: dict[str, int] = {}  # service code -> the delivery it was activated from
        self.messages: list[CarMessage] = []
        self.software_version = "1.0.0"  # what a car leaves the factory with (the cloud's default too)
        self.refused: list[tuple[int, str]] = []  # (revision, RefusalReason value)
        self.ended: list[int] = []  # deliveries of functions switched off, newest last
        self._orphaned: dict[str, float] = {}  # active function -> seconds resting unplugged uncovered
        # Test hooks: bytes per download attempt (a car going offline mid-download) and a failing install.
        self.download_limit: int | None = None
        self.fail_next_install: str | None = None

    # --- the signed set ------------------------------------------------------------------------------

    def receive(self, payload: bytes) -> bool:
        """Takes a message from down/deliveries; True when it holds a new revision now. Anything not signed
        by the cloud for this car, or not newer than what it holds, is ignored (and recorded)."""
        message, raw = parse_signed_set(payload, Deliveries)
        if message is None:
            self.refused.append((0, "MALFORMED"))
            return False
        if message.revision == self.revision:
            # The retained message again (every reconnect), or the same revision sent once more by another
            # cloud process (publishing is at least once): nothing new.
            return False
        refusal = refusal_of_set(raw, self.keys, own_vin=self.vin, held_revision=self.revision)
        if refusal is not None:
            self.refused.append((message.revision, refusal.value))
            log.warning("car %s refused deliveries revision %s: %s", self.vin, message.revision, refusal)
            return False
        self.revision = message.revision
        held: dict[int, HeldDelivery] = {}
        for item in message.deliveries:
            known = self.held.get(item.id)
            if known is None:
                held[item.id] = HeldDelivery(item)
            else:
                known.item, known.refused = item, False  # a new revision: a refused package is tried again
                held[item.id] = known
        self.held = held
        return True

    # --- time and the person ---------------------------------------------------------------------------

    def rest(self, seconds: float, state: CarState, entitled: Iterable[str]) -> None:
        """Time passes: counts how long the car rested for the recovery routine (FOD-8) and how long each
        function that is no longer the car's waited, locked and unplugged, to be switched off (FOD-7)."""
        for held in self.held.values():
            if not held.install_failed or held.recovery_ready:
                continue
            held.rested = held.rested + seconds if resting(state) else 0.0
            held.recovery_ready = held.rested >= RECOVERY_SECONDS
        covered = self._covered(entitled)
        for function in self.active_functions:
            if function in covered:
                self._orphaned.pop(function, None)
            elif resting(state) and not state.plugged:
                self._orphaned[function] = self._orphaned.get(function, 0.0) + seconds
            else:
                self._orphaned[function] = 0.0

    def restart(self) -> None:
        """The car is switched off and on: after the recovery routine a failed item starts again from its
        download (its message shows again); a refused package is tried again."""
        for held in self.held.values():
            held.refused = False
            if held.install_failed and held.recovery_ready:
                held.phase, held.reason, held.have, held.length = "offered", None, None, None
                held.install_failed, held.recovery_ready, held.rested = False, False, 0.0
                if self.packages is not None:
                    self.packages.installed_path(held.item.package).unlink(missing_ok=True)

    # --- the work ----------------------------------------------------------------------------------------

    async def process(
        self, state: CarState, now: dt.datetime, *, online: bool, entitled: Iterable[str]
    ) -> list[DeliveryReport]:
        """Does what the car's situation allows now; returns the reports to publish, in order."""
        reports: list[DeliveryReport] = []
        for held in sorted(self.held.values(), key=lambda h: h.item.id):
            if held.needs_download and can_download(state, online=online, kind=held.item.kind):
                reports += await self._download(held, now)
        if can_install(state):
            # REQ: FOD-6 — a downloaded software update goes in first, then the functions.
            for held in self._ready("update"):
                reports += self._install(held, now)
            if not self._ready("update"):
                for held in self._ready("function"):
                    reports += self._install(held, now)
        reports += self._end_functions(now, entitled)
        return reports

    def reports_on_connect(self, now: dt.datetime) -> list[DeliveryReport]:
        """REQ: the car re-reports every held delivery's state on (re)connect; reports are idempotent."""
        current = [held.report(now) for held in sorted(self.held.values(), key=lambda h: h.item.id)]
        ended = [_report(delivery, "deactivated", now) for delivery in self.ended]
        return [report for report in current if report is not None] + ended

    def _ready(self, kind: str) -> list[HeldDelivery]:
        return [
            held
            for held in sorted(self.held.values(), key=lambda h: h.item.id)
            if held.item.kind == kind and held.phase == "downloaded"
        ]

    async def _download(self, held: HeldDelivery, now: dt.datetime) -> list[DeliveryReport]:
        """REQ: FOD-3, OTA-3 — fetch (resuming), verify, keep; a refusal is reported with its code."""
        if self.packages is None:
            return []
        name, delivery = held.item.package, held.item.id
        outcome = await self.packages.fetch_and_install(name, now, max_bytes=self.download_limit)
        if outcome.state == "unavailable":
            log.info("car %s could not fetch %s: %s", self.vin, name, outcome.message)
            return []  # tried again at the next processing, silently
        if outcome.state == "refused":
            held.phase, held.reason, held.refused = "failed", outcome.code, True
            return [_report(delivery, "failed", now, reason=outcome.code)]
        held.have, held.length = _progress(self.packages, name)
        if outcome.state == "interrupted":
            held.phase = "downloading"
            return [_report(delivery, "downloading", now, have=held.have, length=held.length)]
        held.phase, held.reason = "downloaded", None
        self.messages.append(_message(held.item))  # REQ: FOD-4, OTA-3 — only now, never before
        return [
            _report(delivery, "downloading", now, have=held.have, length=held.length),
            _report(delivery, "downloaded", now, have=held.have, length=held.length),
        ]

    def _install(self, held: HeldDelivery, now: dt.datetime) -> list[DeliveryReport]:
        """REQ: FOD-4, FOD-5 — installs an update or activates a function; a failure waits for FOD-8."""
        delivery = held.item.id
        reports = [_report(delivery, "installing", now)]
        held.phase = "installing"
        if self.fail_next_install is not None:
            held.phase, held.reason, held.install_failed = "failed", self.fail_next_install, True
            held.rested, held.recovery_ready = 0.0, False
            self.fail_next_install = None
            return [*reports, _report(delivery, "failed", now, reason=held.reason)]
        if held.item.kind == "update":
            held.phase = "installed"
            self.software_version = held.item.version or self.software_version
            return [*reports, _report(delivery, "installed", now, version=held.item.version)]
        held.phase = "activated"
        if held.item.function is not None:
            self.active_functions[held.item.function] = delivery
            self._orphaned.pop(held.item.function, None)
        return [*reports, _report(delivery, "activated", now)]

    def _covered(self, entitled: Iterable[str]) -> set[str]:
        """Functions the car may keep: entitled (applied or pending), or still on their way."""
        on_the_way = {held.item.function for held in self.held.values() if held.item.function is not None}
        return set(entitled) | on_the_way

    def _end_functions(self, now: dt.datetime, entitled: Iterable[str]) -> list[DeliveryReport]:
        """REQ: FOD-7 — a function that is no longer the car's goes off after END_SECONDS of rest."""
        covered = self._covered(entitled)
        reports = []
        for function, delivery in list(self.active_functions.items()):
            if function in covered or self._orphaned.get(function, 0.0) < END_SECONDS:
                continue
            del self.active_functions[function]
            self._orphaned.pop(function, None)
            self.ended = [*self.ended, delivery][-ENDED_KEPT:]
            reports.append(_report(delivery, "deactivated", now))
        return reports


# --- the car's situation ---------------------------------------------------------------------------------


def battery_sufficient(state: CarState) -> bool:
    return state.engine is Engine.COMBUSTION or state.battery >= INSTALL_MIN_BATTERY


def can_download(state: CarState, *, online: bool, kind: str) -> bool:
    """REQ: FOD-3, OTA-3 — data on (online), privacy mode off; an update also needs a charged battery."""
    if not online or state.privacy_mode:
        return False
    return kind != "update" or battery_sufficient(state)


def resting(state: CarState) -> bool:
    """Powered off, left and locked: the state the recovery routine waits in (FOD-8)."""
    return not state.power_on and not state.occupied and state.locked


def can_install(state: CarState) -> bool:
    """REQ: FOD-5 — drive-ready ended (P, parking brake, power off), left and locked, charging cable
    disconnected, battery sufficiently charged."""
    return (
        state.gear == "P"
        and state.parking_brake
        and resting(state)
        and not state.plugged
        and battery_sufficient(state)
    )


def _message(item: DeliveryItem) -> CarMessage:
    if item.kind == "update":
        version = item.version or "?"
        text = (
            f"Software update {version} is ready. It installs when you have parked, left and locked the car."
        )
        return CarMessage("update", item.id, version, text)
    function = item.function or item.package
    text = f"{function} is ready. It is activated when you have parked, left and locked the car."
    return CarMessage("function", item.id, function, text)


def _progress(packages: PackageClient, name: str) -> tuple[int | None, int | None]:
    """(have, length) of a package in the car: the verified file, or the partial file and the length the
    newest accepted targets name."""
    installed = packages.installed_path(name)
    if installed.exists():
        size = installed.stat().st_size
        return size, size
    partials = packages.partials(name)
    have = partials[-1].stat().st_size if partials else 0
    targets = packages.state_dir / "targets.json"
    try:
        length = parse_targets(json.loads(targets.read_text())).target(name).length
    except (OSError, ValueError, PackageRefused):
        length = None
    return have, length
