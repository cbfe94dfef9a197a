"""``GET /notebooks/search`` (SPEC §6).

A static path: Litestar prefers it to ``/notebooks/{notebook_id}``, so
"search" is never taken for a notebook id.  The parameters' bounds are the
ones ``SearchQuery`` declares (early 400s, and the OpenAPI schema); building
the ``SearchQuery`` checks the rest.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from app.auth.guards import AuthUser
from app.cursors import MAX_CURSOR_LENGTH
from app.notebooks.schemas import CellType
from app.search.schemas import DEFAULT_LIMIT, SearchQuery, SearchResults, bounds
from app.search.services import SearchService
from app.system.openapi import BEARER, error_responses


class SearchController(Controller):
    path = "/notebooks/search"
    tags = ["search"]
    security = BEARER

    @get(
        operation_id="searchNotebooks",
        summary="Search your notebooks",
        responses=error_responses(400, 401),
    )
    async def search_notebooks(
        self,
        current_user: NamedDependency[AuthUser],
        search: NamedDependency[SearchService],
        q: Annotated[
            str | None,
            QueryParameter(
                **bounds("q"),
                description="Full text (web search syntax) and substring over names and code.",
            ),
        ] = None,
        type: Annotated[  # the name SPEC gives the query parameter
            CellType | None,
            QueryParameter(description="Only notebooks with a cell of this type."),
        ] = None,
        writes: Annotated[
            str | None,
            QueryParameter(
                **bounds("writes"),
                description="Only notebooks with a cell that writes this variable.",
            ),
        ] = None,
        limit: Annotated[
            int, QueryParameter(**bounds("limit"), description="How many notebooks at most.")
        ] = DEFAULT_LIMIT,
        cursor: Annotated[
            str | None,
            QueryParameter(
                max_length=MAX_CURSOR_LENGTH,
                description="The previous page's `next_cursor`, with the same q, type and "
                "writes (opaque; see docs/paging.md).",
            ),
        ] = None,
    ) -> SearchResults:
        """Search the caller's notebooks by text, cell type and written variable, in pages."""
        return await search.search(
            current_user.id, SearchQuery(q=q, type=type, writes=writes, limit=limit), cursor
        )
