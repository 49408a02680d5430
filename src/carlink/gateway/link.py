"""The cloud's connection to the broker: reconnects forever, publishes downlinks, feeds uplinks to workers.

Uplinks are spread over worker queues by VIN, so one car's messages are handled in order while many cars
are handled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from carlink.gateway.credentials import GATEWAY_USER, gateway_password
from carlink.protocol.topics import Topics
from carlink.protocol.transport import BrokerAddress, make_client
from carlink.settings import Settings

log = logging.getLogger("carlink.gateway")
MAX_IN_FLIGHT = 1000

UplinkHandler = Callable[[str, str, bytes], Awaitable[None]]


class CloudLink:
    def __init__(
        self,
        settings: Settings,
        *,
        handler: UplinkHandler | None = None,
        event_sink: Callable[[int, dict[str, Any]], None] | None = None,
        workers: int = 8,
        name: str = "cloud",
    ) -> None:
        self.settings = settings
        self.address = BrokerAddress.parse(settings.mqtt_url)
        self.topics = Topics(settings.mqtt_topic_prefix)
        self.handler = handler
        self.event_sink = event_sink
        self.connected = asyncio.Event()
        self.name = name
        self._client: aiomqtt.Client | None = None
        self._queues: list[asyncio.Queue[tuple[str, str, bytes]]] = [
            asyncio.Queue(10_000) for _ in range(workers)
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name=f"{self.name}-mqtt"))
        if self.handler is not None:
            for index, queue in enumerate(self._queues):
                self._tasks.append(asyncio.create_task(self._work(queue), name=f"{self.name}-uplink-{index}"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            # Bounded: aiomqtt waits for the broker to confirm the disconnect, which a dead link never does.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        self._tasks.clear()

    @property
    def running(self) -> bool:
        """Started, not stopped, and neither the broker loop nor any uplink worker has ended: a task that
        ended on an uncaught error would leave its share of the cars unheard without anyone noticing."""
        return bool(self._tasks) and all(not task.done() for task in self._tasks)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.connected.wait(), timeout)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> bool:
        """False when the broker is unreachable right now; callers keep the work and retry (jobs do)."""
        client = self._client
        if client is None or not self.connected.is_set():
            return False
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=5)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False
        return True

    def _make_client(self) -> aiomqtt.Client:
        username = self.address.username or GATEWAY_USER
        password = self.address.password or gateway_password(self.settings.secret_key)
        group = self.settings.mqtt_shared_group
        client = make_client(
            self.address,
            username=username,
            password=password,
            identifier=f"carlink-{self.name}-{uuid.uuid4().hex[:10]}",
            mqtt5=bool(group),
            max_inflight_messages=MAX_IN_FLIGHT,
        )
        # Publishing a fleet's delivery sets keeps hundreds of publishes in flight: that is the design, not
        # a backlog worth a warning per message (aiomqtt warns above 10 by default).
        client.pending_calls_threshold = MAX_IN_FLIGHT
        return client

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                async with self._make_client() as client:
                    self._client = client
                    if self.handler is not None:
                        topic = self.topics.all_uplinks(self.settings.mqtt_shared_group)
                        await client.subscribe(topic, qos=1)
                    if self.event_sink is not None:
                        await client.subscribe(self.topics.events(), qos=0)
                    self.connected.set()
                    delay = 0.2
                    log.info("%s connected to mqtt://%s:%s", self.name, self.address.host, self.address.port)
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                if not self._stopping:
                    log.warning("%s lost the broker (%s); reconnecting in %.1f s", self.name, exc, delay)
            finally:
                self.connected.clear()
                self._client = None
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _dispatch(self, topic: str, payload: object) -> None:
        if topic == self.topics.events() and self.event_sink is not None:
            self._deliver_event(payload)
            return
        parsed = self.topics.parse_uplink(topic)
        if parsed is None or not isinstance(payload, bytes | bytearray):
            log.warning("ignored message on %s", topic)
            return
        vin, kind = parsed
        queue = self._queues[zlib.crc32(vin.encode()) % len(self._queues)]
        await queue.put((vin, kind, bytes(payload)))

    def _deliver_event(self, payload: object) -> None:
        assert self.event_sink is not None
        try:
            data = json.loads(payload) if isinstance(payload, bytes | bytearray) else {}
            self.event_sink(int(data["vehicle_id"]), dict(data["event"]))
        except (ValueError, TypeError, KeyError):
            log.warning("ignored malformed internal event")

    async def _work(self, queue: asyncio.Queue[tuple[str, str, bytes]]) -> None:
        assert self.handler is not None
        while True:
            vin, kind, payload = await queue.get()
            try:
                await self.handler(vin, kind, payload)
            except Exception:  # one bad message must never stop the gateway
                log.exception("uplink %s from %s failed", kind, vin)
