"""Applies the Alembic migrations (`carlink db upgrade`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
T = TypeVar("T")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url)
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Brings the database at `url` to `revision`; safe to run on every start."""
    engine = create_async_engine(url)

    def _upgrade(connection: Connection) -> None:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()


def upgrade_sync(url: str, revision: str = "head") -> None:
    asyncio.run(upgrade(url, revision))


def run_migrated(
    database_url: str,
    work: Callable[[AsyncSession], Awaitable[T]],
    *prepare: Callable[[AsyncSession], Awaitable[object]],
) -> T:
    """For the operators' commands: migrates the database, runs the start-up seeds in `prepare` (each adds
    only what is missing), then `work`, all in one unit of work."""
    from carlink.db.base import Database

    async def run() -> T:
        await upgrade(database_url)
        db = Database(database_url)
        try:
            async with db.transaction() as session:
                for step in prepare:
                    await step(session)
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(run())
