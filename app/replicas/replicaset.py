"""The replicas of this process: their pools, what each has replayed, and whether to use it.

PostgreSQL's own streaming replication does the copying; this module only
decides, off the request path, which hot standbys may serve reads.  Once a
second (``CHECK_INTERVAL_SECONDS``) a monitor task asks the primary where
its WAL is and each replica how far it has replayed, and derives:

- ``replayed``: the replica's replay position (never decreasing here), which
  lets a read carrying a consistency token skip the per-read check when the
  replica is known to have passed it;
- ``lag_seconds``: how old the replica's view is: the time since the primary
  was at a position the replica has replayed (from the primary's samples of
  the last seconds).  Unlike ``now() - pg_last_xact_replay_timestamp()`` this
  stays 0 on an idle primary and keeps growing when the standby has lost its
  connection to the primary (its receive and replay positions then agree);
- ``status``: ``healthy``, ``lagging`` (more than ``REPLICA_MAX_LAG_SECONDS``
  behind) or ``down`` (the check failed).  Only healthy replicas are chosen.

A server listed as a replica that is not in recovery (the primary itself, as
the benchmark does, or a promoted standby) counts as caught up: its insert
position stands for its replay position.

Replica pools are created with ``min_size=0`` so that a replica that is down
when the service starts delays nothing: the primary serves until it answers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import asyncpg

from app.observability.metrics import replica_gauges, replica_reads
from app.system.outage import is_unreachable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0
Status = Literal["healthy", "lagging", "down"]

# The replica's replay position; a server not in recovery answers its insert position.
# asyncpg reads pg_lsn as the 64-bit number itself.
REPLAYED = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn(), '0/0')"
    " ELSE pg_current_wal_insert_lsn() END"
)
# The primary: where its WAL is written to (for the lag) and inserted up to (tokens):
# the insert position read after a commit lies past that commit's record, whatever
# synchronous_commit says.
WRITTEN = "SELECT pg_current_wal_lsn()"
INSERTED = "SELECT pg_current_wal_insert_lsn()"


def replica_name(url: str) -> str:
    """``host:port/database`` of a replica URL: what /health and /metrics call it.

    Never the user or password.  A unix socket URL (``?host=/run/…``) names the socket.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        query = dict(pair.partition("=")[::2] for pair in parts.query.split("&") if pair)
        host = query.get("host", "localhost")
    port = parts.port or 5432
    database = parts.path.lstrip("/") or parts.username or "postgres"
    return f"{host}:{port}/{database}"


def lag_seconds(samples: Sequence[tuple[float, int]], replayed: int, now: float) -> float:
    """How old a replica's view is, from the primary's (time, position) samples, oldest first.

    0 when the replica has replayed the latest sample.  Otherwise the time
    since the primary was at the replica's position, taken as growing evenly
    between the two samples around it (a replica milliseconds behind a busy
    primary shows milliseconds, not the second between two samples); when it
    has replayed none of them, at least as old as the oldest sample.
    """
    if not samples:
        return 0.0
    for i in range(len(samples) - 1, -1, -1):
        at, position = samples[i]
        if position <= replayed:
            if i == len(samples) - 1:
                return 0.0
            next_at, next_position = samples[i + 1]
            share = (replayed - position) / (next_position - position)
            return max(0.0, now - (at + share * (next_at - at)))
    return max(0.0, now - samples[0][0])


class Replica:
    """One hot standby: its pool and what the monitor last learnt about it."""

    __slots__ = ("gauges", "lag", "name", "pool", "reads", "replayed", "status", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.name = replica_name(url)
        self.pool: asyncpg.Pool | None = None
        self.replayed = 0
        self.lag: float | None = None
        self.status: Status = "down"
        self.reads = replica_reads(self.name)
        self.gauges = replica_gauges(self.name)

    def seen(self, replayed: int) -> None:
        """A replay position read from the replica (positions only grow)."""
        if replayed > self.replayed:
            self.replayed = replayed

    def mark(self, status: Status, lag: float | None) -> None:
        if status != self.status:
            level = logging.INFO if status == "healthy" else logging.WARNING
            logger.log(level, "replica %s is %s", self.name, status)
        self.status = status
        self.lag = lag
        up, lag_gauge = self.gauges
        up.set(1 if status == "healthy" else 0)
        if lag is not None:
            lag_gauge.set(lag)


class ReplicaSet:
    """The configured replicas; ``choose`` picks one for a read, the monitor keeps them current."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        max_lag_seconds: float,
        pool_options: dict[str, Any],
        primary: Callable[[], asyncpg.Pool | None],
        primary_url: str,
        check_timeout: float = 2.0,
        interval: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.replicas = [Replica(url) for url in urls]
        self.max_lag = max_lag_seconds
        self.pool_options = pool_options
        self.primary = primary
        self.primary_url = primary_url
        # The monitor's own connection to each server (the primary's under None, each
        # replica's under itself), outside the pools: its checks never wait behind
        # requests, hold a request's connection or count among the statements requests
        # send (QueryCounter).  One check at a time uses them (``_checking``).
        self._watching: dict[Replica | None, asyncpg.Connection] = {}
        self._checking = asyncio.Lock()
        self.check_timeout = check_timeout
        self.interval = interval
        self.primary_reads = replica_reads("primary")
        # Enough of the primary's positions to tell any lag up to twice the limit.
        self._samples: deque[tuple[float, int]] = deque(
            maxlen=max(3, int(2 * max_lag_seconds / interval) + 2)
        )
        self._turn = itertools.count()
        self._monitor: asyncio.Task[None] | None = None

    # -- choosing ------------------------------------------------------------------------

    def choose(self, position: int | None) -> Replica | None:
        """A healthy replica for a read that must see ``position`` (None: any position).

        Round robin over the healthy replicas known to have replayed ``position``;
        when none is known to, the most advanced healthy one (the read then asks
        it first).  None: no healthy replica, the primary serves.
        """
        healthy = [replica for replica in self.replicas if replica.status == "healthy"]
        if not healthy:
            return None
        if position is not None:
            passed = [replica for replica in healthy if replica.replayed >= position]
            if not passed:
                return max(healthy, key=lambda replica: replica.replayed)
            healthy = passed
        return healthy[next(self._turn) % len(healthy)]

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """A read on ``replica`` raised: when it cannot be reached, skip it until it answers."""
        if is_unreachable(exc):
            replica.mark("down", None)

    # -- the primary's position ----------------------------------------------------------

    async def primary_position(self) -> int | None:
        """The primary's WAL insert position now (the consistency token), or None."""
        pool = self.primary()
        if pool is None:
            return None
        async with pool.acquire() as conn:  # no timeout: a wait_for task per mutation
            return int(await conn.fetchval(INSERTED))

    # -- the monitor -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the pools (no connection yet) and check every replica once before serving."""
        for replica in self.replicas:
            replica.pool = await asyncpg.create_pool(
                **{**self.pool_options, "dsn": replica.url, "min_size": 0}
            )
        await self.check()
        self._monitor = asyncio.create_task(self._run(), name="cellar-replica-monitor")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for replica in self.replicas:
            if replica.pool is not None:
                replica.pool.terminate()
                replica.pool = None
        for watching in self._watching.values():
            watching.terminate()
        self._watching.clear()

    async def _ask(self, server: Replica | None, statement: str) -> int:
        """One number from a replica (None: the primary), on the monitor's own connection."""
        url = self.primary_url if server is None else server.url
        conn = self._watching.get(server)
        try:
            if conn is None or conn.is_closed():
                options = {
                    name: value
                    for name, value in self.pool_options.items()
                    if name in ("server_settings", "statement_cache_size")
                }
                conn = await asyncpg.connect(url, timeout=self.check_timeout, **options)
                self._watching[server] = conn
            return int(await conn.fetchval(statement, timeout=self.check_timeout))
        except BaseException:
            stale = self._watching.pop(server, None)
            if stale is not None:
                stale.terminate()
            raise

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # the monitor must outlive any surprise
                logger.exception("replica check failed")

    async def check(self) -> None:
        """Sample the primary's position, then every replica's, concurrently."""
        async with self._checking:
            await self._sample_primary()
            await asyncio.gather(*(self._check(replica) for replica in self.replicas))

    async def _sample_primary(self) -> None:
        try:
            position = await self._ask(None, WRITTEN)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return  # the primary's own outage is reported by /health and the requests
        self._samples.append((time.monotonic(), position))

    async def _check(self, replica: Replica) -> None:
        try:
            replayed = await self._ask(replica, REPLAYED)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            replica.mark("down", None)
            return
        replica.seen(replayed)
        lag = lag_seconds(self._samples, replica.replayed, time.monotonic())
        replica.mark("healthy" if lag <= self.max_lag else "lagging", lag)
