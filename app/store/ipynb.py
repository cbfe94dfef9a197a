"""Notebooks as .ipynb (SPEC §12): the import's insert and the export's reads.

An imported notebook is one row of ``notebooks`` (its cells document, its
``ipynb`` extra and the file's SHA-256) and one ``cell_runs`` row per code
cell that ran, each with its ``.ipynb`` record (``RunState.ipynb``).
``insert_imported`` writes all of it in one statement (a data-modifying
CTE: the notebook row, then every run row from one ``unnest``), so whatever
must go with an import (the event log's ``import`` event) is added there,
in one place.  The export reads the notebook with every run state's record
in one statement, as the API's ``GET`` reads it without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from .notebooks import (
    EVENT_COLUMNS,
    NEW_TYPES,
    NOTIFY,
    OWNED,
    RUN_COLUMNS,
    RUN_TYPES,
    NewNotebook,
    RunState,
    with_runs,
)
from .notebooks import SNAPSHOT as _SNAPSHOT
from .rows import arrays, parameters, select_list, unnest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence
    from uuid import UUID

    import asyncpg

# How many notebooks the export's cursor fetches per round trip (they may be large).
PREFETCH = 20


class ImportedNotebook(NewNotebook, frozen=True):
    """A notebook to insert from an .ipynb: a new notebook plus what §3's shape lacks."""

    ipynb: str  # IpynbNotebookExtra as JSON text
    # cellar import-ipynb's key of the file (SHA-256 of its name and bytes, lower-case hex),
    # unique per owner; None for the route's imports.
    ipynb_sha256: str | None


class IpynbRow(msgspec.Struct, frozen=True):
    """A notebook as the export writes it: its cells, extra and run states with records."""

    id: str
    name: str | None
    cells: str
    ipynb: str | None  # null: made in Cellar
    stamp: str  # STAMP: changes whenever anything the export writes changes
    runs: list[RunState]  # last: built from the nested records (with_runs)


# What the export of notebook ``n`` is made of, in one short text that changes with
# any of it: the notebook row's version (name, cells, extra: any UPDATE makes a new
# one, with a new xmin) and every run state's (an upsert writes a new row version:
# a new xmin and ctid; a deletion changes the count).  Not updated_at: two runs
# written concurrently can commit in the other order than their clocks say.
STAMP = (
    "n.xmin::text || ':' || (SELECT count(*) || ':' || coalesce(bit_xor("
    "hashtextextended(r.xmin::text || r.ctid::text, 0)), 0) FROM cell_runs r "
    "WHERE r.notebook_id = n.id)"
)
IMPORTED_TYPES = {**NEW_TYPES, "cells": "jsonb", "ipynb": "json", "ipynb_sha256": "text"}
# The run states of a notebook with their .ipynb records (the API's RUNS leaves them out).
RUNS_RECORDED = (
    f"ARRAY(SELECT ROW({select_list(RunState, 'r')}) FROM cell_runs r WHERE r.notebook_id = n.id)"
)
# $1… the notebook's fields, then the run states' arrays.  A notebook of the same
# import key (the unique index on (user_id, ipynb_sha256)) makes it insert nothing:
# a concurrent import of the same file waits for the first, then does nothing.
# The notebook's event 1 (``import``, by the last parameter: the actor) and its
# wake-up go in the same statement.
_FIELDS = len(ImportedNotebook.__struct_fields__)
_ACTOR = _FIELDS + len(RunState.__struct_fields__) + 1
INSERT_IMPORTED = f"""
WITH r AS (
    INSERT INTO notebooks ({", ".join(ImportedNotebook.__struct_fields__)}, seq)
    VALUES ({parameters(ImportedNotebook, IMPORTED_TYPES, first=1)}, 1)
    ON CONFLICT (user_id, ipynb_sha256) WHERE ipynb_sha256 IS NOT NULL DO NOTHING
    RETURNING id, user_id, revision, seq, name, kind, cells, db_conn_string
), runs AS (
    INSERT INTO cell_runs (notebook_id, {RUN_COLUMNS})
    SELECT r.id, {select_list(RunState, "t")}
      FROM r, {unnest(RunState, RUN_TYPES, first=_FIELDS + 1)}
), event AS (
    INSERT INTO notebook_events ({EVENT_COLUMNS})
    SELECT r.id, r.seq, r.user_id, r.revision, ${_ACTOR}::text, 'import', NULL, {_SNAPSHOT}
      FROM r
)
SELECT r.revision, {NOTIFY.format(seq="r.seq", notebook_id="r.id")} FROM r
"""
IMPORTED_HASHES = (
    "SELECT ipynb_sha256 FROM notebooks WHERE user_id = $1 AND ipynb_sha256 IS NOT NULL"
)
EXPORT = (
    f"SELECT {select_list(IpynbRow, 'n', stamp=STAMP, runs=RUNS_RECORDED)}"
    f" FROM notebooks n WHERE {OWNED}"
)
EXPORT_STAMP = f"SELECT {STAMP} FROM notebooks n WHERE {OWNED}"
_EXPORT_ALL = f"""
SELECT coalesce(u.email, u.external_id, u.id::text) AS owner,
       {select_list(IpynbRow, "n", stamp=STAMP, runs=RUNS_RECORDED)}
  FROM notebooks n JOIN users u ON u.id = n.user_id
"""
# cellar export-ipynb writes live notebooks only, as the API shows them (docs/trash.md).
EXPORT_ALL = _EXPORT_ALL + " WHERE n.deleted_at IS NULL ORDER BY owner, n.created_at, n.id"
EXPORT_OF_USER = (
    _EXPORT_ALL + " WHERE n.user_id = $1 AND n.deleted_at IS NULL ORDER BY n.created_at, n.id"
)
COUNT_ALL = "SELECT count(*) FROM notebooks WHERE deleted_at IS NULL"
COUNT_OF_USER = "SELECT count(*) FROM notebooks WHERE user_id = $1 AND deleted_at IS NULL"


async def insert_imported(
    conn: asyncpg.Connection,
    notebook: ImportedNotebook,
    runs: Sequence[RunState],
    actor: str = "import",
) -> int | None:
    """Insert an imported notebook, its run states and its ``import`` event; its revision.

    One statement.  None, and nothing written, when the owner has a notebook
    of the same import key (``ipynb_sha256``).
    """
    value = await conn.fetchval(
        INSERT_IMPORTED, *msgspec.structs.astuple(notebook), *arrays(RunState, runs), actor
    )
    return None if value is None else int(value)


async def imported_hashes(conn: asyncpg.Connection, user_id: UUID) -> list[str]:
    """The import keys (``ipynb_sha256``) of every notebook the user imported."""
    return [r[0] for r in await conn.fetch(IMPORTED_HASHES, user_id)]


async def export_row(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> IpynbRow | None:
    record = await conn.fetchrow(EXPORT, notebook_id, user_id)
    return None if record is None else with_runs(IpynbRow, record)


async def export_stamp(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> str | None:
    """The notebook's ``STAMP`` (None: no such notebook of the user's), without reading it."""
    value: str | None = await conn.fetchval(EXPORT_STAMP, notebook_id, user_id)
    return value


async def count(conn: asyncpg.Connection, user_id: UUID | None = None) -> int:
    """How many notebooks there are (of the user)."""
    if user_id is None:
        return int(await conn.fetchval(COUNT_ALL))
    return int(await conn.fetchval(COUNT_OF_USER, user_id))


async def export_rows(
    conn: asyncpg.Connection, user_id: UUID | None = None
) -> AsyncIterator[tuple[str, IpynbRow]]:
    """(owner, notebook) for every notebook (of the user), oldest first, from a cursor.

    The owner is the user's email, else external id, else id.  A cursor
    lives in a transaction: iterate inside one (read-only, repeatable read:
    one consistent snapshot for the whole export).
    """
    cursor = (
        conn.cursor(EXPORT_ALL, prefetch=PREFETCH)
        if user_id is None
        else conn.cursor(EXPORT_OF_USER, user_id, prefetch=PREFETCH)
    )
    async for record in cursor:
        yield record[0], with_runs(IpynbRow, record[1:])
