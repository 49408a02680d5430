"""Entitlements reach the car over the real brokers (docs/protocol.md, 'Entitlements'): a signed, retained
set that the car holds, applies at its next restart while online (STO-7) and reports, and a WiFi data
package without which hotspot sharing stays off (CON-3)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import aiomqtt

from carlink.gateway.credentials import GATEWAY_USER, gateway_password
from carlink.protocol import topics as kinds
from carlink.protocol.messages import Entitlement, EntitlementReport, Entitlements
from carlink.protocol.transport import BrokerAddress, make_client
from tests.support.stack import SECRET, TAYCAN, Stack, eventually

YEAR = dt.timedelta(days=365)


def signed_set(stack: Stack, revision: int, *entitlements: Entitlement) -> bytes:
    message = Entitlements(
        vin=TAYCAN,
        revision=revision,
        issued_at=dt.datetime.now(dt.UTC),
        entitlements=list(entitlements),
        kid="set-by-the-signer",
    )
    return stack.platform.signer.sign(message).model_dump_json().encode()


async def publish_set(stack: Stack, payload: bytes) -> None:
    link = stack.platform.link
    assert link is not None
    topic = link.topics.down(TAYCAN, kinds.DOWN_ENTITLEMENTS)
    assert await link.publish(topic, payload, retain=True)


@contextlib.asynccontextmanager
async def car_reports(stack: Stack) -> AsyncIterator[list[EntitlementReport]]:
    """The Taycan's entitlement reports as the cloud's account receives them from the broker."""
    reports: list[EntitlementReport] = []
    client = make_client(
        BrokerAddress.parse(stack.settings.mqtt_url),
        username=GATEWAY_USER,
        password=gateway_password(SECRET),
        identifier=f"test-{uuid.uuid4().hex[:10]}",
    )
    async with client:
        topic = kinds.Topics(stack.settings.mqtt_topic_prefix).up(TAYCAN, kinds.UP_ENTITLEMENTS)
        await client.subscribe(topic, qos=1)

        async def listen() -> None:
            async for message in client.messages:
                reports.append(EntitlementReport.model_validate_json(bytes(message.payload)))  # type: ignore[arg-type]

        listener = asyncio.create_task(listen())
        try:
            yield reports
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await listener


def summary(report: EntitlementReport) -> tuple[int, list[str]]:
    return report.revision, report.services


async def test_a_bought_service_appears_in_the_car_at_its_next_restart_and_the_car_reports_it(
    stack: Stack,
) -> None:
    car = stack.fleet[TAYCAN]
    until = dt.datetime.now(dt.UTC) + YEAR
    async with car_reports(stack) as reports:
        await publish_set(stack, signed_set(stack, 1, Entitlement(service="navigation-plus", until=until)))
        await eventually(lambda: car.entitlements.revision == 1)
        assert set(car.entitlements.pending) == {"navigation-plus"}
        assert car.entitlements.applied == {}
        await car.restart()
        assert set(car.entitlements.applied) == {"navigation-plus"}
        await eventually(lambda: len(reports) == 1)
        assert summary(reports[0]) == (1, ["navigation-plus"])
        # After a reconnect the car gets the retained set again, holds it silently and reports what it offers.
        await car.stop()
        await car.start()
        await car.wait_connected()
        await eventually(lambda: len(reports) == 2)
        assert summary(reports[1]) == (1, ["navigation-plus"])
    assert car.entitlements.refused == []
    assert set(car.entitlements.applied) == {"navigation-plus"}


async def test_a_car_that_was_off_gets_the_retained_set_and_needs_a_data_connection_at_restart(
    stack: Stack,
) -> None:
    car = stack.fleet[TAYCAN]
    until = dt.datetime.now(dt.UTC) + YEAR
    navigation = Entitlement(service="navigation-plus", until=until)
    package = Entitlement(service="wifi-2gb", kind="data_package", until=until, volume_mb=2048)
    await car.stop()
    await publish_set(stack, signed_set(stack, 1, navigation, package))
    await car.start()
    await car.wait_connected()
    await eventually(lambda: car.entitlements.revision == 1)
    assert set(car.entitlements.pending) == {"navigation-plus", "wifi-2gb"}
    await car.set_data_connection(False)
    await car.restart()
    assert car.entitlements.applied == {}
    await car.set_data_connection(True)  # data on again is no restart
    await car.wait_connected()
    assert car.entitlements.applied == {}
    assert await car.set_hotspot_sharing(True) is False
    async with car_reports(stack) as reports:
        await car.restart()
        assert set(car.entitlements.applied) == {"navigation-plus", "wifi-2gb"}
        assert await car.set_hotspot_sharing(True) is True
        # The package is not renewed: the next set leaves it out and sharing ends at once (CON-3).
        await publish_set(stack, signed_set(stack, 2, navigation))
        await eventually(lambda: car.state.hotspot_sharing is False)
        await eventually(lambda: len(reports) == 2)
    assert [summary(report) for report in reports] == [
        (1, ["navigation-plus", "wifi-2gb"]),
        (2, ["navigation-plus"]),
    ]
    assert car.entitlements.refused == []
