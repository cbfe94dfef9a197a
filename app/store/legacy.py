"""Notebooks in bulk, for the legacy import and export: set-based statements over arrays.

The same rows and fragments as ``notebooks`` (``RunState``, ``RUNS``), so a
column added there is read and written here too; new notebooks go in with
``notebooks.insert``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from .notebooks import (
    EVENT_COLUMNS,
    NEW_TYPES,
    NOTIFY,
    RUN_COLUMNS,
    RUN_TYPES,
    RUNS,
    NewNotebook,
    NotebookKind,
    RunState,
    with_runs,
)
from .notebooks import SNAPSHOT as _SNAPSHOT
from .rows import arrays, select_list, unnest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import asyncpg

# How many notebooks the export's cursor fetches per round trip.
PREFETCH = 50


class LegacyRow(msgspec.Struct, frozen=True):
    """A notebook as the import compares it and the export writes it."""

    id: str
    user_id: UUID
    owner: str | None  # the owner's external id
    name: str | None
    db_conn_string: str | None  # the Fernet token
    revision: int
    cells: str
    runs: list[RunState]  # last: built from the nested records (with_runs)


class SpecialNotebook(msgspec.Struct, frozen=True):
    """A blank or demo notebook of an owner known by external id."""

    owner: str
    kind: NotebookKind
    id: str


class CellRun(msgspec.Struct, frozen=True):
    """A run state to insert, with its notebook."""

    notebook_id: str
    run: RunState


_LEGACY = f"""
SELECT {select_list(LegacyRow, "n", owner="u.external_id", runs=RUNS)}
  FROM notebooks n JOIN users u ON u.id = n.user_id
"""
# The import compares with every notebook of an id, trashed ones too: a file of a
# trashed notebook updates it there (it stays in the trash).  The export writes
# live notebooks only: the legacy app has no trash, and a trashed notebook
# written back would come back to life there (docs/trash.md).
BY_ID = _LEGACY + " WHERE n.id = ANY($1::text[])"
EXPORT_ALL = _LEGACY + " WHERE n.deleted_at IS NULL ORDER BY n.id"
EXPORT_OF_OWNER = _LEGACY + " WHERE u.external_id = $1 AND n.deleted_at IS NULL ORDER BY n.id"
COUNT_ALL = "SELECT count(*) FROM notebooks WHERE deleted_at IS NULL"
COUNT_OF_OWNER = (
    "SELECT count(*) FROM notebooks n JOIN users u ON u.id = n.user_id"
    " WHERE u.external_id = $1 AND n.deleted_at IS NULL"
)
SPECIAL_NOTEBOOKS = f"""
SELECT {select_list(SpecialNotebook, "n", owner="u.external_id")}
  FROM notebooks n JOIN users u ON u.id = n.user_id
 WHERE u.external_id = ANY($1::text[]) AND n.kind IN ('blank', 'demo')
"""
# New contents for imported notebooks that exist (their kind and demo version
# stay).  "Revision taken from the file when higher": otherwise one more than
# stored, as for any other change (SPEC §3), computed against the row as it is now.
# Each is an ``import`` event (actor ``import``) with its wake-up, in the same statement.
REPLACE = f"""
WITH r AS (
    UPDATE notebooks n
       SET name = t.name, db_conn_string = t.db_conn_string, cells = t.cells::jsonb,
           revision = GREATEST(t.revision, n.revision + 1), seq = n.seq + 1,
           updated_at = now()
      FROM {unnest(NewNotebook, NEW_TYPES)}
     WHERE n.id = t.id AND n.user_id = t.user_id
    RETURNING n.id, n.user_id, n.revision, n.seq, n.name, n.kind, n.cells, n.db_conn_string
), event AS (
    INSERT INTO notebook_events ({EVENT_COLUMNS})
    SELECT r.id, r.seq, r.user_id, r.revision, 'import', 'import', NULL, {_SNAPSHOT}
      FROM r
)
SELECT r.id, {NOTIFY.format(seq="r.seq", notebook_id="r.id")} FROM r
"""
DELETE_RUNS = "DELETE FROM cell_runs WHERE notebook_id = ANY($1::text[])"
INSERT_RUNS = f"""
INSERT INTO cell_runs (notebook_id, {RUN_COLUMNS})
SELECT t.notebook_id, {select_list(RunState, "t")}
  FROM {unnest(RunState, RUN_TYPES, lead=(("notebook_id", "text"),))}
"""


async def by_id(conn: asyncpg.Connection, notebook_ids: Sequence[str]) -> list[LegacyRow]:
    """The notebooks of these ids that exist, with their owners and run states."""
    return [with_runs(LegacyRow, r) for r in await conn.fetch(BY_ID, notebook_ids)]


async def count(conn: asyncpg.Connection, owner: str | None = None) -> int:
    """How many notebooks there are (of the owner with this external id)."""
    if owner is None:
        return int(await conn.fetchval(COUNT_ALL))
    return int(await conn.fetchval(COUNT_OF_OWNER, owner))


async def export_rows(
    conn: asyncpg.Connection, owner: str | None = None
) -> AsyncIterator[LegacyRow]:
    """Every notebook (of the owner with this external id) by id, from a server-side cursor.

    A cursor lives in a transaction: iterate inside one (read-only, repeatable
    read: one consistent snapshot for the whole export).
    """
    cursor = (
        conn.cursor(EXPORT_ALL, prefetch=PREFETCH)
        if owner is None
        else conn.cursor(EXPORT_OF_OWNER, owner, prefetch=PREFETCH)
    )
    async for record in cursor:
        yield with_runs(LegacyRow, record)


async def special_notebooks(
    conn: asyncpg.Connection, owners: Sequence[str]
) -> list[SpecialNotebook]:
    """The blank and demo notebooks of the owners with these external ids."""
    return [SpecialNotebook(*r) for r in await conn.fetch(SPECIAL_NOTEBOOKS, owners)]


async def replace(conn: asyncpg.Connection, notebooks: Sequence[NewNotebook]) -> list[str]:
    """Overwrite existing notebooks of the same owner; the ids that were found."""
    return [r[0] for r in await conn.fetch(REPLACE, *arrays(NewNotebook, notebooks))]


async def delete_runs(conn: asyncpg.Connection, notebook_ids: Sequence[str]) -> None:
    """Forget every run state of these notebooks."""
    await conn.execute(DELETE_RUNS, notebook_ids)


async def insert_runs(conn: asyncpg.Connection, runs: Sequence[CellRun]) -> None:
    """Insert run states of cells that have none."""
    if runs:
        await conn.execute(
            INSERT_RUNS,
            [each.notebook_id for each in runs],
            *arrays(RunState, [each.run for each in runs]),
        )
