"""``cellar_tsvector_agg(tsvector)``: one notebook's cells as one tsvector (issue 16 item 6).

Search's negations hold per notebook (``-KMeans``: no cell of the notebook
holds KMeans), so a notebook's whole text is matched against the query: the
concatenation (``||``, PostgreSQL's ``tsvector_concat``) of its cells'
stored ``cell_search.code_tsv``, no re-parsing of the code.  An aggregate
because PostgreSQL has none for tsvector.

This file stands alone: it never imports ``app``.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-12-02T01:30:30:000000"
VERSION = "1.38.0"
DESCRIPTION = "cellar_tsvector_agg: a notebook's cells as one tsvector, for negated search terms"

FORWARDS = [
    "CREATE AGGREGATE cellar_tsvector_agg(tsvector) "
    "(SFUNC = tsvector_concat, STYPE = tsvector, INITCOND = '')",
]

BACKWARDS = [
    "DROP AGGREGATE cellar_tsvector_agg(tsvector)",
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
