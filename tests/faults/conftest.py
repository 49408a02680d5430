"""Fixtures of the fault-injection suite (issue 9, point 1).

Each worker (xdist) makes one PostgreSQL cluster of its own and each test a fresh database in it, its own
Mosquitto and its own service process; nothing is shared with the rest of the suite, so crashing any of
them disturbs no other test. The table of outcomes is printed by the plugin tests/faults/outcomes.py.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.cluster import PostgresCluster
from tests.faults.outcomes import Outcome
from tests.faults.service import ForkServer
from tests.faults.world import FaultWorld, fault_world, package_dir


@pytest.fixture(scope="session")
def cluster() -> Iterator[PostgresCluster]:
    running = PostgresCluster()
    try:
        running.init()
        yield running
    finally:
        running.destroy()
        shutil.rmtree(package_dir(), ignore_errors=True)


@pytest.fixture(scope="session")
def forks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    """The worker's fork server: it imports the application once, then forks every service process."""
    server = ForkServer(tmp_path_factory.mktemp("faults") / "fork-server.log")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def world(cluster: PostgresCluster, forks: ForkServer, tmp_path: Path) -> AsyncIterator[FaultWorld]:
    async with fault_world(cluster, forks, tmp_path) as running:
        yield running


@pytest.fixture
def outcome(request: pytest.FixtureRequest) -> Outcome:
    return Outcome(request.node)
