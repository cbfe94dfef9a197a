"""The database keeps the revision rule for every writer, the admin included.

SPEC §3: every change of a notebook's name, cells or connection string raises
``revision`` by exactly one.  The REST service does so in its own UPDATEs
(``revision = revision + 1``); Piccolo admin's update path (and a hand-written
``UPDATE``) knows nothing of it.  A ``BEFORE UPDATE`` trigger fills the gap:

- it fires only when the writer left ``revision`` as it was (NEW = OLD) and
  name, cells or db_conn_string changed, so the service's own bump is never
  doubled and the legacy importer's explicit revision is kept;
- it raises ``revision`` by one and, unless the writer set it, ``updated_at``.

``NEW.revision = OLD.revision`` comes first in the WHEN clause: the REST
writers always change the revision, so for them the cells documents are
never compared.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-21T22:13:17:680737"
VERSION = "1.38.0"
DESCRIPTION = "admin: notebooks revision trigger"

FORWARDS = [
    """
    CREATE FUNCTION cellar_notebooks_bump_revision() RETURNS trigger
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
    """
    CREATE TRIGGER notebooks_bump_revision
    BEFORE UPDATE ON notebooks
    FOR EACH ROW
    WHEN (
        NEW.revision = OLD.revision
        AND (
            NEW.name IS DISTINCT FROM OLD.name
            OR NEW.db_conn_string IS DISTINCT FROM OLD.db_conn_string
            OR NEW.cells IS DISTINCT FROM OLD.cells
        )
    )
    EXECUTE FUNCTION cellar_notebooks_bump_revision()
    """,
]

BACKWARDS = [
    "DROP TRIGGER IF EXISTS notebooks_bump_revision ON notebooks",
    "DROP FUNCTION IF EXISTS cellar_notebooks_bump_revision()",
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
