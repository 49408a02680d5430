"""The simulated car with three places where a test can stop it in the middle of an operation.

The car stays the real simulator (`carlink.sim.car.SimulatedCar`: its own broker account, signature and
replay checks, its record of what it executed); the subclass only waits where the test says:

- a command: after the car has answered `delivered`, before it executes (`hold_next_command`);
- an alarm: the cloud's acknowledgements are lost on the way while `lose_alarm_acks` is set, so the car
  keeps the alarm pending and re-sends it, as after a crash between the cloud's commit and its answer;
- a package download: the HTTP body stops after `hold_download_after` bytes until released
  (`HeldDownloads`, an httpx transport), with a small receive buffer so that the service's end of the
  stream cannot sit whole in the kernel's buffers when the service dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx

from carlink.protocol import topics as kinds
from carlink.protocol.messages import Ack, AckState
from carlink.sim.car import SimulatedCar

HOLD_LIMIT = 60.0  # seconds any hold waits for its release before the car goes on by itself
RECEIVE_BUFFER = 16 * 1024


class Gate:
    """Armed by the test; the car stops at it once, says so, and waits until the test releases it."""

    def __init__(self) -> None:
        self.armed = False
        self.reached = asyncio.Event()
        self.released = asyncio.Event()

    def arm(self) -> None:
        self.armed = True
        self.reached.clear()
        self.released.clear()

    async def stop_here(self) -> None:
        self.armed = False
        self.reached.set()
        with contextlib.suppress(TimeoutError):  # a test that forgot to release must not hang the car
            await asyncio.wait_for(self.released.wait(), HOLD_LIMIT)

    async def wait_reached(self, timeout: float = 20.0) -> None:
        await asyncio.wait_for(self.reached.wait(), timeout)

    def release(self) -> None:
        self.released.set()


class HeldDownloads(httpx.AsyncBaseTransport):
    """Real HTTP over loopback; the response body of a package file can be held part-way."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(
            socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)]
        )
        self.gate = Gate()
        self.after_bytes = 0
        self.ranges: list[str] = []  # the Range header of every package request, "" for none
        self.open_streams = 0  # held package bodies not closed yet

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if "/packages/files/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("Range", ""))
        if not self.gate.armed:
            return response
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_HeldStream(response, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _HeldStream(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, owner: HeldDownloads) -> None:
        self.response = response
        self.owner = owner
        self.gate = owner.gate
        self.after_bytes = owner.after_bytes
        owner.open_streams += 1
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        passed = 0
        async for chunk in self.response.stream:  # type: ignore[union-attr]
            if self.gate.armed and passed + len(chunk) >= self.after_bytes:
                cut = max(0, self.after_bytes - passed)
                if cut:
                    yield chunk[:cut]
                await self.gate.stop_here()
                chunk = chunk[cut:]
            passed += len(chunk)
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner.open_streams -= 1
        await self.response.aclose()


class HoldableCar(SimulatedCar):
    def __init__(self, *args: Any, downloads: HeldDownloads, **kwargs: Any) -> None:
        # PackageClient uses a given client as it is: the client carries the package URL.
        http = httpx.AsyncClient(base_url=kwargs["package_url"], transport=downloads, timeout=30)
        super().__init__(*args, package_http=http, **kwargs)
        self.downloads = downloads
        self.command_gate = Gate()
        self.alarm_ack_gate = Gate()
        self.lose_alarm_acks = False

    def executions_of(self, command_id: str) -> int:
        return sum(1 for command in self.executed if command.id == command_id)

    async def _publish(self, kind: str, message: Any, *, retain: bool = False) -> None:
        await super()._publish(kind, message, retain=retain)
        if (
            self.command_gate.armed
            and kind == kinds.UP_ACK
            and isinstance(message, Ack)
            and message.state is AckState.DELIVERED
        ):
            await self.command_gate.stop_here()  # delivered, not yet executed

    async def _on_message(self, topic: str, payload: Any) -> None:
        if self.lose_alarm_acks and topic == self.topics.down(self.vin, kinds.DOWN_ALARM_ACK):
            self.alarm_ack_gate.reached.set()  # stored and answered by the cloud; the answer is lost
            return
        await super()._on_message(topic, payload)
