"""A throwaway PostgreSQL cluster per test worker, so restarting it (a crash) disturbs nobody else.

The machine's PostgreSQL on :5432 serves every other test; the fault suite crashes its own cluster with
`pg_ctl stop -m immediate` and later starts it again on the same port (one below the ephemeral range, so
no outgoing connection takes it while the server is down). PostgreSQL refuses to run as root, and CI runs
the tests as root: there the cluster belongs to the `postgres` system user (`runuser -u postgres --`), in
a directory of its own under the system's temporary folder (pytest's own tmp folders are private to root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from carlink.db.migrate import upgrade
from tests.faults.ports import quiet_port

# Debian keeps the server binaries out of PATH; the newest installed major version wins.
BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
PG_TIMEOUT = 30  # seconds for pg_ctl to start or stop the server


class PostgresCluster:
    """initdb once, start, stop as a crash would (`-m immediate`), databases from a migrated template."""

    def __init__(self) -> None:
        if not BINARIES:
            raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin")
        self.bin = Path(BINARIES[-1])
        self.as_root = os.geteuid() == 0
        self.home = Path(tempfile.mkdtemp(prefix="carlink-faults-pg-"))
        self.data = self.home / "data"
        self.port = quiet_port()
        self.template = "carlink_faults_tpl"
        self._template_ready = False
        if self.as_root:
            owner = pwd.getpwnam("postgres")
            os.chown(self.home, owner.pw_uid, owner.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=PG_TIMEOUT + 10, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}")

    def _ctl(self, action: str, *extra: str) -> None:
        # fsync off: a crash of the server process loses nothing (the OS keeps the pages); only a power
        # cut would, and the suite never cuts power.
        options = f"-p {self.port} -k {self.home} -h 127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run(
            "pg_ctl",
            action,
            "-D",
            str(self.data),
            "-l",
            str(self.home / "server.log"),
            "-w",
            "-t",
            str(PG_TIMEOUT),
            "-o",
            options,
            *extra,
        )

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.start()

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """The server dies as in a crash: no checkpoint, every connection cut."""
        self._ctl("stop", "-m", "immediate")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def new_database(self, prepare: Callable[[str], Awaitable[None]]) -> str:
        """A fresh database, cloned from a template migrated and `prepare`d once per cluster."""
        admin = await asyncpg.connect(self.admin_url)
        try:
            if not self._template_ready:
                await admin.execute(f'CREATE DATABASE "{self.template}"')
                await upgrade(self.url(self.template))
                await prepare(self.url(self.template))
                self._template_ready = True
            name = f"carlink_fault_{uuid.uuid4().hex[:10]}"
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            return self.url(name)
        finally:
            await admin.close()

    async def drop_database(self, url: str) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
