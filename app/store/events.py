"""The event log (SPEC §11): reading ``notebook_events``.

Events are written by the statements that change a notebook
(``app.store.notebooks._change`` and the inserts next to it), never here:
this module only reads.  Every read is one range scan of an index:

- a notebook's history and a realtime catch-up: the primary key
  (notebook_id, seq), ``seq > since`` in order;
- a cell's versions and the merge check: ``notebook_events_cell``
  (notebook_id, cell_id, seq), newest first.

``data`` is the stored JSON text, handed on as ``msgspec.Raw``: never decoded.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from .notebooks import OWNED
from .rows import select_list

if TYPE_CHECKING:
    from uuid import UUID

    import asyncpg

# The ops of one cell that change its code: what its history lists and what blocks a merge.
CODE_OPS = ("cell_insert", "cell_update", "cell_delete")
# The ops that replace a whole notebook (every cell in it) without naming a cell.
WHOLE_OPS = ("import", "restore")


class Event(msgspec.Struct, frozen=True, gc=False):
    """One change of a notebook, as the history and the event stream show it."""

    seq: Annotated[int, msgspec.Meta(description="1 for the notebook's first event, then +1.")]
    revision: Annotated[int, msgspec.Meta(description="The notebook's revision after it.")]
    at: datetime
    actor: Annotated[
        str, msgspec.Meta(description='The user\'s id, or "admin", "import", "system".')
    ]
    op: Annotated[
        str,
        msgspec.Meta(
            description="create, rename, set_connection, cell_insert, cell_update, cell_move, "
            "cell_delete, outputs, restore, trash, untrash, import."
        ),
    ]
    cell_id: str | None
    data: Annotated[Any, msgspec.Meta(description="The change itself, enough to replay it.")]


class CellVersion(msgspec.Struct, frozen=True, gc=False):
    """One version of a cell's code (null: the cell was deleted)."""

    seq: int
    revision: int
    at: datetime
    actor: str
    code: str | None


class HistoryPage(msgspec.Struct, frozen=True):
    """What a history read finds: the notebook's seq, its oldest retained event, a page."""

    seq: int  # the notebook's (its last event's)
    oldest: int | None  # the oldest retained event's seq; None: none
    events: list[Event]


def event(record: asyncpg.Record | tuple[Any, ...]) -> Event:
    """An Event from its record; ``data`` stays the stored text."""
    *fields, data = record
    return Event(*fields, msgspec.Raw(data))  # type: ignore[call-arg]


_EVENT_FIELDS = select_list(Event, "e")
OLDEST = "SELECT e.seq FROM notebook_events e WHERE e.notebook_id = $1 ORDER BY e.seq LIMIT 1"
# $1 the notebook, $2 its owner, $3 since, $4 how many.
HISTORY = f"""
SELECT n.seq,
       (SELECT e.seq FROM notebook_events e WHERE e.notebook_id = n.id ORDER BY e.seq LIMIT 1),
       ARRAY(SELECT ROW({_EVENT_FIELDS}) FROM notebook_events e
              WHERE e.notebook_id = n.id AND e.seq > $3 ORDER BY e.seq LIMIT $4)
  FROM notebooks n
 WHERE {OWNED}
"""
# For the realtime catch-up: the owner is checked by the caller.
AFTER = f"""
SELECT {_EVENT_FIELDS} FROM notebook_events e
 WHERE e.notebook_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3
"""
_CODE = (
    "CASE e.op WHEN 'cell_update' THEN e.data ->> 'code'"
    " WHEN 'cell_insert' THEN e.data -> 'cell' ->> 'code' END"
)
_IN_CODE_OPS = ", ".join(f"'{op}'" for op in CODE_OPS)
# $1 the notebook, $2 its owner, $3 the cell.  Whether the notebook holds the cell now,
# and the cell's versions newest first.
CELL_VERSIONS = f"""
SELECT n.cells @> jsonb_build_array(jsonb_build_object('id', $3::text)),
       ARRAY(SELECT ROW(e.seq, e.revision, e.at, e.actor, {_CODE}) FROM notebook_events e
              WHERE e.notebook_id = n.id AND e.cell_id = $3 AND e.op IN ({_IN_CODE_OPS})
              ORDER BY e.seq DESC)
  FROM notebooks n
 WHERE {OWNED}
"""


_IN_WHOLE_OPS = ", ".join(f"'{op}'" for op in WHOLE_OPS)
# $1 the notebook, $2 the cell, $3 the revision the client edited, $4 the owner.  Whether the log
# still holds every change after that revision (an event at or before it is kept),
# and the events after it that touched the cell's code: its updates and deletion,
# and whatever replaced every cell.  The boundary is found from the newest event
# backwards and the rest read forwards from it: both cover only the events since.
TOUCHING = f"""
WITH base AS (
    SELECT e.seq FROM notebook_events e
     WHERE e.notebook_id = $1 AND e.user_id = $4 AND e.revision <= $3
     ORDER BY e.seq DESC LIMIT 1
)
SELECT EXISTS (SELECT 1 FROM base),
       ARRAY(SELECT ROW({_EVENT_FIELDS}) FROM notebook_events e, base
              WHERE e.notebook_id = $1 AND e.user_id = $4 AND e.seq > base.seq
                AND ((e.cell_id = $2 AND e.op IN ('cell_update', 'cell_delete'))
                     OR e.op IN ({_IN_WHOLE_OPS}))
              ORDER BY e.seq)
"""


# Retention, one batch of notebooks at a time ($3: the last id of the previous batch,
# '' first; $4: how many).  $1 days, $2 how many events each notebook keeps at least.
# A notebook loses a prefix of its log: every event up to the newest one that is
# both old enough and before its last $2, so the retained log never has a hole
# (``at`` is the transaction's start: not quite in seq order).
PRUNE = """
WITH batch AS (
    SELECT n.id, n.seq FROM notebooks n
     WHERE n.id > $3 AND n.seq > $2
     ORDER BY n.id
     LIMIT $4
), bound AS (
    SELECT b.id,
           (SELECT max(o.seq) FROM notebook_events o
             WHERE o.notebook_id = b.id AND o.seq <= b.seq - $2
               AND o.at < now() - make_interval(days => $1::int)) AS seq
      FROM batch b
), gone AS (
    DELETE FROM notebook_events e USING bound
     WHERE e.notebook_id = bound.id AND e.seq <= bound.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone), (SELECT max(id) FROM batch)
"""


async def prune(
    conn: asyncpg.Connection, days: int, keep_last: int, after: str, batch: int
) -> tuple[int, str | None]:
    """Remove the expired events of up to ``batch`` notebooks with ids after ``after``.

    How many events went, and the last notebook id looked at (None: no more).
    """
    deleted, last = await conn.fetchrow(PRUNE, days, keep_last, after, batch)
    return int(deleted), last


async def history(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, since: int, limit: int
) -> HistoryPage | None:
    """The events with seq > ``since``, oldest first, at most ``limit``; None: no such notebook."""
    record = await conn.fetchrow(HISTORY, notebook_id, user_id, since, limit)
    if record is None:
        return None
    seq, oldest, events = record
    return HistoryPage(seq, oldest, [event(each) for each in events])


async def after(conn: asyncpg.Connection, notebook_id: str, since: int, limit: int) -> list[Event]:
    """The events with seq > ``since``, oldest first, at most ``limit`` (owner unchecked)."""
    return [event(record) for record in await conn.fetch(AFTER, notebook_id, since, limit)]


async def oldest(conn: asyncpg.Connection, notebook_id: str) -> int | None:
    """The seq of the oldest retained event of the notebook; None: none (owner unchecked)."""
    value = await conn.fetchval(OLDEST, notebook_id)
    return None if value is None else int(value)


async def cell_versions(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, cell_id: str
) -> tuple[bool, list[CellVersion]] | None:
    """Whether the notebook holds the cell now, and its versions newest first.

    None: no such notebook of the user's.
    """
    record = await conn.fetchrow(CELL_VERSIONS, notebook_id, user_id, cell_id)
    if record is None:
        return None
    present, versions = record
    return bool(present), [CellVersion(*each) for each in versions]


async def touching(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, cell_id: str, revision: int
) -> tuple[bool, list[Event]]:
    """Whether every change after ``revision`` is still logged, and those that touched the
    cell's code (the caller holds the notebook's row, its owner's)."""
    record = await conn.fetchrow(TOUCHING, notebook_id, cell_id, revision, user_id)
    complete, events = record
    return bool(complete), [event(each) for each in events]
