"""Regenerates the newest, not yet released migration from the models (a development aid).

    python tools/regenerate_migration.py 0003 "people partners privacy"

Deletes versions/<rev>_*.py, upgrades a fresh SQLite database to the revision before it, and lets Alembic
compare it with the models. Released migrations are never regenerated; only the one being written.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from carlink.db import models  # noqa: F401  (every table, for the comparison)
from carlink.db.migrate import MIGRATIONS, alembic_config, upgrade


async def regenerate(rev: str, message: str) -> Path:
    for old in (MIGRATIONS / "versions").glob(f"{rev}_*.py"):
        old.unlink()
    previous = f"{int(rev) - 1:04d}"
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/schema.db"
        await upgrade(url, previous)
        engine = create_async_engine(url)

        def _generate(connection: Connection) -> None:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=rev)

        async with engine.begin() as connection:
            await connection.run_sync(_generate)
        await engine.dispose()
    return next((MIGRATIONS / "versions").glob(f"{rev}_*.py"))


if __name__ == "__main__":
    path = asyncio.run(regenerate(sys.argv[1], sys.argv[2]))
    print(path)
