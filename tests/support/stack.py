"""A running carlink for tests: database, broker, the service on a loopback port, and simulated cars.

Everything is real: uvicorn serves the app over TCP, cars talk MQTT to a real broker (amqtt in-process or
a Mosquitto process with our accounts and ACL).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from carlink.app import create_app
from carlink.db.base import Database
from carlink.demo import world
from carlink.gateway.embedded import EmbeddedBroker
from carlink.gateway.mosquitto import MosquittoProcess
from carlink.gateway.provisioning import fleet_manifest
from carlink.platform import Platform
from carlink.settings import Settings
from carlink.sim.fleet import Fleet, Manifest

SECRET = "carlink-test-secret-0123456789"
TAYCAN, PANAMERA, NINE_ELEVEN = (car.vin for car in world.DEMO_CARS)


@dataclass
class Stack:
    settings: Settings
    platform: Platform
    base_url: str
    fleet: Fleet
    broker: Any
    http: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)
    app: Any = None  # the FastAPI application, for tests that walk its routes

    @property
    def db(self) -> Database:
        return self.platform.db

    async def token(self, email: str, password: str = world.PASSWORD) -> str:
        """An access token from the real authorization-code flow with PKCE."""
        if email not in self.tokens:
            self.tokens[email] = (await oidc_login(self.http, email, password))["access_token"]
        return self.tokens[email]

    async def as_user(self, email: str) -> httpx.AsyncClient:
        token = await self.token(email)
        return httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )


async def oidc_login(
    http: httpx.AsyncClient, email: str, password: str, *, client_id: str = "carlink-app"
) -> dict[str, Any]:
    from carlink.identity.tokens import pkce_s256

    verifier = secrets.token_urlsafe(48)
    redirect_uri = "carlink://callback"
    response = await http.get(
        "/authorize",
        params={
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": "openid offline_access vehicles",
            "state": "xyz",
            "code_challenge": pkce_s256(verifier),
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.text
    state = httpx.URL(response.headers["location"]).params["state"]
    response = await http.post(f"/u/login/identifier?state={state}", data={"state": state, "username": email})
    assert response.status_code == 200, response.text
    response = await http.post(
        f"/u/login/password?state={state}", data={"state": state, "username": email, "password": password}
    )
    assert response.status_code == 302, response.text
    response = await http.get(response.headers["location"])
    assert response.status_code == 302, response.text
    code = httpx.URL(response.headers["location"]).params["code"]
    http.cookies.clear()
    response = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str, broker_kind: str, workdir: Path, *, extra_vehicles: int = 0, **overrides: Any
) -> AsyncIterator[Stack]:
    prefix = f"t{secrets.token_hex(3)}"
    vins = [car.vin for car in world.DEMO_CARS]
    db = Database(database_url)
    async with db.transaction() as session:
        await world.seed(session)
        vins += await world.ensure_sim_fleet(session, extra_vehicles)
    broker: Any
    if broker_kind == "mosquitto":
        broker = MosquittoProcess(workdir / "mosquitto", secret=SECRET, prefix=prefix, vins=vins)
        broker.start()
    else:
        broker = EmbeddedBroker(secret=SECRET, prefix=prefix)
        await broker.start()
    # Bound here and handed to uvicorn, so no other process can take the port in between.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    settings = Settings(
        database_url=database_url,
        mqtt_url=broker.url,
        mqtt_topic_prefix=prefix,
        base_url=f"http://127.0.0.1:{port}",
        secret_key=SECRET,
        **{"package_dir": str(workdir / "packages"), **overrides},
    )
    platform = Platform(settings=settings, db=db)
    app = create_app(settings, platform=platform, migrate=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    server_task = asyncio.create_task(server.serve(sockets=[listener]))
    fleet: Fleet | None = None
    try:
        while not server.started:
            if server_task.done():
                server_task.result()
            await asyncio.sleep(0.02)
        assert platform.link is not None
        await platform.link.wait_connected()
        async with db.transaction() as session:
            manifest = Manifest.from_json(
                await fleet_manifest(session, settings, broker_url=broker.url, vins=vins)
            )
        fleet = Fleet(manifest)
        await fleet.start()
        async with httpx.AsyncClient(base_url=settings.base_url, timeout=30) as http:
            stack = Stack(settings, platform, settings.base_url, fleet, broker, http, app=app)
            await wait_until_online(stack, vins)
            yield stack
    finally:
        if fleet is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fleet.stop(), 30)
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server_task, 15)
        if broker_kind == "mosquitto":
            broker.stop()
        else:
            await broker.stop()


async def wait_until_online(stack: Stack, vins: list[str], timeout: float = 20) -> None:
    """The cloud has recorded every car's 'online' connection message and first telemetry."""
    from sqlalchemy import func, select

    from carlink.garage.models import Vehicle
    from carlink.telemetry.models import Measurement

    async def ready() -> bool:
        async with stack.db.session() as session:
            online = await session.scalar(
                select(func.count())
                .select_from(Vehicle)
                .where(Vehicle.vin.in_(vins), Vehicle.online.is_(True))
            )
            reporting = await session.scalar(
                select(func.count(func.distinct(Measurement.vehicle_id)))
                .join(Vehicle, Vehicle.id == Measurement.vehicle_id)
                .where(Vehicle.vin.in_(vins))
            )
        return online == len(vins) and reporting == len(vins)

    await eventually(ready, timeout)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
