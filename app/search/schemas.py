"""Search over the caller's notebooks (SPEC §6): what a search asks for and what it answers.

``SearchQuery`` is the one place a search's input is checked: its fields
declare their bounds (the controller's query parameters are made from them,
so the early 400s and the OpenAPI schema say the same), and building one
checks the rest: blank means absent, ``q`` holds no NUL, ``writes`` is a
variable name, and something is asked.  The answer is ``SearchResults``,
snake_case exactly as in SPEC.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import msgspec.inspect

from app.errors import InvalidInput
from app.notebooks.schemas import CELL_TYPES, CellType

MAX_QUERY_LENGTH = 500
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# A variable name as the dependency analysis stores it (a Python identifier).
MAX_VARIABLE_LENGTH = 255

Query = Annotated[str, msgspec.Meta(max_length=MAX_QUERY_LENGTH)]
Variable = Annotated[str, msgspec.Meta(max_length=MAX_VARIABLE_LENGTH)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)]


class SearchQuery(msgspec.Struct, frozen=True):
    """One search: free text and/or a cell filter, over one user's notebooks."""

    q: Query | None = None
    type: CellType | None = None
    writes: Variable | None = None
    limit: Limit = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        """Blank means absent; what the bounds cannot say is a 400 naming its field."""
        q = self.q
        if q is not None:
            if "\x00" in q:
                raise InvalidInput("q", "must not contain NUL characters")
            msgspec.structs.force_setattr(self, "q", q.strip() or None)
        writes = (self.writes or "").strip() or None
        if writes is not None and not writes.isidentifier():
            raise InvalidInput("writes", "expected a variable name")
        msgspec.structs.force_setattr(self, "writes", writes)
        if self.type is not None and self.type not in CELL_TYPES:
            raise InvalidInput("type", f"expected one of {', '.join(sorted(CELL_TYPES))}")
        if self.q is None and self.type is None and self.writes is None:
            raise InvalidInput("q", "give q, type or writes")


def bounds(field: str) -> dict[str, Any]:
    """The bounds ``SearchQuery`` declares for ``field`` (``max_length``, ``ge``, ``le``, …)."""
    struct = msgspec.inspect.type_info(SearchQuery)
    assert isinstance(struct, msgspec.inspect.StructType)
    kind: Any = next(f.type for f in struct.fields if f.name == field)
    if isinstance(kind, msgspec.inspect.UnionType):
        kind = next(t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType))
    names = ("gt", "ge", "lt", "le", "min_length", "max_length")
    return {name: getattr(kind, name) for name in names if getattr(kind, name, None) is not None}


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
    next_cursor: Annotated[
        str | None,
        msgspec.Meta(
            description="Pass as `cursor` (with the same q, type and writes) for the next "
            "page; null on the last page."
        ),
    ] = None
