"""The daily jobs' claims (``cellar_daily_runs``): who runs today's job, and how it ended."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import timedelta

    import asyncpg

# One advisory lock key per job, from its name (namespaced: no clash with others' keys).
TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('cellar daily job ' || $1, 0))"
# $1 the job, $2 how long after the last claim it is due again.
CLAIM = """
INSERT INTO cellar_daily_runs AS d (job, started_at) VALUES ($1, now())
ON CONFLICT (job) DO UPDATE SET started_at = now(), finished_at = NULL, outcome = NULL
 WHERE d.started_at <= now() - $2::interval
RETURNING true
"""
FINISH = "UPDATE cellar_daily_runs SET finished_at = now(), outcome = $2 WHERE job = $1"


async def claim(conn: asyncpg.Connection, job: str, every: timedelta) -> bool:
    """Claim the job's run if it is due and nobody is claiming it now; call in a transaction.

    The advisory lock (transaction-scoped: it works through PgBouncer's
    transaction pooling) lets one instance at a time look; the claim row
    makes the run once per ``every`` whoever looks next.
    """
    if not await conn.fetchval(TRY_LOCK, job):
        return False
    return bool(await conn.fetchval(CLAIM, job, every))


async def finish(conn: asyncpg.Connection, job: str, outcome: str) -> None:
    await conn.execute(FINISH, job, outcome)
