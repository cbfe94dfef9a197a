"""History use cases: one read of the store each, owner checked in the same statement.

Reads may go to a replica (``app.replicas.routing.read``, which honours the
client's ``Cellar-Consistency``); one that does not know the notebook, or is
behind the ``since`` the client already saw, leaves the answer to the primary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import Gone, NotFound
from app.history.schemas import CellHistory, History
from app.replicas.routing import read
from app.store import events as store

if TYPE_CHECKING:
    from uuid import UUID


class HistoryService:
    async def history(
        self, user_id: UUID, notebook_id: str, since: int | None, limit: int
    ) -> tuple[History, int]:
        """The events after ``since`` (None: from the oldest retained), and the notebook's seq.

        410 when some of them were pruned: the client cannot follow on from
        ``since`` without a gap and must start again from ``oldest_seq``.
        """
        _addressable(notebook_id)
        start = since or 0
        page = await read(
            lambda conn: store.history(conn, notebook_id, user_id, start, limit),
            fresh=lambda found: found is not None and found.seq >= start,
        )
        if page is None:
            raise NotFound("notebook not found")
        if since is not None and page.oldest is not None and page.oldest > since + 1:
            raise Gone(
                page.oldest,
                f"events after seq {since} were pruned; the oldest kept is {page.oldest}",
            )
        next_seq = page.events[-1].seq if page.events else start
        return History(events=page.events, next_seq=next_seq), page.seq

    async def cell_history(self, user_id: UUID, notebook_id: str, cell_id: str) -> CellHistory:
        """The cell's code versions, newest first; also for a deleted cell."""
        _addressable(notebook_id, cell_id)
        found = await read(
            lambda conn: store.cell_versions(conn, notebook_id, user_id, cell_id),
            fresh=lambda found: found is not None and (found[0] or bool(found[1])),
        )
        if found is None:
            raise NotFound("notebook not found")
        present, versions = found
        if not present and not versions:
            raise NotFound("cell not found")
        return CellHistory(versions=versions)


def _addressable(*ids: str) -> None:
    """An id PostgreSQL could not even compare (it has U+0000) names nothing: 404."""
    if any("\x00" in value for value in ids):
        raise NotFound("not found")
