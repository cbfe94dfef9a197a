"""Liveness of the database, answered within a deadline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg

from app.system.outage import DATABASE, is_unreachable

if TYPE_CHECKING:
    from piccolo.engine.postgres import PostgresEngine

    from app.replicas.replicaset import Replica, ReplicaSet


class HealthService:
    def __init__(
        self, engine: PostgresEngine, timeout: float, replicas: ReplicaSet | None = None
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.replica_set = replicas
        self._probe: asyncio.Task[bool] | None = None

    def replicas(self) -> list[Replica] | None:
        """The configured replicas as the monitor last saw them (None: none configured).

        Read from memory, never probed here: the monitor checks them once a second,
        and a replica's state never makes the instance unhealthy (the primary serves).
        """
        return None if self.replica_set is None else list(self.replica_set.replicas)

    async def database_reachable(self) -> bool:
        """Whether ``SELECT 1`` through the pool succeeds within the deadline.

        The probe runs as its own task and the request only waits for it up
        to the deadline: when the server hangs (rather than refusing), asyncpg
        can block past any timeout while it cancels the query and releases
        the connection.  One probe at a time: later checks wait on the same
        task instead of piling up connections behind a frozen server.  asyncpg
        replaces connections that died while the server was down, so the
        first probe after it returns succeeds by itself.
        """
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._select_one())
        done, _ = await asyncio.wait({self._probe}, timeout=self.timeout)
        return bool(done) and self._probe.result()

    async def _select_one(self) -> bool:
        pool = self.engine.pool
        if pool is None:
            return False
        try:
            async with pool.acquire(timeout=self.timeout) as connection:
                await connection.fetchval("SELECT 1", timeout=self.timeout)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if is_unreachable(exc):
                DATABASE.failed(exc)  # logged once per outage, as failed requests are
            return False
        DATABASE.reachable()
        return True
