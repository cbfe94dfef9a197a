"""The read seam: ``await read(query)`` runs a read on a replica when safe, else on the primary.

A service hands the seam its store call as a function of the connection::

    row = await read(lambda conn: store.get(conn, notebook_id, user_id),
                     fresh=lambda row: row is not None)

and gets the result, from wherever it came.  The rules, in one place:

- no replicas configured, or inside a transaction (``app.database.transaction``:
  a read that is part of a write) → the primary, exactly as ``connection()``;
- the request carried ``Cellar-Consistency: <LSN>`` → a replica only once it
  has replayed that position: known from the monitor, else asked on the
  replica's connection right before the read (one round trip); behind → the
  primary;
- ``fresh(result)`` is false (say, a notebook the replica does not have yet,
  or at an older revision than the client's ``If-None-Match``) → the primary
  answers instead;
- the replica fails (down, restarting, a query cancelled by recovery) → the
  primary answers; a replica that cannot be reached is skipped until the
  monitor sees it again.  The client never sees a replica's error.

The token comes from the request: ``ConsistencyMiddleware`` keeps the header
in a context variable for the request's task, and puts the primary's position
on every successful mutation's answer (``app.replicas.http``).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from app.database import connection, get_engine
from app.errors import InvalidInput
from app.replicas import tokens

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.replicas.replicaset import Replica, ReplicaSet

T = TypeVar("T")

# The raw Cellar-Consistency header of the current request, if it sent one.
REQUESTED: ContextVar[bytes | None] = ContextVar("cellar_consistency", default=None)

# What a replica may raise that the primary then answers instead.
REPLICA_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_replicas: ReplicaSet | None = None


def install(replicas: ReplicaSet | None) -> None:
    """Route this process's reads through ``replicas`` (None: the primary only).

    Process-wide, as the engine's pool is: the app's lifespan installs its set
    after starting it and removes it before stopping it.
    """
    global _replicas
    _replicas = replicas


def installed() -> ReplicaSet | None:
    return _replicas


def requested_position() -> int | None:
    """The request's consistency token as a WAL position; a malformed one is a 400."""
    raw = REQUESTED.get()
    if raw is None:
        return None
    try:
        return tokens.parse(raw.decode("latin-1"))
    except tokens.MalformedToken as exc:
        raise InvalidInput(tokens.HEADER, str(exc)) from None


async def read(
    query: Callable[[asyncpg.Connection], Awaitable[T]],
    *,
    fresh: Callable[[T], bool] | None = None,
) -> T:
    """Run ``query`` on a replica that may answer it, else on the primary (module docstring)."""
    replicas = _replicas
    if replicas is not None and get_engine().current_transaction.get() is None:
        position = requested_position()
        replica = replicas.choose(position)
        if replica is not None:
            try:
                result = await _on_replica(replica, query, position)
            except REPLICA_ERRORS as exc:
                replicas.failed(replica, exc)
            else:
                if not isinstance(result, _Behind) and (fresh is None or fresh(result)):
                    replica.reads.inc()
                    return result
        replicas.primary_reads.inc()
    async with connection() as conn:
        return await query(conn)


# How far the replica has replayed (on a server not in recovery: its insert position).
REPLAYED_SINCE = "SELECT coalesce(pg_last_wal_replay_lsn(), pg_current_wal_insert_lsn())"


class _Behind:
    """The replica has not replayed the requested position yet."""


BEHIND = _Behind()


async def _on_replica(
    replica: Replica,
    query: Callable[[asyncpg.Connection], Awaitable[T]],
    position: int | None,
) -> T | _Behind:
    """The query's result on ``replica``, or ``BEHIND`` when it has not replayed ``position``."""
    pool = replica.pool
    if pool is None:
        return BEHIND
    async with pool.acquire() as conn:
        if position is not None and replica.replayed < position:
            replica.seen(int(await conn.fetchval(REPLAYED_SINCE)))
            if replica.replayed < position:
                return BEHIND
        return await query(conn)
