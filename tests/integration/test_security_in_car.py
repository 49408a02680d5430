"""The car's side of car security over the real broker (docs/protocol.md "Car security"; SEC-1..4): the test
publishes signed security sets as the cloud does, with the stack's signer, and checks what the broker
carries from the simulated car — its reports, alarms and track points — and that the car re-sends every
alarm until an acknowledgement arrives, also across a broker restart.

It checks the car over the wire, not the cloud's alarm handling: whatever the cloud answers, the assertions
hold on what the test's own subscriber (the gateway's account) captured."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from carlink.demo.console import DemoCars, console_router
from carlink.gateway.credentials import GATEWAY_USER, car_password, gateway_password
from carlink.protocol import topics as kinds
from carlink.protocol.messages import (
    AlarmAck,
    AlarmSignal,
    AlarmTrigger,
    SecurityMode,
    SecurityReport,
    SecuritySet,
    TrackPoint,
)
from carlink.protocol.signing import sign_command
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.sim.car import CarSpec, SimulatedCar
from carlink.sim.security import card_hash
from tests.support.stack import SECRET, TAYCAN, Stack, eventually

WAIT = 15.0
RESEND = 0.3  # seconds between re-sends of an unacknowledged alarm in these tests (5 s in a real car)
# Above any revision the cloud may have published for the Taycan itself: the test's sets win.
REVISION = 1000
CARD = "CARD-4711-0815"
# A car with a broker account that the cloud has no record of: nothing but the test answers its alarms.
UNKNOWN_VIN = "WP0ZZZY1ZPS999901"


@dataclass
class Wire:
    """One car's security traffic as the broker carries it, and the cloud's side of it played by the test."""

    stack: Stack
    vin: str
    client: aiomqtt.Client
    reports: list[SecurityReport] = field(default_factory=list)
    alarms: list[AlarmSignal] = field(default_factory=list)
    track: list[TrackPoint] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)

    def topic(self, direction: str, kind: str) -> str:
        topics = kinds.Topics(self.stack.settings.mqtt_topic_prefix)
        return topics.up(self.vin, kind) if direction == "up" else topics.down(self.vin, kind)

    def sent(self, alarm_id: str) -> int:
        """How often the car has sent this alarm so far."""
        return sum(1 for alarm in self.alarms if alarm.id == alarm_id)

    def triggers(self) -> list[str]:
        return [alarm.trigger.value for alarm in self.alarms]

    async def publish_set(
        self, revision: int, *, key: Ed25519PrivateKey | None = None, **fields: Any
    ) -> None:
        """A security set, signed with the stack's signer (or `key`) and retained, as the cloud sends it."""
        signer = self.stack.platform.signer
        message = SecuritySet(
            vin=self.vin, revision=revision, issued_at=dt.datetime.now(dt.UTC), kid=signer.kid, **fields
        )
        signed = signer.sign(message) if key is None else sign_command(message, key)
        payload = signed.model_dump_json().encode()
        await self.client.publish(self.topic("down", kinds.DOWN_SECURITY), payload, qos=1, retain=True)

    async def ack(self, alarm_id: str) -> None:
        payload = AlarmAck(alarm_id=alarm_id).model_dump_json().encode()
        await self.client.publish(self.topic("down", kinds.DOWN_ALARM_ACK), payload, qos=1)

    async def listen(self) -> None:
        parsers: dict[str, Any] = {
            self.topic("up", kinds.UP_SECURITY): lambda raw: self.reports.append(
                SecurityReport.model_validate_json(raw)
            ),
            self.topic("up", kinds.UP_ALARM): lambda raw: self.alarms.append(
                AlarmSignal.model_validate_json(raw)
            ),
            self.topic("up", kinds.UP_TRACK): lambda raw: self.track.append(
                TrackPoint.model_validate_json(raw)
            ),
            self.topic("down", kinds.DOWN_ALARM_ACK): lambda raw: self.acks.append(
                AlarmAck.model_validate_json(raw).alarm_id
            ),
        }
        for topic in parsers:
            await self.client.subscribe(topic, qos=1)
        async for message in self.client.messages:
            parsers[str(message.topic)](bytes(message.payload))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def wire(stack: Stack, vin: str) -> AsyncIterator[Wire]:
    """Captures the car's security traffic with the gateway's broker account (its own client id)."""
    client = make_client(
        BrokerAddress.parse(stack.settings.mqtt_url),
        username=GATEWAY_USER,
        password=gateway_password(SECRET),
        identifier=f"test-{uuid.uuid4().hex[:10]}",
    )
    async with client:
        captured = Wire(stack, vin, client)
        listener = asyncio.create_task(captured.listen())
        await asyncio.sleep(0.1)  # the subscriptions are in place before the test acts
        try:
            yield captured
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await listener


async def applied(car: SimulatedCar, revision: int) -> None:
    await eventually(lambda: car.security.revision == revision, WAIT)


async def acknowledge_everything(car: SimulatedCar, captured: Wire) -> None:
    """Acks whatever the car still holds, then checks that it stops sending: nothing more on the wire."""
    for alarm_id in car.pending_alarms:
        await captured.ack(alarm_id)
    await eventually(lambda: car.pending_alarms == [], WAIT)
    await asyncio.sleep(RESEND)  # a re-send already in flight when the ack arrived
    carried = len(captured.alarms)
    await asyncio.sleep(4 * RESEND)
    assert len(captured.alarms) == carried


async def test_the_car_applies_a_signed_set_reports_it_and_its_alarms_travel_over_the_broker(
    stack: Stack,
) -> None:
    car = stack.fleet[TAYCAN]
    car.security.resend_interval = RESEND
    async with wire(stack, TAYCAN) as captured:
        await captured.publish_set(REVISION, package="tracking-plus", driver_cards=[card_hash(CARD)])
        await applied(car, REVISION)
        await eventually(lambda: any(r.revision == REVISION for r in captured.reports), WAIT)
        assert next(r.package for r in captured.reports if r.revision == REVISION) == "tracking-plus"
        # REQ: SEC-4 — the first set with the package raises the car's test alarm, once, after the report.
        await eventually(lambda: "test" in captured.triggers(), WAIT)
        [test_id] = {alarm.id for alarm in captured.alarms if alarm.trigger is AlarmTrigger.TEST}

        # A set the cloud did not sign is refused, whatever it says.
        await captured.publish_set(REVISION + 1, key=Ed25519PrivateKey.generate(), package=None)
        await eventually(lambda: (f"security-{REVISION + 1}", "BAD_SIGNATURE") in car.refused, WAIT)
        assert (car.security.revision, car.security.package) == (REVISION, "tracking-plus")

        # A sensor fires: the alarm carries the car's position (privacy mode is off).
        glass_id = await car.trigger_sensor("glass_break")
        assert glass_id is not None
        await eventually(lambda: captured.sent(glass_id) >= 1, WAIT)
        glass = next(alarm for alarm in captured.alarms if alarm.id == glass_id)
        assert glass.location is not None and (glass.location.lat, glass.location.lon) == (
            car.state.lat,
            car.state.lon,
        )
        assert glass.silent is False and glass.at.tzinfo is not None

        # REQ: SEC-2 — driving off without a registered driver card: the silent alarm at once.
        await car.park_and_leave()
        await car.drive()
        await eventually(lambda: "no_driver_card" in captured.triggers(), WAIT)
        assert all(a.silent for a in captured.alarms if a.trigger is AlarmTrigger.NO_DRIVER_CARD)
        await car.park_and_leave()
        car.present_driver_card(CARD.lower())
        await car.drive()
        await car.park_and_leave()

        # REQ: SEC-3 — transport mode: towing and tilt raise nothing, a broken window still alarms.
        transport = SecurityMode(kind="transport", until=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        await captured.publish_set(
            REVISION + 2, package="tracking-plus", driver_cards=[card_hash(CARD)], mode=transport
        )
        await applied(car, REVISION + 2)
        assert await car.trigger_sensor("towing") is None
        assert await car.trigger_sensor("tilt") is None
        assert await car.trigger_sensor("glass_break") is not None

        # REQ: SEC-1 — an open case asks for tracking: a point at once.
        await captured.publish_set(REVISION + 3, package="tracking-plus", mode=transport, tracking="alarm")
        await eventually(lambda: len(captured.track) >= 1, WAIT)
        assert captured.track[0].location.lat == car.state.lat

        # Every alarm the car sent went over the broker, each with the id the car chose, and none that a
        # mode covered; once everything is acknowledged, the car sends nothing more.
        raised = {alarm.id for alarm in car.alarms_sent}
        assert {test_id, glass_id} <= raised == {alarm.id for alarm in captured.alarms}
        assert captured.triggers().count("no_driver_card") >= 1
        assert {"towing", "tilt"}.isdisjoint(captured.triggers())
        await acknowledge_everything(car, captured)

        # The demo's car console fires the same sensors and shows the car's security state.
        app = FastAPI()
        app.include_router(console_router(DemoCars(fleet=stack.fleet)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as demo:
            fired = await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "interior_motion"})
            assert fired.status_code == 303
            page = (await demo.get("/demo/cars")).text
            assert "Interior motion: the car raised an alarm for the SOC." in page
            assert "Tracking package: tracking-plus" in page and "transport mode until" in page
            await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "towing"})
            assert (
                "Towing: no alarm, the car&#39;s transport mode covers it."
                in (await demo.get("/demo/cars")).text
            )
            await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "card_in", "serial": CARD})
            assert car.security.card == CARD and f"Driver card: {CARD}" in (await demo.get("/demo/cars")).text
            await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "card_out"})
            assert car.security.card is None
            before = (car.state.lat, car.state.lon)
            await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "tow"})
            assert (car.state.lat, car.state.lon) != before  # no alarm: transport mode covers both
            await demo.post(f"/demo/cars/{TAYCAN}/security", data={"action": "steal"})
            assert car.state.moving and "ignition_without_key" in [a.trigger.value for a in car.alarms_sent]
        await eventually(
            lambda: {"interior_motion", "ignition_without_key"} <= set(captured.triggers()), WAIT
        )
        assert {"towing", "moving_while_locked"}.isdisjoint(captured.triggers())


@contextlib.asynccontextmanager
async def unknown_car(stack: Stack) -> AsyncIterator[SimulatedCar]:
    """A car the broker admits but the cloud does not know: the gateway drops its uplinks, so only the test
    acknowledges its alarms, whatever the cloud's own alarm handling does."""
    if hasattr(stack.broker, "add_vehicles"):  # Mosquitto: an account of its own
        await asyncio.to_thread(stack.broker.add_vehicles, [UNKNOWN_VIN])
    car = SimulatedCar(
        CarSpec(
            vin=UNKNOWN_VIN,
            variant_code=stack.fleet[TAYCAN].spec.variant_code,
            password=car_password(SECRET, UNKNOWN_VIN),
        ),
        broker_url=stack.settings.mqtt_url,
        prefix=stack.settings.mqtt_topic_prefix,
        trusted_keys=stack.platform.signer.public_keys,
        alarm_resend_interval=RESEND,
    )
    await car.start()
    try:
        await car.wait_connected()
        yield car
    finally:
        await car.stop()


async def stop_broker(stack: Stack) -> None:
    if hasattr(stack.broker, "restart"):  # Mosquitto: the process ends
        await asyncio.to_thread(stack.broker.stop)
    else:
        await stack.broker.stop()


async def start_broker(stack: Stack) -> None:
    """On the same port, without persistence: sessions and retained messages are gone."""
    if hasattr(stack.broker, "restart"):
        await asyncio.to_thread(stack.broker.start)
    else:
        await stack.broker.start()


async def test_the_car_re_sends_an_alarm_until_it_is_acknowledged_also_across_a_broker_restart(
    stack: Stack,
) -> None:
    async with unknown_car(stack) as car:
        async with wire(stack, UNKNOWN_VIN) as captured:
            await captured.publish_set(1, package="tracking")
            await applied(car, 1)
            await eventually(lambda: [r.revision for r in captured.reports] == [1], WAIT)
            await eventually(lambda: "test" in captured.triggers(), WAIT)
            [test_id] = car.pending_alarms
            # Unanswered, the car sends the same alarm again every RESEND seconds.
            await eventually(lambda: captured.sent(test_id) >= 3, WAIT)
            assert captured.acks == [] and {alarm.id for alarm in captured.alarms} == {test_id}
            await acknowledge_everything(car, captured)
            glass_id = await car.trigger_sensor("glass_break")
            assert glass_id is not None
            await eventually(lambda: captured.sent(glass_id) >= 1, WAIT)

        await stop_broker(stack)
        await eventually(lambda: not car.connected.is_set(), WAIT)
        towing_id = await car.trigger_sensor("towing")  # raised while the broker is away
        assert towing_id is not None and car.pending_alarms == [glass_id, towing_id]
        await start_broker(stack)

        async with wire(stack, UNKNOWN_VIN) as captured:
            # REQ: the car re-sends every unacknowledged alarm after it is back, in order, with the same ids.
            await eventually(lambda: captured.sent(towing_id) >= 2, WAIT)
            first = [alarm.id for alarm in captured.alarms]
            assert first.index(glass_id) < first.index(towing_id)
            assert car.security.revision == 1  # the broker lost the retained set; the car keeps it
            await acknowledge_everything(car, captured)

            # Data off and on: the car reports its set and sends what it raised meanwhile at the connect.
            await car.set_data_connection(False)
            tilt_id = await car.trigger_sensor("tilt")
            assert tilt_id is not None
            reports = len(captured.reports)
            await car.set_data_connection(True)
            await car.wait_connected()
            await eventually(lambda: captured.sent(tilt_id) >= 1, WAIT)
            assert [r.revision for r in captured.reports[reports:]] == [1]
            await acknowledge_everything(car, captured)
