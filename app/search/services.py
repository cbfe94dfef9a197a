"""Search over the caller's notebooks (SPEC §6): the question in, the answer out.

The statement (one per search) is the store's (``app.store.search``, where
its clauses, indexes and ranking are described); this service knows whether
the server has the trigram indexes substring search needs, asked once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import msgspec

from app.database import connection
from app.replicas.routing import read
from app.search.schemas import SearchMatch, SearchQuery, SearchResult, SearchResults
from app.store import search as store
from app.store.search import MAX_MATCHES, SearchStatement

if TYPE_CHECKING:
    from uuid import UUID

    from app.cursors import Cursors

__all__ = ["MAX_MATCHES", "SearchService"]


class SearchService:
    def __init__(self, cursors: Cursors | None = None, trigram: bool | None = None) -> None:
        """``cursors``: signs the pages' cursors (None: a search cannot be paged);
        ``trigram``: whether the trigram indexes exist; None = ask the database once."""
        self._cursors = cursors
        self._trigram = trigram

    async def search(self, user_id: UUID, query: SearchQuery) -> SearchResults:
        """The caller's notebooks that match, best first, with their matching cells."""
        statement = await self.statement(user_id, query)
        rows = await read(lambda conn: store.run(conn, statement))
        return SearchResults(
            results=[
                SearchResult(
                    notebook_id=row.notebook_id,
                    name=row.name,
                    rank=row.rank,
                    # JSON built by PostgreSQL in the API's shape: passed through, not decoded.
                    matches=cast("list[SearchMatch]", msgspec.Raw(row.matches)),
                )
                for row in rows
            ]
        )

    async def statement(self, user_id: UUID, query: SearchQuery) -> SearchStatement:
        """The SQL that answers ``query`` (also used to EXPLAIN it)."""
        trigram = query.q is not None and await self.trigram_available()
        return store.statement(
            user_id, query.limit, query.q, query.type, query.writes, trigram=trigram
        )

    async def trigram_available(self) -> bool:
        """Whether substring search has its trigram indexes (asked once per service)."""
        if self._trigram is None:
            async with connection() as conn:
                self._trigram = await store.trigram_indexes(conn)
        return self._trigram
