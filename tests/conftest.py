"""Shared fixtures: real databases (SQLite and PostgreSQL), real brokers (embedded and Mosquitto)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from carlink.clock import clock
from tests.support.databases import PostgresDatabases, drop_sqlite_template, new_sqlite
from tests.support.stack import Stack, running_stack

_postgres = PostgresDatabases()
# The fault suite's scenario × outcome table: printed by the xdist controller, which loads only this conftest.
pytest_plugins = ["tests.faults.outcomes"]

# Each stack test runs twice: SQLite with the embedded broker (the demo's set-up) and PostgreSQL with
# Mosquitto (production's), so both databases and both brokers are proven on every behaviour.
STACKS = [
    pytest.param(("sqlite", "embedded"), id="sqlite-embedded"),
    pytest.param(("postgres", "mosquitto"), id="postgres-mosquitto"),
]
POSTGRES_STACK = STACKS[1]


@pytest.fixture(autouse=True)
def _real_clock() -> None:
    clock.reset()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async for url in _database(request.param, tmp_path):
        yield url


async def _database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield await new_sqlite(tmp_path)
        return
    url = await _postgres.new()
    try:
        yield url
    finally:
        await _postgres.drop(url)


@pytest.fixture(params=STACKS)
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    db_kind, broker_kind = request.param
    overrides = request.node.get_closest_marker("stack_settings")
    settings = overrides.kwargs if overrides else {}
    async for url in _database(db_kind, tmp_path):
        async with running_stack(url, broker_kind, tmp_path, **settings) as running:
            yield running


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stack_settings(**kw): settings for the stack fixture")


def pytest_sessionfinish(session: pytest.Session) -> None:
    import asyncio

    asyncio.run(_postgres.drop_template())
    drop_sqlite_template()
