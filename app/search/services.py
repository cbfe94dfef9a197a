"""Search over the caller's notebooks (SPEC §6): the question in, a page of answers out.

The statements (one per window of the walk) are the store's
(``app.store.search``, where their clauses, indexes, windows and ranking are
described); this service walks the windows until a page is full, signs the
cursor that says where the next page starts, and knows whether the server has
the trigram indexes substring search needs, asked once.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Literal, cast

import msgspec

from app.cursors import micros, moment
from app.database import connection
from app.errors import InvalidInput
from app.replicas.routing import read
from app.search.schemas import SearchMatch, SearchQuery, SearchResult, SearchResults
from app.store import search as store
from app.store.search import MAX_MATCHES, SearchStatement, Window

if TYPE_CHECKING:
    from uuid import UUID

    import asyncpg

    from app.cursors import Cursors
    from app.store.search import Found

__all__ = ["MAX_MATCHES", "SearchService"]

MAX_WINDOWS = 4
"""Window statements one page may run: a page's cost stays bounded where matches are
sparse; the page is then shorter than ``limit``, with a ``next_cursor`` to go on."""


class _SearchCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where a search's walk stands (times in microseconds since the epoch)."""

    horizon: int
    phase: Literal[1, 2]
    start: tuple[int, str]
    end: tuple[int, str] | None
    after: tuple[float, int, str] | None


def _scope(user_id: UUID, query: SearchQuery) -> str:
    """A cursor serves one user's one question (the page size may change)."""
    asked = msgspec.json.encode([query.q, query.type, query.writes])
    return f"search:{user_id}:{hashlib.sha256(asked).hexdigest()}"


def _encode(at: Window) -> _SearchCursor:
    assert at.horizon is not None
    return _SearchCursor(
        micros(at.horizon),
        at.phase,
        (micros(at.start[0]), at.start[1]),
        None if at.end is None else (micros(at.end[0]), at.end[1]),
        None if at.after is None else (at.after[0], micros(at.after[1]), at.after[2]),
    )


def _decode(cursor: _SearchCursor) -> Window:
    return Window(
        moment(cursor.horizon),
        cursor.phase,
        (moment(cursor.start[0]), cursor.start[1]),
        None if cursor.end is None else (moment(cursor.end[0]), cursor.end[1]),
        None
        if cursor.after is None
        else (cursor.after[0], moment(cursor.after[1]), cursor.after[2]),
    )


class SearchService:
    def __init__(self, cursors: Cursors | None = None, trigram: bool | None = None) -> None:
        """``cursors``: signs the pages' cursors (None: pages cannot be followed);
        ``trigram``: whether the trigram indexes exist; None = ask the database once."""
        self._cursors = cursors
        self._trigram = trigram

    async def search(
        self, user_id: UUID, query: SearchQuery, cursor: str | None = None
    ) -> SearchResults:
        """One page of the caller's notebooks that match, best first within each window."""
        at = store.START if cursor is None else self._read(user_id, query, cursor)
        given, at, finished = await read(
            lambda conn: self._windows(conn, user_id, query, at, query.limit + 1)
        )
        next_cursor = None
        if len(given) > query.limit:
            found, window = given[query.limit - 1]
            after = (found.rank, found.updated_at, found.row.notebook_id)
            next_cursor = self._make(user_id, query, window._replace(after=after))
        elif not finished:
            next_cursor = self._make(user_id, query, at)
        return SearchResults(
            results=[
                SearchResult(
                    notebook_id=found.row.notebook_id,
                    name=found.row.name,
                    rank=found.row.rank,
                    # JSON built by PostgreSQL in the API's shape: passed through, not decoded.
                    matches=cast("list[SearchMatch]", msgspec.Raw(found.row.matches)),
                )
                for found, _ in given[: query.limit]
            ],
            next_cursor=next_cursor,
        )

    async def _windows(
        self, conn: asyncpg.Connection, user_id: UUID, query: SearchQuery, at: Window, wanted: int
    ) -> tuple[list[tuple[Found, Window]], Window, bool]:
        """Up to ``wanted`` rows from ``at`` on, each with its window; where the walk then
        stands; whether it is over.  ``wanted`` is one more than the page: is there more?"""
        given: list[tuple[Found, Window]] = []
        for _ in range(MAX_WINDOWS):
            need = wanted - len(given)
            batch = await store.run(conn, await self.statement(user_id, query, at, need))
            at = at._replace(horizon=batch.horizon)
            window = at._replace(end=batch.end or store.phase_end(at.phase))
            given.extend((found, window) for found in batch.rows)
            if len(given) >= wanted:
                break
            # This window is spent: the next one, or the next phase, or the end.
            if batch.end is not None:
                at = store.Window(batch.horizon, at.phase, batch.end, None, None)
            elif at.phase == 1:
                # Phase 2 starts at the horizon: its range scan begins there, not at
                # the oldest notebook (the index bound is the row comparison).
                at = store.Window(batch.horizon, 2, (batch.horizon, ""), None, None)
            else:
                return given, at, True
        return given, at, False

    def _make(self, user_id: UUID, query: SearchQuery, at: Window) -> str:
        if self._cursors is None:
            raise RuntimeError("SearchService needs cursors to page")
        return self._cursors.make(_scope(user_id, query), _encode(at))

    def _read(self, user_id: UUID, query: SearchQuery, cursor: str) -> Window:
        if self._cursors is None:
            raise InvalidInput("cursor", "not accepted here")
        return _decode(self._cursors.read(_scope(user_id, query), cursor, _SearchCursor))

    async def statement(
        self,
        user_id: UUID,
        query: SearchQuery,
        at: Window = store.START,
        limit: int | None = None,
    ) -> SearchStatement:
        """The SQL of one window of ``query`` from ``at`` (also used to EXPLAIN it)."""
        trigram = query.q is not None and await self.trigram_available()
        return store.statement(
            user_id,
            query.limit + 1 if limit is None else limit,
            query.q,
            query.type,
            query.writes,
            trigram=trigram,
            at=at,
        )

    async def trigram_available(self) -> bool:
        """Whether substring search has its trigram indexes (asked once per service)."""
        if self._trigram is None:
            async with connection() as conn:
                self._trigram = await store.trigram_indexes(conn)
        return self._trigram
