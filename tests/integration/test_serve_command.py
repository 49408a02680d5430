"""`carlink serve` runs the service against any configured database and broker, in all roles or in one."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest

from carlink.gateway.embedded import EmbeddedBroker, free_port

SECRET = "carlink-serve-test-secret-0123"


@pytest.mark.parametrize("roles", [[], ["--role", "api"]], ids=["all-roles", "api-only"])
async def test_serve_comes_up_ready_on_the_configured_database_and_broker(
    database_url: str, roles: list[str]
) -> None:
    broker = EmbeddedBroker(secret=SECRET, prefix="serve")
    await broker.start()
    port = free_port()
    env = dict(
        os.environ,
        CARLINK_DATABASE_URL=database_url,
        CARLINK_MQTT_URL=broker.url,
        CARLINK_MQTT_TOPIC_PREFIX="serve",
        CARLINK_SECRET_KEY=SECRET,
        CARLINK_BASE_URL=f"http://127.0.0.1:{port}",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "carlink.cli", "serve", "--port", str(port), *roles, env=env
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            ready: dict[str, object] = {}
            for _ in range(300):  # at most ~30 s
                try:
                    ready = (await http.get("/ready")).json()
                except httpx.TransportError:
                    ready = {}
                if ready.get("ready"):
                    break
                await asyncio.sleep(0.1)
            assert ready == {"ready": True, "database": True, "broker": True}
            discovery = (await http.get("/.well-known/openid-configuration")).json()
            assert discovery["issuer"] == f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await broker.stop()
