"""Search data per cell, so that editing one cell re-indexes that cell only.

Before, ``notebooks`` carried a generated ``search_tsv`` and a trigram index
over all of a notebook's code joined (``cellar_cells_code(cells)``).  Every
edit of one cell re-derived both for the whole notebook: ≈ 1.5 ms of the
≈ 2.2 ms an edit of the 50-cell benchmark notebook cost PostgreSQL, and the
row lock is held for all of it (bench/RESULTS.md, "Where an update's time
goes").  Now:

- ``cell_search``: one row per (notebook, cell) with the notebook's owner,
  the cell's code and a generated ``code_tsv`` (``simple`` configuration,
  weight B), a GIN index on it and, where the server has pg_trgm, a trigram
  GIN index on ``code``.  Where the server also has btree_gin, both GIN
  indexes lead with ``user_id``, so a search reads only the caller's entries:
  over 100,200 notebooks (bench/), the benchmark's text search took 20.5 ms
  in PostgreSQL with the single-column indexes and 14.6 ms with these;
- two triggers on ``notebooks`` keep it exact in the same transaction as any
  write of ``cells`` or change of owner (REST, legacy import, admin, psql
  alike): on insert all cells, on update only cells whose code changed,
  appeared or went away;
- ``notebooks`` keeps the name's search data: a generated ``name_tsv``
  (weight A) with its GIN index, and the name trigram index as before.

The cells document stays the one source of truth; ``cell_search`` is derived
from it like an index (never written by the application).  Backwards puts
the per-notebook columns back, derived from ``cells`` again.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-22T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "search data per cell (cell_search) kept by triggers"

# A cell id appears once per notebook; should a document ever repeat one, the
# first occurrence is the one indexed (DISTINCT ON), never an error.
FORWARDS = [
    """
    CREATE TABLE cell_search (
        notebook_id varchar(255) NOT NULL
            REFERENCES notebooks (id) ON DELETE CASCADE ON UPDATE CASCADE,
        cell_id text NOT NULL,
        user_id uuid NOT NULL,
        code text NOT NULL,
        code_tsv tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple'::regconfig, code), 'B')
        ) STORED,
        PRIMARY KEY (notebook_id, cell_id)
    )
    """,
    """
    CREATE FUNCTION cellar_cell_search_insert() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO cell_search (notebook_id, cell_id, user_id, code)
        SELECT DISTINCT ON (c.cell ->> 'id')
               NEW.id, c.cell ->> 'id', NEW.user_id, coalesce(c.cell ->> 'code', '')
          FROM jsonb_array_elements(NEW.cells) WITH ORDINALITY AS c(cell, idx)
         WHERE c.cell ->> 'id' IS NOT NULL
         ORDER BY c.cell ->> 'id', c.idx;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION cellar_cell_search_update() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.user_id IS DISTINCT FROM OLD.user_id THEN
            UPDATE cell_search SET user_id = NEW.user_id WHERE notebook_id = NEW.id;
        END IF;
        IF NEW.cells IS NOT DISTINCT FROM OLD.cells THEN
            RETURN NULL;
        END IF;
        -- One statement, each document expanded once (0.60 → 0.45 ms per edit
        -- of the 50-cell benchmark notebook, EXPLAIN ANALYZE's trigger time).
        WITH old AS (
            SELECT c ->> 'id' AS cell_id, coalesce(c ->> 'code', '') AS code
              FROM jsonb_array_elements(OLD.cells) AS c
        ), new AS (
            SELECT DISTINCT ON (c.cell ->> 'id')
                   c.cell ->> 'id' AS cell_id, coalesce(c.cell ->> 'code', '') AS code
              FROM jsonb_array_elements(NEW.cells) WITH ORDINALITY AS c(cell, idx)
             WHERE c.cell ->> 'id' IS NOT NULL
             ORDER BY c.cell ->> 'id', c.idx
        ), gone AS (
            DELETE FROM cell_search s
             WHERE s.notebook_id = NEW.id
               AND s.cell_id IN (SELECT cell_id FROM old EXCEPT SELECT cell_id FROM new)
        )
        INSERT INTO cell_search (notebook_id, cell_id, user_id, code)
        SELECT NEW.id, changed.cell_id, NEW.user_id, changed.code
          FROM (SELECT cell_id, code FROM new EXCEPT SELECT cell_id, code FROM old) AS changed
        ON CONFLICT (notebook_id, cell_id) DO UPDATE SET code = EXCLUDED.code;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER notebooks_cell_search_insert AFTER INSERT ON notebooks
    FOR EACH ROW EXECUTE FUNCTION cellar_cell_search_insert()
    """,
    """
    CREATE TRIGGER notebooks_cell_search_update AFTER UPDATE OF cells, user_id ON notebooks
    FOR EACH ROW
    WHEN (OLD.cells IS DISTINCT FROM NEW.cells OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION cellar_cell_search_update()
    """,
    """
    INSERT INTO cell_search (notebook_id, cell_id, user_id, code)
    SELECT DISTINCT ON (n.id, c.cell ->> 'id')
           n.id, c.cell ->> 'id', n.user_id, coalesce(c.cell ->> 'code', '')
      FROM notebooks n, jsonb_array_elements(n.cells) WITH ORDINALITY AS c(cell, idx)
     WHERE c.cell ->> 'id' IS NOT NULL
     ORDER BY n.id, c.cell ->> 'id', c.idx
    """,
    "DROP INDEX IF EXISTS notebooks_code_trgm",
    "DROP INDEX notebooks_search_tsv",
    "ALTER TABLE notebooks DROP COLUMN search_tsv",
    "DROP FUNCTION cellar_cells_code(jsonb)",
    """
    ALTER TABLE notebooks ADD COLUMN name_tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, coalesce(name, '')), 'A')
    ) STORED
    """,
    "CREATE INDEX notebooks_name_tsv ON notebooks USING gin (name_tsv)",
    # btree_gin where the server has it (and we may create it), else plain
    # GIN; the trigram index, like the name's, only where pg_trgm exists.
    """
    DO $$
    DECLARE
        lead text := '';
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin') THEN
            BEGIN
                CREATE EXTENSION IF NOT EXISTS btree_gin;
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE NOTICE 'btree_gin not created: insufficient privilege';
            END;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gin') THEN
            lead := 'user_id, ';
        END IF;
        EXECUTE 'CREATE INDEX cell_search_code_tsv ON cell_search '
                'USING gin (' || lead || 'code_tsv)';
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE 'CREATE INDEX cell_search_code_trgm ON cell_search '
                    'USING gin (' || lead || 'code gin_trgm_ops)';
        END IF;
    END
    $$
    """,
]

BACKWARDS = [
    "DROP INDEX notebooks_name_tsv",
    "ALTER TABLE notebooks DROP COLUMN name_tsv",
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
    """
    DO $$
    BEGIN
        IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
            EXECUTE 'CREATE INDEX notebooks_code_trgm ON notebooks '
                    'USING gin (cellar_cells_code(cells) gin_trgm_ops)';
        END IF;
    END
    $$
    """,
    "DROP TRIGGER notebooks_cell_search_update ON notebooks",
    "DROP TRIGGER notebooks_cell_search_insert ON notebooks",
    "DROP FUNCTION cellar_cell_search_update()",
    "DROP FUNCTION cellar_cell_search_insert()",
    "DROP TABLE cell_search",
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
