"""Jobs the service runs once a day, on one instance at a time (SPEC §11, §13).

Each instance (each worker process) looks every hour, at a jittered time,
whether a job is due; the first to claim it runs it (``app.store.daily``: a
transaction-level advisory lock, then a claim row that makes it due again
23 hours later), the others skip it.  There is no timer per instance that
fires in step with the others, and no lock held while the job runs: a job
does its work in short transactions of its own.  A job that fails is logged
and tried again the next day (or run by hand: each has a ``cellar`` command).

A new daily job is one more ``DailyJob`` in ``DAILY_JOBS``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple

from app.database import connection, transaction
from app.history.retention import daily_prune
from app.store import daily

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
    from contextlib import AbstractAsyncContextManager

    from litestar import Litestar

    from app.settings import Settings

log = logging.getLogger("cellar.daily")

# A job is due again this long after it was last claimed (not 24 h: checks are hourly
# with jitter, so runs would otherwise drift later every day).
EVERY = timedelta(hours=23)
CHECK_SECONDS = 3600.0
# The first look after start-up: not at once (many instances restarting together).
FIRST_CHECK_SECONDS = 300.0


class DailyJob(NamedTuple):
    name: str  # also the command that runs it by hand: `cellar <name>`
    run: Callable[[Settings], Awaitable[str]]  # its one-line outcome


DAILY_JOBS: tuple[DailyJob, ...] = (DailyJob("prune-history", daily_prune),)


async def run_due(
    settings: Settings, jobs: Sequence[DailyJob] = DAILY_JOBS, every: timedelta = EVERY
) -> dict[str, str]:
    """Run the jobs that are due and that this instance claims; their outcomes."""
    outcomes: dict[str, str] = {}
    for job in jobs:
        async with transaction() as conn:
            claimed = await daily.claim(conn, job.name, every)
        if not claimed:
            continue
        try:
            outcome = await job.run(settings)
        except Exception as exc:  # logged and recorded; tomorrow's run tries again
            log.exception("daily job %s failed", job.name)
            outcome = f"failed: {type(exc).__name__}: {exc}"
        else:
            log.info("daily job %s: %s", job.name, outcome)
        async with connection() as conn:
            await daily.finish(conn, job.name, outcome[:1000])
        outcomes[job.name] = outcome
    return outcomes


async def _loop(settings: Settings) -> None:
    await asyncio.sleep(FIRST_CHECK_SECONDS * (1 + random.random()))
    while True:
        try:
            await run_due(settings)
        except Exception as exc:  # the database may be away: the next look tries again
            log.warning("daily jobs not checked: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(CHECK_SECONDS * (0.9 + 0.2 * random.random()))


def daily_lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The app's lifespan part that looks for due jobs while the app runs."""

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(_loop(settings), name="cellar daily jobs")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    return lifespan
