"""lz4 TOAST compression for the two large columns, where the server has it.

``notebooks.cells`` (read by every GET, search and code update) and
``cell_runs.outputs`` (the bulk of a GET) are compressed with lz4 instead of
pglz: it decompresses several times faster.  PostgreSQL ≥ 14 built
``--with-lz4`` (Debian's and the official images are) accepts it; elsewhere
the columns keep the server's default and the migration still succeeds.
Existing values are not recompressed: only values written from now on are
(a rewrite of every notebook is not worth a migration's time).

Figure (bench/, the 220 KB notebook, asyncpg fetching Cellar's GET query,
PostgreSQL on its own core): 0.62 to 0.87 ms per GET query with pglz,
0.53 to 0.59 ms with lz4.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-21T22:22:19:779244"
VERSION = "1.38.0"
DESCRIPTION = "lz4 TOAST compression for cells and outputs"

FORWARDS = """
DO $$
BEGIN
    ALTER TABLE notebooks ALTER COLUMN cells SET COMPRESSION lz4;
    ALTER TABLE cell_runs ALTER COLUMN outputs SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server: TOAST compression left as it is';
END
$$
"""

BACKWARDS = [
    "ALTER TABLE cell_runs ALTER COLUMN outputs SET COMPRESSION default",
    "ALTER TABLE notebooks ALTER COLUMN cells SET COMPRESSION default",
]


async def _run_all(statements: list[str]) -> None:
    engine = engine_finder()
    assert engine is not None
    for statement in statements:
        await engine.run_ddl(statement)


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="cellar", description=DESCRIPTION)

    async def run_forwards():
        await _run_all([FORWARDS])

    async def run_backwards():
        await _run_all(BACKWARDS)

    manager.add_raw(run_forwards)
    manager.add_raw_backwards(run_backwards)
    return manager
