"""Checkpoints of notebooks and their shared run payloads (SPEC §13): the statements.

A checkpoint is one ``notebook_checkpoints`` row (the cells document and the
revision when it was taken) and one ``checkpoint_runs`` row per cell that
has a run state: its status and error, and the key of its payload (stdout,
outputs, .ipynb record) in ``run_blobs``, stored once per owner and content
(``sha256``).  A live run state remembers the key of its payload once a
checkpoint stored it (``cell_runs.blob``; every write of a run clears it),
so a checkpoint hashes and copies only what changed since the previous one:
a notebook with megabytes of unchanged outputs checkpoints with one small
row per cell.

Every statement keeps to the notebook's owner (``$2``) and, through
``OWNED``, to live notebooks: a trashed notebook's checkpoints are as absent
as the notebook until it is restored.  A payload no checkpoint and no live
run state refers to any more is deleted (``COLLECT``) in the transaction
that dropped its last reference, and by the daily sweep (``SWEEP``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import msgspec

from .notebooks import OWNED, NotebookRow, _change, _run_change, with_runs
from .rows import select_list

if TYPE_CHECKING:
    from collections.abc import Sequence

    import asyncpg

    from .notebooks import Changed, Precondition


class Checkpoint(msgspec.Struct, frozen=True, gc=False):
    """One checkpoint as the API lists it."""

    id: Annotated[UUID, msgspec.Meta(description="The checkpoint's id.")]
    name: Annotated[str | None, msgspec.Meta(description="Named ones are never evicted.")]
    revision: Annotated[int, msgspec.Meta(description="The notebook's revision it holds.")]
    created_at: datetime


class Room(msgspec.Struct, frozen=True):
    """How many checkpoints the (locked) notebook has; None from ``room``: no notebook."""

    count: int
    unnamed: int


# The payload of run state ``r``: what a run_blobs row holds and its key hashes.
# Text cannot hold U+0000, so the NUL separators make the key unambiguous.
_PAYLOAD_KEY = (
    "sha256(convert_to(r.stdout, 'UTF8') || '\\x00'::bytea || json_send(r.outputs)"
    " || '\\x00'::bytea || coalesce(json_send(r.ipynb), ''::bytea))"
)

# $1 the notebook, $2 its owner.  Locks the notebook row (no other change of it,
# nor of its run states, until the transaction ends: the checkpoint is one
# instant of both, and concurrent checkpoints of it count one after the other).
ROOM = f"""
SELECT (SELECT count(*) FROM notebook_checkpoints c WHERE c.notebook_id = n.id AND c.user_id = $2),
       (SELECT count(*) FROM notebook_checkpoints c
         WHERE c.notebook_id = n.id AND c.user_id = $2 AND c.name IS NULL)
  FROM notebooks n
 WHERE {OWNED}
   FOR NO KEY UPDATE OF n
"""
# The $3 oldest unnamed checkpoints of the notebook, to make room.
OLDEST_UNNAMED = """
SELECT c.id FROM notebook_checkpoints c
 WHERE c.notebook_id = $1 AND c.user_id = $2 AND c.name IS NULL
 ORDER BY c.created_at, c.id
 LIMIT $3
"""
# $1 the notebook, $2 its owner, $3 the checkpoint's name.  The run states that
# have no stored payload get their key (from the row they update), their payload
# is stored unless the owner has it already, and the checkpoint refers to each
# run state's payload: the stored one, or the one just hashed.
CREATE = f"""
WITH hashed AS (
    UPDATE cell_runs r SET blob = {_PAYLOAD_KEY}
      FROM notebooks n
     WHERE {OWNED} AND r.notebook_id = n.id AND r.blob IS NULL
    RETURNING r.cell_id, r.blob, r.stdout, r.outputs, r.ipynb
), stored AS (
    INSERT INTO run_blobs (user_id, sha256, stdout, outputs, ipynb)
    SELECT $2, h.blob, h.stdout, h.outputs, h.ipynb FROM hashed h
    ON CONFLICT (user_id, sha256) DO NOTHING
), checkpoint AS (
    INSERT INTO notebook_checkpoints (notebook_id, user_id, name, revision, cells)
    SELECT n.id, n.user_id, $3, n.revision, n.cells FROM notebooks n WHERE {OWNED}
    RETURNING {select_list(Checkpoint, "notebook_checkpoints")}
), runs AS (
    INSERT INTO checkpoint_runs (checkpoint_id, user_id, cell_id, status, error, blob)
    SELECT c.id, $2, r.cell_id, r.status, r.error, coalesce(h.blob, r.blob)
      FROM checkpoint c, cell_runs r LEFT JOIN hashed h ON h.cell_id = r.cell_id
     WHERE r.notebook_id = $1
)
SELECT {", ".join(Checkpoint.__struct_fields__)} FROM checkpoint
"""
# $1 the notebook, $2 its owner: its checkpoints newest first (None: no notebook).
LIST = f"""
SELECT ARRAY(SELECT ROW({select_list(Checkpoint, "c")}) FROM notebook_checkpoints c
              WHERE c.notebook_id = n.id AND c.user_id = $2
              ORDER BY c.created_at DESC, c.id DESC)
  FROM notebooks n
 WHERE {OWNED}
"""
# The run state of checkpoint ``c``'s cells, as the API's RUN shows it.
_RUNS = (
    "ARRAY(SELECT ROW(r.cell_id, r.status, b.stdout, b.outputs::text, r.error)"
    " FROM checkpoint_runs r JOIN run_blobs b ON b.user_id = r.user_id AND b.sha256 = r.blob"
    " WHERE r.checkpoint_id = c.id)"
)
# $1 the notebook, $2 its owner, $3 the checkpoint: the notebook as it was then,
# in GET's shape (its name and connection string as they are now; updated_at:
# when the checkpoint was taken).
READ = f"""
SELECT {
    select_list(
        NotebookRow,
        "n",
        revision="c.revision",
        updated_at="c.created_at",
        cells="c.cells::text",
        runs=_RUNS,
    )
}
  FROM notebooks n JOIN notebook_checkpoints c ON c.notebook_id = n.id AND c.user_id = n.user_id
 WHERE {OWNED} AND c.id = $3
"""
# $5 the checkpoint: the notebook's cells become the checkpoint's (event
# ``restore``, holding the checkpoint's id and the cells); its run states are
# replaced by RESTORE_RUNS in the same transaction.
_CHECKPOINT_CELLS = (
    "(SELECT c.cells FROM notebook_checkpoints c"
    " WHERE c.id = $5::uuid AND c.notebook_id = n.id AND c.user_id = n.user_id)"
)
RESTORE = _change(
    f"cells = {_CHECKPOINT_CELLS}",
    f" AND EXISTS {_CHECKPOINT_CELLS}",
    op="restore",
    carry=", n.cells AS event_cells",
    data="jsonb_build_object('checkpoint_id', $5::text, 'cells', event_cells)",
)
# $1 the notebook, $2 its owner, $3 the checkpoint (after RESTORE changed the row).
# The restored run states keep their payload's key: the next checkpoint stores
# nothing for them.
RESTORE_RUNS = """
WITH gone AS (
    DELETE FROM cell_runs r WHERE r.notebook_id = $1
       AND NOT EXISTS (SELECT 1 FROM checkpoint_runs k
                        WHERE k.checkpoint_id = $3 AND k.cell_id = r.cell_id)
)
INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs, error, ipynb, blob)
SELECT $1, k.cell_id, k.status, b.stdout, b.outputs, k.error, b.ipynb, k.blob
  FROM checkpoint_runs k JOIN run_blobs b ON b.user_id = k.user_id AND b.sha256 = k.blob
 WHERE k.checkpoint_id = $3 AND k.user_id = $2
ON CONFLICT (notebook_id, cell_id) DO UPDATE
   SET status = EXCLUDED.status, stdout = EXCLUDED.stdout, outputs = EXCLUDED.outputs,
       error = EXCLUDED.error, ipynb = EXCLUDED.ipynb, blob = EXCLUDED.blob, updated_at = now()
"""
# $1 the notebook, $2 its owner, $3 the checkpoints: deleted, with the keys of
# the payloads they referred to (COLLECT's candidates).
DELETE = f"""
WITH runs AS (
    DELETE FROM checkpoint_runs k USING notebook_checkpoints c, notebooks n
     WHERE k.checkpoint_id = c.id AND c.id = ANY($3::uuid[]) AND c.notebook_id = n.id
       AND c.user_id = $2 AND {OWNED}
    RETURNING k.blob
), gone AS (
    DELETE FROM notebook_checkpoints c USING notebooks n
     WHERE c.id = ANY($3::uuid[]) AND c.notebook_id = n.id AND c.user_id = $2 AND {OWNED}
    RETURNING c.id
)
SELECT ARRAY(SELECT id FROM gone), ARRAY(SELECT DISTINCT blob FROM runs)
"""
# Whether payload ``b`` is still referred to: by a checkpoint, or by a live run state.
_UNREFERENCED = """NOT EXISTS (SELECT 1 FROM checkpoint_runs k
                    WHERE k.user_id = b.user_id AND k.blob = b.sha256)
   AND NOT EXISTS (SELECT 1 FROM cell_runs r JOIN notebooks n ON n.id = r.notebook_id
                    WHERE r.blob = b.sha256 AND n.user_id = b.user_id)"""
# $1 the owner, $2 candidate keys: those nothing refers to any more go.
COLLECT = f"""
DELETE FROM run_blobs b
 WHERE b.user_id = $1 AND b.sha256 = ANY($2::bytea[])
   AND {_UNREFERENCED}
"""
# Every owner's payloads nothing refers to (their notebook was purged, say), at
# most $1 of them: the daily purge's sweep.
SWEEP = f"""
DELETE FROM run_blobs
 WHERE (user_id, sha256) IN (SELECT b.user_id, b.sha256 FROM run_blobs b
                              WHERE {_UNREFERENCED}
                              LIMIT $1
                                FOR UPDATE SKIP LOCKED)
"""
# $1 the notebook, $2 its owner, $3 the checkpoint: whether it is there.
EXISTS = f"""
SELECT true FROM notebooks n JOIN notebook_checkpoints c ON c.notebook_id = n.id
 WHERE {OWNED} AND c.id = $3 AND c.user_id = $2
"""
# $1 the notebook, $2 its owner (live or trashed): the payload keys its
# checkpoints and run states refer to, COLLECT's candidates once it is purged.
PAYLOAD_KEYS = """
SELECT ARRAY(SELECT k.blob FROM checkpoint_runs k
               JOIN notebook_checkpoints c ON c.id = k.checkpoint_id
              WHERE c.notebook_id = $1 AND c.user_id = $2
             UNION
             SELECT r.blob FROM cell_runs r JOIN notebooks n ON n.id = r.notebook_id
              WHERE r.notebook_id = $1 AND n.user_id = $2 AND r.blob IS NOT NULL)
"""


class CellVersion(msgspec.Struct, frozen=True):
    """What restoring a cell from its history needs to know (``cell_version``)."""

    present: bool  # the notebook holds the cell now
    cell_count: int
    code: str | None  # the version's code; None: no version of the cell at that seq
    deleted: str | None  # the data of the cell's last cell_delete event (JSON), if any
    inserted: str | None  # the cell of its last cell_insert event (JSON), if any


_CELL_EVENT = (
    "FROM notebook_events e WHERE e.notebook_id = n.id AND e.user_id = $2 AND e.cell_id = $3"
)
# $1 the notebook, $2 its owner, $3 the cell, $4 the seq of the version.
CELL_VERSION = f"""
SELECT n.cells @> jsonb_build_array(jsonb_build_object('id', $3::text)), n.cell_count,
       (SELECT CASE e.op WHEN 'cell_update' THEN e.data ->> 'code'
                         ELSE e.data -> 'cell' ->> 'code' END
          {_CELL_EVENT} AND e.seq = $4 AND e.op IN ('cell_update', 'cell_insert')),
       (SELECT e.data::text {_CELL_EVENT} AND e.op = 'cell_delete' ORDER BY e.seq DESC LIMIT 1),
       (SELECT (e.data -> 'cell')::text {_CELL_EVENT} AND e.op = 'cell_insert'
         ORDER BY e.seq DESC LIMIT 1)
  FROM notebooks n
 WHERE {OWNED}
"""


async def cell_version(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, cell_id: str, seq: int
) -> CellVersion | None:
    """The cell's version at ``seq`` and how to put it back; None: no such notebook."""
    record = await conn.fetchrow(CELL_VERSION, notebook_id, user_id, cell_id, seq)
    return None if record is None else CellVersion(*record)


async def room(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> Room | None:
    """Lock the live notebook and count its checkpoints; None: no such notebook."""
    record = await conn.fetchrow(ROOM, notebook_id, user_id)
    return None if record is None else Room(int(record[0]), int(record[1]))


async def oldest_unnamed(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, how_many: int
) -> list[UUID]:
    return [r[0] for r in await conn.fetch(OLDEST_UNNAMED, notebook_id, user_id, how_many)]


async def create(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, name: str | None
) -> Checkpoint:
    """Take the checkpoint (call ``room`` first, in the same transaction)."""
    record = await conn.fetchrow(CREATE, notebook_id, user_id, name)
    assert record is not None  # the notebook is locked by room()
    return Checkpoint(*record)


async def listed(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID
) -> list[Checkpoint] | None:
    """The notebook's checkpoints, newest first; None: no such live notebook."""
    record = await conn.fetchrow(LIST, notebook_id, user_id)
    return None if record is None else [Checkpoint(*row) for row in record[0]]


async def read(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, checkpoint_id: UUID
) -> NotebookRow | None:
    record = await conn.fetchrow(READ, notebook_id, user_id, checkpoint_id)
    return None if record is None else with_runs(NotebookRow, record)


async def restore(
    conn: asyncpg.Connection,
    notebook_id: str,
    user_id: UUID,
    pre: Precondition,
    checkpoint_id: UUID,
) -> Changed | None:
    """Make the notebook equal to the checkpoint: cells and run states.  In a transaction."""
    changed = await _run_change(conn, RESTORE, notebook_id, user_id, pre, str(checkpoint_id))
    if changed is not None:
        await conn.execute(RESTORE_RUNS, notebook_id, user_id, checkpoint_id)
    return changed


async def delete(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, checkpoint_ids: Sequence[UUID]
) -> list[UUID]:
    """Delete the checkpoints and the payloads only they referred to; the ids deleted."""
    record = await conn.fetchrow(DELETE, notebook_id, user_id, list(checkpoint_ids))
    assert record is not None
    gone, candidates = record
    await collect(conn, user_id, candidates)
    return list(gone)


async def exists(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, checkpoint_id: UUID
) -> bool:
    return bool(await conn.fetchval(EXISTS, notebook_id, user_id, checkpoint_id))


async def payload_keys(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> list[bytes]:
    """The payload keys the notebook's checkpoints and run states refer to."""
    keys: list[bytes] = await conn.fetchval(PAYLOAD_KEYS, notebook_id, user_id)
    return keys


async def collect(conn: asyncpg.Connection, user_id: UUID, keys: Sequence[bytes]) -> None:
    """Delete the owner's payloads of these keys that nothing refers to any more."""
    if keys:
        await conn.execute(COLLECT, user_id, list(keys))


async def sweep(conn: asyncpg.Connection, limit: int) -> int:
    """Delete at most ``limit`` payloads nothing refers to any more; how many."""
    status: Any = await conn.execute(SWEEP, limit)
    return int(str(status).rsplit(" ", 1)[-1])
