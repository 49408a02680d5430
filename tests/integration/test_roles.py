"""Split roles (DESIGN: one process by default, roles when it grows): an api-only instance and a
gateway+jobs instance share only the database and the broker, and a command still completes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import httpx
import pytest
import uvicorn

from carlink.app import create_app
from carlink.db.base import Database
from carlink.demo import world
from carlink.gateway.embedded import free_port
from carlink.platform import Platform
from tests.support.stack import TAYCAN, Stack, oidc_login


@pytest.mark.stack_settings(events_over_broker=True)
async def test_api_only_instance_completes_commands_through_a_separate_gateway(
    stack: Stack, tmp_path: Path
) -> None:
    port = free_port()
    settings = stack.settings.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})
    platform = Platform(settings=settings, db=Database(settings.database_url), roles=frozenset({"api"}))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, platform=platform, migrate=False), port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        assert platform.link is not None
        await platform.link.wait_connected()
        async with httpx.AsyncClient(base_url=settings.base_url, timeout=30) as http:
            token = (await oidc_login(http, world.OWNER, world.PASSWORD))["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            events: list[dict[str, object]] = []
            subscribed = asyncio.Event()

            async def listen() -> None:
                async with http.stream("GET", f"/api/v1/vehicles/{TAYCAN}/events") as response:
                    async for line in response.aiter_lines():
                        subscribed.set()
                        if line.startswith("data:"):
                            events.append(json.loads(line[5:]))
                            if events[-1].get("state") == "performed":
                                return

            listener = asyncio.create_task(listen())
            await asyncio.wait_for(subscribed.wait(), 10)
            accepted = (
                await http.post(f"/api/v1/vehicles/{TAYCAN}/commands", json={"type": "HONK_FLASH"})
            ).json()
            final = (await http.get(f"/api/v1/vehicles/{TAYCAN}/commands/{accepted['id']}?wait=10")).json()
            assert final["state"] == "performed"
            # The api-only instance heard of it over the broker, not from its own (absent) gateway.
            await asyncio.wait_for(listener, 10)
            assert any(e.get("id") == accepted["id"] and e.get("state") == "performed" for e in events)
        assert [c.type.value for c in stack.fleet[TAYCAN].executed] == ["HONK_FLASH"]
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
