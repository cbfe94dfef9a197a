"""Realtime's statements (SPEC §11): where a subscriber starts, and its tickets.

The events themselves are read by ``app.store.events.after`` (a primary key
range); what is here is what only realtime asks: the notebook's last ``seq``
with the oldest event still kept, in one statement for the owner, and the
single-use tickets an ``EventSource`` authenticates with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from .notebooks import OWNED
from .rows import select_list

if TYPE_CHECKING:
    import asyncpg


class Start(msgspec.Struct, frozen=True, gc=False):
    """What a subscription starts from: the notebook's last seq and its oldest kept event."""

    seq: int
    oldest: int | None  # None: no event kept (a notebook older than the events table)


class Redeemed(msgspec.Struct, frozen=True, gc=False):
    """A ticket just used up: whose, for which notebook, and whether it was still valid."""

    user_id: UUID
    notebook_id: str
    valid: bool


# By the primary key (notebook_id, seq): the first kept event is one index probe.
START = (
    "SELECT "
    + select_list(
        Start,
        "n",
        oldest="(SELECT e.seq FROM notebook_events e WHERE e.notebook_id = n.id"
        " ORDER BY e.seq LIMIT 1)",
    )
    + f" FROM notebooks n WHERE {OWNED}"
)

# Which of these followed notebooks are still there and out of the trash, with their
# last seq: one statement per sweep for every topic of the process.  A notebook deleted
# for good (a purge, the admin) leaves no event to close its subscribers with, and a
# wake-up lost on its way (it is sent after the commit) leaves a seq not yet read.
LIVE = "SELECT n.id, n.seq FROM notebooks n WHERE n.id = ANY($1::text[]) AND n.deleted_at IS NULL"

# $1 $2 the notebook and its owner, $3 the ticket's hash, $4 its lifetime in seconds.
# Issuing also clears the expired tickets of everyone (an index range on expires_at),
# so the table holds about a minute's worth of tickets.
ISSUE_TICKET = f"""
WITH expired AS (DELETE FROM realtime_tickets WHERE expires_at < now())
INSERT INTO realtime_tickets (ticket_hash, user_id, notebook_id, expires_at)
SELECT $3, n.user_id, n.id, now() + make_interval(secs => $4)
  FROM notebooks n
 WHERE {OWNED}
RETURNING true
"""

# Single use: whoever presents a ticket uses it up, valid or not, for whichever notebook.
REDEEM_TICKET = f"""
DELETE FROM realtime_tickets t
 WHERE t.ticket_hash = $1
RETURNING {select_list(Redeemed, "t", valid="t.expires_at > now()")}
"""


async def start(conn: asyncpg.Connection, notebook_id: str, user_id: UUID) -> Start | None:
    """The notebook's last seq and oldest kept event; None when it is not the user's."""
    record = await conn.fetchrow(START, notebook_id, user_id)
    return None if record is None else Start(*record)


async def live(conn: asyncpg.Connection, notebook_ids: list[str]) -> dict[str, int]:
    """The notebooks among ``notebook_ids`` still there and out of the trash → their seq."""
    return {record[0]: record[1] for record in await conn.fetch(LIVE, notebook_ids)}


async def issue_ticket(
    conn: asyncpg.Connection, notebook_id: str, user_id: UUID, ticket_hash: bytes, seconds: int
) -> bool:
    """Store a ticket's hash for the user's notebook; False when the notebook is not theirs."""
    return bool(await conn.fetchval(ISSUE_TICKET, notebook_id, user_id, ticket_hash, seconds))


async def redeem_ticket(conn: asyncpg.Connection, ticket_hash: bytes) -> Redeemed | None:
    """Use a ticket up; None when there is no such ticket (never issued, or used already)."""
    record = await conn.fetchrow(REDEEM_TICKET, ticket_hash)
    return None if record is None else Redeemed(*record)
