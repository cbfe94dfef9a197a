"""Search over the caller's notebooks (SPEC §6): what a search asks for and what it answers.

``SearchQuery`` is the validated question the service runs (the controller
builds it from the query string); the answer is ``SearchResults``,
snake_case exactly as in SPEC.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.notebooks.schemas import CellType

MAX_QUERY_LENGTH = 500
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# A variable name as the dependency analysis stores it (a Python identifier).
MAX_VARIABLE_LENGTH = 255

Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]


class SearchQuery(msgspec.Struct, frozen=True):
    """One search: free text and/or a cell filter, over one user's notebooks."""

    q: str | None = None
    type: CellType | None = None
    writes: str | None = None
    limit: Limit = DEFAULT_LIMIT


class SearchMatch(msgspec.Struct, frozen=True):
    cell_id: str
    snippet: Annotated[str, msgspec.Meta(description="The matching part of the cell's code.")]


class SearchResult(msgspec.Struct, frozen=True):
    notebook_id: str
    name: str | None
    rank: Annotated[float, msgspec.Meta(description="Higher is better; results are sorted by it.")]
    # The cells that match (at most a few per notebook), in notebook order.
    matches: list[SearchMatch]


class SearchResults(msgspec.Struct, frozen=True):
    results: list[SearchResult]
