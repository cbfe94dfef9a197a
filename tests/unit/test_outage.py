"""What counts as the database being unreachable, and how an outage is logged (once)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import asyncpg
import pytest
from asyncpg import exceptions as pg

from app.system.outage import DatabaseOutage, is_unreachable

if TYPE_CHECKING:
    from collections.abc import Iterator

UNREACHABLE = [
    ConnectionRefusedError(111, "Connect call failed"),
    FileNotFoundError(2, "No such file or directory"),  # a unix socket that is gone
    TimeoutError(),  # asyncpg's connect timeout, a pool acquire timeout
    pg.CannotConnectNowError("the database system is starting up"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CrashShutdownError("terminating connection because of crash of another server process"),
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InterfaceError("pool is closing"),
    # a pooled connection the server ended while idle, handed out before asyncpg noticed
    pg._base.InternalClientError("cannot switch to state 12; another operation (2) is in progress"),
]
NOT_UNREACHABLE = [
    pg.QueryCanceledError("canceling statement due to statement timeout"),
    pg.UniqueViolationError("duplicate key value"),
    pg._base.DataError("invalid input for query argument $6 (value out of int64 range)"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    pg._base.InternalClientError("unexpected codec library"),
    ValueError("not a database error"),
]


@pytest.mark.parametrize("exc", UNREACHABLE, ids=lambda exc: type(exc).__name__)
def test_unreachable(exc: Exception) -> None:
    assert is_unreachable(exc)


@pytest.mark.parametrize("exc", NOT_UNREACHABLE, ids=lambda exc: type(exc).__name__)
def test_not_unreachable(exc: Exception) -> None:
    assert not is_unreachable(exc)


class Instant(DatabaseOutage):
    SETTLE_SECONDS = 0.0


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="app.system.outage"):
        yield caplog


def levels(log: pytest.LogCaptureFixture) -> list[int]:
    return [record.levelno for record in log.records]


def test_an_outage_is_logged_once_and_its_end_once(log: pytest.LogCaptureFixture) -> None:
    outage = Instant()
    outage.reachable()
    assert levels(log) == []
    for _ in range(50):
        outage.failed(ConnectionRefusedError(111, "Connect call failed"))
    assert levels(log) == [logging.ERROR]
    assert "ConnectionRefusedError" in log.records[0].getMessage()
    outage.reachable()
    outage.reachable()
    assert levels(log) == [logging.ERROR, logging.WARNING]
    assert "50 failed" in log.records[1].getMessage()
    outage.failed(TimeoutError())  # the next outage is logged again
    assert levels(log) == [logging.ERROR, logging.WARNING, logging.ERROR]


def test_successes_while_failures_go_on_do_not_end_the_outage(
    log: pytest.LogCaptureFixture,
) -> None:
    outage = DatabaseOutage()  # settles after a second without failures
    for _ in range(5):
        outage.failed(pg.AdminShutdownError("terminating connection"))
        outage.reachable()  # a connection that had not been terminated yet
    assert outage.ongoing
    assert levels(log) == [logging.ERROR]
