"""The car's security module (SEC-1..4; docs/protocol.md "Car security"), apart from MQTT so its rules can
be tested alone: it holds the signed security set the cloud publishes, decides which sensor alarms it raises
(service and transport mode suppress some), keeps every alarm until the cloud acknowledges it, and says when
a track point is due.

The car hands in what it receives and the time by its own clock; it publishes what it gets back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from carlink.protocol.messages import (
    AlarmAck,
    AlarmSignal,
    AlarmTrigger,
    Position,
    SecurityMode,
    SecurityReport,
    SecuritySet,
    TrackingKind,
    TrackPoint,
)
from carlink.protocol.signing import parse_signed_set, refusal_of_set

log = logging.getLogger("carlink.sim")

RESEND_SECONDS = 5.0  # docs/protocol.md: unanswered alarms are re-sent every 5 s and after each reconnect
TRACK_SECONDS = 30.0  # docs/protocol.md: one track point every 30 s while the set asks for tracking
Package = Literal["tracking", "tracking-plus"]
DRIVER_CARD_PACKAGE: Package = "tracking-plus"  # REQ: SEC-2 — only tracking plus knows driver cards

# The car's theft sensors: what a test or the demo may fire. `no_driver_card` and `test` are the car's own.
SENSORS = frozenset(
    {
        AlarmTrigger.TOWING,
        AlarmTrigger.TILT,
        AlarmTrigger.GLASS_BREAK,
        AlarmTrigger.INTERIOR_MOTION,
        AlarmTrigger.IGNITION_WITHOUT_KEY,
        AlarmTrigger.MOVING_WHILE_LOCKED,
    }
)
# REQ: SEC-2 — the driver-card alarm never sounds the siren; nor does the car's test alarm after install.
SILENT = frozenset({AlarmTrigger.NO_DRIVER_CARD, AlarmTrigger.TEST})

# REQ: SEC-3 — what each mode suppresses in the car. The car is an external device and keeps its own table;
# tests/unit/test_sim_security.py proves it equals the cloud's (carlink.security.rules.MODE_COVERS), which
# checks every alarm again by its own clock.
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

_CARD_SEPARATORS = re.compile(r"[\s-]")


def card_hash(serial: str) -> str:
    """The SHA-256 (hex, lower case) the security set lists for a card: of the serial as the cloud keeps it,
    without spaces or dashes, in upper case (so `ab-12 cd34` read from a card matches `AB12CD34`)."""
    return hashlib.sha256(_CARD_SEPARATORS.sub("", serial).upper().encode()).hexdigest()


@dataclass
class PendingAlarm:
    """An alarm the cloud has not acknowledged yet, and when the car last sent it (None: not yet)."""

    signal: AlarmSignal
    sent_at: dt.datetime | None = None


class SecurityUnit:
    """The security set one car holds and the alarms it has not had acknowledged, in the order raised."""

    def __init__(
        self,
        vin: str,
        keys: dict[str, Ed25519PublicKey],
        *,
        resend_interval: float = RESEND_SECONDS,
        track_interval: float = TRACK_SECONDS,
    ) -> None:
        self.vin = vin
        self.keys = keys
        self.resend_interval = resend_interval
        self.track_interval = track_interval
        self.revision = 0  # the highest revision verified and applied; 0: none yet
        self.package: Package | None = None
        self.activation: int | None = None  # the cloud's activation the package belongs to
        self.driver_cards: frozenset[str] = frozenset()
        self.mode: SecurityMode | None = None
        self.tracking: TrackingKind = "off"
        self.refused: list[tuple[int, str]] = []  # (revision, RefusalReason value or MALFORMED)
        self.card: str | None = None  # the serial of the driver card detected in the car, if any
        self._pending: dict[str, PendingAlarm] = {}  # alarm id -> alarm, in the order raised
        self._last_track: dt.datetime | None = None  # None: tracking (re)starts with a point at once

    # --- the signed set ----------------------------------------------------------------------------------

    def receive(self, payload: bytes, now: dt.datetime) -> bool:
        """Takes a message from down/security; True when the car applied a new revision (it reports it).

        Anything not signed by the cloud for this car, or older than what the car holds, is refused and
        recorded; the same revision again (the retained message on every connect) is ignored."""
        message, raw = _parse(payload)
        if message is None:
            self.refused.append((0, "MALFORMED"))
            log.warning("car %s ignored a malformed security set", self.vin)
            return False
        if message.revision == self.revision:
            return False
        refusal = refusal_of_set(raw, self.keys, own_vin=self.vin, held_revision=self.revision)
        if refusal is not None:
            self.refused.append((message.revision, refusal.value))
            log.warning("car %s refused security set revision %s: %s", self.vin, message.revision, refusal)
            return False
        self._apply(message, now)
        return True

    def _apply(self, message: SecuritySet, now: dt.datetime) -> None:
        installed = message.package is not None and (
            message.package != self.package or message.activation != self.activation
        )
        self.revision, self.package, self.activation = message.revision, message.package, message.activation
        self.driver_cards = frozenset(card.lower() for card in message.driver_cards)
        self.mode = message.mode
        if message.tracking == "off":
            self._last_track = None  # the next tracking starts with a point at once
        self.tracking = message.tracking
        if installed:
            # REQ: SEC-4 — one test alarm once the package is in the car: the SOC sees the car reaches it.
            self._add(AlarmTrigger.TEST, now, None, sent=False)

    def report(self, now: dt.datetime) -> SecurityReport:
        return SecurityReport(
            revision=self.revision, package=self.package, activation=self.activation, at=now
        )

    def mode_in_force(self, now: dt.datetime) -> SecurityMode | None:
        """The mode of the set while its end has not passed by the car's clock (SEC-3: it ends by itself)."""
        return self.mode if self.mode is not None and now < self.mode.until else None

    # --- alarms ------------------------------------------------------------------------------------------

    def raise_alarm(
        self, trigger: AlarmTrigger, now: dt.datetime, location: Position | None, privacy_mode: bool
    ) -> AlarmSignal | None:
        """An alarm to send now, or None when a mode in force covers the trigger (SEC-3).

        The position goes with it unless privacy mode is on, which only a confirmed theft overrides (SEC-1).
        The car sends it at once; it stays pending until the cloud acknowledges it."""
        mode = self.mode_in_force(now)
        if mode is not None and trigger in MODE_COVERS[mode.kind]:
            log.info("car %s suppressed %s in %s mode", self.vin, trigger.value, mode.kind)
            return None
        where = location if not privacy_mode or self.tracking == "theft" else None
        return self._add(trigger, now, where, sent=True)

    def _add(
        self, trigger: AlarmTrigger, now: dt.datetime, location: Position | None, *, sent: bool
    ) -> AlarmSignal:
        signal = AlarmSignal(
            id=uuid.uuid4().hex, trigger=trigger, silent=trigger in SILENT, at=now, location=location
        )
        self._pending[signal.id] = PendingAlarm(signal, now if sent else None)
        return signal

    @property
    def pending(self) -> list[AlarmSignal]:
        """Alarms the cloud has not acknowledged, oldest first."""
        return [alarm.signal for alarm in self._pending.values()]

    def acknowledge(self, alarm_id: str) -> bool:
        """The cloud stored this alarm: the car stops re-sending it. False for an id it does not hold."""
        return self._pending.pop(alarm_id, None) is not None

    def receive_ack(self, payload: bytes) -> bool:
        """Takes a message from down/alarm-ack; a malformed one changes nothing."""
        try:
            ack = AlarmAck.model_validate_json(payload)
        except (ValueError, ValidationError):
            log.warning("car %s ignored a malformed alarm ack", self.vin)
            return False
        return self.acknowledge(ack.alarm_id)

    def due_resends(self, now: dt.datetime) -> list[AlarmSignal]:
        """The pending alarms to send now, in order: not sent yet, or last sent `resend_interval` ago. The
        car sends them, so they count as sent at `now`."""
        interval = dt.timedelta(seconds=self.resend_interval)
        due = [a for a in self._pending.values() if a.sent_at is None or now - a.sent_at >= interval]
        for alarm in due:
            alarm.sent_at = now
        return [alarm.signal for alarm in due]

    def resend_all(self, now: dt.datetime) -> list[AlarmSignal]:
        """Every pending alarm, in order: what the car sends after each (re)connect."""
        for alarm in self._pending.values():
            alarm.sent_at = now
        return self.pending

    def next_resend_in(self, now: dt.datetime) -> float | None:
        """Seconds until the next pending alarm is due again; None when nothing is pending."""
        if not self._pending:
            return None
        waits = [
            0.0 if a.sent_at is None else self.resend_interval - (now - a.sent_at).total_seconds()
            for a in self._pending.values()
        ]
        return max(0.0, min(waits))

    # --- driver cards (SEC-2) ----------------------------------------------------------------------------

    def card_present(self, serial: str | None) -> None:
        """The driver card the car detects now (None: no card)."""
        self.card = serial

    def starts_moving(
        self, now: dt.datetime, location: Position | None, privacy_mode: bool
    ) -> AlarmSignal | None:
        """REQ: SEC-2 — with tracking plus, a car that starts to move without a registered driver card
        detected raises the silent alarm at once (unless service mode covers it). While the set lists no
        card (bought, or the car changed hands, before a dealer registered any), there is nobody the car
        could recognise: no alarm, or every drive would look like a theft."""
        if self.package != DRIVER_CARD_PACKAGE or not self.driver_cards:
            return None
        if self.card is not None and card_hash(self.card) in self.driver_cards:
            return None
        return self.raise_alarm(AlarmTrigger.NO_DRIVER_CARD, now, location, privacy_mode)

    # --- tracking (SEC-1) ----------------------------------------------------------------------------------

    def tracking_active(self, privacy_mode: bool) -> bool:
        """`alarm` tracking pauses in privacy mode; `theft` tracking goes on in privacy mode too (SEC-1)."""
        return self.tracking == "theft" or (self.tracking == "alarm" and not privacy_mode)

    @property
    def last_track(self) -> dt.datetime | None:
        """When the car took its last track point while tracking; None once tracking stopped."""
        return self._last_track

    def take_track_point(self, now: dt.datetime, location: Position, privacy_mode: bool) -> TrackPoint | None:
        """A track point when one is due: at once when tracking starts, then every `track_interval` of the
        car's time."""
        if not self.tracking_active(privacy_mode):
            self._last_track = None
            return None
        interval = dt.timedelta(seconds=self.track_interval)
        if self._last_track is not None and now - self._last_track < interval:
            return None
        self._last_track = now
        return TrackPoint(at=now, location=location)

    def next_track_in(self, now: dt.datetime, privacy_mode: bool) -> float | None:
        """Seconds until the next track point is due; None while the car does not track."""
        if not self.tracking_active(privacy_mode):
            return None
        if self._last_track is None:
            return 0.0
        return max(0.0, self.track_interval - (now - self._last_track).total_seconds())


def _parse(payload: bytes) -> tuple[SecuritySet | None, dict[str, Any]]:
    message, raw = parse_signed_set(payload, SecuritySet)
    if message is None or message.issued_at.tzinfo is None:
        return None, {}  # the protocol's times carry an offset; a naive one cannot be compared
    return message, raw
