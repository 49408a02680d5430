"""What the cloud does with each uplink: acks, telemetry, connection state and requests from cars."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from carlink import metrics
from carlink.db.base import Database
from carlink.fod import functions
from carlink.garage import service as garage
from carlink.garage.models import Vehicle
from carlink.incar import service as incar
from carlink.protocol import topics as kinds
from carlink.protocol.messages import (
    MAX_MESSAGE_BYTES,
    Ack,
    CommandType,
    Connection,
    DeliveryReport,
    EntitlementReport,
    IdLoginReply,
    IdLoginRequest,
    Reply,
    Request,
    Telemetry,
)
from carlink.remote import service as remote
from carlink.settings import Settings, get_settings
from carlink.store import entitlements
from carlink.telemetry import service as telemetry

log = logging.getLogger("carlink.gateway")
VEHICLE_ID_CACHE = 200_000
_KINDS = frozenset(
    {
        kinds.UP_ACK,
        kinds.UP_TELEMETRY,
        kinds.UP_CONNECTION,
        kinds.UP_REQUEST,
        kinds.UP_ENTITLEMENTS,
        kinds.UP_ID_LOGIN,
        kinds.UP_DELIVERIES,
    }
)

Publish = Callable[[str, bytes], Awaitable[bool]]
Emit = Callable[[int, dict[str, Any]], Awaitable[None]]
Republish = Callable[[int], Awaitable[bool]]
# After a delivery report: (vehicle id, its delivery set changed, function order whose charge is due).
AfterDelivery = Callable[[int, bool, int | None], Awaitable[None]]
Uplink = Ack | Telemetry | Connection | Request | EntitlementReport | IdLoginRequest | DeliveryReport


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
    ) -> None:
        self.db = db
        self.emit = emit
        self.reply = reply
        self.topics = topics
        self.republish_entitlements = republish_entitlements
        self.after_delivery = after_delivery
        # In-car ID login checks passwords with the sign-in protection, whose limits are settings.
        self.settings = settings or get_settings()
        self.rejected = 0
        # VIN -> vehicle id; ids never change, and acks then need no vehicle lookup.
        self._vehicle_ids: dict[str, int] = {}

    async def __call__(self, vin: str, kind: str, payload: bytes) -> None:
        message = self._parse(vin, kind, payload)
        if message is None:
            return
        metrics.UPLINKS.labels(kind).inc()
        events: list[dict[str, Any]] = []
        reply: Reply | None = None
        id_login_reply: IdLoginReply | None = None
        behind = False
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

    def _parse(self, vin: str, kind: str, payload: bytes) -> Uplink | None:
        models: dict[str, Any] = {
            kinds.UP_ACK: Ack,
            kinds.UP_TELEMETRY: Telemetry,
            kinds.UP_CONNECTION: Connection,
            kinds.UP_REQUEST: Request,
            kinds.UP_ENTITLEMENTS: EntitlementReport,
            kinds.UP_ID_LOGIN: IdLoginRequest,
            kinds.UP_DELIVERIES: DeliveryReport,
        }
        model = models.get(kind)
        if model is None or len(payload) > MAX_MESSAGE_BYTES:
            self._reject(vin, kind, "unknown kind or oversized")
            return None
        try:
            data = json.loads(payload)
            parsed: Uplink = model.model_validate(data)
        except (ValueError, ValidationError) as exc:
            self._reject(vin, kind, str(exc).splitlines()[0])
            return None
        return parsed

    def _reject(self, vin: str, kind: str, why: str) -> None:
        self.rejected += 1
        metrics.UPLINKS_REJECTED.labels(kind if kind in _KINDS else "unknown").inc()
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
