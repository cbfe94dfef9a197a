"""A database that cannot be reached makes the service unavailable, not broken.

Requests that need the database while it is stopped, restarting or refusing
connections answer 503 with ``Retry-After`` (``app.errors``), as ``/health``
does, instead of 500.  What counts as "cannot be reached" is decided here,
once: socket errors and timeouts on the way to the server (connection
refused, a missing unix socket, the connect timeout), PostgreSQL's own
connection-class errors (SQLSTATE 08), its shutting down or starting up
(``AdminShutdown``, ``CrashShutdown``, ``CannotConnectNow``), too many
connections, and a connection asyncpg found closed (or stuck on the server's
farewell) under a request.  A
statement that PostgreSQL cancelled or a value it refused is not an outage
and stays a 500.

An outage is logged once, not once per request: the first failure logs at
ERROR (with its traceback, in case the socket error was not the database's),
later ones only count, and the first success afterwards (a user lookup, a
health probe) logs the outage's end and resets the state.  asyncpg's own
pool warnings about the same outage are counted, not printed
(``quiet_pool_logs``).  The state is per process, as the connection pool is.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from asyncpg import exceptions as pg

logger = logging.getLogger(__name__)

# Seconds a client should wait before retrying a 503 (sent as Retry-After).
RETRY_AFTER_SECONDS = 2

_UNREACHABLE: tuple[type[Exception], ...] = (
    OSError,  # includes TimeoutError (connect timeout) and ConnectionRefusedError
    pg.PostgresConnectionError,  # SQLSTATE 08: the connection failed or does not exist
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.CannotConnectNowError,
    pg.IdleSessionTimeoutError,
    pg.TooManyConnectionsError,
)
# asyncpg says "connection is closed" / "pool is closing" with its plain InterfaceError,
# which also reports client bugs ("another operation is in progress"): read the message.
_CLOSED_WORDS = ("closed", "closing")
# A connection the server terminated while it sat in the pool can be handed out before
# asyncpg has seen it close: its protocol is still consuming the server's FATAL error,
# and the next statement fails with "cannot switch to state N; another operation (2) is
# in progress".  asyncpg's InternalClientError covers other surprises too (codecs):
# only this one, a connection that cannot start a statement, is the outage.
_STUCK_CONNECTION = "cannot switch to state"


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now."""
    if isinstance(exc, _UNREACHABLE):
        return True
    if type(exc) is asyncpg.InterfaceError:
        message = str(exc)
        return any(word in message for word in _CLOSED_WORDS)
    if type(exc) is pg._base.InternalClientError:
        return str(exc).startswith(_STUCK_CONNECTION)
    return False


def _concrete(bases: tuple[type[Exception], ...]) -> frozenset[type[Exception]]:
    found: set[type[Exception]] = set()
    pending = list(bases)
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return frozenset(found)


# The exception classes whose tracebacks Litestar must not log per request (its
# ``disable_stack_trace`` matches exact classes): they are logged here, once an outage.
QUIET_EXCEPTIONS: frozenset[type[Exception]] = _concrete(_UNREACHABLE) | {
    asyncpg.InterfaceError,
    pg._base.InternalClientError,
}

# The classes the exception-handler map sends to the outage handler, which asks
# ``is_unreachable`` and answers 500 for the rest, as Litestar would.
HANDLED_EXCEPTIONS: tuple[type[Exception], ...] = (
    OSError,
    pg.PostgresConnectionError,
    pg.OperatorInterventionError,
    pg.InsufficientResourcesError,
    asyncpg.InterfaceError,
    pg._base.InternalClientError,
)


class DatabaseOutage:
    """Whether this process is in an outage of its database, so that it is logged once.

    While PostgreSQL shuts down, some connections still answer for a few
    milliseconds after others failed, and right after it is back a request
    may still fail on a connection that died with it: an outage ends with a
    success at least ``SETTLE_SECONDS`` after its last failure, not with the
    first one.  A failure after ``FORGET_SECONDS`` without any starts a new
    outage even when no success was seen in between (no traffic).
    """

    SETTLE_SECONDS = 1.0
    FORGET_SECONDS = 60.0

    def __init__(self) -> None:
        self._since: float | None = None
        self._last_failure = 0.0
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """A request (or probe) could not reach the database; only an outage's first logs."""
        now = time.monotonic()
        forgotten = now - self._last_failure > self.FORGET_SECONDS
        self._last_failure = now
        if self._since is not None and not forgotten:
            self._failures += 1
            return
        self._since, self._failures = now, 1
        logger.error(
            "database unavailable (%s: %s); answering 503 until it is back",
            type(exc).__name__,
            exc,
            exc_info=exc,
        )

    def reachable(self) -> None:
        """The database answered: end the outage, if there is one and it has settled."""
        if self._since is None:
            return
        now = time.monotonic()
        if now - self._last_failure < self.SETTLE_SECONDS:
            return
        lasted = self._last_failure - self._since
        failures, self._since, self._failures = self._failures, None, 0
        logger.warning(
            "database reachable again; unavailable for %.1f s (%d failed requests or probes)",
            lasted,
            failures,
        )


DATABASE = DatabaseOutage()


class _PoolFloorFilter(logging.Filter):
    """Count asyncpg's failed reconnects of the pool's minimum size as the outage they are.

    asyncpg (≥ 0.32) logs each failed attempt to restore ``min_size`` at
    WARNING with a traceback, backing off from 1 s to 60 s: a dozen
    tracebacks per outage.  They go to ``DATABASE`` instead; other records pass.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and is_unreachable(exc):
            DATABASE.failed(exc)
            return False
        return True


_POOL_FILTER = _PoolFloorFilter()


def quiet_pool_logs() -> None:
    """Route asyncpg's pool warnings about an unreachable database through ``DATABASE``."""
    pool_logger = logging.getLogger("asyncpg.pool")
    if _POOL_FILTER not in pool_logger.filters:
        pool_logger.addFilter(_POOL_FILTER)
