"""Notebooks and their cells' run state: the statements, the rows, one function each.

Conventions every statement follows:

- one notebook is ``n``, found by ``OWNED``: ``$1`` its id, ``$2`` its owner
  (another user's notebook is as absent as a missing one), and not in the
  trash (SPEC §13: a trashed notebook is as absent as a missing one, except
  to the trash's own statements, which find it by ``TRASHED``);
- every change of a notebook is one conditional statement built by
  ``_change``: it raises ``revision`` and ``seq`` by one and appends the
  event (SPEC §11, ``notebook_events``) in the same statement (the service
  then sends the wake-up, ``wake``, once it committed), and holds only
  when ``PRECONDITION`` does (``$3``
  the body's ``expected_revision``, ``$4`` the ``If-Match`` revision, each
  NULL for "any"); its own values follow from ``$5``.  Matching no row means
  "refused" (no event either) and the function returns None; ``state`` then
  tells the service why.  Every expression reads the row being changed, so
  after waiting for a concurrent writer PostgreSQL re-evaluates all of it on
  the version that writer committed: no lost update, seqs in commit order,
  and the row lock is held only while the statement runs, never across a
  round trip to the application.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, NamedTuple, TypeVar
from uuid import UUID

import msgspec

from .rows import arrays, parameters, select_list, unnest

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

NotebookKind = Literal["user", "blank", "demo"]
RunStatus = Literal["idle", "running", "success", "error", "blocked"]
Phase = Literal[1, 2]  # of a walk of the list: before the horizon, then after it


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
    # The seq of its last event (Cellar-Seq), read in the same statement as the content:
    # the read cache keeps the answer under it (app.notebooks.read_cache).
    seq: int
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


class Changed(msgspec.Struct, frozen=True, gc=False):
    """What a change of a notebook answers: its revision and seq (its event's) after it."""

    revision: int
    seq: int


class TrashedNotebook(msgspec.Struct, frozen=True, gc=False):
    """One row of the trash (``GET /notebooks/trash``), served as it comes."""

    id: str
    name: str | None
    kind: NotebookKind
    revision: int
    cell_count: int
    updated_at: datetime
    deleted_at: Annotated[datetime, msgspec.Meta(description="When it went to the trash.")]


class NotebookState(msgspec.Struct, frozen=True):
    """What a refused change is explained from (``app.notebooks.services.explain``)."""

    revision: int
    cell_count: int
    has_cell: bool  # the cell asked about is in the notebook (false when none was asked)


class EditedCell(msgspec.Struct, frozen=True):
    """What a code edit returns: the new revision, the stored cell, its run state if any."""

    revision: int
    cell: str
    run: RunState | None  # built from the nested record
    seq: int = 0  # the event's (not in the statement's list: ``_change`` adds it)
    merged: bool = False  # applied over a stale revision (the service's merge path)


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

OWNED = "n.id = $1 AND n.user_id = $2 AND n.deleted_at IS NULL"
# The same notebook while it is in the trash: what restoring it from there finds.
TRASHED = "n.id = $1 AND n.user_id = $2 AND n.deleted_at IS NOT NULL"
# Live or trashed: what deleting for good (purge) finds.
OWNED_ANYWHERE = "n.id = $1 AND n.user_id = $2"
Scope = Literal["live", "trashed", "anywhere"]
SCOPES: dict[Scope, str] = {"live": OWNED, "trashed": TRASHED, "anywhere": OWNED_ANYWHERE}
PRECONDITION = "($3::bigint IS NULL OR n.revision = $3) AND ($4::bigint IS NULL OR n.revision = $4)"


def _has_cell(cell_id: str) -> str:
    return f"n.cells @> jsonb_build_array(jsonb_build_object('id', {cell_id}::text))"


def _position(cell_id: str) -> str:
    """The cell's 0-based position in ``n.cells`` (its first occurrence)."""
    return (
        "(SELECT (t.i - 1)::int FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i)"
        f" WHERE t.c ->> 'id' = {cell_id} LIMIT 1)"
    )


EVENT_COLUMNS = "notebook_id, seq, user_id, revision, actor, op, cell_id, data"
# The wake-up of realtime listeners (SPEC §11): only a hint, the table is the truth.
NOTIFY = "pg_notify('cellar_events', {seq} || ':' || {notebook_id})"
# The wake-up of a change made through ``_change`` (and of outputs), sent by
# ``wake`` once its transaction has committed, as a transaction of its own that
# does not wait for the WAL flush: a NOTIFY inside the change's transaction holds
# PostgreSQL's one notify lock (cluster-wide) through that transaction's commit
# and flush, so every notifying commit would wait for the previous one's fsync
# (4.5x fewer code edits per second at 16 connections, bench/RESULTS.md).
# set_config(…, true) lasts until this statement's own commit.
WAKE = (
    "SELECT set_config('synchronous_commit', 'off', true),"
    " pg_notify('cellar_events', $1::bigint || ':' || $2::text)"
)
# Inside a caller's transaction: queued, delivered at that transaction's commit.
WAKE_IN_TRANSACTION = "SELECT pg_notify('cellar_events', $1::bigint || ':' || $2::text)"


def _change(
    assignments: str,
    condition: str = "",
    *,
    op: str,
    data: str,
    cell_id: str = "NULL",
    returning: type[msgspec.Struct] = Changed,
    expressions: dict[str, str] | None = None,
    carry: str = "",
    before: str = "",
    using: str = "",
    owned: str = OWNED,
    actor: str = "event_user_id::text",
) -> str:
    """An UPDATE of one notebook: owner and ``PRECONDITION`` hold, ``revision`` + 1, its event.

    Every change of a notebook's row is built here, so what goes with each
    change is added in one place: ``seq`` + 1 in the same UPDATE and the
    event row (``op``; ``data`` and ``cell_id`` SQL over the UPDATE's
    RETURNING columns and ``carry``), in the same statement.  The wake-up
    follows the commit (``wake``).  The
    answer is ``returning``'s fields but ``seq`` (from ``expressions``, else
    ``n.<field>``), then the seq.  ``before``/``using``: a CTE the UPDATE
    reads FROM (the move reads the cell's old position from a locked read).
    ``owned``: which notebooks it may find (``OWNED``: live ones, unless it
    is the trash's); ``actor``: the event's (SQL; the owner unless it is the admin).
    """
    fields = [name for name in returning.__struct_fields__ if name not in ("seq", "merged")]
    chosen = {name: value for name, value in (expressions or {}).items() if name in fields}
    listed = ", ".join(
        f"{chosen[name]} AS {name}" if name in chosen else f"n.{name}" for name in fields
    )
    return (
        f"WITH {before}changed AS (\n"
        "    UPDATE notebooks n\n"
        "       SET revision = n.revision + 1, seq = n.seq + 1, updated_at = now(),"
        f" {assignments}\n"
        f"      {using}\n"
        f"     WHERE {owned} AND {PRECONDITION}{condition}\n"
        "    RETURNING n.id AS event_notebook_id, n.user_id AS event_user_id,"
        f" n.seq AS event_seq, {listed}{carry}\n"
        "), event AS (\n"
        f"    INSERT INTO notebook_events ({EVENT_COLUMNS})\n"
        f"    SELECT event_notebook_id, event_seq, event_user_id, revision, {actor},"
        f" '{op}', {cell_id}, {data}\n"
        "      FROM changed\n"
        ")\n"
        f"SELECT {', '.join(fields)}, event_seq\n"
        "  FROM changed"
    )


# -- statements: reading -----------------------------------------------------------------

GET = f"SELECT {select_list(NotebookRow, 'n', runs=RUNS)} FROM notebooks n WHERE {OWNED}"
# The read cache's read (app.notebooks.read_cache): the revision and seq, and GET's row
# only when the seq is not $3 (the one of the answer kept; NULL: none kept).  One
# primary-key lookup either way: when the seq matches, the lateral subquery yields no
# row and nothing of the cells or run states is read, let alone turned into text.
GET_CHANGED = f"""
SELECT n.revision, n.seq, g.*
  FROM notebooks n
  LEFT JOIN LATERAL (SELECT {select_list(NotebookRow, "n", runs=RUNS)}
                      WHERE n.seq IS DISTINCT FROM $3::bigint) AS g ON true
 WHERE {OWNED}
"""
REVISION = f"SELECT n.revision, n.seq FROM notebooks n WHERE {OWNED}"
CELLS = f"SELECT n.cells FROM notebooks n WHERE {OWNED}"
# The same for the graph's read: the cells only when the seq is not $3.
CELLS_CHANGED = f"""
SELECT n.revision, n.seq, g.cells
  FROM notebooks n
  LEFT JOIN LATERAL (SELECT n.cells WHERE n.seq IS DISTINCT FROM $3::bigint) AS g ON true
 WHERE {OWNED}
"""
# The first column says whether the user was provisioned; the rest are a
# NotebookSummary, NULL when the user has no notebook.
LIST = f"""
SELECT u.provisioned_at IS NOT NULL AS provisioned, {select_list(NotebookSummary, "n")}
  FROM users u
  LEFT JOIN notebooks n ON n.user_id = u.id AND n.deleted_at IS NULL
 WHERE u.id = $1
 ORDER BY n.updated_at DESC, n.id DESC
"""
# One page of a walk of the list (docs/paging.md), each part one range of the
# (user_id, updated_at, id) index.  $2 the horizon (NULL on the first page: the
# statement's now(), returned so the cursor keeps it); $3, $4 the position in
# phase 1 (notebooks at or before the horizon, newest first; 'infinity' to
# start, '-infinity' once phase 1 is over); $5, $6 the position in phase 2
# (notebooks changed after the horizon, oldest change first; '-infinity' until
# phase 1 is over: the part then starts at the horizon, so that its index scan
# begins there and not at the user's oldest notebook); $7 how many rows each
# part may give (a page and one more,
# to know whether another page follows).  The rows come in the walk's order;
# the caller keeps the first limit + 1.
_HORIZON = "coalesce($2::timestamptz, now())"
PAGE = f"""
SELECT u.provisioned_at IS NOT NULL AS provisioned, {_HORIZON} AS horizon, p.phase,
       {select_list(NotebookSummary, "p")}
  FROM users u
  LEFT JOIN LATERAL (
       (SELECT 1 AS phase, row_number() OVER (ORDER BY n.updated_at DESC, n.id DESC) AS k,
               {select_list(NotebookSummary, "n")}
          FROM notebooks n
         WHERE n.user_id = $1 AND n.deleted_at IS NULL AND n.updated_at <= {_HORIZON}
           AND (n.updated_at, n.id) < ($3::timestamptz, $4::text)
         ORDER BY n.updated_at DESC, n.id DESC
         LIMIT $7)
       UNION ALL
       (SELECT 2 AS phase, row_number() OVER (ORDER BY n.updated_at, n.id) AS k,
               {select_list(NotebookSummary, "n")}
          FROM notebooks n
         WHERE n.user_id = $1 AND n.deleted_at IS NULL AND n.updated_at > {_HORIZON}
           AND (n.updated_at, n.id) > (greatest($5::timestamptz, {_HORIZON}), $6::text)
         ORDER BY n.updated_at, n.id
         LIMIT $7)
  ) p ON true
 WHERE u.id = $1
 ORDER BY p.phase, p.k
"""
# The user's trash, most recently deleted first (the partial index notebooks_trash).
TRASH = f"""
SELECT {select_list(TrashedNotebook, "n")}
  FROM notebooks n
 WHERE n.user_id = $1 AND n.deleted_at IS NOT NULL
 ORDER BY n.deleted_at DESC, n.id
"""
STATES = {
    scope: f"SELECT {select_list(NotebookState, 'n', has_cell=_has_cell('$3'))}"
    f" FROM notebooks n WHERE {owned}"
    for scope, owned in SCOPES.items()
}
STATE = STATES["live"]
# The same, holding the row until the transaction ends (the merge of a stale code edit).
LOCK = STATE + " FOR UPDATE OF n"
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
_INSERTED = f"""
INSERT INTO notebooks ({", ".join(NewNotebook.__struct_fields__)}, seq)
SELECT {select_list(NewNotebook, "t", cells="t.cells::jsonb")}, 1
  FROM {unnest(NewNotebook, NEW_TYPES)}
"""
# What an event of a whole notebook (create, import) holds, from row ``r``:
# enough to rebuild it, the connection string only as whether there is one.
SNAPSHOT = (
    "jsonb_build_object('name', r.name, 'kind', r.kind, 'cells', r.cells, 'db_conn_string',"
    " CASE WHEN r.db_conn_string IS NULL THEN NULL ELSE '***' END)"
)
_N_NEW = len(NewNotebook.__struct_fields__)


def _with_first_event(insert: str) -> str:
    """New notebooks (seq 1) with their event 1 and wake-up, one statement.

    ``$9`` the actor (NULL: the owner), ``$10`` the op (``create``, ``import``).
    """
    return f"""
WITH r AS ({insert}RETURNING id, user_id, revision, seq, name, kind, cells, db_conn_string
), event AS (
    INSERT INTO notebook_events ({EVENT_COLUMNS})
    SELECT r.id, r.seq, r.user_id, r.revision, coalesce(${_N_NEW + 1}::text, r.user_id::text),
           ${_N_NEW + 2}::text, NULL, {SNAPSHOT}
      FROM r
)
SELECT r.id, {NOTIFY.format(seq="r.seq", notebook_id="r.id")} FROM r
"""


INSERT_NOTEBOOKS = _with_first_event(_INSERTED)
# A user's blank and demo: concurrent first calls all try, the partial unique
# index on (user_id, kind) lets one of each in and the others do nothing.
PROVISION = _with_first_event(
    _INSERTED + "ON CONFLICT (user_id, kind) WHERE kind IN ('blank', 'demo') DO NOTHING\n"
)
SPECIAL_KIND_INDEX = "notebooks_one_special_kind_per_user"

# -- statements: changing one notebook ---------------------------------------------------

RENAME = _change("name = $5", op="rename", data="jsonb_build_object('name', $5::text)")
# $5 the token, $6 the string as GET shows it (password masked): the event's.
SET_CONNECTION = _change(
    "db_conn_string = $5",
    op="set_connection",
    data="jsonb_build_object('db_conn_string', $6::text)",
)
# $5 the cell (JSON), $6 its position (NULL: append), $7 the most cells a notebook holds.
INSERT_CELL = _change(
    "cells = jsonb_insert(n.cells, ARRAY[coalesce($6::int, n.cell_count)::text], $5::jsonb)",
    " AND n.cell_count < $7 AND coalesce($6::int, n.cell_count) <= n.cell_count",
    op="cell_insert",
    cell_id="$5::jsonb ->> 'id'",
    carry=", coalesce($6::int, n.cell_count - 1) AS event_index",
    data="jsonb_build_object('index', event_index, 'cell', $5::jsonb)",
)
# The code edit, the editor's save.  $5 the cell's id, $6 the fields the edit
# sets for each cell type (a type the API does not know is analysed as raw:
# nothing read or written, as analyze() says): the statement merges those of
# the type the cell has on the row's latest committed version.  The event
# holds what was set (code, reads, writes), read from the answer's cell.
EDIT_CODE = _change(
    """cells = (SELECT jsonb_agg(CASE WHEN c ->> 'id' = $5
                                      THEN c || coalesce($6::jsonb -> (c ->> 'type'),
                                                         $6::jsonb -> 'raw')
                                      ELSE c END
                                 ORDER BY i)
                  FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i))""",
    f" AND {_has_cell('$5')}",
    op="cell_update",
    cell_id="$5",
    data="jsonb_build_object('code', cell -> 'code', 'reads', cell -> 'reads',"
    " 'writes', cell -> 'writes')",
    returning=EditedCell,
    expressions={
        "cell": "(SELECT c FROM jsonb_array_elements(n.cells) AS c WHERE c ->> 'id' = $5 LIMIT 1)",
        "run": f"(SELECT {RUN} FROM cell_runs r WHERE r.notebook_id = n.id AND r.cell_id = $5)",
    },
)
# $5 the cell's id, $6 where it ends in the new order.  The event says where it
# was: read from the row locked first (``old``), the version the UPDATE changes.
MOVE_CELL = _change(
    f"cells = jsonb_insert(n.cells - {_position('$5')}, ARRAY[$6::int::text],"
    f" n.cells -> {_position('$5')})",
    f" AND n.id = old.id AND {_has_cell('$5')} AND $6::int < n.cell_count",
    op="cell_move",
    cell_id="$5",
    before=f"old AS (SELECT n.id, {_position('$5')} AS position FROM notebooks n"
    f" WHERE {OWNED} FOR UPDATE), ",
    using="FROM old",
    carry=", old.position AS event_from",
    data="jsonb_build_object('from', event_from, 'to', $6::int)",
)
# $5 the cell's id.  Its run state goes by DELETE_RUN in the same transaction,
# as a statement of its own, so that it sees a run written while this one waited.
# The event holds where the cell was and the cell itself, read from the row
# locked first (``old``, as the move does): what a restore of the cell from its
# history puts back, at that index (SPEC §13).
REMOVE_CELL = _change(
    f"cells = n.cells - {_position('$5')}",
    f" AND n.id = old.id AND {_has_cell('$5')}",
    op="cell_delete",
    cell_id="$5",
    before=f"old AS (SELECT n.id, {_position('$5')} AS position,"
    f" n.cells -> {_position('$5')} AS cell FROM notebooks n WHERE {OWNED} FOR UPDATE), ",
    using="FROM old",
    carry=", old.position AS event_from, old.cell AS event_cell",
    data="jsonb_build_object('index', event_from, 'cell', event_cell)",
)
DELETE_RUN = "DELETE FROM cell_runs WHERE notebook_id = $1 AND cell_id = $2"
# The row goes, and its events with it (ON DELETE CASCADE): no event can record
# it; the wake-up (the seq after the last) tells listeners to look again.
# To the trash and back: one more revision and event each (SPEC §13).
TRASH_NOTEBOOK = _change("deleted_at = now()", op="trash", data="'{}'::jsonb")
UNTRASH_NOTEBOOK = _change("deleted_at = NULL", op="untrash", data="'{}'::jsonb", owned=TRASHED)
# The admin's restore (app.admin.forms): any user's trashed notebook, by id
# alone ($2 NULL), the event's actor 'admin'.
UNTRASH_BY_ADMIN = _change(
    "deleted_at = NULL",
    op="untrash",
    data="'{}'::jsonb",
    owned="n.id = $1 AND ($2::uuid IS NULL OR n.user_id = $2) AND n.deleted_at IS NOT NULL",
    actor="'admin'",
)
# For good, live or trashed: its runs, search rows, events and checkpoints go by
# their foreign keys' ON DELETE CASCADE, in the same statement.  No event can
# record it; the wake-up (the seq after the last) tells listeners to look again.
PURGE_NOTEBOOK = f"""
WITH gone AS (
    DELETE FROM notebooks n WHERE {OWNED_ANYWHERE} AND {PRECONDITION}
    RETURNING n.id, n.revision, n.seq
)
SELECT revision, seq, {NOTIFY.format(seq="seq + 1", notebook_id="id")} FROM gone
"""
# Every notebook trashed over $1 days ago (the database's clock, which set
# deleted_at), at most $2 of them: the purge's batch.  The rows are locked in
# the subquery, so a notebook restored meanwhile (which no longer matches once
# its restore commits) is left alone, and one being restored right now is
# skipped rather than waited for.
PURGE_TRASHED = """
DELETE FROM notebooks
 WHERE id IN (SELECT id FROM notebooks
               WHERE deleted_at IS NOT NULL
                 AND deleted_at < now() - make_interval(days => $1::int)
               ORDER BY deleted_at
               LIMIT $2
                 FOR UPDATE SKIP LOCKED)
RETURNING id
"""
# Upsert a cell's run state ($3… its fields, then the event's data); the notebook's
# revision stays as it is, its seq goes up by one for the ``outputs`` event.  The
# new state is no stored checkpoint payload (``blob``, app.store.checkpoints) until
# the next checkpoint stores it.  The UPDATE waits for a concurrent change of the
# notebook (a cell deletion holds the row) and then re-checks that the cell is
# still there.
_RUN_FIELDS = len(RunState.__struct_fields__)
WRITE_RUN = f"""
WITH changed AS (
    UPDATE notebooks n SET seq = n.seq + 1
     WHERE {OWNED} AND {_has_cell("$3")}
    RETURNING n.id, n.user_id, n.revision, n.seq
), run AS (
    INSERT INTO cell_runs (notebook_id, {RUN_COLUMNS})
    SELECT changed.id, {parameters(RunState, RUN_TYPES, first=3)}
      FROM changed
    ON CONFLICT (notebook_id, cell_id) DO UPDATE
       SET {", ".join(f"{name} = EXCLUDED.{name}" for name in RunState.__struct_fields__[1:])},
           updated_at = now(), blob = NULL
), event AS (
    INSERT INTO notebook_events ({EVENT_COLUMNS})
    SELECT id, seq, user_id, revision, user_id::text, 'outputs', $3, ${_RUN_FIELDS + 3}::jsonb
      FROM changed
)
SELECT seq FROM changed
"""


# -- reading -----------------------------------------------------------------------------


async def get(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> NotebookRow | None:
    record = await conn.fetchrow(GET, notebook_id, user_id)
    return None if record is None else with_runs(NotebookRow, record)


V = TypeVar("V")


class Current(NamedTuple, Generic[V]):
    """The revision and seq of a notebook, and what was asked of it unless the seq was known."""

    revision: int
    seq: int
    value: V | None


async def get_changed(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, known_seq: int | None
) -> Current[NotebookRow] | None:
    """The notebook's revision and seq, with GET's row unless its seq is ``known_seq``."""
    record = await conn.fetchrow(GET_CHANGED, notebook_id, user_id, known_seq)
    if record is None:
        return None
    revision, seq, *fields = record
    row = None if fields[0] is None else with_runs(NotebookRow, fields)
    return Current(int(revision), int(seq), row)


async def cells_changed(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, known_seq: int | None
) -> Current[str] | None:
    """The notebook's revision and seq, with its cells (JSON text) unless its seq is
    ``known_seq``."""
    record = await conn.fetchrow(CELLS_CHANGED, notebook_id, user_id, known_seq)
    return None if record is None else Current(int(record[0]), int(record[1]), record[2])


async def revision(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> Changed | None:
    """The notebook's revision and seq, without reading it."""
    record = await conn.fetchrow(REVISION, notebook_id, user_id)
    return None if record is None else Changed(int(record[0]), int(record[1]))


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


class Position(NamedTuple):
    """Where a walk of the list stands: the last row given, and in which phase."""

    horizon: datetime | None  # None: the walk has not started (its first page sets it)
    phase: Phase
    updated_at: datetime
    id: str


# asyncpg sends these as PostgreSQL's infinity and -infinity.
_LATEST = datetime.max.replace(tzinfo=UTC)
_EARLIEST = datetime.min.replace(tzinfo=UTC)
START = Position(None, 1, _LATEST, "")


class Page(NamedTuple):
    provisioned: bool | None  # None: no such user
    horizon: datetime
    rows: list[tuple[Phase, NotebookSummary]]  # (phase, row) in walk order; limit + 1 at most


async def page(conn: asyncpg.Connection, user_id: UUID, at: Position, limit: int) -> Page:
    """The rows of the walk after ``at``: up to ``limit`` + 1, each with its phase."""
    if at.phase == 1:
        first, second = (at.updated_at, at.id), (_EARLIEST, "")
    else:
        first, second = (_EARLIEST, ""), (at.updated_at, at.id)
    records = await conn.fetch(PAGE, user_id, at.horizon, *first, *second, limit + 1)
    if not records:
        return Page(None, _EARLIEST, [])
    rows = [(record[2], NotebookSummary(*record[3:])) for record in records if record[2]]
    return Page(bool(records[0][0]), records[0][1], rows[: limit + 1])


async def trash(conn: asyncpg.Connection, user_id: UUID) -> list[TrashedNotebook]:
    """The user's trashed notebooks, most recently deleted first."""
    return [TrashedNotebook(*record) for record in await conn.fetch(TRASH, user_id)]


async def state(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    cell_id: str | None = None,
    scope: Scope = "live",
) -> NotebookState | None:
    """What a refused change is explained from; ``scope``: where the change looked."""
    record = await conn.fetchrow(STATES[scope], notebook_id, user_id, cell_id)
    return None if record is None else NotebookState(*record)


async def lock(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, cell_id: str
) -> NotebookState | None:
    """The notebook's state, its row locked until the transaction ends (call it in one)."""
    record = await conn.fetchrow(LOCK, notebook_id, user_id, cell_id)
    return None if record is None else NotebookState(*record)


async def identity(conn: asyncpg.Connection, notebook_id: str) -> NotebookIdentity | None:
    record = await conn.fetchrow(IDENTITY, notebook_id)
    return None if record is None else NotebookIdentity(*record)


# -- creating ----------------------------------------------------------------------------


async def insert(
    conn: asyncpg.Connection,
    notebooks: Sequence[NewNotebook],
    actor: str | None = None,
    op: Literal["create", "import"] = "create",
) -> None:
    """Insert new notebooks, each with its event 1 (``op`` by ``actor``, None: the owner).

    A duplicate id or a second blank/demo of a user is an error.
    """
    await conn.fetch(INSERT_NOTEBOOKS, *arrays(NewNotebook, notebooks), actor, op)


async def provision(conn: asyncpg.Connection, notebooks: Sequence[NewNotebook]) -> None:
    """Insert a user's blank and demo notebooks unless they exist already (actor ``system``)."""
    await conn.fetch(PROVISION, *arrays(NewNotebook, notebooks), "system", "create")


# -- changing one notebook: None when the owner or the precondition does not hold -------


async def rename(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition, name: str | None
) -> Changed | None:
    return await _run_change(conn, RENAME, notebook_id, user_id, pre, name)


async def set_connection(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    token: str | None,
    shown: str | None,
) -> Changed | None:
    """Store the ``token``; the event holds ``shown`` (the string with its password masked)."""
    return await _run_change(conn, SET_CONNECTION, notebook_id, user_id, pre, token, shown)


async def move_to_trash(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition
) -> Changed | None:
    """Move the live notebook to the trash (event ``trash``)."""
    return await _run_change(conn, TRASH_NOTEBOOK, notebook_id, user_id, pre)


async def restore_from_trash(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition
) -> Changed | None:
    """Bring the trashed notebook back as it was (event ``untrash``)."""
    return await _run_change(conn, UNTRASH_NOTEBOOK, notebook_id, user_id, pre)


async def restore_by_admin(conn: asyncpg.Connection, notebook_id: str) -> Changed | None:
    """The admin's restore of any user's trashed notebook (event actor 'admin')."""
    record = await conn.fetchrow(UNTRASH_BY_ADMIN, notebook_id, None, None, None)
    return None if record is None else Changed(int(record[0]), int(record[1]))


async def purge(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition
) -> Changed | None:
    """Delete the notebook for good, live or trashed, with all of it; what it had."""
    return await _run_change(conn, PURGE_NOTEBOOK, notebook_id, user_id, pre)


async def purge_trashed(conn: asyncpg.Connection, days: int, limit: int) -> list[str]:
    """Delete for good at most ``limit`` notebooks trashed over ``days`` days ago; their ids."""
    return [record[0] for record in await conn.fetch(PURGE_TRASHED, days, limit)]


async def insert_cell(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    cell: str,
    index: int | None,
    max_cells: int,
) -> Changed | None:
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
    new_revision, cell, run, seq = record
    return EditedCell(new_revision, cell, None if run is None else RunState(*run), seq)


async def move_cell(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    cell_id: str,
    index: int,
) -> Changed | None:
    """Move the cell so it ends at ``index`` of the new order; refused past the end."""
    return await _run_change(conn, MOVE_CELL, notebook_id, user_id, pre, cell_id, index)


async def delete_cell(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, pre: Precondition, cell_id: str
) -> Changed | None:
    """Remove the cell and its run state.  Two statements: call it in a transaction."""
    changed = await _run_change(conn, REMOVE_CELL, notebook_id, user_id, pre, cell_id)
    if changed is not None:
        await conn.execute(DELETE_RUN, notebook_id, cell_id)
    return changed


async def write_run(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, run: RunState, event: str
) -> int | None:
    """Upsert the cell's run state with its ``outputs`` event (``event``: its data, JSON).

    The seq of the event; None when the notebook or the cell is not there.
    """
    seq = await conn.fetchval(WRITE_RUN, notebook_id, user_id, *msgspec.structs.astuple(run), event)
    return None if seq is None else int(seq)


async def wake(conn: asyncpg.Connection, notebook_id: str, seq: int) -> None:
    """Tell realtime listeners that the notebook's event ``seq`` committed (``WAKE``).

    Call it after the change's transaction has committed; inside a transaction
    the wake-up is queued and goes out at its commit.
    """
    if conn.is_in_transaction():
        await conn.execute(WAKE_IN_TRANSACTION, seq, notebook_id)
    else:
        await conn.execute(WAKE, seq, notebook_id)


async def _run_change(
    conn: asyncpg.Connection,
    statement: str,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    *values: Any,
) -> Changed | None:
    """Run one of the conditional changes above; the new revision and seq, or None."""
    record = await conn.fetchrow(statement, notebook_id, user_id, pre.body, pre.header, *values)
    return None if record is None else Changed(int(record[0]), int(record[1]))
