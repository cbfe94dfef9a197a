"""The trash (SPEC §13): ``notebooks.deleted_at``, and search that never sees trashed rows.

- ``notebooks.deleted_at timestamptz NULL``: set when the notebook went to
  the trash, NULL while it is live.  Every statement of the API keeps to
  ``deleted_at IS NULL`` (``OWNED`` in ``app.store.notebooks``).
- ``notebooks_trash``: the trash of one user, most recently deleted first
  (``GET /notebooks/trash``), and the purge's scan for old entries; a
  partial index, so it holds only trashed rows.
- The search indexes on ``notebooks`` (``notebooks_name_tsv``,
  ``notebooks_name_trgm``, ``notebooks_cells_path_ops``) become partial
  (``WHERE deleted_at IS NULL``): trashed notebooks are not in them at all,
  so many trashed rows cannot slow a search down; the search statements
  carry the same predicate, which is what lets the planner use them.
- ``cell_search`` holds only live notebooks' cells: a trigger removes a
  notebook's rows when it goes to the trash and puts them back when it is
  restored; the insert and update triggers skip trashed notebooks.

The blank/demo unique index stays over every row, trashed ones included: a
trashed blank or demo keeps its slot, so nothing can take it and it is not
provisioned again.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "trash: notebooks.deleted_at, partial search indexes, cell_search of live notebooks"

# The cells of notebook NEW as cell_search rows (as the insert trigger writes them).
_CELL_ROWS = """
        SELECT DISTINCT ON (c.cell ->> 'id')
               NEW.id, c.cell ->> 'id', NEW.user_id, coalesce(c.cell ->> 'code', '')
          FROM jsonb_array_elements(NEW.cells) WITH ORDINALITY AS c(cell, idx)
         WHERE c.cell ->> 'id' IS NOT NULL
         ORDER BY c.cell ->> 'id', c.idx
"""


def _name_trgm(where: str) -> str:
    return f"""
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE 'CREATE INDEX notebooks_name_trgm ON notebooks '
                    'USING gin (name gin_trgm_ops){where}';
        END IF;
    END
    $$
    """


def _search_triggers(live_only: bool) -> list[str]:
    when = " AND NEW.deleted_at IS NULL" if live_only else ""
    return [
        "DROP TRIGGER notebooks_cell_search_insert ON notebooks",
        "DROP TRIGGER notebooks_cell_search_update ON notebooks",
        f"""
        CREATE TRIGGER notebooks_cell_search_insert AFTER INSERT ON notebooks
        FOR EACH ROW {"WHEN (NEW.deleted_at IS NULL)" if live_only else ""}
        EXECUTE FUNCTION cellar_cell_search_insert()
        """,
        f"""
        CREATE TRIGGER notebooks_cell_search_update AFTER UPDATE OF cells, user_id ON notebooks
        FOR EACH ROW
        WHEN ((OLD.cells IS DISTINCT FROM NEW.cells OR OLD.user_id IS DISTINCT FROM NEW.user_id)
              {when})
        EXECUTE FUNCTION cellar_cell_search_update()
        """,
    ]


FORWARDS = [
    "ALTER TABLE notebooks ADD COLUMN deleted_at timestamptz NULL",
    "CREATE INDEX notebooks_trash ON notebooks (user_id, deleted_at DESC) "
    "WHERE deleted_at IS NOT NULL",
    "DROP INDEX notebooks_name_tsv",
    "CREATE INDEX notebooks_name_tsv ON notebooks USING gin (name_tsv) WHERE deleted_at IS NULL",
    "DROP INDEX notebooks_cells_path_ops",
    "CREATE INDEX notebooks_cells_path_ops ON notebooks USING gin (cells jsonb_path_ops) "
    "WHERE deleted_at IS NULL",
    "DROP INDEX IF EXISTS notebooks_name_trgm",
    _name_trgm(" WHERE deleted_at IS NULL"),
    f"""
    CREATE FUNCTION cellar_cell_search_trash() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.deleted_at IS NOT NULL THEN
            DELETE FROM cell_search WHERE notebook_id = NEW.id;
        ELSE
            INSERT INTO cell_search (notebook_id, cell_id, user_id, code)
            {_CELL_ROWS}
            ON CONFLICT (notebook_id, cell_id)
            DO UPDATE SET code = EXCLUDED.code, user_id = EXCLUDED.user_id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER notebooks_cell_search_trash AFTER UPDATE OF deleted_at ON notebooks
    FOR EACH ROW
    WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION cellar_cell_search_trash()
    """,
    *_search_triggers(live_only=True),
]

BACKWARDS = [
    *_search_triggers(live_only=False),
    "DROP TRIGGER notebooks_cell_search_trash ON notebooks",
    "DROP FUNCTION cellar_cell_search_trash()",
    # Trashed notebooks' cells go back into cell_search, as it was before the trash.
    """
    INSERT INTO cell_search (notebook_id, cell_id, user_id, code)
    SELECT DISTINCT ON (n.id, c.cell ->> 'id')
           n.id, c.cell ->> 'id', n.user_id, coalesce(c.cell ->> 'code', '')
      FROM notebooks n, jsonb_array_elements(n.cells) WITH ORDINALITY AS c(cell, idx)
     WHERE c.cell ->> 'id' IS NOT NULL AND n.deleted_at IS NOT NULL
     ORDER BY n.id, c.cell ->> 'id', c.idx
    ON CONFLICT (notebook_id, cell_id) DO NOTHING
    """,
    "DROP INDEX IF EXISTS notebooks_name_trgm",
    _name_trgm(""),
    "DROP INDEX notebooks_cells_path_ops",
    "CREATE INDEX notebooks_cells_path_ops ON notebooks USING gin (cells jsonb_path_ops)",
    "DROP INDEX notebooks_name_tsv",
    "CREATE INDEX notebooks_name_tsv ON notebooks USING gin (name_tsv)",
    "DROP INDEX notebooks_trash",
    "ALTER TABLE notebooks DROP COLUMN deleted_at",
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
