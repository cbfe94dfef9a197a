"""Notebooks and their cells' run state: the statements, the rows, one function each.

Conventions every statement follows:

- one notebook is ``n``, found by ``OWNED``: ``$1`` its id, ``$2`` its owner
  (another user's notebook is as absent as a missing one);
- every change of a notebook is one conditional statement built by
  ``_change``: it raises ``revision`` by one in the same statement and holds
  only when ``PRECONDITION`` does (``$3`` the body's ``expected_revision``,
  ``$4`` the ``If-Match`` revision, each NULL for "any"); its own values
  follow from ``$5``.  Matching no row means "refused" and the function
  returns None; ``state`` then tells the service why.  Every expression
  reads the row being changed, so after waiting for a concurrent writer
  PostgreSQL re-evaluates all of it on the version that writer committed:
  no lost update, and the row lock is held only while the statement runs,
  never across a round trip to the application.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeVar
from uuid import UUID

import msgspec

from .rows import arrays, parameters, select_list, unnest

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

NotebookKind = Literal["user", "blank", "demo"]
RunStatus = Literal["idle", "running", "success", "error", "blocked"]


class Precondition(NamedTuple):
    """What the caller believes the revision is: from the body and/or ``If-Match``."""

    body: int | None = None
    header: int | None = None


# -- rows --------------------------------------------------------------------------------


# Rows built by the hundred per request, holding only scalars, skip the cycle
# collector (gc=False): cheaper to create, no collections triggered by them.


class RunState(msgspec.Struct, frozen=True, gc=False):
    """One row of ``cell_runs``: what the execution engine last wrote for a cell."""

    cell_id: str
    status: RunStatus = "idle"
    stdout: str = ""
    # The stored JSON text (``cell_runs.outputs`` is ``json``): handed on, never decoded.
    outputs: str = "[]"
    error: str | None = None
    # The run as an imported .ipynb recorded it (SPEC §12; ``app.ipynb.schemas.IpynbCellRun``
    # as JSON text: the nbformat outputs exactly as read, the execution count), or None.
    # Every write of a run state writes this field too, so the engine's write (None) drops
    # a record that no longer describes the cell's outputs, in the same statement.  Only
    # the export reads it (``app.store.ipynb``): the API's reads (``RUN``) leave it out,
    # since it can be megabytes, and their rows hold None.
    ipynb: str | None = None


class NotebookRow(msgspec.Struct, frozen=True):
    """One notebook as GET shows it; ``cells`` is the stored JSON text."""

    id: str
    name: str | None
    kind: NotebookKind
    db_conn_string: str | None  # the Fernet token
    revision: int
    created_at: datetime
    updated_at: datetime
    cells: str
    seq: int  # SEQ: read in the same statement as the content it versions
    runs: list[RunState]  # last: built from the nested records (with_runs)


class NotebookSummary(msgspec.Struct, frozen=True, gc=False):
    """One row of the notebook list, which the API serves as it comes."""

    id: Annotated[str, msgspec.Meta(description="The notebook's id (UUID text for new ones).")]
    name: str | None
    kind: Annotated[
        NotebookKind, msgspec.Meta(description="`blank` and `demo`: the ones made for you.")
    ]
    revision: Annotated[int, msgspec.Meta(description="Raised by one by every edit.")]
    cell_count: int
    updated_at: datetime


class NotebookState(msgspec.Struct, frozen=True):
    """What a refused change is explained from (``app.notebooks.services.explain``)."""

    revision: int
    cell_count: int
    has_cell: bool  # the cell asked about is in the notebook (false when none was asked)


class EditedCell(msgspec.Struct, frozen=True):
    """What a code edit returns: the new revision, the stored cell, its run state if any."""

    revision: int
    cell: str
    run: RunState | None  # last: built from the nested record


class NewNotebook(msgspec.Struct, frozen=True):
    """One notebook to insert (``cells`` as JSON text)."""

    id: str
    user_id: UUID
    name: str | None
    kind: NotebookKind
    db_conn_string: str | None
    revision: int
    cells: str
    demo_version: int | None


class NotebookIdentity(msgspec.Struct, frozen=True):
    """The columns the admin shows but may not change, as stored."""

    id: str
    user_id: UUID
    kind: NotebookKind
    cells: str
    demo_version: int | None
    ipynb: str | None  # JSON text, compared as data
    ipynb_sha256: str | None


R = TypeVar("R", bound=msgspec.Struct)


def with_runs(row: type[R], record: asyncpg.Record | tuple[Any, ...]) -> R:
    """A row whose last field is the run states, nested in the record as an array of records."""
    *fields, runs = record
    return row(*fields, [RunState(*run) for run in runs])


# -- fragments ---------------------------------------------------------------------------

# The run state of cell_runs row ``r`` as the API shows it, as one record: every
# field but the .ipynb record, which only the export reads (``RunState(*record)``
# leaves it None).  Nested in a row it comes in PostgreSQL's binary format:
# outputs arrive as the stored text, to be handed on as msgspec.Raw with no JSON
# scan at all.
SHOWN_RUN_FIELDS = tuple(name for name in RunState.__struct_fields__ if name != "ipynb")
RUN = f"ROW({', '.join(f'r.{name}' for name in SHOWN_RUN_FIELDS)})"
RUNS = f"ARRAY(SELECT {RUN} FROM cell_runs r WHERE r.notebook_id = n.id)"
RUN_COLUMNS = ", ".join(RunState.__struct_fields__)
# One SQL type per RunState field: how a run state is written.
RUN_TYPES = {
    "cell_id": "text",
    "status": "text",
    "stdout": "text",
    "outputs": "json",
    "error": "text",
    "ipynb": "json",
}

OWNED = "n.id = $1 AND n.user_id = $2"
# What moves with every change of notebook ``n`` as GET shows it, outputs included
# (app.notebooks.read_cache keys its answers on it).  Until the event log's
# ``notebooks.seq`` is there, a stand-in from the row versions: the notebook row's
# (any UPDATE makes a new xmin) and every run state's (an upsert writes a new xmin
# and ctid; a deletion changes the count), hashed to a bigint.
SEQ = (
    "hashtextextended(n.xmin::text || ':' || (SELECT count(*) || ':' || coalesce(bit_xor("
    "hashtextextended(r.xmin::text || r.ctid::text, 0)), 0) FROM cell_runs r "
    "WHERE r.notebook_id = n.id), 0)"
)
PRECONDITION = "($3::bigint IS NULL OR n.revision = $3) AND ($4::bigint IS NULL OR n.revision = $4)"


def _has_cell(cell_id: str) -> str:
    return f"n.cells @> jsonb_build_array(jsonb_build_object('id', {cell_id}::text))"


def _position(cell_id: str) -> str:
    """The cell's 0-based position in ``n.cells`` (its first occurrence)."""
    return (
        "(SELECT (t.i - 1)::int FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i)"
        f" WHERE t.c ->> 'id' = {cell_id} LIMIT 1)"
    )


def _change(assignments: str, condition: str = "", returning: str = "n.revision") -> str:
    """An UPDATE of one notebook: owner and ``PRECONDITION`` hold, ``revision`` + 1.

    Every change of a notebook's row is built here, so whatever must go with
    each change (a sequence number, say) is added in one place.
    """
    return (
        "UPDATE notebooks n\n"
        f"   SET revision = n.revision + 1, updated_at = now(), {assignments}\n"
        f" WHERE {OWNED} AND {PRECONDITION}{condition}\n"
        f"RETURNING {returning}"
    )


# -- statements: reading -----------------------------------------------------------------

GET = f"SELECT {select_list(NotebookRow, 'n', seq=SEQ, runs=RUNS)} FROM notebooks n WHERE {OWNED}"
# The read cache's revalidation: one primary-key lookup, the owner checked.
SEQ_OF = f"SELECT {SEQ} FROM notebooks n WHERE {OWNED}"
REVISION = f"SELECT n.revision FROM notebooks n WHERE {OWNED}"
CELLS = f"SELECT n.cells FROM notebooks n WHERE {OWNED}"
# The first column says whether the user was provisioned; the rest are a
# NotebookSummary, NULL when the user has no notebook.
LIST = f"""
SELECT u.provisioned_at IS NOT NULL AS provisioned, {select_list(NotebookSummary, "n")}
  FROM users u
  LEFT JOIN notebooks n ON n.user_id = u.id
 WHERE u.id = $1
 ORDER BY n.updated_at DESC, n.id
"""
STATE = (
    f"SELECT {select_list(NotebookState, 'n', has_cell=_has_cell('$3'))}"
    f" FROM notebooks n WHERE {OWNED}"
)
IDENTITY = f"SELECT {select_list(NotebookIdentity, 'n')} FROM notebooks n WHERE n.id = $1"

# -- statements: creating ----------------------------------------------------------------

NEW_TYPES = {
    "id": "text",
    "user_id": "uuid",
    "name": "text",
    "kind": "text",
    "db_conn_string": "text",
    "revision": "bigint",
    "cells": "text",
    "demo_version": "int",
}
INSERT_NOTEBOOKS = f"""
INSERT INTO notebooks ({", ".join(NewNotebook.__struct_fields__)})
SELECT {select_list(NewNotebook, "t", cells="t.cells::jsonb")}
  FROM {unnest(NewNotebook, NEW_TYPES)}
"""
# A user's blank and demo: concurrent first calls all try, the partial unique
# index on (user_id, kind) lets one of each in and the others do nothing.
PROVISION = (
    INSERT_NOTEBOOKS + "ON CONFLICT (user_id, kind) WHERE kind IN ('blank', 'demo') DO NOTHING\n"
)
SPECIAL_KIND_INDEX = "notebooks_one_special_kind_per_user"

# -- statements: changing one notebook ---------------------------------------------------

RENAME = _change("name = $5")
SET_CONNECTION = _change("db_conn_string = $5")
# $5 the cell (JSON), $6 its position (NULL: append), $7 the most cells a notebook holds.
INSERT_CELL = _change(
    "cells = jsonb_insert(n.cells, ARRAY[coalesce($6::int, n.cell_count)::text], $5::jsonb)",
    " AND n.cell_count < $7 AND coalesce($6::int, n.cell_count) <= n.cell_count",
)
# The code edit, the editor's save.  $5 the cell's id, $6 the fields the edit
# sets for each cell type (a type the API does not know is analysed as raw:
# nothing read or written, as analyze() says): the statement merges those of
# the type the cell has on the row's latest committed version.
EDIT_CODE = _change(
    """cells = (SELECT jsonb_agg(CASE WHEN c ->> 'id' = $5
                                      THEN c || coalesce($6::jsonb -> (c ->> 'type'),
                                                         $6::jsonb -> 'raw')
                                      ELSE c END
                                 ORDER BY i)
                  FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i))""",
    f" AND {_has_cell('$5')}",
    select_list(
        EditedCell,
        "n",
        cell="(SELECT c FROM jsonb_array_elements(n.cells) AS c WHERE c ->> 'id' = $5 LIMIT 1)",
        run=f"(SELECT {RUN} FROM cell_runs r WHERE r.notebook_id = n.id AND r.cell_id = $5)",
    ),
)
# $5 the cell's id, $6 where it ends in the new order.
MOVE_CELL = _change(
    f"cells = jsonb_insert(n.cells - {_position('$5')}, ARRAY[$6::int::text],"
    f" n.cells -> {_position('$5')})",
    f" AND {_has_cell('$5')} AND $6::int < n.cell_count",
)
# $5 the cell's id.  Its run state goes by DELETE_RUN in the same transaction,
# as a statement of its own, so that it sees a run written while this one waited.
REMOVE_CELL = _change(f"cells = n.cells - {_position('$5')}", f" AND {_has_cell('$5')}")
DELETE_RUN = "DELETE FROM cell_runs WHERE notebook_id = $1 AND cell_id = $2"
DELETE_NOTEBOOK = f"DELETE FROM notebooks n WHERE {OWNED} AND {PRECONDITION} RETURNING n.revision"
# Upsert a cell's run state ($3… its fields); the notebook row and its
# revision stay as they are.  FOR SHARE waits for a concurrent change of the
# notebook (a cell deletion holds the row) and then re-checks that the cell
# is still there.
WRITE_RUN = f"""
INSERT INTO cell_runs (notebook_id, {RUN_COLUMNS})
SELECT n.id, {parameters(RunState, RUN_TYPES, first=3)}
  FROM notebooks n
 WHERE {OWNED} AND {_has_cell("$3")}
   FOR SHARE OF n
ON CONFLICT (notebook_id, cell_id) DO UPDATE
   SET {", ".join(f"{name} = EXCLUDED.{name}" for name in RunState.__struct_fields__[1:])},
       updated_at = now()
RETURNING true
"""


# -- reading -----------------------------------------------------------------------------


async def get(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> NotebookRow | None:
    record = await conn.fetchrow(GET, notebook_id, user_id)
    return None if record is None else with_runs(NotebookRow, record)


async def seq(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> int | None:
    """The notebook's current seq (None: no such notebook of the user's), without reading it."""
    value = await conn.fetchval(SEQ_OF, notebook_id, user_id)
    return None if value is None else int(value)


async def revision(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> int | None:
    value = await conn.fetchval(REVISION, notebook_id, user_id)
    return None if value is None else int(value)


async def cells(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> str | None:
    """The cells document as JSON text."""
    value: str | None = await conn.fetchval(CELLS, notebook_id, user_id)
    return value


async def summaries(
    conn: asyncpg.Connection, user_id: UUID
) -> tuple[bool | None, list[NotebookSummary]]:
    """Whether the user was provisioned (None: no such user), and their notebooks, newest first."""
    records = await conn.fetch(LIST, user_id)
    if not records:
        return None, []
    notebooks = [NotebookSummary(*record[1:]) for record in records if record[1] is not None]
    return bool(records[0][0]), notebooks


async def state(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, cell_id: str | None = None
) -> NotebookState | None:
    record = await conn.fetchrow(STATE, notebook_id, user_id, cell_id)
    return None if record is None else NotebookState(*record)


async def identity(conn: asyncpg.Connection, notebook_id: str) -> NotebookIdentity | None:
    record = await conn.fetchrow(IDENTITY, notebook_id)
    return None if record is None else NotebookIdentity(*record)


# -- creating ----------------------------------------------------------------------------


async def insert(conn: asyncpg.Connection, notebooks: Sequence[NewNotebook]) -> None:
    """Insert new notebooks; a duplicate id or a second blank/demo of a user is an error."""
    await conn.execute(INSERT_NOTEBOOKS, *arrays(NewNotebook, notebooks))


async def provision(conn: asyncpg.Connection, notebooks: Sequence[NewNotebook]) -> None:
    """Insert a user's blank and demo notebooks unless they exist already."""
    await conn.execute(PROVISION, *arrays(NewNotebook, notebooks))


# -- changing one notebook: None when the owner or the precondition does not hold -------


async def rename(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition, name: str | None
) -> int | None:
    return await _run_change(conn, RENAME, notebook_id, user_id, pre, name)


async def set_connection(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    token: str | None,
) -> int | None:
    return await _run_change(conn, SET_CONNECTION, notebook_id, user_id, pre, token)


async def delete(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition
) -> int | None:
    """Delete the notebook (its runs and search rows go with it); the revision it had."""
    return await _run_change(conn, DELETE_NOTEBOOK, notebook_id, user_id, pre)


async def insert_cell(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    cell: str,
    index: int | None,
    max_cells: int,
) -> int | None:
    """Insert ``cell`` (JSON) at ``index`` (None: append); refused when the notebook holds
    ``max_cells`` already or ``index`` is past its end."""
    return await _run_change(conn, INSERT_CELL, notebook_id, user_id, pre, cell, index, max_cells)


async def edit_code(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    cell_id: str,
    edits: str,
) -> EditedCell | None:
    """Merge into the cell the fields ``edits`` (JSON, by cell type) gives for its type."""
    record = await conn.fetchrow(
        EDIT_CODE, notebook_id, user_id, pre.body, pre.header, cell_id, edits
    )
    if record is None:
        return None
    new_revision, cell, run = record
    return EditedCell(new_revision, cell, None if run is None else RunState(*run))


async def move_cell(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    cell_id: str,
    index: int,
) -> int | None:
    """Move the cell so it ends at ``index`` of the new order; refused past the end."""
    return await _run_change(conn, MOVE_CELL, notebook_id, user_id, pre, cell_id, index)


async def delete_cell(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition, cell_id: str
) -> int | None:
    """Remove the cell and its run state.  Two statements: call it in a transaction."""
    new_revision = await _run_change(conn, REMOVE_CELL, notebook_id, user_id, pre, cell_id)
    if new_revision is not None:
        await conn.execute(DELETE_RUN, notebook_id, cell_id)
    return new_revision


async def write_run(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, run: RunState
) -> RunState | None:
    """Upsert the cell's run state; None when the notebook or the cell is not there."""
    written = await conn.fetchval(WRITE_RUN, notebook_id, user_id, *msgspec.structs.astuple(run))
    return run if written else None


async def _run_change(
    conn: asyncpg.Connection,
    statement: str,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    *values: Any,
) -> int | None:
    """Run one of the conditional changes above; the new revision, or None."""
    value = await conn.fetchval(statement, notebook_id, user_id, pre.body, pre.header, *values)
    return None if value is None else int(value)
