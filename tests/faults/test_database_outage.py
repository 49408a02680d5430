"""Which failures count as "the database is briefly unreachable" (503 with Retry-After, not a 500): the
classification behind the answers the checkout scenario sees while PostgreSQL restarts."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from carlink.app import _database_unreachable


class _PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _dbapi(orig: Exception, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),  # the pool connects while the server is down
        ConnectionResetError(104, "reset"),
        _dbapi(Exception("closed"), invalidated=True),  # the pool found the connection dead
        _dbapi(_PostgresError("57P03")),  # cannot connect now: the server is starting up
        _dbapi(_PostgresError("57P01")),  # admin shutdown (pg_ctl stop -m immediate/fast)
        _dbapi(_PostgresError("08006")),  # connection failure
    ],
    ids=["refused", "reset", "invalidated", "starting-up", "shutdown", "connection-failure"],
)
def test_an_unreachable_database_is_an_outage(error: Exception) -> None:
    assert _database_unreachable(error)


@pytest.mark.parametrize(
    "error",
    [
        _dbapi(_PostgresError("22021")),  # bad input: a 400 of its own
        _dbapi(_PostgresError("23505")),  # a unique violation is a bug or a race, not an outage
        ValueError("a bug"),
        FileNotFoundError("a package file"),
    ],
    ids=["data", "unique", "bug", "file"],
)
def test_other_failures_are_not_an_outage(error: Exception) -> None:
    assert not _database_unreachable(error)
