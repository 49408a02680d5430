"""The service under test as a child process that the suite can SIGKILL, forked by the worker's fork server
(tests/faults/held_service.py): the application is imported once per worker, a start costs a fork."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

PROJECT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 40.0  # seconds from the fork until /ready, on 2 busy cores
GONE_TIMEOUT = 10.0  # seconds for a killed process to disappear


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ForkServer:
    """The test side of the fork server: one request line out, one answer line back."""

    def __init__(self, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.held_service"],
            cwd=PROJECT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            preexec_fn=_die_with_parent,
        )

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the fork server ended ({self.process.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class ServiceProcess:
    """Starts, kills (SIGKILL, no goodbye) and restarts with the same settings on the same socket."""

    def __init__(self, forks: ForkServer, log: Path) -> None:
        self.forks = forks
        self.log = log
        self.port = int(forks.ask(op="listen")["port"])
        self.config: dict[str, Any] = {}
        self.pid: int | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, config: dict[str, Any] | None = None) -> None:
        if config is not None:
            self.config = config
        answer = await asyncio.to_thread(
            self.forks.ask, op="start", port=self.port, config=self.config, log=str(self.log)
        )
        self.pid = int(answer["pid"])
        self.starts += 1
        await self.wait_ready()

    def alive(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    async def wait_ready(self) -> None:
        """/ready answers 200: the database is reachable and the gateway is on the broker."""
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise AssertionError(f"the service exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"the service was not ready within {READY_TIMEOUT} s:\n{self.tail()}")

    async def kill(self) -> None:
        """kill -9: no shutdown hook runs, open transactions and connections are cut where they are."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + GONE_TIMEOUT
        while self.alive():  # the fork server's kernel reaps it (SIGCHLD ignored)
            if time.monotonic() > deadline:
                raise AssertionError(f"process {self.pid} still there after SIGKILL")
            await asyncio.sleep(0.02)
        self.pid = None

    async def stop(self) -> None:
        """The end of a test: nothing of the service is worth a graceful shutdown; the socket goes too."""
        await self.kill()
        await asyncio.to_thread(self.forks.ask, op="close", port=self.port)

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""
