"""Checkpoints (SPEC §13): snapshots of a notebook whose unchanged outputs are stored once.

- ``notebook_checkpoints``: one row per checkpoint: the notebook's cells
  document and revision when it was taken, an optional name, the owner
  (every table reaches ``user_id``, SPEC §15).  Gone with its notebook.
- ``run_blobs``: a cell's run payload (stdout, outputs, the .ipynb record),
  stored once per owner and content: keyed by ``(user_id, sha256)``.
- ``checkpoint_runs``: per checkpoint and cell, the status and error (small)
  and the payload's key.  A checkpoint of a notebook whose outputs did not
  change writes one small row per cell and no payload again.
- ``cell_runs.blob``: the key of the payload the live run state already has
  in ``run_blobs`` (NULL: not stored yet, or changed since: every write of
  a run state clears it).  So a checkpoint hashes and copies only the run
  states written since the previous one; the others cost nothing.
- Orphaned payloads are deleted when their last checkpoint goes (and by
  the daily purge), unless a live run state still refers to them
  (``cell_runs_blob``).

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:10:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "checkpoints: notebook_checkpoints, checkpoint_runs, run_blobs, cell_runs.blob"

FORWARDS = [
    """
    CREATE TABLE notebook_checkpoints (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        notebook_id varchar(255) NOT NULL
            REFERENCES notebooks (id) ON DELETE CASCADE ON UPDATE CASCADE,
        user_id uuid NOT NULL,
        name varchar(255) NULL,
        revision bigint NOT NULL,
        cells jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    "CREATE INDEX notebook_checkpoints_notebook "
    "ON notebook_checkpoints (notebook_id, created_at DESC, id)",
    """
    CREATE TABLE run_blobs (
        user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        sha256 bytea NOT NULL,
        stdout text NOT NULL,
        outputs json NOT NULL,
        ipynb json NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, sha256)
    )
    """,
    """
    CREATE TABLE checkpoint_runs (
        checkpoint_id uuid NOT NULL REFERENCES notebook_checkpoints (id) ON DELETE CASCADE,
        user_id uuid NOT NULL,
        cell_id text NOT NULL,
        status text NOT NULL,
        error text NULL,
        blob bytea NOT NULL,
        PRIMARY KEY (checkpoint_id, cell_id),
        FOREIGN KEY (user_id, blob) REFERENCES run_blobs (user_id, sha256)
    )
    """,
    "CREATE INDEX checkpoint_runs_blob ON checkpoint_runs (user_id, blob)",
    "ALTER TABLE cell_runs ADD COLUMN blob bytea NULL",
    "CREATE INDEX cell_runs_blob ON cell_runs (blob) WHERE blob IS NOT NULL",
    """
    DO $$
    BEGIN
        ALTER TABLE notebook_checkpoints ALTER COLUMN cells SET COMPRESSION lz4;
        ALTER TABLE run_blobs ALTER COLUMN outputs SET COMPRESSION lz4;
        ALTER TABLE run_blobs ALTER COLUMN ipynb SET COMPRESSION lz4;
    EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
        RAISE NOTICE 'lz4 is not available on this server: TOAST compression left as it is';
    END
    $$
    """,
]

BACKWARDS = [
    "DROP INDEX cell_runs_blob",
    "ALTER TABLE cell_runs DROP COLUMN blob",
    "DROP TABLE checkpoint_runs",
    "DROP TABLE run_blobs",
    "DROP TABLE notebook_checkpoints",
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
