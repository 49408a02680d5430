"""One scenario's world: a fresh database on the worker's own PostgreSQL, our own Mosquitto, the service as
a child process, one simulated car (the Taycan) in this process, and an SMTP sink for the mails.

The three faults of issue 9 are methods here; each takes a `meanwhile` step, which runs while the fault
lasts (the service dead, the broker or the database down): there the scenario releases its hold, so the
operation goes on into the fault instead of around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from carlink.db.base import Database
from carlink.demo import world as demo
from carlink.demo.mailbox import MailSink
from carlink.garage.models import Vehicle
from carlink.gateway.mosquitto import MosquittoProcess
from carlink.gateway.provisioning import fleet_manifest
from carlink.notify.models import OutboxEmail
from carlink.settings import Settings
from carlink.sim.fleet import Manifest
from tests.faults import control
from tests.faults.car import HeldDownloads, HoldableCar
from tests.faults.cluster import PostgresCluster
from tests.faults.ports import quiet_port
from tests.faults.service import ForkServer, ServiceProcess
from tests.support.stack import SECRET, TAYCAN, oidc_login

ALARM_RESEND_SECONDS = 1.0  # the car's re-send interval for unanswered alarms (5 s on the road)
Meanwhile = Callable[[], Awaitable[None]]


async def nothing() -> None:
    return None


async def within(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Polls `check` until true; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.1)


@dataclass
class FaultWorld:
    cluster: PostgresCluster
    database_url: str
    broker: MosquittoProcess
    service: ServiceProcess
    sink: MailSink
    folder: Path
    settings: Settings
    db: Database
    car: HoldableCar
    downloads: HeldDownloads
    tokens: dict[str, str] = field(default_factory=dict)
    clock_offset: float = 0.0

    # --- the faults -------------------------------------------------------------------------------------

    async def inject(self, fault: str, meanwhile: Meanwhile = nothing) -> None:
        if fault == "kill -9 service":
            await self.service.kill()
            await meanwhile()
            await self.service.start()
        elif fault == "restart broker":
            await asyncio.to_thread(self.broker.stop)
            await meanwhile()
            await asyncio.to_thread(self.broker.start)
        elif fault == "restart PostgreSQL":
            await asyncio.to_thread(self.cluster.stop)
            await meanwhile()
            await asyncio.to_thread(self.cluster.start)
        else:
            raise ValueError(fault)

    def move_clock(self, seconds: float) -> None:
        """The service's clock and the car's move on together (claims, stale orders, re-send back-off)."""
        self.clock_offset += seconds
        control.write(self.folder, control.CLOCK, str(self.clock_offset))
        self.car.clock_offset += dt.timedelta(seconds=seconds)

    # --- the people -------------------------------------------------------------------------------------

    async def as_user(self, email: str) -> httpx.AsyncClient:
        if email not in self.tokens:
            async with httpx.AsyncClient(base_url=self.service.base_url, timeout=30) as http:
                self.tokens[email] = (await oidc_login(http, email, demo.PASSWORD))["access_token"]
        return httpx.AsyncClient(
            base_url=self.service.base_url,
            headers={"Authorization": f"Bearer {self.tokens[email]}"},
            timeout=30,
        )

    # --- mails ------------------------------------------------------------------------------------------

    async def mails_delivered(self, timeout: float = 20.0) -> None:
        """The outbox has nothing left to send."""

        async def empty() -> bool:
            async with self.db.session() as session:
                waiting = await session.scalar(
                    select(func.count()).select_from(OutboxEmail).where(OutboxEmail.state != "sent")
                )
            return not waiting

        await within(empty, timeout, "every queued mail sent")

    async def mails_for(self, dedupe_key: str) -> tuple[int, int]:
        """(outbox rows, mails the SMTP server received) for one event."""
        async with self.db.session() as session:
            ids = list(
                await session.scalars(select(OutboxEmail.id).where(OutboxEmail.dedupe_key == dedupe_key))
            )
        received = sum(
            1 for mail in self.sink.received() for row in ids if f"<outbox-{row}@" in mail.message_id
        )
        return len(ids), received

    def no_mail_twice(self) -> bool:
        ids = [mail.message_id for mail in self.sink.received()]
        return len(ids) == len(set(ids))


async def prepare_template(database_url: str) -> None:
    """The demo world and everything the service makes at its first start (keys, catalogue, function
    packages), made once per worker in the template: every scenario's service then starts in a second."""
    from carlink.catalog.seed import ensure_catalogue
    from carlink.fod import functions
    from carlink.fod.service import ensure_keys
    from carlink.help.service import ensure_help_articles
    from carlink.identity.tokens import TokenIssuer
    from carlink.partners.seed import ensure_countries
    from carlink.privacy.seed import ensure_policy
    from carlink.remote.service import CommandSigner

    settings = Settings(database_url=database_url, secret_key=SECRET, package_dir=str(package_dir()))
    db = Database(database_url)
    try:
        async with db.transaction() as session:
            await demo.seed(session)
            await TokenIssuer(settings).load(session)
            await CommandSigner().load(session)
            await ensure_catalogue(session)
            await ensure_countries(session)
            await ensure_keys(session)
            await functions.ensure_function_packages(session, settings)
            await ensure_policy(session)
            await ensure_help_articles(session)
    finally:
        await db.dispose()


def package_dir() -> Path:
    """The template's package files, shared by the worker's databases (which all name the same files)."""
    folder = Path(tempfile.gettempdir()) / f"carlink-faults-packages-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    return folder


@contextlib.asynccontextmanager
async def fault_world(
    cluster: PostgresCluster, forks: ForkServer, workdir: Path
) -> AsyncIterator[FaultWorld]:
    cleanup = contextlib.AsyncExitStack()
    service = ServiceProcess(forks, workdir / "service.log")
    cleanup.push_async_callback(service.stop)
    database_url = ""
    db: Database | None = None
    try:
        database_url = await cluster.new_database(prepare_template)
        db = Database(database_url)
        async with db.session() as session:
            vins = list(await session.scalars(select(Vehicle.vin)))
        prefix = f"f{secrets.token_hex(3)}"
        broker = MosquittoProcess(
            workdir / "mosquitto", secret=SECRET, prefix=prefix, vins=vins, port=quiet_port()
        )
        broker.start()
        cleanup.callback(broker.stop)
        sink = MailSink(workdir / "mail")
        await sink.start()
        cleanup.push_async_callback(sink.stop)
        folder = workdir / "control"
        folder.mkdir()
        config: dict[str, Any] = {
            "database_url": database_url,
            "mqtt_url": broker.url,
            "prefix": prefix,
            "secret": SECRET,
            "smtp_url": sink.url,
            "package_dir": str(package_dir()),
            "control": str(folder),
        }
        await service.start(config)
        settings = Settings(
            database_url=database_url,
            mqtt_url=broker.url,
            mqtt_topic_prefix=prefix,
            base_url=service.base_url,
            secret_key=SECRET,
        )
        async with db.session() as session:
            manifest = Manifest.from_json(
                await fleet_manifest(session, settings, broker_url=broker.url, vins=[TAYCAN])
            )
        downloads = HeldDownloads()
        car = HoldableCar(
            manifest.cars[0],
            broker_url=manifest.broker_url,
            prefix=manifest.prefix,
            trusted_keys=manifest.trusted_keys,
            package_url=manifest.api_url,
            trusted_root=manifest.trusted_root,
            package_state_dir=workdir / "car",
            alarm_resend_interval=ALARM_RESEND_SECONDS,
            downloads=downloads,
        )
        cleanup.push_async_callback(downloads.aclose)
        await car.start()
        cleanup.push_async_callback(car.stop, graceful=False)
        await car.wait_connected()
        world = FaultWorld(cluster, database_url, broker, service, sink, folder, settings, db, car, downloads)
        await within(lambda: _online(world), 20, "the Taycan online and reporting")
        yield world
    finally:
        await cleanup.aclose()
        if db is not None:
            await db.dispose()
        if database_url:
            with contextlib.suppress(Exception):
                await cluster.drop_database(database_url)


async def _online(world: FaultWorld) -> bool:
    async with world.db.session() as session:
        vehicle = await session.scalar(select(Vehicle).where(Vehicle.vin == TAYCAN))
    return vehicle is not None and vehicle.online and vehicle.remote_access_authorised
