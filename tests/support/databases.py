"""Fresh databases per test: a SQLite file, or a PostgreSQL database cloned from a migrated template."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg

from carlink.db.migrate import upgrade

POSTGRES_ADMIN = os.environ.get("CARLINK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TEMPLATE = f"carlink_tpl_{os.getpid()}"


def _async_url(database: str) -> str:
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


class PostgresDatabases:
    def __init__(self) -> None:
        self.template_ready = False
        self.created: list[str] = []

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(POSTGRES_ADMIN)

    async def new(self) -> str:
        admin = await self._admin()
        try:
            if not self.template_ready:
                await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
                await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
                await upgrade(_async_url(TEMPLATE))
                self.template_ready = True
            name = f"carlink_t_{uuid.uuid4().hex[:12]}"
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
            self.created.append(name)
            return _async_url(name)
        finally:
            await admin.close()

    async def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def drop_template(self) -> None:
        if not self.template_ready:
            return
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        finally:
            await admin.close()


_SQLITE_TEMPLATE = Path(tempfile.gettempdir()) / f"carlink-template-{os.getpid()}.db"


async def new_sqlite(directory: Path) -> str:
    """A copy of a database migrated once per test process (migrating takes longer than copying)."""
    if not _SQLITE_TEMPLATE.exists():
        await upgrade(f"sqlite+aiosqlite:///{_SQLITE_TEMPLATE}")
    target = directory / "carlink.db"
    shutil.copyfile(_SQLITE_TEMPLATE, target)
    return f"sqlite+aiosqlite:///{target}"


def drop_sqlite_template() -> None:
    _SQLITE_TEMPLATE.unlink(missing_ok=True)
