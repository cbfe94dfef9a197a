"""Constraints, indexes and the search column that Piccolo's column API cannot express.

- CHECKs: lower-case emails, notebook kind, revision >= 0, cells is an array.
- A partial unique index: at most one ``blank`` and one ``demo`` notebook per
  user, so concurrent provisioning cannot create two (the database decides).
- ``cellar_cells_code(cells)``: the cells' code joined by newlines, an
  IMMUTABLE function so it can feed a generated column and an index.
- GIN indexes: ``jsonb_path_ops`` on cells (type / writes containment), a
  generated ``search_tsv`` (simple configuration: code is not English) over
  name and code, and, where the server has pg_trgm, trigram indexes over code
  and names for identifier/substring search.
- ``cell_count``: generated, so a notebook list reads no cells document.
- ``cell_runs`` has one row per (notebook, cell).

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-21T21:45:42:990554"
VERSION = "1.38.0"
DESCRIPTION = "constraints, GIN search indexes, partial unique kinds"

FORWARDS = [
    "ALTER TABLE users ADD CONSTRAINT users_email_lower CHECK (email = lower(email))",
    "ALTER TABLE notebooks ADD CONSTRAINT notebooks_kind_valid "
    "CHECK (kind IN ('user', 'blank', 'demo'))",
    "ALTER TABLE notebooks ADD CONSTRAINT notebooks_revision_nonnegative CHECK (revision >= 0)",
    "ALTER TABLE notebooks ADD CONSTRAINT notebooks_cells_array "
    "CHECK (jsonb_typeof(cells) = 'array')",
    "CREATE UNIQUE INDEX notebooks_one_special_kind_per_user ON notebooks (user_id, kind) "
    "WHERE kind IN ('blank', 'demo')",
    "CREATE INDEX notebooks_user_updated ON notebooks (user_id, updated_at DESC)",
    "CREATE INDEX notebooks_cells_path_ops ON notebooks USING gin (cells jsonb_path_ops)",
    """
    CREATE FUNCTION cellar_cells_code(cells jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN (SELECT coalesce(string_agg(cell ->> 'code', E'\\n'), '')
            FROM jsonb_array_elements(cells) AS cell)
    """,
    """
    ALTER TABLE notebooks ADD COLUMN search_tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, coalesce(name, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, cellar_cells_code(cells)), 'B')
    ) STORED
    """,
    "CREATE INDEX notebooks_search_tsv ON notebooks USING gin (search_tsv)",
    # Listing notebooks must not detoast every cells document to count it.
    "ALTER TABLE notebooks ADD COLUMN cell_count integer "
    "GENERATED ALWAYS AS (jsonb_array_length(cells)) STORED",
    "CREATE UNIQUE INDEX cell_runs_notebook_cell ON cell_runs (notebook_id, cell_id)",
    "ALTER TABLE cell_runs ADD CONSTRAINT cell_runs_status_valid "
    "CHECK (status IN ('idle', 'running', 'success', 'error', 'blocked'))",
    # pg_trgm is optional: where the server lacks it (or we may not create it),
    # search falls back to full text only.
    """
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS pg_trgm;
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE NOTICE 'pg_trgm not created: insufficient privilege';
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE 'CREATE INDEX notebooks_code_trgm ON notebooks '
                    'USING gin (cellar_cells_code(cells) gin_trgm_ops)';
            EXECUTE 'CREATE INDEX notebooks_name_trgm ON notebooks '
                    'USING gin (name gin_trgm_ops)';
        END IF;
    END
    $$
    """,
]

BACKWARDS = [
    "DROP INDEX IF EXISTS notebooks_name_trgm",
    "DROP INDEX IF EXISTS notebooks_code_trgm",
    "ALTER TABLE cell_runs DROP CONSTRAINT cell_runs_status_valid",
    "DROP INDEX cell_runs_notebook_cell",
    "ALTER TABLE notebooks DROP COLUMN cell_count",
    "DROP INDEX notebooks_search_tsv",
    "ALTER TABLE notebooks DROP COLUMN search_tsv",
    "DROP FUNCTION cellar_cells_code(jsonb)",
    "DROP INDEX notebooks_cells_path_ops",
    "DROP INDEX notebooks_user_updated",
    "DROP INDEX notebooks_one_special_kind_per_user",
    "ALTER TABLE notebooks DROP CONSTRAINT notebooks_cells_array",
    "ALTER TABLE notebooks DROP CONSTRAINT notebooks_revision_nonnegative",
    "ALTER TABLE notebooks DROP CONSTRAINT notebooks_kind_valid",
    "ALTER TABLE users DROP CONSTRAINT users_email_lower",
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
