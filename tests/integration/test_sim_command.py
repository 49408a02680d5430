"""`carlink sim --vehicles N` runs simulated cars against any configured broker and database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import func, select

from carlink.garage.models import Vehicle
from carlink.gateway.mosquitto import MosquittoProcess
from tests.support.stack import Stack, eventually


def _env(stack: Stack) -> dict[str, str]:
    settings = stack.settings
    return dict(
        os.environ,
        CARLINK_DATABASE_URL=settings.database_url,
        CARLINK_MQTT_URL=settings.mqtt_url,
        CARLINK_MQTT_TOPIC_PREFIX=settings.mqtt_topic_prefix,
        CARLINK_SECRET_KEY=settings.secret_key,
    )


async def _online_fleet_cars(stack: Stack) -> int:
    async with stack.db.session() as session:
        count = await session.scalar(
            select(func.count()).where(Vehicle.vin.like("WP0%F5%"), Vehicle.online.is_(True))
        )
    return int(count or 0)


async def test_sim_provisions_and_runs_cars_until_stopped(stack: Stack, tmp_path: Path) -> None:
    env = _env(stack)
    command = [sys.executable, "-m", "carlink.cli", "sim", "--vehicles", "4"]
    if isinstance(stack.broker, MosquittoProcess):
        # Mosquitto learns new cars' accounts from its password file: write the manifest, reload the broker.
        manifest = tmp_path / "fleet.json"
        writer = await asyncio.create_subprocess_exec(*command, "--write-manifest", str(manifest), env=env)
        assert await asyncio.wait_for(writer.wait(), 60) == 0
        stack.broker.add_vehicles(car["vin"] for car in json.loads(manifest.read_text())["cars"])
        command += ["--manifest", str(manifest)]
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.DEVNULL)
    try:
        await eventually(lambda: _online_fleet_cars_is(stack, 4), timeout=60, interval=0.2)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        # Each car said goodbye: the cloud shows them offline.
        await eventually(lambda: _online_fleet_cars_is(stack, 0), timeout=30, interval=0.2)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _online_fleet_cars_is(stack: Stack, expected: int) -> bool:
    return await _online_fleet_cars(stack) == expected
