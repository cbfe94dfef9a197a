"""Once-a-day maintenance inside the service: one instance at a time (SPEC §11, §13).

Each job is an async function answering how many rows it removed; the
service registers its jobs in ``create_app`` (``purge-trash`` here; the
history's ``prune-history`` joins it there) and each also has a ``cellar``
command for running it by hand.

Every process of the service runs the jobs a few minutes after start
(spread at random, so that instances started together do not all go at
once), then every 24 hours.  A job runs under a PostgreSQL advisory lock
named after it, taken with ``pg_try_advisory_xact_lock`` in a transaction
of its own: an instance that finds the lock held skips that job this time
(another one is running it), never waits.  Transaction-level, not session,
so that it is released whatever happens to the connection and works behind
PgBouncer in transaction mode.  The job's own statements run on other
connections, in transactions of their own: the lock's transaction only
holds the lock.  With several instances the jobs may run more than once a
day: each is idempotent, so that costs only a quick pass that finds nothing.

A failing job is logged and retried at the next period; it never stops the
service or the other jobs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING

from app.database import get_engine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from litestar import Litestar

log = logging.getLogger(__name__)

DAY_SECONDS = 24 * 60 * 60
# The first run comes this many seconds after start, drawn at random.
FIRST_RUN_SECONDS = (60.0, 600.0)
# ``hashtext`` of this prefix and the job's name is the advisory lock's key.
LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('cellar daily: ' || $1))"


class DailyJobs:
    """The service's daily jobs and the task that runs them."""

    def __init__(
        self,
        jobs: Mapping[str, Callable[[], Awaitable[int]]],
        *,
        period: float = DAY_SECONDS,
        first_run: tuple[float, float] = FIRST_RUN_SECONDS,
    ) -> None:
        self.jobs = dict(jobs)
        self.period = period
        self.first_run = first_run

    async def run_job(self, name: str) -> int | None:
        """Run one job under its lock: how many rows it removed, None when another held it."""
        engine = get_engine()
        if engine.pool is None:
            raise RuntimeError("the connection pool is not running")
        async with engine.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(LOCK, name):
                log.info("daily %s: running on another instance, skipped here", name)
                return None
            removed = await self.jobs[name]()
        log.info("daily %s: %d removed", name, removed)
        return removed

    async def run_all(self) -> dict[str, int | None]:
        """Each job once, one after the other; a failure is logged and the next one runs."""
        done: dict[str, int | None] = {}
        for name in self.jobs:
            try:
                done[name] = await self.run_job(name)
            except Exception:
                log.exception("daily %s failed; next try in %.0f s", name, self.period)
        return done

    async def _forever(self) -> None:
        await asyncio.sleep(random.uniform(*self.first_run))
        while True:
            await self.run_all()
            await asyncio.sleep(self.period)

    @asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        """Run the jobs in the background while the app serves (after the pool starts)."""
        task = asyncio.create_task(self._forever(), name="cellar-daily")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
