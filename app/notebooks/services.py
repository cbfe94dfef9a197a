"""Notebook use cases: one method per route, each mutation one transaction.

Concurrency is PostgreSQL's job.  A mutation first locks the notebook row
(``SELECT … FOR UPDATE``), which returns its latest committed revision, checks
the caller's expected revision against it, applies the change with jsonb
functions inside the database (the cells document never travels back and
forth), and raises ``revision`` by one in the same transaction.  Two
instances editing different cells of one notebook therefore queue on the row
lock and both edits survive; a stale ``expected_revision`` gets 409.  The
code edit, the editor's save and the hot path, does all of that in one
conditional UPDATE instead, so the lock is never held across a round trip
(``update_cell``).

Run state (status, stdout, outputs, error) lives in ``cell_runs`` and is
written without touching the notebook row, so outputs never bump the
revision and a code edit never rewrites outputs.  Reads merge the two with
one query; stored outputs pass through as ``msgspec.Raw``, never decoded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn
from uuid import UUID, uuid4

import msgspec

from app.database import connection, transaction
from app.errors import InvalidInput, NotFound, PreconditionFailed, RevisionConflict
from app.notebooks.cells import (
    ENCODE,
    api_cell,
    blank_cells,
    code_edits,
    demo_cells,
    idle,
    make_cell,
)
from app.notebooks.demo import load_demo
from app.notebooks.graph import CellDeps, Graph, build_graph
from app.notebooks.schemas import (
    Cell,
    CellOutputs,
    CellType,
    Notebook,
    NotebookList,
    NotebookSummary,
    StoredCell,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from app.notebooks.connections import ConnectionStringCipher
    from app.settings import Settings


class Precondition(NamedTuple):
    """What the caller believes the revision is: from the body and/or ``If-Match``."""

    body: int | None = None
    header: int | None = None


ANY_REVISION = Precondition()


class _Deps(msgspec.Struct, frozen=True):
    id: str
    reads: list[str] = []
    writes: list[str] = []


# Decoders and encoders are built once; msgspec reuses their compiled type info.
_CELLS = msgspec.json.Decoder(list[StoredCell])
_CELL = msgspec.json.Decoder(StoredCell)
_DEPS = msgspec.json.Decoder(list[_Deps])

_GET = """
SELECT n.id, n.name, n.kind, n.db_conn_string, n.revision, n.created_at, n.updated_at,
       n.cells,
       ARRAY(SELECT ROW(r.cell_id, r.status, r.stdout, r.outputs, r.error)
               FROM cell_runs r WHERE r.notebook_id = n.id) AS runs
  FROM notebooks n
 WHERE n.id = $1 AND n.user_id = $2
"""
# Columns 2.. are NotebookSummary's fields, in order (built positionally).
_LIST = """
SELECT u.provisioned_at IS NOT NULL AS provisioned,
       n.id, n.name, n.kind, n.revision, n.cell_count, n.updated_at
  FROM users u
  LEFT JOIN notebooks n ON n.user_id = u.id
 WHERE u.id = $1
 ORDER BY n.updated_at DESC, n.id
"""
_REVISION = "SELECT revision FROM notebooks WHERE id = $1 AND user_id = $2"
_LOCK = "SELECT revision, cell_count FROM notebooks WHERE id = $1 AND user_id = $2 FOR UPDATE"
_FIND_CELL = """
SELECT (t.idx - 1)::int AS position, t.cell
  FROM notebooks n, jsonb_array_elements(n.cells) WITH ORDINALITY AS t(cell, idx)
 WHERE n.id = $1 AND t.cell ->> 'id' = $2
 LIMIT 1
"""
# Every change of a notebook raises its revision by one in the same statement.
_SET = "UPDATE notebooks SET revision = revision + 1, updated_at = now(), "
_WHERE = " WHERE id = $1 RETURNING revision"
_RENAME = _SET + "name = $2" + _WHERE
_SET_CONNECTION = _SET + "db_conn_string = $2" + _WHERE
_INSERT_CELL = _SET + "cells = jsonb_insert(cells, ARRAY[$2::int::text], $3::jsonb)" + _WHERE
_CELL_STATE = """
SELECT revision, cells @> jsonb_build_array(jsonb_build_object('id', $3::text)) AS has_cell
  FROM notebooks
 WHERE id = $1 AND user_id = $2
"""
# Every expression reads the row being updated, so after waiting for a
# concurrent writer PostgreSQL re-evaluates all of it (cell still there,
# revisions still as expected, the analysis for the type it has now) on the
# version that writer committed.  $5 maps each cell type to the fields the
# edit sets (a type the API does not know is analysed as raw: nothing read or
# written, as analyze() says).  No row back: _CELL_STATE says why.
_EDIT_CODE = """
UPDATE notebooks n
   SET revision = n.revision + 1, updated_at = now(),
       cells = (SELECT jsonb_agg(CASE WHEN c ->> 'id' = $3
                                      THEN c || coalesce($5::jsonb -> (c ->> 'type'),
                                                         $5::jsonb -> 'raw')
                                      ELSE c END
                                 ORDER BY i)
                  FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(c, i))
 WHERE n.id = $1 AND n.user_id = $2 AND n.cells @> $4::jsonb
   AND ($6::bigint IS NULL OR n.revision = $6) AND ($7::bigint IS NULL OR n.revision = $7)
RETURNING n.revision,
          (SELECT c FROM jsonb_array_elements(n.cells) AS c WHERE c ->> 'id' = $3 LIMIT 1) AS cell,
          (SELECT ROW(r.cell_id, r.status, r.stdout, r.outputs, r.error)
             FROM cell_runs r WHERE r.notebook_id = n.id AND r.cell_id = $3) AS run
"""
_REMOVE_CELL = _SET + "cells = cells - $2::int" + _WHERE
_MOVE_CELL = (
    _SET + "cells = jsonb_insert(cells - $2::int, ARRAY[$3::int::text], cells -> $2::int)" + _WHERE
)
_INSERT_NOTEBOOK = """
INSERT INTO notebooks (id, user_id, name, kind, cells, demo_version)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (user_id, kind) WHERE kind IN ('blank', 'demo') DO NOTHING
"""


class NotebookService:
    def __init__(self, settings: Settings, cipher: ConnectionStringCipher) -> None:
        self.settings = settings
        self.cipher = cipher

    # -- reading ---------------------------------------------------------------

    async def list(self, user_id: UUID) -> NotebookList:
        """Newest first; the first call of a user provisions the blank and demo notebooks."""
        async with connection() as conn:
            rows = await conn.fetch(_LIST, user_id)
        if rows and not rows[0]["provisioned"]:
            # Outside the first connection: holding one while waiting for
            # another could exhaust the pool under a burst of first calls.
            await self.provision(user_id)
            async with connection() as conn:
                rows = await conn.fetch(_LIST, user_id)
        # Positional: _LIST's columns after the first are NotebookSummary's fields
        # in order (a sixth of the list's CPU went to looking them up by name).
        return NotebookList(
            notebooks=[NotebookSummary(*row[1:]) for row in rows if row[1] is not None]
        )

    async def get(self, user_id: UUID, notebook_id: str) -> Notebook:
        _addressable(notebook_id)
        async with connection() as conn:
            row = await conn.fetchrow(_GET, notebook_id, user_id)
        if row is None:
            raise NotFound("notebook not found")
        # Run state comes as an array of records in PostgreSQL's binary format:
        # outputs arrive as the stored JSON text, handed on as msgspec.Raw with
        # no JSON scan at all (json_agg made msgspec scan 190 KB per GET).
        # Query + decode 0.76 → 0.65 ms; A/B of the route: GET 446 → 575 req/s.
        runs = {run[0]: run for run in row["runs"]}
        cells = []
        for stored in _CELLS.decode(row["cells"]):
            cells.append(_merge(stored, runs.get(stored.id)))
        return Notebook(
            id=row["id"],
            name=row["name"],
            kind=row["kind"],
            db_conn_string=self.cipher.masked(row["db_conn_string"]),
            revision=row["revision"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            cells=cells,
        )

    async def revision(self, user_id: UUID, notebook_id: str) -> int:
        """Just the revision, for conditional GETs that may end in 304."""
        _addressable(notebook_id)
        async with connection() as conn:
            revision = await conn.fetchval(_REVISION, notebook_id, user_id)
        if revision is None:
            raise NotFound("notebook not found")
        return int(revision)

    async def graph(self, user_id: UUID, notebook_id: str) -> Graph:
        _addressable(notebook_id)
        async with connection() as conn:
            cells = await conn.fetchval(
                "SELECT cells FROM notebooks WHERE id = $1 AND user_id = $2", notebook_id, user_id
            )
        if cells is None:
            raise NotFound("notebook not found")
        return build_graph([CellDeps(c.id, c.reads, c.writes) for c in _DEPS.decode(cells)])

    # -- notebooks -------------------------------------------------------------

    async def provision(self, user_id: UUID) -> None:
        """Create the blank and demo notebooks once per user.

        Concurrent first calls all try; the partial unique index on
        (user_id, kind) lets exactly one of each in and the rest do nothing.
        """
        demo = load_demo()
        async with transaction() as conn:
            await conn.execute(
                _INSERT_NOTEBOOK, str(uuid4()), user_id, "Untitled", "blank",
                _encode_cells(blank_cells()), None,
            )  # fmt: skip
            await conn.execute(
                _INSERT_NOTEBOOK, str(uuid4()), user_id, demo.name, "demo",
                _encode_cells(demo_cells()), demo.demo_version,
            )  # fmt: skip
            await conn.execute(
                "UPDATE users SET provisioned_at = now() WHERE id = $1 AND provisioned_at IS NULL",
                user_id,
            )

    async def create(self, user_id: UUID, name: str | None) -> str:
        self._check_name(name)
        notebook_id = str(uuid4())
        async with connection() as conn:
            await conn.execute(
                "INSERT INTO notebooks (id, user_id, name, kind, cells) "
                "VALUES ($1, $2, $3, 'user', $4::jsonb)",
                notebook_id,
                user_id,
                name,
                _encode_cells(blank_cells()),
            )
        return notebook_id

    async def rename(
        self, user_id: UUID, notebook_id: str, name: str | None, pre: Precondition
    ) -> int:
        self._check_name(name)
        async with transaction() as conn:
            await self._lock(conn, user_id, notebook_id, pre)
            return await _bump(conn, _RENAME, notebook_id, name)

    async def set_connection(
        self, user_id: UUID, notebook_id: str, connection_string: str | None, pre: Precondition
    ) -> int:
        """Stored encrypted; an empty string or null clears it."""
        token = self.cipher.encrypt(connection_string) if connection_string else None
        async with transaction() as conn:
            await self._lock(conn, user_id, notebook_id, pre)
            return await _bump(conn, _SET_CONNECTION, notebook_id, token)

    async def delete(self, user_id: UUID, notebook_id: str, pre: Precondition) -> None:
        async with transaction() as conn:
            await self._lock(conn, user_id, notebook_id, pre)
            await conn.execute("DELETE FROM notebooks WHERE id = $1", notebook_id)

    # -- cells -----------------------------------------------------------------

    async def insert_cell(
        self,
        user_id: UUID,
        notebook_id: str,
        cell_type: CellType,
        code: str,
        index: int | None,
        pre: Precondition,
    ) -> tuple[Cell, int]:
        self._check_code(code)
        cell = make_cell(cell_type, code)
        async with transaction() as conn:
            _, count = await self._lock(conn, user_id, notebook_id, pre)
            if count >= self.settings.max_cells_per_notebook:
                raise InvalidInput(
                    "cells",
                    f"a notebook holds at most {self.settings.max_cells_per_notebook} cells",
                )
            position = count if index is None else index
            if position > count:
                raise InvalidInput("index", f"out of range: expected 0 to {count}")
            revision = await _bump(
                conn,
                _INSERT_CELL,
                notebook_id,
                position,
                ENCODE(cell).decode(),
            )
        return idle(cell), revision

    async def update_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, code: str, pre: Precondition
    ) -> tuple[Cell, int]:
        """The hot path (every save of the editor): one conditional UPDATE, one round trip.

        Unlike the structural edits it does not lock the row and then act:
        the lock is taken and released inside one statement, so it is never
        held across a round trip to this process, and 16 clients saving into
        one notebook queue only for PostgreSQL's own work (bench/RESULTS.md).
        The analysis depends on the cell's type, which only the row knows:
        the code is analysed for every type up front (microseconds, against
        a round trip) and the statement merges the one matching the type it
        finds on the row's latest committed version.
        """
        self._check_code(code)
        _addressable(notebook_id, cell_id)
        async with connection() as conn:
            row = await conn.fetchrow(
                _EDIT_CODE,
                notebook_id,
                user_id,
                cell_id,
                ENCODE([{"id": cell_id}]).decode(),
                ENCODE(code_edits(code)).decode(),
                pre.body,
                pre.header,
            )
            if row is None:
                await self._explain_no_edit(conn, user_id, notebook_id, cell_id, pre)
        return _merge(_CELL.decode(row["cell"]), row["run"]), int(row["revision"])

    async def delete_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, pre: Precondition
    ) -> int:
        async with transaction() as conn:
            await self._lock(conn, user_id, notebook_id, pre)
            position, _ = await _find_cell(conn, notebook_id, cell_id)
            revision = await _bump(conn, _REMOVE_CELL, notebook_id, position)
            await conn.execute(
                "DELETE FROM cell_runs WHERE notebook_id = $1 AND cell_id = $2",
                notebook_id,
                cell_id,
            )
        return revision

    async def move_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, index: int, pre: Precondition
    ) -> int:
        """The cell ends at ``index`` of the new list: [a,b,c,d], a → 2 gives [b,c,a,d]."""
        async with transaction() as conn:
            _, count = await self._lock(conn, user_id, notebook_id, pre)
            if index >= count:
                raise InvalidInput("index", f"out of range: expected 0 to {count - 1}")
            position, _ = await _find_cell(conn, notebook_id, cell_id)
            return await _bump(
                conn,
                _MOVE_CELL,
                notebook_id,
                position,
                index,
            )

    async def write_outputs(
        self, user_id: UUID, notebook_id: str, cell_id: str, run: CellOutputs
    ) -> None:
        """Upsert the cell's run state; the notebook row (and its revision) stays as it is.

        ``FOR SHARE`` on the notebook makes this wait for a concurrent cell
        deletion (which holds ``FOR UPDATE``) and then see that the cell is gone.
        """
        _addressable(notebook_id, cell_id)
        outputs = ENCODE(run.outputs)
        if len(outputs) + len(run.stdout) > self.settings.max_cell_outputs_bytes:
            raise InvalidInput(
                "outputs",
                f"larger than {self.settings.max_cell_outputs_bytes} bytes for one cell",
            )
        async with transaction() as conn:
            has_cell = await conn.fetchval(
                "SELECT cells @> $3::jsonb FROM notebooks WHERE id = $1 AND user_id = $2 FOR SHARE",
                notebook_id,
                user_id,
                ENCODE([{"id": cell_id}]).decode(),
            )
            if has_cell is None:
                raise NotFound("notebook not found")
            if not has_cell:
                raise NotFound("cell not found")
            await conn.execute(
                """
                INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs, error)
                VALUES ($1, $2, $3, $4, $5::json, $6)
                ON CONFLICT (notebook_id, cell_id) DO UPDATE
                   SET status = EXCLUDED.status, stdout = EXCLUDED.stdout,
                       outputs = EXCLUDED.outputs, error = EXCLUDED.error, updated_at = now()
                """,
                notebook_id,
                cell_id,
                run.status,
                run.stdout,
                outputs.decode(),
                run.error,
            )

    # -- checks ----------------------------------------------------------------

    async def _lock(
        self, conn: asyncpg.Connection, user_id: UUID, notebook_id: str, pre: Precondition
    ) -> tuple[int, int]:
        """Lock the row, then compare revisions against its latest committed state."""
        _addressable(notebook_id)
        row = await conn.fetchrow(_LOCK, notebook_id, user_id)
        if row is None:
            raise NotFound("notebook not found")
        revision = int(row["revision"])
        _check_revision(revision, pre)
        return revision, int(row["cell_count"])

    async def _explain_no_edit(
        self,
        conn: asyncpg.Connection,
        user_id: UUID,
        notebook_id: str,
        cell_id: str,
        pre: Precondition,
    ) -> NoReturn:
        """Why a conditional edit matched no row, as ``_lock`` would have said it, in its order."""
        row = await conn.fetchrow(_CELL_STATE, notebook_id, user_id, cell_id)
        if row is None:
            raise NotFound("notebook not found")
        revision = int(row["revision"])
        _check_revision(revision, pre)
        if not row["has_cell"]:
            raise NotFound("cell not found")
        # The cell appeared between the UPDATE and this read: the notebook moved on.
        raise RevisionConflict(revision, "the notebook changed while saving; try again")

    def _check_name(self, name: str | None) -> None:
        if name is not None and len(name) > self.settings.max_name_length:
            raise InvalidInput("name", f"longer than {self.settings.max_name_length} characters")

    def _check_code(self, code: str) -> None:
        limit = self.settings.max_cell_code_bytes
        if len(code) > limit // 4 and len(code.encode("utf-8")) > limit:
            raise InvalidInput("code", f"larger than {limit} bytes")


async def _find_cell(
    conn: asyncpg.Connection, notebook_id: str, cell_id: str
) -> tuple[int, StoredCell]:
    _addressable(cell_id)
    row = await conn.fetchrow(_FIND_CELL, notebook_id, cell_id)
    if row is None:
        raise NotFound("cell not found")
    return int(row["position"]), _CELL.decode(row["cell"])


async def _bump(conn: asyncpg.Connection, statement: str, notebook_id: str, *args: Any) -> int:
    """Run one of the revision-raising UPDATEs above; returns the new revision."""
    return int(await conn.fetchval(statement, notebook_id, *args))


def _check_revision(revision: int, pre: Precondition) -> None:
    if pre.body is not None and pre.body != revision:
        raise RevisionConflict(revision, "expected_revision does not match")
    if pre.header is not None and pre.header != revision:
        raise PreconditionFailed(revision, "If-Match does not match the current revision")


def _addressable(*ids: str) -> None:
    """An id PostgreSQL could not even compare (it has U+0000) names nothing: 404."""
    if any("\x00" in value for value in ids):
        raise NotFound("not found")


def _merge(stored: StoredCell, run: Sequence[Any] | None) -> Cell:
    """Stored code plus run state ``(cell_id, status, stdout, outputs, error)``, if any."""
    if run is None:
        return api_cell(stored)
    _, status, stdout, outputs, error = run
    return api_cell(stored, status, stdout, msgspec.Raw(outputs) if outputs else None, error)


def _encode_cells(cells: list[StoredCell]) -> str:
    return ENCODE(cells).decode()
