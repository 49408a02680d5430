"""The service processes of the fault suite: `carlink serve` with two test-only seams, forked from

    python -m tests.faults.held_service      # one per test worker; JSON requests on stdin (ForkServer)

It builds the app exactly as `carlink serve` does (`create_app` + `carlink.server.server`, all roles or
`roles`), on a real TCP port, so SIGKILL really kills the service. The seams are the two things the suite
may fake (tests/faults/control.py): the clock, read from the control folder, and the card provider, the
sandbox behind our own `PaymentGateway` interface, wrapped so that one charge can be held after the provider
booked it. Nothing else differs from production.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from carlink.app import create_app
from carlink.clock import clock
from carlink.db.base import Database
from carlink.platform import ROLES, Platform
from carlink.server import server
from carlink.settings import Settings
from carlink.store.payments import CardInput, CardToken, ChargeResult, PaymentGateway, SandboxGateway
from tests.faults import control
from tests.faults.ports import quiet_port

HOLD_LIMIT = 120.0  # seconds a held charge waits for its release before it goes on by itself
POLL = 0.05
SEND_BUFFER = 16 * 1024

log = logging.getLogger("carlink.faults")


class HeldGateway:
    """The sandbox, except that a charge named in the control folder waits after the provider booked it."""

    def __init__(self, inner: PaymentGateway, folder: Path) -> None:
        self.inner = inner
        self.folder = folder

    async def tokenise(self, card: CardInput) -> CardToken:
        return await self.inner.tokenise(card)

    async def charge(
        self, *, token: str, amount_minor: int, currency: str, idempotency_key: str
    ) -> ChargeResult:
        result = await self.inner.charge(
            token=token, amount_minor=amount_minor, currency=currency, idempotency_key=idempotency_key
        )
        prefix = await asyncio.to_thread(control.read, self.folder, control.HOLD_CHARGE)
        if prefix is not None and idempotency_key.startswith(prefix):
            # Once: the hold is taken away before the test hears of it, so a retry after recovery runs on.
            (self.folder / control.HOLD_CHARGE).unlink(missing_ok=True)
            control.write(self.folder, control.CHARGE_HELD, idempotency_key)
            log.warning("charge %s booked and held", idempotency_key)
            await _wait_for(self.folder / control.RELEASE_CHARGE)
        return result

    async def answer_challenge(self, charge_id: str, answer: str) -> ChargeResult:
        return await self.inner.answer_challenge(charge_id, answer)

    async def find_charge(self, idempotency_key: str) -> ChargeResult | None:
        return await self.inner.find_charge(idempotency_key)

    async def refund(self, *, charge_id: str, amount_minor: int, idempotency_key: str) -> str:
        refund = await self.inner.refund(
            charge_id=charge_id, amount_minor=amount_minor, idempotency_key=idempotency_key
        )
        return str(refund)


async def _wait_for(path: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HOLD_LIMIT
    while not await asyncio.to_thread(path.exists) and loop.time() < deadline:
        await asyncio.sleep(POLL)


async def follow_clock(folder: Path) -> None:
    """The test moves this process's clock by rewriting the offset file."""
    while True:
        clock.offset = dt.timedelta(seconds=control.clock_offset(folder))
        await asyncio.sleep(POLL)


async def serve(config: dict[str, Any], listener: socket.socket) -> None:
    folder = Path(config["control"])
    port = listener.getsockname()[1]
    clock.offset = dt.timedelta(seconds=control.clock_offset(folder))
    settings = Settings(
        database_url=config["database_url"],
        mqtt_url=config["mqtt_url"],
        mqtt_topic_prefix=config["prefix"],
        base_url=f"http://127.0.0.1:{port}",
        secret_key=config["secret"],
        smtp_url=config["smtp_url"],
        package_dir=config["package_dir"],
        log_level="WARNING",
    )
    db = Database(settings.database_url)
    roles = frozenset(config.get("roles") or ROLES)
    platform = Platform(
        settings=settings, db=db, roles=roles, gateway=HeldGateway(SandboxGateway(db), folder)
    )
    app = create_app(settings, roles=roles, migrate=False, platform=platform)
    clock_task = asyncio.create_task(follow_clock(folder))
    try:
        await server(app, host="127.0.0.1", port=port).serve(sockets=[listener])
    finally:
        clock_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock_task


# --- the fork server ---------------------------------------------------------------------------------------


class ForkServer:
    """Holds the listening sockets and forks a service per `start`: the application is imported once per
    test worker, and a start or a restart after a kill costs a fork, not seconds of imports.

    The listening socket of a world stays here across kills (as with systemd's socket activation): the port
    remains taken while the service is dead, connections wait in its backlog, and the car's package URL
    stays valid. Its small send buffer (inherited by accepted connections) keeps most of a package body in
    the service process, not in the kernel, so a kill really cuts a download short."""

    def __init__(self) -> None:
        self.listeners: dict[int, socket.socket] = {}
        # Children are reaped by the kernel: the test sees one gone when its pid no longer exists.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    def listen(self) -> dict[str, Any]:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        listener.bind(("127.0.0.1", quiet_port()))
        listener.listen(128)
        port = listener.getsockname()[1]
        self.listeners[port] = listener
        return {"port": port}

    def close(self, port: int) -> dict[str, Any]:
        listener = self.listeners.pop(port, None)
        if listener is not None:
            listener.close()
        return {"closed": port}

    def start(self, port: int, config: dict[str, Any], log: str) -> dict[str, Any]:
        pid = os.fork()
        if pid:
            return {"pid": pid}
        try:  # the child: the service, until it is killed
            _become_service(log)
            for other, listener in self.listeners.items():
                if other != port:
                    listener.close()
            asyncio.run(serve(config, self.listeners[port]))
        except BaseException:
            logging.getLogger("carlink.faults").exception("the service ended")
        finally:
            os._exit(0)

    def run(self) -> None:
        for line in sys.stdin:
            request = json.loads(line)
            operation = request.pop("op")
            answer = getattr(self, operation)(**request)
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


def _become_service(log: str) -> None:
    """Its own output file, no stdin, and death with the fork server (which dies with the test worker)."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ForkServer().run()


if __name__ == "__main__":
    main()
