"""Notebook use cases: one method per route, each change one statement of the store.

Concurrency is PostgreSQL's job.  Every change of a notebook is one
conditional statement (``app.store.notebooks``): it holds only for the
owner and when the caller's expected revision (body and/or ``If-Match``)
matches the row's latest committed version, applies the change with jsonb
functions inside the database (the cells document never travels back and
forth) and raises ``revision`` by one, all while PostgreSQL holds the row,
never across a round trip to this process.  Two instances editing different
cells of one notebook therefore both succeed; a stale ``expected_revision``
gets 409.  When a change matches no row, ``explain`` says why, from one read
of the notebook's state, in the order every route answers: 404 notebook,
409 body revision, 412 ``If-Match``, 404 cell, then what the change itself
needs (a position in range, room for one more cell).

Run state (status, stdout, outputs, error) lives in ``cell_runs`` and is
written without touching the notebook row, so outputs never bump the
revision and a code edit never rewrites outputs.  Reads merge the two with
one query; stored outputs pass through as ``msgspec.Raw``, never decoded.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal, NoReturn, TypeVar
from uuid import UUID, uuid4

import asyncpg
import msgspec

from app.cursors import Cursors, micros, moment
from app.database import connection, transaction
from app.errors import (
    CellarError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RevisionConflict,
)
from app.notebooks.cells import ENCODE, api_cell, blank_cells, code_edits, demo_cells, make_cell
from app.notebooks.connections import mask_password
from app.notebooks.demo import load_demo
from app.notebooks.events import outputs_event
from app.notebooks.graph import CellDeps, Graph, build_graph
from app.notebooks.read_cache import Answer, Kind, ReadCache
from app.notebooks.schemas import (
    DEFAULT_PAGE,
    Cell,
    CellOutputs,
    CellType,
    Notebook,
    NotebookList,
    StoredCell,
    TrashList,
)
from app.observability.metrics import READ_CACHE_SIZE, count_cached_read
from app.replicas.routing import read
from app.store import checkpoints, events, users
from app.store import notebooks as store
from app.store.notebooks import (
    Changed,
    EditedCell,
    NewNotebook,
    NotebookKind,
    NotebookRow,
    NotebookState,
    Precondition,
    RunState,
    Scope,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.notebooks.connections import ConnectionStringCipher
    from app.settings import Settings

__all__ = ["NotebookService", "Precondition", "explain", "purge_trash"]

# Notebooks deleted for good per transaction by the trash's purge: each batch
# holds its rows' locks only briefly, and a crash loses no more than one batch.
PURGE_BATCH = 200

T = TypeVar("T")
V = TypeVar("V")
log = logging.getLogger(__name__)


class _Deps(msgspec.Struct, frozen=True):
    id: str
    reads: list[str] = []
    writes: list[str] = []


# Decoders are built once; msgspec reuses their compiled type info.
_CELLS = msgspec.json.Decoder(list[StoredCell])
_CELL = msgspec.json.Decoder(StoredCell)
_DEPS = msgspec.json.Decoder(list[_Deps])


def explain(
    state: NotebookState | None, pre: Precondition, cell_id: str | None = None
) -> CellarError | None:
    """Why a change guarded by ``pre`` (of cell ``cell_id``) would be refused on ``state``.

    The order every route answers in: 404 for a notebook that is missing or
    another user's, 409 for a stale ``expected_revision``, 412 for a stale
    ``If-Match``, 404 for a missing cell.  None: none of these holds.
    """
    if state is None:
        return NotFound("notebook not found")
    if pre.body is not None and pre.body != state.revision:
        return RevisionConflict(state.revision, "expected_revision does not match")
    if pre.header is not None and pre.header != state.revision:
        return PreconditionFailed(state.revision, "If-Match does not match the current revision")
    if cell_id is not None and not state.has_cell:
        return NotFound("cell not found")
    return None


class _ListCursor(msgspec.Struct, frozen=True, array_like=True):
    """What a list cursor holds (times in microseconds since the epoch)."""

    horizon: int
    phase: Literal[1, 2]
    updated_at: int
    id: str


def _list_scope(user_id: UUID) -> str:
    return f"list:{user_id}"


class NotebookService:
    def __init__(
        self, settings: Settings, cipher: ConnectionStringCipher, cursors: Cursors | None = None
    ) -> None:
        self.settings = settings
        self.cipher = cipher
        self.cursors = cursors or Cursors(settings.app_secret_key or "")
        self.read_cache = ReadCache(settings.read_cache_bytes)

    # -- reading ---------------------------------------------------------------

    async def list(
        self, user_id: UUID, limit: int | None = None, cursor: str | None = None
    ) -> NotebookList:
        """Newest first; the first call of a user provisions the blank and demo notebooks.

        Without ``limit`` and ``cursor``: every notebook.  With either: one page
        of a walk (docs/paging.md), ``next_cursor`` giving the next.  A replica
        may answer once it knows the user as provisioned; a user it does not
        know yet (just registered) or not as provisioned asks the primary.
        """
        if limit is None and cursor is None:
            provisioned, notebooks = await read(
                lambda conn: store.summaries(conn, user_id), fresh=lambda found: found[0] is True
            )
            if provisioned is False:
                # Outside the first connection: holding one while waiting for
                # another could exhaust the pool under a burst of first calls.
                await self.provision(user_id)
                async with connection() as conn:
                    _, notebooks = await store.summaries(conn, user_id)
            return NotebookList(notebooks=notebooks)
        size = DEFAULT_PAGE if limit is None else limit
        at = store.START if cursor is None else self._position(user_id, cursor)
        page = await read(
            lambda conn: store.page(conn, user_id, at, size),
            fresh=lambda found: found.provisioned is True,
        )
        if page.provisioned is False:
            await self.provision(user_id)
            async with connection() as conn:
                page = await store.page(conn, user_id, at, size)
        next_cursor = None
        if len(page.rows) > size:
            phase, last = page.rows[size - 1]
            position = _ListCursor(micros(page.horizon), phase, micros(last.updated_at), last.id)
            next_cursor = self.cursors.make(_list_scope(user_id), position)
        return NotebookList(notebooks=[row for _, row in page.rows[:size]], next_cursor=next_cursor)

    def _position(self, user_id: UUID, cursor: str) -> store.Position:
        at = self.cursors.read(_list_scope(user_id), cursor, _ListCursor)
        return store.Position(moment(at.horizon), at.phase, moment(at.updated_at), at.id)

    async def encoded(
        self, user_id: UUID, notebook_id: str, known: int | None = None, at: Changed | None = None
    ) -> Answer:
        """``GET /notebooks/{id}``'s answer, encoded: the kept one while the seq holds.

        One statement either way (``store.get_changed``): the notebook's
        current seq, owner checked, and its full row only when the seq is not
        the kept answer's; the same seq sends the kept bytes.  ``at``: the
        revision and seq the caller read already (the 304 path), which may
        spare the statement.  ``known`` as for ``get``.  See
        ``app.notebooks.read_cache``.
        """

        def encode(row: store.NotebookRow) -> bytes:
            return ENCODE(self._notebook(row))

        return await self._kept_or_read(
            "notebook", user_id, notebook_id, store.get_changed, encode, known, at
        )

    def changed(self, notebook_id: str, seq: int) -> None:
        """The realtime listener heard that ``notebook_id`` committed event ``seq``."""
        if self.read_cache.enabled:
            self.read_cache.forget_before(notebook_id, seq)
            READ_CACHE_SIZE.set(self.read_cache.size)

    async def encoded_graph(self, user_id: UUID, notebook_id: str) -> Answer:
        """``GET …/graph``'s answer, encoded: kept like GET's (``encoded``), by seq."""

        def encode(cells: str) -> bytes:
            return ENCODE(_graph(cells))

        return await self._kept_or_read("graph", user_id, notebook_id, store.cells_changed, encode)

    async def _kept_or_read(
        self,
        kind: Kind,
        user_id: UUID,
        notebook_id: str,
        changed: Callable[
            [asyncpg.Connection, str, UUID, int | None], Awaitable[store.Current[V] | None]
        ],
        encode: Callable[[V], bytes],
        known: int | None = None,
        at: Changed | None = None,
    ) -> Answer:
        """The kept answer of ``kind`` while the notebook's seq is its own, else read and kept.

        ``changed`` is the store's one statement: revision, seq, and the value
        to encode only when the seq is not the one passed.
        """
        _addressable(notebook_id)
        cache = self.read_cache
        kept = cache.kept_seq(notebook_id, user_id, kind)
        if kept is not None and at is not None and at.seq == kept:
            answer = cache.get(notebook_id, user_id, kept, kind)
            if answer is not None:
                count_cached_read(kind, "hit")
                return answer

        async def current(seq: int | None) -> store.Current[V]:
            found = await read(
                lambda conn: changed(conn, notebook_id, user_id, seq),
                fresh=lambda found: (
                    found is not None and (known is None or found.revision >= known)
                ),
            )
            if found is None:
                raise NotFound("notebook not found")
            return found

        found = await current(kept)
        if found.value is None:
            answer = cache.get(notebook_id, user_id, found.seq, kind)
            if answer is not None:
                count_cached_read(kind, "hit")
                return answer
            # Dropped or replaced meanwhile (another request, the realtime listener).
            found = await current(None)
        assert found.value is not None  # asked with no seq: the value comes
        answer = Answer(encode(found.value), found.revision, found.seq)
        if cache.enabled:
            count_cached_read(kind, "miss" if kept is None else "stale")
            cache.put(notebook_id, user_id, answer, kind)
            READ_CACHE_SIZE.set(cache.size)
        return answer

    async def get(
        self, user_id: UUID, notebook_id: str, known: int | None = None
    ) -> tuple[Notebook, int]:
        """The notebook as GET shows it, and its seq (``Cellar-Seq``).

        ``known``: a revision the client holds (its ``If-None-Match``): never answer older.
        Always a full read (``encoded`` is GET's, through the read cache).
        """
        row = await self._row(user_id, notebook_id, known)
        return self._notebook(row), row.seq

    async def _row(self, user_id: UUID, notebook_id: str, known: int | None) -> store.NotebookRow:
        """GET's full read, from a replica when one may answer (app.replicas.routing)."""
        _addressable(notebook_id)
        row = await read(
            lambda conn: store.get(conn, notebook_id, user_id),
            fresh=lambda row: row is not None and (known is None or row.revision >= known),
        )
        if row is None:
            raise NotFound("notebook not found")
        return row

    def shown(self, row: NotebookRow) -> Notebook:
        """A stored notebook (or a checkpoint of one) as the API shows it."""
        return self._notebook(row)

    def _notebook(self, row: store.NotebookRow) -> Notebook:
        """The stored row with each cell's run state merged in and the password masked."""
        runs = {run.cell_id: run for run in row.runs}
        cells = [_merge(stored, runs.get(stored.id)) for stored in _CELLS.decode(row.cells)]
        return Notebook(
            id=row.id,
            name=row.name,
            kind=row.kind,
            db_conn_string=self.cipher.masked(row.db_conn_string),
            revision=row.revision,
            created_at=row.created_at,
            updated_at=row.updated_at,
            cells=cells,
        )

    async def revision(self, user_id: UUID, notebook_id: str, known: int | None = None) -> Changed:
        """Just the revision (and seq), for conditional GETs that may end in 304; never
        older than ``known`` (a replica behind the client's ``If-None-Match`` leaves it
        to the primary)."""
        _addressable(notebook_id)
        current = await read(
            lambda conn: store.revision(conn, notebook_id, user_id),
            fresh=lambda found: found is not None and (known is None or found.revision >= known),
        )
        if current is None:
            raise NotFound("notebook not found")
        return current

    async def graph(self, user_id: UUID, notebook_id: str) -> Graph:
        _addressable(notebook_id)
        cells = await read(
            lambda conn: store.cells(conn, notebook_id, user_id),
            fresh=lambda found: found is not None,
        )
        if cells is None:
            raise NotFound("notebook not found")
        return _graph(cells)

    # -- notebooks -------------------------------------------------------------

    async def provision(self, user_id: UUID) -> None:
        """Create the blank and demo notebooks once per user.

        Concurrent first calls all try; the partial unique index on
        (user_id, kind) lets exactly one of each in and the rest do nothing.
        """
        demo = load_demo()
        async with transaction() as conn:
            await store.provision(
                conn,
                [
                    _new(user_id, "Untitled", "blank", blank_cells()),
                    _new(user_id, demo.name, "demo", demo_cells(), demo.demo_version),
                ],
            )
            await users.mark_provisioned(conn, [user_id])

    async def create(self, user_id: UUID, name: str | None) -> str:
        self._check_name(name)
        notebook = _new(user_id, name, "user", blank_cells())
        async with connection() as conn:  # one statement: the notebook and its event 1
            await store.insert(conn, [notebook])
        return notebook.id

    async def rename(
        self, user_id: UUID, notebook_id: str, name: str | None, pre: Precondition
    ) -> Changed:
        self._check_name(name)
        return await _change(
            lambda conn: store.rename(conn, notebook_id, user_id, pre, name),
            user_id,
            notebook_id,
            pre,
        )

    async def set_connection(
        self, user_id: UUID, notebook_id: str, connection_string: str | None, pre: Precondition
    ) -> Changed:
        """Stored encrypted; an empty string or null clears it.

        The event holds the string as GET shows it (password masked), never in
        clear; a NUL (which jsonb cannot hold) shows as U+FFFD there.
        """
        token = self.cipher.encrypt(connection_string) if connection_string else None
        shown = (
            mask_password(connection_string).replace("\x00", "\ufffd")
            if connection_string
            else None
        )
        return await _change(
            lambda conn: store.set_connection(conn, notebook_id, user_id, pre, token, shown),
            user_id,
            notebook_id,
            pre,
        )

    # -- the trash (SPEC §13) -------------------------------------------------

    async def delete(
        self, user_id: UUID, notebook_id: str, pre: Precondition, *, purge: bool = False
    ) -> Changed:
        """To the trash (one more revision), or with ``purge`` for good, from wherever it is."""
        if purge:

            async def purge_it(conn: asyncpg.Connection) -> Changed | None:
                # Its checkpoints' and runs' payloads go too, unless shared with others.
                keys = await checkpoints.payload_keys(conn, notebook_id, user_id)
                changed = await store.purge(conn, notebook_id, user_id, pre)
                if changed is not None:
                    await checkpoints.collect(conn, user_id, keys)
                return changed

            # The purge's statement wakes listeners itself (no event is left to read).
            return await _change(
                purge_it, user_id, notebook_id, pre, scope="anywhere", atomic=True, wake=False
            )
        return await _change(
            lambda conn: store.move_to_trash(conn, notebook_id, user_id, pre),
            user_id,
            notebook_id,
            pre,
        )

    async def trash(self, user_id: UUID) -> TrashList:
        """The user's trashed notebooks, most recently deleted first (a replica may answer)."""
        return TrashList(notebooks=await read(lambda conn: store.trash(conn, user_id)))

    async def restore_from_trash(
        self, user_id: UUID, notebook_id: str, pre: Precondition
    ) -> Changed:
        """Bring a trashed notebook back as it was; 404 when it is not in the trash."""
        return await _change(
            lambda conn: store.restore_from_trash(conn, notebook_id, user_id, pre),
            user_id,
            notebook_id,
            pre,
            scope="trashed",
        )

    # -- cells -----------------------------------------------------------------

    async def insert_cell(
        self,
        user_id: UUID,
        notebook_id: str,
        cell_type: CellType,
        code: str,
        index: int | None,
        pre: Precondition,
    ) -> tuple[Cell, Changed]:
        self._check_code(code)
        cell = make_cell(cell_type, code)
        document = ENCODE(cell).decode()
        limit = self.settings.max_cells_per_notebook

        def room(count: int) -> CellarError | None:
            if count >= limit:
                return InvalidInput("cells", f"a notebook holds at most {limit} cells")
            if index is not None and index > count:
                return InvalidInput("index", f"out of range: expected 0 to {count}")
            return None

        changed = await _change(
            lambda conn: store.insert_cell(conn, notebook_id, user_id, pre, document, index, limit),
            user_id,
            notebook_id,
            pre,
            then=room,
        )
        return api_cell(cell), changed

    async def update_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, code: str, pre: Precondition
    ) -> tuple[Cell, EditedCell]:
        """The hot path (every save of the editor): one conditional UPDATE, one round trip.

        A stale revision is not the end (SPEC §11): ``_merge_stale_edit``
        applies the edit anyway when nobody touched this cell since
        (``merged`` in the answer), else 409/412 with the conflicting events.

        The analysis depends on the cell's type, which only the row knows:
        the code is analysed for every type up front (microseconds, against
        a round trip) and the statement merges the one matching the type it
        finds on the row's latest committed version.
        """
        self._check_code(code)
        edits = ENCODE(code_edits(code)).decode()

        async def merge(conn: asyncpg.Connection) -> EditedCell:
            return await _merge_stale_edit(conn, user_id, notebook_id, cell_id, pre, edits)

        edited = await _change(
            lambda conn: store.edit_code(conn, notebook_id, user_id, pre, cell_id, edits),
            user_id,
            notebook_id,
            pre,
            cell_id,
            refused=None if pre == Precondition() else merge,
        )
        return _merge(_CELL.decode(edited.cell), edited.run), edited

    async def delete_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, pre: Precondition
    ) -> Changed:
        return await _change(
            lambda conn: store.delete_cell(conn, notebook_id, user_id, pre, cell_id),
            user_id,
            notebook_id,
            pre,
            cell_id,
            atomic=True,
        )

    async def move_cell(
        self, user_id: UUID, notebook_id: str, cell_id: str, index: int, pre: Precondition
    ) -> Changed:
        """The cell ends at ``index`` of the new list: [a,b,c,d], a → 2 gives [b,c,a,d]."""

        def in_range(count: int) -> CellarError | None:
            if index >= count:
                return InvalidInput("index", f"out of range: expected 0 to {count - 1}")
            return None

        return await _change(
            lambda conn: store.move_cell(conn, notebook_id, user_id, pre, cell_id, index),
            user_id,
            notebook_id,
            pre,
            cell_id,
            then=in_range,
        )

    async def write_outputs(
        self, user_id: UUID, notebook_id: str, cell_id: str, run: CellOutputs
    ) -> int:
        """Upsert the cell's run state; the revision stays as it is.  The event's seq.

        The statement waits for a concurrent change of the notebook (a cell
        deletion, say) and then sees whether the cell is still there.  Its
        ``outputs`` event holds the run state with every output entry over
        64 KiB of JSON replaced by ``{"truncated": true, "bytes": N}``.
        """
        _addressable(notebook_id, cell_id)  # before the size check, as every route answers
        outputs = ENCODE(run.outputs)
        if len(outputs) + len(run.stdout) > self.settings.max_cell_outputs_bytes:
            raise InvalidInput(
                "outputs",
                f"larger than {self.settings.max_cell_outputs_bytes} bytes for one cell",
            )
        state = RunState(cell_id, run.status, run.stdout, outputs.decode(), run.error)
        event = outputs_event(run)
        return await _change(
            lambda conn: store.write_run(conn, notebook_id, user_id, state, event),
            user_id,
            notebook_id,
            Precondition(),
            cell_id,
        )

    # -- checks ----------------------------------------------------------------

    def _check_name(self, name: str | None) -> None:
        if name is not None and len(name) > self.settings.max_name_length:
            raise InvalidInput("name", f"longer than {self.settings.max_name_length} characters")

    def _check_code(self, code: str) -> None:
        limit = self.settings.max_cell_code_bytes
        if len(code) > limit // 4 and len(code.encode("utf-8")) > limit:
            raise InvalidInput("code", f"larger than {limit} bytes")


async def purge_trash(retention_days: int) -> int:
    """Delete for good every notebook trashed over ``retention_days`` ago; how many.

    ``cellar purge-trash`` and the daily run (``app.system.daily``) call it.
    In batches of ``PURGE_BATCH``, each its own transaction: runs, search
    rows, events and checkpoints go with each notebook (foreign keys).
    """
    purged = 0
    while True:
        async with connection() as conn:
            batch = await store.purge_trashed(conn, retention_days, PURGE_BATCH)
        purged += len(batch)
        if len(batch) < PURGE_BATCH:
            break
    # Then the checkpoint payloads nothing refers to any more (the purged notebooks').
    while True:
        async with connection() as conn:
            swept = await checkpoints.sweep(conn, PURGE_BATCH)
        if swept < PURGE_BATCH:
            return purged


async def _change(
    attempt: Callable[[asyncpg.Connection], Awaitable[T | None]],
    user_id: UUID,
    notebook_id: str,
    pre: Precondition,
    cell_id: str | None = None,
    *,
    then: Callable[[int], CellarError | None] | None = None,
    atomic: bool = False,
    refused: Callable[[asyncpg.Connection], Awaitable[T]] | None = None,
    wake: bool = True,
    scope: Scope = "live",
) -> T:
    """Run one change of a notebook (one store function); when refused, raise why.

    ``atomic``: the store function sends more than one statement, so they run
    in a transaction (a single statement is one by itself).  ``scope``: where
    the change looks for the notebook (live ones unless it is the trash's).
    ``refused``: what to try instead when the statement matched no row (the
    merge of a stale code edit), on the same connection; it answers or raises.
    ``wake``: send the event's realtime wake-up once committed (``store.wake``).
    """
    _addressable(notebook_id, *(() if cell_id is None else (cell_id,)))
    async with transaction() if atomic else connection() as conn:
        result = await attempt(conn)
        if result is None:
            if refused is not None:
                result = await refused(conn)
            else:
                await _refused(conn, user_id, notebook_id, pre, cell_id, then, scope)
        if wake and not atomic:
            await _wake(conn, notebook_id, result)
    if wake and atomic:
        async with connection() as conn:
            await _wake(conn, notebook_id, result)
    return result


async def _wake(conn: asyncpg.Connection, notebook_id: str, result: object) -> None:
    """The realtime wake-up of the event a change wrote, after its commit.

    A wake-up is only a hint (listeners read the table): one that cannot be
    sent is logged, and the committed change still answers 200.
    """
    seq = result if isinstance(result, int) else getattr(result, "seq", None)
    if not isinstance(seq, int) or seq <= 0:
        return
    if conn.is_in_transaction():
        await store.wake(conn, notebook_id, seq)
        return
    try:
        await store.wake(conn, notebook_id, seq)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("wake-up of %s:%s not sent: %s", seq, notebook_id, exc)


async def _merge_stale_edit(
    conn: asyncpg.Connection,
    user_id: UUID,
    notebook_id: str,
    cell_id: str,
    pre: Precondition,
    edits: str,
) -> EditedCell:
    """A code edit refused on its revision: apply it if nobody touched the cell since (§11).

    In one transaction holding the notebook's row (``FOR UPDATE``): no change
    can commit between the check and the edit, on this instance or another.
    The edit merges when the log after the client's revision holds no update
    or deletion of the cell (nor a change of every cell: an import, a restore)
    and is complete (still holds an event at or before that revision: older
    ones may be pruned, and then nothing proves the cell untouched).  Else 409
    (412 for ``If-Match``) with the events that touched it.
    """
    async with conn.transaction():
        state = await store.lock(conn, notebook_id, user_id, cell_id)
        if state is None:
            raise NotFound("notebook not found")
        stale = [v for v in (pre.body, pre.header) if v is not None and v != state.revision]
        if not stale:  # refused for the cell, not the revision
            error = explain(state, pre, cell_id)
            if error is not None:
                raise error
            edited = await store.edit_code(conn, notebook_id, user_id, pre, cell_id, edits)
            assert edited is not None  # the row is ours until commit
            return edited
        body_stale = pre.body is not None and pre.body != state.revision
        conflict = RevisionConflict if body_stale else PreconditionFailed
        detail = (
            "expected_revision does not match"
            if body_stale
            else "If-Match does not match the current revision"
        )
        base = min(stale)
        if base > state.revision:  # a revision the notebook never had: nothing to merge over
            raise conflict(state.revision, detail)
        complete, conflicts = await events.touching(conn, notebook_id, user_id, cell_id, base)
        if conflicts:
            raise conflict(
                state.revision, f"{detail}: the cell was changed since revision {base}", conflicts
            )
        if not complete:
            raise conflict(
                state.revision,
                f"{detail}: the history since revision {base} was pruned, so a merge "
                "cannot be proven safe",
                [],
            )
        if not state.has_cell:
            raise NotFound("cell not found")
        current = Precondition(state.revision)
        edited = await store.edit_code(conn, notebook_id, user_id, current, cell_id, edits)
        assert edited is not None  # the row is ours until commit
        return msgspec.structs.replace(edited, merged=True)


async def _refused(
    conn: asyncpg.Connection,
    user_id: UUID,
    notebook_id: str,
    pre: Precondition,
    cell_id: str | None,
    then: Callable[[int], CellarError | None] | None,
    scope: Scope = "live",
) -> NoReturn:
    """Raise why a change matched no row: ``explain``, then ``then`` (given the cell count).

    When nothing explains it, the notebook changed between the statement and
    this read (say, the cell came back): a conflict, to be tried again.
    """
    state = await store.state(conn, notebook_id, user_id, cell_id, scope)
    error = explain(state, pre, cell_id)
    if error is None and state is not None and then is not None:
        error = then(state.cell_count)
    if error is not None:
        raise error
    assert state is not None  # explain answers a missing notebook
    raise RevisionConflict(state.revision, "the notebook changed while saving; try again")


def _graph(cells: str) -> Graph:
    """The dependency graph of a notebook's stored cells (JSON text)."""
    return build_graph([CellDeps(c.id, c.reads, c.writes) for c in _DEPS.decode(cells)])


def _addressable(*ids: str) -> None:
    """An id PostgreSQL could not even compare (it has U+0000) names nothing: 404."""
    if any("\x00" in value for value in ids):
        raise NotFound("not found")


def _merge(stored: StoredCell, run: RunState | None) -> Cell:
    """Stored code plus the cell's run state, if it has one."""
    if run is None:
        return api_cell(stored)
    return api_cell(stored, run.status, run.stdout, msgspec.Raw(run.outputs), run.error)


def _new(
    user_id: UUID,
    name: str | None,
    kind: NotebookKind,
    cells: list[StoredCell],
    demo_version: int | None = None,
) -> NewNotebook:
    return NewNotebook(
        id=str(uuid4()),
        user_id=user_id,
        name=name,
        kind=kind,
        db_conn_string=None,
        revision=0,
        cells=ENCODE(cells).decode(),
        demo_version=demo_version,
    )
