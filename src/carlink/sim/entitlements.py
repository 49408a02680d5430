"""What a car does with the entitlements the cloud publishes (STO-7, CON-3), apart from MQTT so the rules
can be tested alone (docs/protocol.md, 'Entitlements').

The car keeps the highest revision it has verified. Services that revision adds start at the car's next
restart while online; services that left the set, or whose term has passed by the car's clock, end at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carlink.protocol.messages import (
    Entitlement,
    EntitlementReport,
    Entitlements,
)
from carlink.protocol.signing import parse_signed_set, refusal_of_set

log = logging.getLogger("carlink.sim")


class CarEntitlements:
    """The entitlements one car holds (`held`, from the highest verified revision) and offers (`applied`).

    Every method that can change what the car offers returns True when it did: the services or the fully
    applied revision moved, so the car reports them to the cloud.
    """

    def __init__(self, vin: str, keys: dict[str, Ed25519PublicKey]) -> None:
        self.vin = vin
        self.keys = keys
        self.revision = 0  # the highest revision verified and held; 0: none yet
        self.applied_revision = 0  # the highest revision of which every service is in the car
        self.held: dict[str, Entitlement] = {}
        self.applied: dict[str, Entitlement] = {}
        self.refused: list[tuple[int, str]] = []  # (revision, RefusalReason value)
        self._signature = ""

    @property
    def pending(self) -> dict[str, Entitlement]:
        """Held services that wait for the car's next restart while online (STO-7)."""
        return {code: entitlement for code, entitlement in self.held.items() if code not in self.applied}

    def receive(self, payload: bytes, now: dt.datetime) -> bool:
        """Takes a message from down/entitlements; anything not signed by the cloud for this car, or older
        than what the car holds, is ignored."""
        message, raw = _parse(payload)
        if message is None:
            log.warning("car %s ignored a malformed entitlements message", self.vin)
            return False
        if message.revision == self.revision and message.sig == self._signature:
            return False  # the retained message again, delivered on every (re)connect
        refusal = refusal_of_set(raw, self.keys, own_vin=self.vin, held_revision=self.revision)
        if refusal is not None:
            self.refused.append((message.revision, refusal.value))
            log.warning("car %s refused entitlements revision %s: %s", self.vin, message.revision, refusal)
            return False
        before = self._snapshot()
        self.revision, self._signature = message.revision, message.sig
        self.held = _current(message.entitlements, now)
        # Services that left the set end at once; those still in it take their new terms (a renewal) at once.
        self.applied = {code: self.held[code] for code in self.applied if code in self.held}
        self._settle()
        return self._snapshot() != before

    def restart(self, now: dt.datetime, *, online: bool) -> bool:
        """The car is switched off and on: held services start if it is online (STO-7)."""
        before = self._snapshot()
        self._end_expired(now)
        if online:
            self.applied = dict(self.held)
            self._settle()
        return self._snapshot() != before

    def expire(self, now: dt.datetime) -> bool:
        """Ends every service whose term has passed by the car's clock."""
        before = self._snapshot()
        self._end_expired(now)
        return self._snapshot() != before

    def data_package(self) -> Entitlement | None:
        """The applied data package for the WiFi hotspot (CON-3); with several, the one that runs longest."""
        packages = [e for e in self.applied.values() if e.kind == "data_package"]
        return max(packages, key=lambda e: (e.until, e.service), default=None)

    def report(self, now: dt.datetime) -> EntitlementReport:
        return EntitlementReport(revision=self.applied_revision, services=sorted(self.applied), at=now)

    def _end_expired(self, now: dt.datetime) -> None:
        self.held = _current(self.held.values(), now)
        self.applied = {code: e for code, e in self.applied.items() if code in self.held}
        self._settle()

    def _settle(self) -> None:
        if not self.pending:
            self.applied_revision = self.revision

    def _snapshot(self) -> tuple[int, dict[str, Entitlement]]:
        return self.applied_revision, dict(self.applied)


def _parse(payload: bytes) -> tuple[Entitlements | None, dict[str, Any]]:
    message, raw = parse_signed_set(payload, Entitlements)
    if message is None:
        return None, {}
    times = [message.issued_at, *(e.until for e in message.entitlements)]
    if any(moment.tzinfo is None for moment in times):
        return None, {}  # the protocol's times carry an offset; a naive one cannot be compared
    return message, raw


def _current(entitlements: Iterable[Entitlement], now: dt.datetime) -> dict[str, Entitlement]:
    """Entitlements by service code whose term has not passed; a code listed twice keeps its longer term."""
    current: dict[str, Entitlement] = {}
    for entitlement in entitlements:
        if entitlement.until <= now:
            continue
        known = current.get(entitlement.service)
        if known is None or entitlement.until > known.until:
            current[entitlement.service] = entitlement
    return current
