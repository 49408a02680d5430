"""Car <-> cloud security over the real brokers (docs/protocol.md, 'Security'): broker accounts and ACL,
signed commands the car checks, garbage the gateway drops, expiry, replays and broker restarts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from carlink.clock import clock
from carlink.demo import world
from carlink.garage.models import Vehicle
from carlink.gateway.credentials import GATEWAY_USER, car_password, gateway_password
from carlink.gateway.service import UplinkHandler
from carlink.jobs.scheduler import run_once
from carlink.protocol.messages import Command, CommandType, Connection, Network, Telemetry
from carlink.protocol.signing import sign_command
from carlink.protocol.topics import Topics
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.remote.models import RemoteCommand
from carlink.sim.car import SimulatedCar
from carlink.telemetry.models import Measurement
from tests.support.stack import PANAMERA, SECRET, TAYCAN, Stack, eventually


@contextlib.asynccontextmanager
async def broker_client(
    stack: Stack, username: str | None, password: str | None
) -> AsyncIterator[aiomqtt.Client]:
    """A raw MQTT connection under some account, with a client id of its own (no simulated car is kicked)."""
    client = make_client(
        BrokerAddress.parse(stack.settings.mqtt_url),
        username=username,
        password=password,
        identifier=f"test-{uuid.uuid4().hex[:10]}",
    )
    async with client:
        yield client


def as_car(stack: Stack, vin: str) -> contextlib.AbstractAsyncContextManager[aiomqtt.Client]:
    return broker_client(stack, vin, car_password(SECRET, vin))


def as_gateway(stack: Stack) -> contextlib.AbstractAsyncContextManager[aiomqtt.Client]:
    return broker_client(stack, GATEWAY_USER, gateway_password(SECRET))


def topics(stack: Stack) -> Topics:
    return Topics(stack.settings.mqtt_topic_prefix)


async def owner(stack: Stack) -> httpx.AsyncClient:
    return await stack.as_user(world.OWNER)


async def send(client: httpx.AsyncClient, vin: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/api/v1/vehicles/{vin}/commands", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def outcome(client: httpx.AsyncClient, vin: str, command_id: str, wait: float = 10) -> dict[str, Any]:
    response = await client.get(f"/api/v1/vehicles/{vin}/commands/{command_id}", params={"wait": wait})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def stored(stack: Stack, vin: str, key: str) -> Measurement | None:
    async with stack.db.session() as session:
        return await session.scalar(
            select(Measurement)
            .join(Vehicle, Vehicle.id == Measurement.vehicle_id)
            .where(Vehicle.vin == vin, Measurement.key == key)
        )


async def vehicle(stack: Stack, vin: str) -> Vehicle:
    async with stack.db.session() as session:
        row = await session.scalar(select(Vehicle).where(Vehicle.vin == vin))
    assert row is not None
    return row


async def command_row(stack: Stack, command_id: str) -> RemoteCommand:
    async with stack.db.session() as session:
        row = await session.get(RemoteCommand, command_id)
    assert row is not None
    return row


async def cloud_has_heard_from(stack: Stack, car: SimulatedCar) -> None:
    """A marker: the car reports its tyres and we wait until the cloud stored them. The broker and the gateway
    keep one car's messages in order, so whatever reached the cloud before the marker has been handled."""
    before = await stored(stack, car.vin, "tyres")
    assert before is not None
    await car.report(frozenset({"tyres"}))

    async def handled() -> bool:
        after = await stored(stack, car.vin, "tyres")
        return after is not None and after.received_at > before.received_at

    await eventually(handled)


def handler_of(stack: Stack) -> UplinkHandler:
    assert stack.platform.link is not None and isinstance(stack.platform.link.handler, UplinkHandler)
    return stack.platform.link.handler


# --- broker accounts and ACL -------------------------------------------------------------------------------


async def test_the_broker_refuses_a_connection_with_the_wrong_password(stack: Stack) -> None:
    refused = [
        (TAYCAN, "not-the-password"),
        (TAYCAN, car_password(SECRET, PANAMERA)),  # another car's password
        (PANAMERA, car_password("another-secret-0123456789", PANAMERA)),  # another cloud's password
        (GATEWAY_USER, car_password(SECRET, TAYCAN)),
        (None, None),  # anonymous
    ]
    for username, password in refused:
        with pytest.raises(aiomqtt.MqttError):
            async with broker_client(stack, username, password):
                pass
    async with as_car(stack, TAYCAN):  # the right password still gets in
        pass


async def test_a_car_cannot_report_telemetry_connection_or_acks_for_another_car(stack: Stack) -> None:
    panamera = stack.fleet[PANAMERA]
    mileage_before = await stored(stack, PANAMERA, "mileage")
    lock_before = await stored(stack, PANAMERA, "lock")
    assert mileage_before is not None and lock_before is not None
    up = topics(stack).up
    forged_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    async with as_car(stack, TAYCAN) as intruder:
        telemetry = Telemetry(at=forged_at, values={"mileage": {"km": 1}, "lock": {"locked": False}})
        await intruder.publish(up(PANAMERA, "telemetry"), telemetry.model_dump_json(), qos=1)
        offline = Connection(online=False, network=Network.NONE, at=forged_at)
        await intruder.publish(up(PANAMERA, "connection"), offline.model_dump_json(), qos=1, retain=True)
        await intruder.publish(
            up(PANAMERA, "request"),
            json.dumps({"v": 1, "id": "x" * 8, "kind": "pair", "code": "12345678"}),
            qos=1,
        )
    await cloud_has_heard_from(stack, panamera)
    mileage_after = await stored(stack, PANAMERA, "mileage")
    lock_after = await stored(stack, PANAMERA, "lock")
    assert mileage_after is not None and lock_after is not None
    assert mileage_after.value == {"km": panamera.state.mileage} == mileage_before.value
    assert lock_after.value == {"locked": True}
    assert (await vehicle(stack, PANAMERA)).online is True
    assert handler_of(stack).rejected == 0


async def test_a_car_cannot_send_commands_to_another_car_or_to_itself(stack: Stack) -> None:
    panamera = stack.fleet[PANAMERA]
    down = topics(stack).down
    # Even a correctly signed command (captured earlier, say) may only come from the cloud's account.
    signed = stack.platform.signer.sign(
        Command(
            id=uuid.uuid4().hex,
            vin=PANAMERA,
            type=CommandType.UNLOCK,
            issued_at=clock.now(),
            expires_at=clock.now() + dt.timedelta(minutes=1),
            kid="x",
        )
    )
    async with as_car(stack, TAYCAN) as intruder:
        await intruder.publish(down(PANAMERA, "command"), signed.model_dump_json(), qos=1)
        own = signed.model_copy(update={"vin": TAYCAN})
        await intruder.publish(down(TAYCAN, "command"), own.model_dump_json(), qos=1)
    client = await owner(stack)
    marker = await send(client, PANAMERA, {"type": "HONK_FLASH"})
    assert (await outcome(client, PANAMERA, marker))["state"] == "performed"
    assert [c.id for c in panamera.executed] == [marker]
    assert panamera.refused == [] and stack.fleet[TAYCAN].refused == []
    assert panamera.state.locked is True and stack.fleet[TAYCAN].state.locked is True


async def test_a_car_cannot_listen_to_another_cars_commands(stack: Stack) -> None:
    t = topics(stack)
    received: list[str] = []
    async with as_car(stack, TAYCAN) as intruder:
        for pattern in (
            t.down(PANAMERA, "#"),
            f"{t.prefix}/v1/+/down/#",
            f"{t.prefix}/#",
            t.down(TAYCAN, "#"),
        ):
            with contextlib.suppress(aiomqtt.MqttError):
                await intruder.subscribe(pattern, qos=1)

        async def listen() -> None:
            async for message in intruder.messages:
                received.append(str(message.topic))

        listener = asyncio.create_task(listen())
        try:
            client = await owner(stack)
            other = await send(client, PANAMERA, {"type": "HONK_FLASH"})
            assert (await outcome(client, PANAMERA, other))["state"] == "performed"
            # A command to the intruder's own car arrives after the other car's on the same gateway link.
            own = await send(client, TAYCAN, {"type": "HONK_FLASH"})
            await eventually(lambda: t.down(TAYCAN, "command") in received)
            assert (await outcome(client, TAYCAN, own))["state"] == "performed"
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await listener
    assert received and all(topic.startswith(t.vehicle(TAYCAN) + "/down/") for topic in received)


# --- what the gateway does with garbage --------------------------------------------------------------------


async def test_malformed_uplinks_are_dropped_and_logged_and_the_gateway_keeps_working(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="carlink.gateway")
    car = stack.fleet[TAYCAN]
    up = topics(stack).up
    now = dt.datetime.now(dt.UTC).isoformat()
    garbage = [
        (up(TAYCAN, "telemetry"), b"{not json"),
        (up(TAYCAN, "telemetry"), b"\xff\xfe\x00"),  # not even UTF-8
        (up(TAYCAN, "telemetry"), json.dumps({"v": 2, "at": now, "values": {"mileage": {"km": 1}}}).encode()),
        (up(TAYCAN, "telemetry"), json.dumps([1, 2, 3]).encode()),
        (
            up(TAYCAN, "telemetry"),
            json.dumps({"v": 1, "at": now, "values": {"mileage": {"km": 1}}, "pad": "x" * 70_000}).encode(),
        ),  # oversized
        (up(TAYCAN, "ack"), json.dumps({"v": 1, "command_id": "short", "state": "performed"}).encode()),
        (up(TAYCAN, "selfdestruct"), b"{}"),  # unknown kind
    ]
    for topic, payload in garbage:
        await car.publish_raw(topic, payload)
    await eventually(lambda: handler_of(stack).rejected >= len(garbage))
    assert handler_of(stack).rejected == len(garbage)
    dropped = [r for r in caplog.records if r.name == "carlink.gateway" and "dropped" in r.getMessage()]
    assert len(dropped) == len(garbage)
    mileage = await stored(stack, TAYCAN, "mileage")
    assert mileage is not None and mileage.value == {"km": car.state.mileage}
    client = await owner(stack)
    command = await send(client, TAYCAN, {"type": "CLIMATE_START", "params": {"target_temperature_c": 20}})
    assert (await outcome(client, TAYCAN, command))["state"] == "performed"
    assert car.state.climate_on is True


# --- signed commands as the car sees them ------------------------------------------------------------------


async def test_a_replayed_command_is_not_executed_twice(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    client = await owner(stack)
    command_id = await send(client, TAYCAN, {"type": "CLIMATE_START", "params": {"target_temperature_c": 22}})
    assert (await outcome(client, TAYCAN, command_id))["state"] == "performed"
    finished_at = (await command_row(stack, command_id)).finished_at
    envelope = (await command_row(stack, command_id)).envelope
    await client.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "CLIMATE_STOP"})
    await eventually(lambda: car.state.climate_on is False)
    async with as_gateway(stack) as replayer:
        await replayer.publish(topics(stack).down(TAYCAN, "command"), json.dumps(envelope), qos=1)
        await replayer.publish(topics(stack).down(TAYCAN, "command"), json.dumps(envelope), qos=1)
    await eventually(lambda: car.refused.count((command_id, "REPLAYED")) == 2)
    await cloud_has_heard_from(stack, car)
    assert [c.id for c in car.executed].count(command_id) == 1
    assert car.state.climate_on is False  # the replay did not switch the climate on again
    row = await command_row(stack, command_id)
    assert (row.state, row.finished_at) == ("performed", finished_at)


async def test_a_command_that_reaches_the_car_after_its_expiry_is_refused_and_ends_in_error(
    stack: Stack,
) -> None:
    car = stack.fleet[TAYCAN]
    car.clock_offset = dt.timedelta(seconds=stack.settings.command_ttl_seconds + 5)
    client = await owner(stack)
    command_id = await send(client, TAYCAN, {"type": "LOCK"})
    done = await outcome(client, TAYCAN, command_id)
    assert (done["state"], done["reason"]) == ("error", "EXPIRED")
    assert car.refused == [(command_id, "EXPIRED")]
    assert car.executed == []


async def test_a_command_signed_with_a_foreign_key_is_ignored_by_the_car(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    forger = Ed25519PrivateKey.generate()
    forged = sign_command(
        Command(
            id=uuid.uuid4().hex,
            vin=TAYCAN,
            type=CommandType.UNLOCK,
            issued_at=clock.now(),
            expires_at=clock.now() + dt.timedelta(minutes=1),
            kid=stack.platform.signer.kid,
        ),
        forger,
    )
    unsigned = forged.model_copy(update={"id": uuid.uuid4().hex, "sig": ""})
    async with as_gateway(stack) as gateway:  # even on the cloud's own account
        await gateway.publish(topics(stack).down(TAYCAN, "command"), forged.model_dump_json(), qos=1)
        await gateway.publish(topics(stack).down(TAYCAN, "command"), unsigned.model_dump_json(), qos=1)
    await eventually(lambda: len(car.refused) == 2)
    assert car.refused == [(forged.id, "BAD_SIGNATURE"), (unsigned.id, "BAD_SIGNATURE")]
    assert car.executed == [] and car.state.locked is True


async def test_a_correctly_signed_command_for_another_car_is_ignored(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    for_panamera = stack.platform.signer.sign(
        Command(
            id=uuid.uuid4().hex,
            vin=PANAMERA,
            type=CommandType.UNLOCK,
            issued_at=clock.now(),
            expires_at=clock.now() + dt.timedelta(minutes=1),
            kid="x",
        )
    )
    async with as_gateway(stack) as gateway:
        await gateway.publish(topics(stack).down(TAYCAN, "command"), for_panamera.model_dump_json(), qos=1)
    await eventually(lambda: car.refused == [(for_panamera.id, "WRONG_VEHICLE")])
    assert car.executed == [] and car.state.locked is True
    assert stack.fleet[PANAMERA].executed == []


# --- cars that do not answer, expiry, broker restarts ------------------------------------------------------


async def cloud_believes_online_though_gone(stack: Stack, vin: str) -> None:
    """A car that dropped off on a half-open link: the broker notices only after 1.5 keep-alives (45 s), and
    until then the cloud shows the car online. We wait for the last will and then put that state back."""

    async def offline() -> bool:
        return not (await vehicle(stack, vin)).online

    await eventually(offline)
    async with stack.db.transaction() as session:
        row = await session.scalar(select(Vehicle).where(Vehicle.vin == vin))
        assert row is not None
        row.online, row.network = True, "LTE"


async def test_a_command_for_a_car_that_lost_power_is_answered_at_once(stack: Stack) -> None:
    car = stack.fleet[PANAMERA]
    await car.stop(graceful=False)  # the broker publishes the car's last will

    async def offline() -> bool:
        return not (await vehicle(stack, PANAMERA)).online

    await eventually(offline)
    client = await owner(stack)
    response = await asyncio.wait_for(
        client.post(f"/api/v1/vehicles/{PANAMERA}/commands", json={"type": "LOCK"}), timeout=5
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "vehicle_offline"


async def test_a_command_the_car_never_answers_does_not_hang_and_expires(stack: Stack) -> None:
    car = stack.fleet[PANAMERA]
    await car.stop(graceful=False)
    await cloud_believes_online_though_gone(stack, PANAMERA)
    client = await owner(stack)
    command_id = await send(client, PANAMERA, {"type": "LOCK"})
    pending = await asyncio.wait_for(outcome(client, PANAMERA, command_id, wait=1), timeout=10)
    assert pending["state"] == "accepted"
    clock.advance(seconds=stack.settings.command_ttl_seconds + 1)
    await run_once(stack.platform)
    done = await outcome(client, PANAMERA, command_id)
    assert done["state"] == "expired" and done["reason"] == "the car did not answer in time"
    assert car.executed == []


async def test_a_command_the_car_does_not_finish_in_time_expires_and_a_late_answer_changes_nothing(
    stack: Stack,
) -> None:
    car = stack.fleet[TAYCAN]
    car.perform_delay = 1.0
    client = await owner(stack)
    command_id = await send(client, TAYCAN, {"type": "HONK_FLASH"})

    async def delivered() -> bool:
        return (await command_row(stack, command_id)).state == "delivered"

    await eventually(delivered)
    clock.advance(seconds=stack.settings.command_ttl_seconds + 1)
    await run_once(stack.platform)
    assert (await command_row(stack, command_id)).state == "expired"
    await eventually(lambda: [c.id for c in car.executed] == [command_id])
    await cloud_has_heard_from(stack, car)  # the car's late 'performed' ack was handled before this
    row = await command_row(stack, command_id)
    assert row.state == "expired" and row.reason == "the car did not answer in time"


async def restart_broker(stack: Stack) -> None:
    """On the same port, without persistence: sessions and retained messages are gone, clients reconnect."""
    if hasattr(stack.broker, "restart"):  # Mosquitto: a new process
        await asyncio.to_thread(stack.broker.restart)
    else:  # the embedded broker: amqtt shut down and started again
        await stack.broker.stop()
        await stack.broker.start()


async def test_a_broker_restart_in_the_middle_of_a_command_never_executes_it_twice(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    car.perform_delay = 0.5
    client = await owner(stack)
    command_id = await send(client, TAYCAN, {"type": "CLIMATE_START", "params": {"target_temperature_c": 23}})

    async def delivered() -> bool:
        return (await command_row(stack, command_id)).state != "accepted"

    await eventually(delivered)
    await restart_broker(stack)
    assert stack.platform.link is not None
    await stack.platform.link.wait_connected(timeout=20)

    async def car_back() -> bool:
        return car.connected.is_set() and (await vehicle(stack, TAYCAN)).online

    await eventually(car_back, timeout=20)
    # A command sent while the broker was away is re-sent by the jobs once it is back.
    after = await send(client, TAYCAN, {"type": "HONK_FLASH"})
    assert (await outcome(client, TAYCAN, after, wait=20))["state"] == "performed"
    clock.advance(seconds=stack.settings.command_ttl_seconds + 1)
    await run_once(stack.platform)
    row = await command_row(stack, command_id)
    assert row.state in ("performed", "expired")
    executed = [c.id for c in car.executed]
    assert executed.count(command_id) == 1 and executed.count(after) == 1


async def test_a_command_the_car_missed_is_re_sent_and_performed_once(stack: Stack) -> None:
    car = stack.fleet[PANAMERA]
    await car.stop(graceful=False)
    await cloud_believes_online_though_gone(stack, PANAMERA)
    client = await owner(stack)
    command_id = await send(client, PANAMERA, {"type": "HONK_FLASH", "params": {"mode": "FLASH"}})
    await car.start()  # published to nobody; the car comes back
    await car.wait_connected()
    clock.advance(seconds=5)  # older than the re-send delay
    await run_once(stack.platform)
    done = await outcome(client, PANAMERA, command_id)
    assert done["state"] == "performed"
    assert [c.id for c in car.executed] == [command_id]
    assert (await command_row(stack, command_id)).publish_count >= 1
