"""The notebook list's keyset index: ``(user_id, updated_at, id)`` (issue 20).

A page of ``GET /notebooks?limit=&cursor=`` is one range of this index: the
user's notebooks ordered by ``(updated_at, id)``, read backwards (newest
first) from the cursor's position, or forwards for the notebooks edited
during a walk (docs/paging.md).  The id makes the order total, so a
position is exact even when two notebooks share an ``updated_at``.  It
replaces ``notebooks_user_updated`` (``user_id, updated_at DESC``), whose
every use it serves as well: one index for the list order, not two to keep.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the notebook list's keyset index (user_id, updated_at, id)"

FORWARDS = [
    "CREATE INDEX notebooks_user_updated_id ON notebooks (user_id, updated_at, id)",
    "DROP INDEX notebooks_user_updated",
]

BACKWARDS = [
    "CREATE INDEX notebooks_user_updated ON notebooks (user_id, updated_at DESC)",
    "DROP INDEX notebooks_user_updated_id",
]


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
