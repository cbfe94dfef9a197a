"""The .ipynb columns' index, check and compression (raw steps after the columns exist).

- ``notebooks_ipynb_sha256``: a user has at most one notebook per
  ``cellar import-ipynb`` key (the SHA-256 of a file's name and bytes), so
  a file imported again, by a re-run or by a concurrent run, inserts
  nothing (``ON CONFLICT DO NOTHING``); a partial unique index over the
  notebooks that have a key.
- ``notebooks_ipynb_sha256_hex``: the hash is 64 lower-case hex digits.
- lz4 TOAST compression for ``notebooks.ipynb`` and ``cell_runs.ipynb``
  where the server has it, as for ``cells`` and ``outputs`` (see the lz4
  migration): an export decompresses them.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-01T07:28:19:000000"
VERSION = "1.38.0"
DESCRIPTION = ".ipynb: the import hash index and check, lz4 for the .ipynb columns"

FORWARDS = [
    "CREATE UNIQUE INDEX notebooks_ipynb_sha256 ON notebooks (user_id, ipynb_sha256) "
    "WHERE ipynb_sha256 IS NOT NULL",
    "ALTER TABLE notebooks ADD CONSTRAINT notebooks_ipynb_sha256_hex "
    "CHECK (ipynb_sha256 ~ '^[0-9a-f]{64}$')",
    """
    DO $$
    BEGIN
        ALTER TABLE notebooks ALTER COLUMN ipynb SET COMPRESSION lz4;
        ALTER TABLE cell_runs ALTER COLUMN ipynb SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
        RAISE NOTICE 'lz4 is not available on this server: TOAST compression left as it is';
    END
    $$
    """,
]

BACKWARDS = [
    "ALTER TABLE cell_runs ALTER COLUMN ipynb SET COMPRESSION default",
    "ALTER TABLE notebooks ALTER COLUMN ipynb SET COMPRESSION default",
    "ALTER TABLE notebooks DROP CONSTRAINT notebooks_ipynb_sha256_hex",
    "DROP INDEX notebooks_ipynb_sha256",
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
