"""What the cloud does with each uplink: acks, telemetry, connection state, requests and alarms from cars."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import metrics
from carlink.clock import clock
from carlink.db.base import Database
from carlink.fod import functions
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.incar import service as incar
from carlink.protocol import topics as kinds
from carlink.protocol.messages import (
    ALARM_ID,
    MAX_MESSAGE_BYTES,
    Ack,
    AlarmAck,
    AlarmSignal,
    CommandType,
    Connection,
    DeliveryReport,
    EntitlementReport,
    IdLoginReply,
    IdLoginRequest,
    Reply,
    Request,
    SecurityReport,
    Telemetry,
    TrackPoint,
)
from carlink.remote import service as remote
from carlink.security import alarms
from carlink.security import config as security_config
from carlink.settings import Settings, get_settings
from carlink.store import entitlements
from carlink.telemetry import service as telemetry

log = logging.getLogger("carlink.gateway")
VEHICLE_ID_CACHE = 200_000
_ALARM_ID = re.compile(ALARM_ID)
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

Publish = Callable[[str, bytes], Awaitable[bool]]
Emit = Callable[[int, dict[str, Any]], Awaitable[None]]
Republish = Callable[[int], Awaitable[bool]]
# After a delivery report: (vehicle id, its delivery set changed, function order whose charge is due).
AfterDelivery = Callable[[int, bool, int | None], Awaitable[None]]
Uplink = (
    Ack
    | Telemetry
    | Connection
    | Request
    | EntitlementReport
    | IdLoginRequest
    | DeliveryReport
    | AlarmSignal
    | TrackPoint
    | SecurityReport
)
_MODELS: dict[str, Any] = {
    kinds.UP_ACK: Ack,
    kinds.UP_TELEMETRY: Telemetry,
    kinds.UP_CONNECTION: Connection,
    kinds.UP_REQUEST: Request,
    kinds.UP_ENTITLEMENTS: EntitlementReport,
    kinds.UP_ID_LOGIN: IdLoginRequest,
    kinds.UP_DELIVERIES: DeliveryReport,
    kinds.UP_ALARM: AlarmSignal,
    kinds.UP_TRACK: TrackPoint,
    kinds.UP_SECURITY: SecurityReport,
}


def decode_uplink(payload: bytes) -> Any:
    """The JSON of an uplink, or ValueError (docs/protocol.md "Transport"): finite numbers only, and no
    control character (NUL included) or lone surrogate in any string or key. No message needs them, and
    what the gateway stores must be storable: PostgreSQL refuses NUL and surrogates, JSON has no NaN."""
    try:
        data = json.loads(payload, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:  # nesting deeper than the parser's stack: never a message
        raise ValueError("nested too deeply") from None
    pending = [data]
    while pending:  # without recursion: the parser allowed nearly as deep a nesting as Python's stack
        item = pending.pop()
        if isinstance(item, str) and _UNPRINTABLE.search(item):
            raise ValueError("control character or lone surrogate in a string")
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 parses as infinity
        raise ValueError(f"{text[:20]} is out of range")
    return number


def _believed_time(message: Uplink) -> Uplink:
    """The car's `at` as the cloud stores it: the car's clock may run ahead or be reset to year 1. A time
    more than MAX_CLOCK_SKEW ahead of the cloud's, or one outside what UTC can hold, becomes the received
    time (alarms.alarm_time, which alarms apply themselves): else a future `at` would pin a telemetry value
    (an older message never overwrites a newer one) or the car's last-seen time, or fail to store."""
    at = getattr(message, "at", None)
    if at is None or isinstance(message, AlarmSignal):
        return message
    believed = alarms.alarm_time(at, clock.now())
    return message if believed == at else message.model_copy(update={"at": believed})


class UplinkHandler:
    def __init__(
        self,
        db: Database,
        emit: Emit,
        reply: Publish,
        topics: kinds.Topics,
        republish_entitlements: Republish | None = None,
        settings: Settings | None = None,
        after_delivery: AfterDelivery | None = None,
        republish_security: Republish | None = None,
    ) -> None:
        self.db = db
        self.emit = emit
        self.reply = reply
        self.topics = topics
        self.republish_entitlements = republish_entitlements
        self.after_delivery = after_delivery
        # A new alarm case asks the car to track (its security set changed): published after the commit.
        self.republish_security = republish_security
        # In-car ID login checks passwords with the sign-in protection, whose limits are settings.
        self.settings = settings or get_settings()
        self.rejected = 0
        # VIN -> vehicle id; ids never change, and acks then need no vehicle lookup.
        self._vehicle_ids: dict[str, int] = {}

    async def __call__(self, vin: str, kind: str, payload: bytes) -> None:
        message = self._parse(vin, kind, payload)
        if message is None:
            if kind == kinds.UP_ALARM:
                await self._answer_known_alarm(vin, payload)
            return
        metrics.UPLINKS.labels(kind).inc()
        if isinstance(message, AlarmSignal):
            await self._alarm(vin, message)
            return
        events: list[dict[str, Any]] = []
        reply: Reply | None = None
        id_login_reply: IdLoginReply | None = None
        behind = security_behind = False
        delivery_changed, charge_due = False, None
        vehicle_id = self._vehicle_ids.get(vin)
        if isinstance(message, Ack) and vehicle_id is not None:
            # The hot path of every command: the vehicle itself need not be loaded.
            async with self.db.transaction() as session:
                events = await self._ack(session, vehicle_id, message)
            for event in events:
                await self.emit(vehicle_id, event)
            return
        async with self.db.transaction() as session:
            vehicle = await garage.vehicle_by_vin(session, vin)
            if vehicle is None:
                log.warning("uplink from unknown vehicle %s dropped", vin)
                return
            if len(self._vehicle_ids) < VEHICLE_ID_CACHE:
                self._vehicle_ids[vin] = vehicle.id
            if isinstance(message, Ack):
                events = await self._ack(session, vehicle.id, message)
            elif isinstance(message, Telemetry):
                events = await self._telemetry(session, vehicle, message)
            elif isinstance(message, Connection):
                await garage.record_connection(
                    session, vehicle, online=message.online, network=message.network.value, at=message.at
                )
                events = [{"type": "connection", "online": message.online, "network": vehicle.network}]
            elif isinstance(message, Request):
                linked, error = await garage.pair_in_car(session, vehicle, message.code)
                reply = Reply(request_id=message.id, ok=linked, error=error)
            elif isinstance(message, IdLoginRequest):
                id_login_reply = await incar.answer(session, self.settings, vehicle, message)
            elif isinstance(message, EntitlementReport):
                # The car is behind the cloud (say the broker lost the retained message): send it again.
                behind = await entitlements.record_report(session, vehicle.id, message)
            elif isinstance(message, DeliveryReport):
                outcome, charge_due = await functions.handle_report(session, vehicle, message)
                delivery_changed = outcome.set_changed
                if outcome.moved_to is not None:
                    events = [{"type": "delivery", "id": message.delivery, "state": outcome.moved_to.value}]
            elif isinstance(message, SecurityReport):
                security_behind = await security_config.record_report(session, vehicle, message)
            elif isinstance(message, TrackPoint):
                await alarms.record_track(session, vehicle, message)
            vehicle_id = vehicle.id
        for event in events:
            await self.emit(vehicle_id, event)
        if reply is not None:
            await self.reply(self.topics.down(vin, kinds.DOWN_REPLY), reply.model_dump_json().encode())
        if id_login_reply is not None:
            await self.reply(
                self.topics.down(vin, kinds.DOWN_ID_LOGIN), id_login_reply.model_dump_json().encode()
            )
        if behind and self.republish_entitlements is not None:
            await self.republish_entitlements(vehicle_id)
        if (delivery_changed or charge_due) and self.after_delivery is not None:
            await self.after_delivery(vehicle_id, delivery_changed, charge_due)
        if security_behind and self.republish_security is not None:
            await self.republish_security(vehicle_id)

    async def _alarm(self, vin: str, signal: AlarmSignal) -> None:
        """REQ: SEC-1 — store, commit, and only then acknowledge: an alarm the car saw acknowledged is in
        the database. A re-send is answered the same way and changes nothing. Then the SOC hears of it."""
        if await self._known_alarm(vin, signal.id):
            # A re-send (the car re-sends every unanswered alarm every 5 s): answered without a write turn.
            metrics.ALARM_DUPLICATES.inc()
            await self._ack_alarm(vin, signal.id)
            return
        async with self.db.transaction() as session:
            vehicle = await garage.vehicle_by_vin(session, vin)
            if vehicle is None:  # the broker's ACL lets only provisioned cars publish
                log.warning("alarm from unknown vehicle %s dropped", vin)
                return
            outcome = await alarms.ingest(session, vehicle, signal)
            vehicle_id = vehicle.id
            events = []
            if outcome.alarm is not None:
                events.append(alarms.event_of(outcome.alarm, vin))
            if outcome.activation is not None:
                events.append(alarms.activation_event(outcome.activation, vin))
        self._count_alarm(signal, outcome)
        await self._ack_alarm(vin, signal.id)
        for event in events:
            await self.emit(alarms.SOC_CHANNEL, event)
        if outcome.set_changed and self.republish_security is not None:
            await self.republish_security(vehicle_id)

    async def _answer_known_alarm(self, vin: str, payload: bytes) -> None:
        """docs/protocol.md: a malformed re-send of an alarm the cloud has is answered like any re-send, so
        the car stops sending it; any other malformed alarm stays dropped."""
        if len(payload) > MAX_MESSAGE_BYTES:
            return
        try:
            data = decode_uplink(payload)
        except ValueError:
            return
        alarm_id = data.get("id") if isinstance(data, dict) else None
        # Only an id of the protocol's form reaches the database (a NUL would be a DataError there); the
        # whole id, as pydantic checks it: `.match` would let `$` pass an id ending in a newline.
        if not isinstance(alarm_id, str) or _ALARM_ID.fullmatch(alarm_id) is None:
            return
        if await self._known_alarm(vin, alarm_id):
            metrics.ALARM_DUPLICATES.inc()
            await self._ack_alarm(vin, alarm_id)

    async def _known_alarm(self, vin: str, alarm_id: str) -> bool:
        async with self.db.session() as session:
            vehicle_id = self._vehicle_ids.get(vin)
            if vehicle_id is None:
                vehicle = await garage.vehicle_by_vin(session, vin)
                if vehicle is None:
                    return False
                vehicle_id = vehicle.id
            return await alarms.known(session, vehicle_id, alarm_id)

    async def _ack_alarm(self, vin: str, alarm_id: str) -> None:
        # Lost with the broker? The car re-sends the alarm and is answered then.
        ack = AlarmAck(alarm_id=alarm_id).model_dump_json().encode()
        await self.reply(self.topics.down(vin, kinds.DOWN_ALARM_ACK), ack)

    @staticmethod
    def _count_alarm(signal: AlarmSignal, outcome: alarms.IngestOutcome) -> None:
        if outcome.duplicate:
            metrics.ALARM_DUPLICATES.inc()
            return
        metrics.ALARMS.labels(signal.trigger.value).inc()
        if outcome.suppressed_by is not None:
            metrics.ALARMS_SUPPRESSED.labels(outcome.suppressed_by).inc()
        # The car's clock may run ahead of ours or be unusable (alarms.alarm_time): never a negative time.
        now = clock.now()
        delay = now - alarms.alarm_time(signal.at, now)
        metrics.ALARM_STORE_SECONDS.observe(max(0.0, delay.total_seconds()))

    def _parse(self, vin: str, kind: str, payload: bytes) -> Uplink | None:
        model = _MODELS.get(kind)
        if model is None or len(payload) > MAX_MESSAGE_BYTES:
            self._reject(vin, kind, "unknown kind or oversized")
            return None
        try:
            data = decode_uplink(payload)
            parsed: Uplink = model.model_validate(data)
        except (ValueError, ValidationError) as exc:
            self._reject(vin, kind, str(exc).splitlines()[0])
            return None
        return _believed_time(parsed)

    def _reject(self, vin: str, kind: str, why: str) -> None:
        self.rejected += 1
        metrics.UPLINKS_REJECTED.labels(kind if kind in kinds.UPLINK_KINDS else "unknown").inc()
        log.warning("malformed %s from %s dropped: %s", kind, vin, why)

    async def _ack(self, session: AsyncSession, vehicle_id: int, ack: Ack) -> list[dict[str, Any]]:
        command = await remote.apply_ack(session, vehicle_id, ack)
        if command is None:
            return []
        if command.type == CommandType.REMOTE_ACCESS_RESET.value and command.state == "performed":
            await garage.confirm_remote_access_reset(session, vehicle_id)
        if command.finished_at is not None:
            metrics.COMMANDS.labels(command.type, command.state).inc()
            metrics.COMMAND_SECONDS.observe((command.finished_at - command.created_at).total_seconds())
        return [
            {
                "type": "command",
                "id": command.id,
                "command": command.type,
                "state": command.state,
                "reason": command.reason,
            }
        ]

    async def _telemetry(
        self, session: AsyncSession, vehicle: Vehicle, message: Telemetry
    ) -> list[dict[str, Any]]:
        privacy = message.values.get("privacy", {}).get("enabled")
        access = message.values.get("remote_access", {}).get("authorised")
        await garage.record_reported_state(
            session,
            vehicle,
            privacy_mode=privacy if isinstance(privacy, bool) else None,
            remote_access=access if isinstance(access, bool) else None,
        )
        changed = await telemetry.ingest(session, vehicle, message)
        return [{"type": "telemetry", "keys": changed}] if changed else []
