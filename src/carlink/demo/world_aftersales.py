"""Demo data of the people issue (filled in by its work)."""

from sqlalchemy.ext.asyncio import AsyncSession


async def seed(session: AsyncSession) -> None:
    """Adds what is missing; safe to run on every start."""
