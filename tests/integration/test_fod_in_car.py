"""Functions on demand and software updates end to end (FOD-2..8, OTA-3, OTA-4): the owner orders through
the JSON API, the cloud publishes the signed delivery set, the simulated Taycan downloads the signed package
over real HTTP, installs when the driver has left, and the cloud charges the activation once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from sqlalchemy import func, select

from carlink.clock import clock
from carlink.demo import world
from carlink.fod import functions, updates
from carlink.fod import service as packages
from carlink.fod.models import Delivery, FunctionOrder, PackageFile
from carlink.garage.models import Vehicle
from carlink.gateway.credentials import GATEWAY_USER, gateway_password
from carlink.identity.models import Account
from carlink.jobs import scheduler
from carlink.notify.models import Notification, OutboxEmail
from carlink.protocol import topics as kinds
from carlink.protocol.messages import Connection, DeliveryReport, Network
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.sim.car import SimulatedCar
from carlink.store.models import Contract, Payment
from carlink.store.payments import SandboxCharge
from tests.support.purchases import VISA
from tests.support.stack import SECRET, TAYCAN, Stack, eventually

WAIT = 20.0  # seconds for what travels over HTTP and MQTT


# --- the owner's side --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def owner_of_taycan(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with await stack.as_user(world.OWNER) as owner:
        yield owner


async def order(owner: httpx.AsyncClient, function: str, term: str) -> dict[str, Any]:
    """Orders a function for the Taycan with a new card, as the portal does; returns the order."""
    listed = (await owner.get(f"/api/v1/vehicles/{TAYCAN}/functions")).json()["functions"]
    offer = next(o for f in listed if f["code"] == function for o in f["offers"] if o["term"] == term)
    card = await owner.post("/api/v1/store/payment-methods", json=VISA)
    assert card.status_code == 201, card.text
    response = await owner.post(
        f"/api/v1/vehicles/{TAYCAN}/functions/orders",
        json={"offer_id": offer["id"], "payment_method_id": card.json()["id"], "accept_terms": True},
    )
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "ordered"
    return dict(response.json())


# --- what the cloud holds ----------------------------------------------------------------------------------


async def delivery_of(stack: Stack, order_id: int) -> Delivery:
    async with stack.db.session() as session:
        row = await session.scalar(select(Delivery).where(Delivery.function_order_id == order_id))
    assert row is not None
    return row


async def order_row(stack: Stack, order_id: int) -> FunctionOrder:
    async with stack.db.session() as session:
        row = await session.get(FunctionOrder, order_id)
    assert row is not None
    return row


async def delivery_in(stack: Stack, order_id: int, state: str) -> None:
    async def reached() -> bool:
        return (await delivery_of(stack, order_id)).state == state

    await eventually(reached, WAIT)


async def charges(stack: Stack, order_id: int) -> tuple[int, int]:
    """(store payments, sandbox charges) under the order's idempotency key."""
    key = f"fod-{order_id}"
    async with stack.db.session() as session:
        payments = await session.scalar(select(func.count()).where(Payment.idempotency_key == key))
        sandbox = await session.scalar(select(func.count()).where(SandboxCharge.idempotency_key == key))
    return int(payments or 0), int(sandbox or 0)


async def handled_so_far(stack: Stack, car: SimulatedCar) -> None:
    """Waits until the cloud has handled everything the car sent so far: one car's uplinks are handled in
    order, so a marker sent last (a connection message naming another network) closes the queue."""
    topic = car.topics.up(car.vin, kinds.UP_CONNECTION)
    marker = Connection(online=True, network=Network.WIFI, at=car.now())
    await car.publish_raw(topic, marker.model_dump_json().encode())

    async def marked() -> bool:
        async with stack.db.session() as session:
            network = await session.scalar(select(Vehicle.network).where(Vehicle.vin == car.vin))
        return network == Network.WIFI.value

    await eventually(marked, WAIT)


@contextlib.asynccontextmanager
async def delivery_reports(stack: Stack) -> AsyncIterator[list[tuple[int, str]]]:
    """The Taycan's delivery reports, (delivery, state), as the cloud's account receives them."""
    seen: list[tuple[int, str]] = []
    client = make_client(
        BrokerAddress.parse(stack.settings.mqtt_url),
        username=GATEWAY_USER,
        password=gateway_password(SECRET),
        identifier=f"test-{uuid.uuid4().hex[:10]}",
    )
    async with client:
        await client.subscribe(
            kinds.Topics(stack.settings.mqtt_topic_prefix).up(TAYCAN, kinds.UP_DELIVERIES), qos=1
        )

        async def listen() -> None:
            async for message in client.messages:
                report = DeliveryReport.model_validate_json(bytes(message.payload))  # type: ignore[arg-type]
                seen.append((report.delivery, report.state))

        listener = asyncio.create_task(listen())
        try:
            yield seen
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await listener


async def taycan_driving(stack: Stack) -> SimulatedCar:
    """The Taycan unplugged and on the road: it downloads, but installs nothing while someone drives."""
    car = stack.fleet[TAYCAN]
    await car.set_charging_cable(False)
    await car.drive()
    return car


# --- the tests ---------------------------------------------------------------------------------------------


async def test_a_permanent_function_downloads_activates_after_the_driver_left_and_is_charged_once(
    stack: Stack,
) -> None:
    car = await taycan_driving(stack)
    async with owner_of_taycan(stack) as owner:
        placed = await order(owner, "adaptive-cruise", "LIFE")
    await eventually(lambda: len(car.messages) == 1, WAIT)  # REQ: FOD-4 — the message after the download
    assert (car.messages[0].kind, car.messages[0].subject) == ("function", "adaptive-cruise")
    await delivery_in(stack, placed["id"], "downloaded")
    assert car.active_functions == {}
    assert await charges(stack, placed["id"]) == (0, 0)  # REQ: FOD-2 — nothing charged before activation
    await car.park_and_leave()
    delivery = await delivery_of(stack, placed["id"])
    assert car.active_functions == {"adaptive-cruise": delivery.id}

    async def paid() -> bool:
        return (await order_row(stack, placed["id"])).state == "active"

    await eventually(paid, WAIT)
    assert await charges(stack, placed["id"]) == (1, 1)
    row = await order_row(stack, placed["id"])
    async with stack.db.session() as session:
        contract = await session.get(Contract, row.contract_id)
    assert contract is not None and (contract.kind, contract.term) == ("function", "LIFE")
    await eventually(lambda: "adaptive-cruise" in car.entitlements.held, WAIT)
    assert car.entitlements.held["adaptive-cruise"].kind == "function"
    await eventually(lambda: delivery.id not in car.deliveries.held, WAIT)  # out of the set
    # The activation reported again (at-least-once delivery) charges nothing more.
    again = DeliveryReport(delivery=delivery.id, state="activated", at=car.now())
    await car.publish_raw(car.topics.up(TAYCAN, kinds.UP_DELIVERIES), again.model_dump_json().encode())
    await handled_so_far(stack, car)
    assert await charges(stack, placed["id"]) == (1, 1)
    assert car.refused == []


async def test_an_order_the_car_cannot_download_in_28_days_is_cancelled_and_not_charged(stack: Stack) -> None:
    car = await taycan_driving(stack)
    await car.set_privacy_mode(True)
    async with owner_of_taycan(stack) as owner:
        placed = await order(owner, "lane-assist", "LIFE")
    delivery = await delivery_of(stack, placed["id"])
    await eventually(lambda: delivery.id in car.deliveries.held, WAIT)
    await car.pass_time(60)
    await car.park_and_leave()
    assert car.messages == [] and car.active_functions == {}  # REQ: FOD-3 — privacy mode: no download
    assert (await delivery_of(stack, placed["id"])).state == "offered"
    clock.advance(days=29)
    await functions.run_due(stack.platform)
    row = await order_row(stack, placed["id"])
    assert (row.state, row.reason) == ("cancelled", "download_window_passed")
    assert (await delivery_of(stack, placed["id"])).state == "cancelled"
    assert await charges(stack, placed["id"]) == (0, 0)
    async with stack.db.session() as session:
        owner_id = await session.scalar(select(Account.id).where(Account.email == world.OWNER))
        mails = await session.scalar(
            select(func.count()).where(
                OutboxEmail.template == "function_order_cancelled", OutboxEmail.to_address == world.OWNER
            )
        )
        notices = await session.scalar(
            select(func.count()).where(
                Notification.kind == "function_order_cancelled", Notification.account_id == owner_id
            )
        )
    assert (mails, notices) == (1, 1)
    await eventually(lambda: delivery.id not in car.deliveries.held, WAIT)  # the car hears of it too


async def test_an_interrupted_download_resumes_and_a_tampered_package_is_reported(
    stack: Stack, tmp_path: Path
) -> None:
    car = await taycan_driving(stack)
    car.download_limit = 100_000  # the car loses its link after 100 kB
    async with owner_of_taycan(stack) as owner:
        resumed = await order(owner, "lane-assist", "LIFE")

        async def interrupted() -> bool:
            row = await delivery_of(stack, resumed["id"])
            return (row.state, row.have) == ("downloading", 100_000) and (row.length or 0) > 100_000

        await eventually(interrupted, WAIT)
        assert car.messages == []
        car.download_limit = None
        await car.pass_time(1)  # the next chance: it resumes
        await delivery_in(stack, resumed["id"], "downloaded")
        assert [m.subject for m in car.messages] == ["lane-assist"]
        # A damaged copy of another function's package on the cloud's disk (the same name and content moved
        # to this test's folder, so no other test's copy is touched).
        settings = stack.settings.model_copy(update={"package_dir": str(tmp_path / "packages")})
        name = functions.package_name("power-boost")
        async with stack.db.transaction() as session:
            original = await session.scalar(select(PackageFile).where(PackageFile.name == name))
            assert original is not None
            data = await asyncio.to_thread(Path(original.stored_path).read_bytes)
            added = await packages.add_package(
                session, settings, name, data, {"function": "power-boost", "copy": 1}
            )
        stored = Path(added.file.stored_path)
        damaged = bytearray(data)
        damaged[1000] ^= 0xFF
        await asyncio.to_thread(stored.write_bytes, bytes(damaged))
        tampered = await order(owner, "power-boost", "LIFE")

    async def refused() -> bool:
        row = await delivery_of(stack, tampered["id"])
        return (row.state, row.reason) == ("failed", "hash_mismatch")

    await eventually(refused, WAIT)
    assert [m.subject for m in car.messages] == ["lane-assist"]  # no message for a refused package
    assert "power-boost" not in car.active_functions


async def test_a_pending_software_update_installs_before_the_function(stack: Stack, tmp_path: Path) -> None:
    car = await taycan_driving(stack)
    settings = stack.settings.model_copy(update={"package_dir": str(tmp_path / "packages")})
    async with owner_of_taycan(stack) as owner:
        consent = await owner.put(
            f"/api/v1/vehicles/{TAYCAN}/software-updates/consent", json={"enabled": True}
        )
        assert consent.status_code == 200, consent.text
        async with stack.db.transaction() as session:
            await packages.add_package(session, settings, "taycan-2-0-0", b"new software" * 8000)
            account = await session.scalar(select(Account).where(Account.email == world.OPERATOR))
            assert account is not None
            await updates.create_campaign(
                session,
                account,
                updates.CampaignInput(
                    name="Taycan 2.0",
                    package="taycan-2-0-0",
                    model_key="taycan-1",
                    variants=[],
                    version_from="1.0.0",
                    version_below="2.0.0",
                    to_version="2.0.0",
                    waves=[100],
                ),
            )
        assert await updates.run_rollouts(stack.platform) == 1
        placed = await order(owner, "adaptive-cruise", "LIFE")
    await eventually(lambda: len(car.messages) == 2, WAIT)  # REQ: OTA-3 — the update shows once downloaded
    assert sorted(m.kind for m in car.messages) == ["function", "update"]
    function = await delivery_of(stack, placed["id"])
    async with stack.db.session() as session:
        update = await session.scalar(select(Delivery).where(Delivery.kind == "update"))
    assert update is not None
    await delivery_in(stack, placed["id"], "downloaded")
    async with delivery_reports(stack) as reports:
        await car.park_and_leave()
        await eventually(lambda: len(reports) == 4, WAIT)
    assert reports == [
        (update.id, "installing"),
        (update.id, "installed"),
        (function.id, "installing"),
        (function.id, "activated"),
    ]
    assert car.software_version == "2.0.0"

    async def cloud_knows() -> bool:
        async with stack.db.session() as session:
            version = await session.scalar(select(Vehicle.software_version).where(Vehicle.vin == TAYCAN))
        return version == "2.0.0" and (await order_row(stack, placed["id"])).state == "active"

    await eventually(cloud_knows, WAIT)


async def test_a_failed_activation_recovers_after_the_recovery_routine(stack: Stack) -> None:
    car = await taycan_driving(stack)
    async with owner_of_taycan(stack) as owner:
        placed = await order(owner, "power-boost", "LIFE")
    await delivery_in(stack, placed["id"], "downloaded")
    car.fail_next_install = "activation_error"
    await car.park_and_leave()

    async def failed() -> bool:
        row = await delivery_of(stack, placed["id"])
        return (row.state, row.reason) == ("failed", "activation_error")

    await eventually(failed, WAIT)
    await car.restart()  # a restart alone does not recover (FOD-8)
    await car.pass_time(599)
    await car.restart()  # nor one before the car rested about 10 minutes powered off, left and locked
    assert car.active_functions == {} and len(car.messages) == 1
    await car.pass_time(1)
    await car.restart()
    # REQ: FOD-8 — it downloads again (the message reappears) and activates at once: the car is parked.
    assert [m.subject for m in car.messages] == ["power-boost", "power-boost"]
    assert "power-boost" in car.active_functions

    async def paid() -> bool:
        return (await order_row(stack, placed["id"])).state == "active"

    await eventually(paid, WAIT)
    assert await charges(stack, placed["id"]) == (1, 1)
    assert (await delivery_of(stack, placed["id"])).failures == 1


async def test_a_cancelled_monthly_function_is_switched_off_ten_minutes_after_locking(stack: Stack) -> None:
    car = stack.fleet[TAYCAN]
    await car.set_charging_cable(False)  # parked, left and locked: it activates right after the download
    async with owner_of_taycan(stack) as owner:
        placed = await order(owner, "lane-assist", "P1M")
        delivery = await delivery_of(stack, placed["id"])
        await eventually(lambda: car.active_functions == {"lane-assist": delivery.id}, WAIT)

        async def paid() -> bool:
            return (await order_row(stack, placed["id"])).state == "active"

        await eventually(paid, WAIT)
        await eventually(lambda: "lane-assist" in car.entitlements.held, WAIT)
        contract_id = (await order_row(stack, placed["id"])).contract_id
        cancelled = await owner.post(f"/api/v1/store/contracts/{contract_id}/cancellation")
        assert cancelled.status_code == 200, cancelled.text
    await car.pass_time(600)
    assert car.active_functions == {"lane-assist": delivery.id}  # cancelled, but paid until its end
    clock.advance(days=32)
    await scheduler.run_once(stack.platform)
    await eventually(lambda: "lane-assist" not in car.entitlements.held, WAIT)
    await car.pass_time(599)
    assert car.active_functions == {"lane-assist": delivery.id}
    await car.pass_time(1)  # REQ: FOD-7 — about 10 minutes locked with charging unplugged
    assert car.active_functions == {}
    await delivery_in(stack, placed["id"], "deactivated")
    assert (await order_row(stack, placed["id"])).ended_at is not None
