"""The SQLAlchemy base, timezone-aware timestamps and the engine for SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar, TypeVar

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from carlink.clock import clock
from carlink.errors import CarlinkError

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return clock.now()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores UTC and always hands back aware datetimes, also on SQLite which keeps no zone."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; carlink stores aware UTC times only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime}


class Database:
    """One engine and its session factory; every use case runs in one session (its unit of work)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
            if ":memory:" in url:
                raise ValueError("use a file for SQLite: several connections must see the same data")
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # SQLite has one writer at a time. Taking turns here, rather than in SQLite's busy handler (which
        # sleeps 1, 2, 5 … 100 ms between tries, or fails a deferred transaction that must upgrade), keeps a
        # command's round trip short. PostgreSQL needs no such turn.
        self._turn: asyncio.Lock | None = asyncio.Lock() if url.startswith("sqlite") else None
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: commits on success and on a refusal (a CarlinkError is a decision whose traces,
        such as a counted wrong PIN, must stay); rolls back on any other error."""
        async with self._sqlite_turn(), self.sessions() as session:
            try:
                yield session
            except CarlinkError:
                await session.commit()
                raise
            except BaseException:
                await session.rollback()
                raise
            else:
                await session.commit()

    @asynccontextmanager
    async def _sqlite_turn(self) -> AsyncIterator[None]:
        if self._turn is None:
            yield
            return
        async with self._turn:
            yield

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the gateway write telemetry while pages read; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


async def add_unique(session: AsyncSession, row: Base) -> bool:
    """Adds a row whose unique key another unit of work may add at the same moment; False when it lost.

    PostgreSQL: inside a savepoint, so losing the race keeps the rest of the unit of work. SQLite: units of
    work take turns, so there is no race to lose (and pysqlite's savepoints would commit early).
    """
    if session.get_bind().dialect.name == "sqlite":
        session.add(row)
        await session.flush()
        return True
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


Row = TypeVar("Row", bound=Base)


async def locked_row(session: AsyncSession, model: type[Row], key: int) -> Row:
    """The row of `model` with this primary key, created at first use, locked for this unit of work.

    Two first uses at once (say a mode set while an order concludes) both find no row: both insert it
    through add_unique, the loser keeps its unit of work, and both then lock the one row — no
    IntegrityError, no 500. Used by the per-car revision rows of the retained sets."""
    row = await session.get(model, key, with_for_update=True)
    if row is not None:
        return row
    column = str(model.__mapper__.primary_key[0].key)
    await add_unique(session, model(**{column: key}))
    row = await session.get(model, key, with_for_update=True, populate_existing=True)
    if row is None:  # deleted meanwhile (the car went, ON DELETE CASCADE)
        raise RuntimeError(f"{model.__tablename__} {key}: the row vanished")
    return row
