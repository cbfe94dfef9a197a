"""The daily jobs' claims (``app.system.daily``): one row per job, its last run.

Every instance of the service looks every hour whether a daily job is due;
the one that claims it (a transaction-level advisory lock, then this row's
``started_at`` moved to now) runs it, the others see it claimed.  A claim is
a row, not a held lock, so it works through PgBouncer's transaction pooling
and survives the instance that made it.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:00:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "daily jobs: cellar_daily_runs"

FORWARDS = [
    """
    CREATE TABLE cellar_daily_runs (
        job text PRIMARY KEY,
        started_at timestamptz NOT NULL,
        finished_at timestamptz NULL,
        outcome text NULL
    )
    """,
]

BACKWARDS = ["DROP TABLE cellar_daily_runs"]


async def _run_all(statements: list[str]) -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in statements:
        await engine.run_ddl(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="cellar", description=DESCRIPTION)

    async def run_forwards():
        await _run_all(FORWARDS)

    async def run_backwards():
        await _run_all(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
