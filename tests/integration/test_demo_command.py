"""`carlink demo` as a newcomer runs it: a fresh SQLite world, the embedded broker on a free port, the
service and the simulated fleet; it prints its URLs and logins and stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from carlink.demo import world
from carlink.gateway.embedded import free_port
from carlink.protocol.vin import is_valid_vin
from tests.support.stack import oidc_login


def _read_until(process: subprocess.Popen[bytes], pattern: str, timeout: float) -> str:
    """Reads the raw pipe: a buffered readline would keep lines that select() can no longer see."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk and process.poll() is not None:
                break
            seen += chunk.decode(errors="replace")
            if re.search(pattern, seen):
                return seen
        elif process.poll() is not None:
            break
    raise AssertionError(f"no {pattern!r} within {timeout} s; output so far:\n{seen}")


async def _garage(base_url: str, email: str) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        token = (await oidc_login(http, email, world.PASSWORD))["access_token"]
        response = await http.get("/api/v1/vehicles", headers={"Authorization": f"Bearer {token}"})
        return {car["vin"]: car for car in response.json()}


async def _switch_updates_on(base_url: str, vin: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        token = (await oidc_login(http, world.OWNER, world.PASSWORD))["access_token"]
        response = await http.put(
            f"/api/v1/vehicles/{vin}/software-updates/consent",
            json={"enabled": True},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text


def _until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the demo did not get there in time"
        time.sleep(0.2)


def test_demo_starts_serves_the_world_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "carlink.cli",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "demo"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        output = _read_until(process, r"Stop with Ctrl-C", timeout=120)
        urls = re.findall(r"https?://[\w.:\-/]+", output)
        assert urls[0].rstrip("/") == f"http://127.0.0.1:{port}"
        for login in (world.OWNER, world.FAMILY, world.STRANGER):
            assert login in output
        vins = re.findall(r"\b[A-HJ-NPR-Z0-9]{17}\b", output)
        assert {car.vin for car in world.DEMO_CARS} <= set(vins)
        assert all(is_valid_vin(vin) for vin in vins)
        broker_port = int(re.search(r"mqtt://127\.0\.0\.1:(\d+)", output).group(1))  # type: ignore[union-attr]
        assert broker_port != 1883
        with httpx.Client(base_url=urls[0], timeout=10) as http:
            assert http.get("/ready").json()["ready"] is True
            assert http.get("/.well-known/openid-configuration").status_code == 200
            # In the car console, the owner types the 911's pairing code into the car (VEH-3).
            nine_eleven = world.DEMO_CARS[2].vin
            code = world.demo_pairing_code(nine_eleven, world.OWNER)
            assert http.post(f"/demo/cars/{nine_eleven}/pair", data={"code": code}).status_code == 303
            assert "Linked" in http.get("/demo/cars").text
            switched = http.post(
                f"/demo/cars/{nine_eleven}/switch", data={"setting": "privacy", "on": "true"}
            )
            assert switched.status_code == 303
            assert "Privacy mode on" in http.get("/demo/cars").text
            # The demo's update campaign reaches the Taycan once its owner switches updates on; parked and
            # locked with the cable out, the car installs it (OTA-1, OTA-3, FOD-5).
            taycan = world.DEMO_CARS[0].vin
            asyncio.run(_switch_updates_on(urls[0], taycan))
            _until(lambda: "Software update 1.1.0 is ready" in http.get("/demo/cars").text)
            for action in ("unplug", "park"):
                http.post(f"/demo/cars/{taycan}/move", data={"action": action})
            _until(lambda: "Software 1.1.0" in http.get("/demo/cars").text)
        garage = asyncio.run(_garage(urls[0], world.OWNER))
        assert garage[nine_eleven]["paired"] is True
        assert garage[nine_eleven]["pairing_code"] == code
        assert {vin: car["connection"]["online"] for vin, car in garage.items()} == dict.fromkeys(
            garage, True
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "stopped" in _read_until(process, "stopped", timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
