"""The event log (SPEC §11): ``notebooks.seq`` and ``notebook_events``.

- ``notebooks.seq``: the seq of the notebook's last event (0: none yet).
  Every writer raises it in the same UPDATE that changes the row, so the row
  lock orders a notebook's events: seq n+1 is written by a transaction that
  waited for the commit of seq n (commit order, no gaps).
- ``notebook_events``: one row per change, primary key (notebook_id, seq):
  a notebook's history (``?since=``) is one range scan of it.  The owner
  (``user_id``) is on every row, as on every table (SPEC §15).
  ``notebook_events_cell`` (notebook_id, cell_id, seq), partial on the events
  that change a cell's code (insert, update, delete), makes a cell's history
  and the merge check one range scan of it.
- The admin's edits (and any plain ``UPDATE`` that leaves ``revision`` alone)
  go through the revision trigger: it now also raises ``seq``, writes the
  event (actor ``admin``) and sends the wake-up.  A change of the name only
  is a ``rename``; of the connection only a ``set_connection`` (masked: the
  database cannot decrypt it, so its data says ``***`` or null); anything
  else (the cells document) an ``import`` holding the new name and cells.
- The wake-up: ``pg_notify('cellar_events', '<seq>:<notebook_id>')``,
  delivered at commit, nothing on rollback.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "event log: notebooks.seq, notebook_events, the admin's events by trigger"

OPS = (
    "create",
    "rename",
    "set_connection",
    "cell_insert",
    "cell_update",
    "cell_move",
    "cell_delete",
    "outputs",
    "restore",
    "trash",
    "untrash",
    "import",
)

FORWARDS = [
    "ALTER TABLE notebooks ADD COLUMN seq bigint NOT NULL DEFAULT 0",
    "ALTER TABLE notebooks ADD CONSTRAINT notebooks_seq_nonnegative CHECK (seq >= 0)",
    f"""
    CREATE TABLE notebook_events (
        notebook_id varchar(255) NOT NULL
            REFERENCES notebooks (id) ON DELETE CASCADE ON UPDATE CASCADE,
        seq bigint NOT NULL,
        user_id uuid NOT NULL,
        revision bigint NOT NULL,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        op text NOT NULL CONSTRAINT notebook_events_op_valid
            CHECK (op IN ({", ".join(f"'{op}'" for op in OPS)})),
        cell_id text NULL,
        data jsonb NOT NULL,
        PRIMARY KEY (notebook_id, seq)
    )
    """,
    # Only the events that change a cell's code: a cell's history and the merge check
    # read nothing else, and the execution engine's outputs events skip this index.
    "CREATE INDEX notebook_events_cell ON notebook_events (notebook_id, cell_id, seq) "
    "WHERE op IN ('cell_insert', 'cell_update', 'cell_delete')",
    """
    CREATE OR REPLACE FUNCTION cellar_notebooks_bump_revision() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        event_op text;
        event_data jsonb;
    BEGIN
        NEW.revision := OLD.revision + 1;
        NEW.seq := OLD.seq + 1;
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := now();
        END IF;
        IF NEW.cells IS DISTINCT FROM OLD.cells
           OR (NEW.name IS DISTINCT FROM OLD.name
               AND NEW.db_conn_string IS DISTINCT FROM OLD.db_conn_string) THEN
            event_op := 'import';
            event_data := jsonb_build_object('name', NEW.name, 'cells', NEW.cells);
        ELSIF NEW.name IS DISTINCT FROM OLD.name THEN
            event_op := 'rename';
            event_data := jsonb_build_object('name', NEW.name);
        ELSE
            event_op := 'set_connection';
            event_data := jsonb_build_object(
                'db_conn_string', CASE WHEN NEW.db_conn_string IS NULL THEN NULL ELSE '***' END
            );
        END IF;
        INSERT INTO notebook_events (notebook_id, seq, user_id, revision, actor, op, data)
        VALUES (NEW.id, NEW.seq, NEW.user_id, NEW.revision, 'admin', event_op, event_data);
        PERFORM pg_notify('cellar_events', NEW.seq || ':' || NEW.id);
        RETURN NEW;
    END
    $$
    """,
]

BACKWARDS = [
    """
    CREATE OR REPLACE FUNCTION cellar_notebooks_bump_revision() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        NEW.revision := OLD.revision + 1;
        IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
            NEW.updated_at := now();
        END IF;
        RETURN NEW;
    END
    $$
    """,
    "DROP TABLE notebook_events",
    "ALTER TABLE notebooks DROP CONSTRAINT notebooks_seq_nonnegative",
    "ALTER TABLE notebooks DROP COLUMN seq",
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
