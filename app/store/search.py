"""Search over one user's notebooks (SPEC §6): one statement per search, built from clauses.

Every statement keeps to ``user_id = $1`` and to live notebooks
(``deleted_at IS NULL``: the trash is searched by nobody, SPEC §13; the GIN
indexes on ``notebooks`` are partial on that predicate, and ``cell_search``
holds no trashed notebook's cells); the other conditions are the ones the
GIN indexes serve.  Code is indexed per cell, in ``cell_search``
(kept by triggers from the cells document, so that an edit re-indexes one
cell, not the notebook; its rows carry the owner, which leads its GIN indexes
where the server has btree_gin); names and the cells document are indexed on
``notebooks``.  A search is made of clauses, each a small object that
contributes its parts (where a notebook is found, how it ranks, which of its
cells match and how their snippets read):

- ``FullText``: ``code_tsv @@ websearch_to_tsquery('simple', q)`` over cells
  (``cell_search_code_tsv``) or ``name_tsv @@ …`` (``notebooks_name_tsv``).
  The ``simple`` parser splits identifiers at underscores, so
  ``revenue_by_region`` is the phrase revenue <-> by <-> region and matches
  both ``q=revenue_by_region`` and ``q=revenue``;
- ``Substring``: ``code ILIKE '%q%'`` or ``name ILIKE '%q%'``
  (``cell_search_code_trgm``, ``notebooks_name_trgm``), only where those
  trigram indexes exist and ``q`` holds a run of three letters or digits,
  the least a trigram index can narrow down.  Either of the two finds a
  notebook: they are alternatives;
- ``CellFilter``: ``cells @> '[{"type": …, "writes": […]}]'``
  (``notebooks_cells_path_ops``), the JSON built by msgspec from the type and
  the written variable.  Both describe the same cell, so they are one
  containment, and it must hold.

A notebook's rank is its name's ``ts_rank_cd`` (weight A) plus the sum of its
matching cells' (weight B), plus the substring bonuses below.  All of the
user's matches are found first, then ranked and cut to ``limit``; only for
those notebooks a LATERAL subquery walks the cells to pick at most
``MAX_MATCHES`` matching cells, each with a snippet (``ts_headline``, a window
around a substring hit, or the start of a cell matched by a filter).  All user
input is bound as parameters; the SQL text depends only on which clauses
apply, so the handful of statements is built once, at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import msgspec

from .rows import select_list

if TYPE_CHECKING:
    from uuid import UUID

    import asyncpg

MAX_MATCHES = 5
"""Matching cells shown per notebook: a 2,000-cell notebook stays a short answer."""

SNIPPET_CONTEXT = 30
"""Characters kept on each side of a substring hit (and twice that for a filter-only match)."""

# Relevance bonus for a substring hit, on top of ts_rank_cd (whose weights are
# A=1.0 for the name, B=0.4 for code): an identifier found as typed ranks above
# a notebook that only shares its words.
_NAME_SUBSTRING_BONUS = 0.5
_CODE_SUBSTRING_BONUS = 0.2

# pg_trgm's word characters are letters and digits; a LIKE pattern without
# three of them in a row yields no trigram and the index would scan everything.
_TRIGRAM_RUN = re.compile(r"[^\W_]{3}")
_LIKE_SPECIAL = re.compile(r"([\\%_])")

TRIGRAM_INDEXES = """
SELECT to_regclass('cell_search_code_trgm') IS NOT NULL
   AND to_regclass('notebooks_name_trgm') IS NOT NULL
"""


class SearchRow(msgspec.Struct, frozen=True):
    notebook_id: str
    name: str | None
    rank: float
    matches: str  # JSON text in the API's shape, built by PostgreSQL: passed on, not decoded


class SearchStatement(NamedTuple):
    """The one statement a search runs, and its arguments in ``$n`` order."""

    sql: str
    args: tuple[Any, ...]


# -- clauses -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parts:
    """What a clause adds to the statement; an empty part adds nothing.

    Alternatives (the text clauses: a notebook matches if any does): ``code_hit``
    on a ``cell_search`` row ``s``, ``name_hit`` on a notebook ``m``,
    ``cell_hit`` on one cell ``t.cell``.  Conditions that must hold: ``where``
    on the notebook ``n``, ``cell_where`` on one cell.  And ``rank`` (added to
    the notebook's), ``snippet`` (a ``WHEN … THEN …`` of the snippet, first
    match wins), ``position`` (a column of the matched cell ``s``).
    """

    code_hit: str = ""
    name_hit: str = ""
    cell_hit: str = ""
    where: str = ""
    cell_where: str = ""
    rank: str = ""
    snippet: str = ""
    position: str = ""
    # Per matched cell_search row: its share of the rank, whether it holds q as typed.
    code_rank: str = ""
    code_flag: str = ""


def _tsquery(q: str) -> str:
    # A scalar subquery, so that even in a generic plan (asyncpg reuses prepared
    # statements) the query text is parsed once per search, not once per row.
    return f"(SELECT websearch_to_tsquery('simple', {q}))"


def full_text(q: str) -> Parts:
    """``q`` in web search syntax against the cells' and the name's tsvectors."""
    tsquery = _tsquery(q)
    return Parts(
        code_hit=f"s.code_tsv @@ {tsquery}",
        name_hit=f"m.name_tsv @@ {tsquery}",
        code_rank=(
            f"CASE WHEN s.code_tsv @@ {tsquery}\n"
            f"                           THEN ts_rank_cd(s.code_tsv, {tsquery})::float8 ELSE 0 END"
        ),
        cell_hit=f"to_tsvector('simple', t.cell ->> 'code') @@ {tsquery}",
        rank=f"ts_rank_cd(n.name_tsv, {tsquery})::float8 + h.text_rank",
        snippet=(
            f"WHEN to_tsvector('simple', s.code) @@ {tsquery} "
            f"THEN ts_headline('simple', s.code, {tsquery}, "
            "'MaxFragments=1, MaxWords=12, MinWords=3, StartSel=<<, StopSel=>>') "
        ),
    )


def substring(q: str, pattern: str) -> Parts:
    """``q`` as typed, anywhere in a cell's code or the name (``pattern``: ``%q%``, escaped)."""
    ctx = SNIPPET_CONTEXT
    code = rf"s.code ILIKE {pattern} ESCAPE '\'"
    return Parts(
        code_hit=code,
        name_hit=rf"m.name ILIKE {pattern} ESCAPE '\'",
        cell_hit=rf"(t.cell ->> 'code') ILIKE {pattern} ESCAPE '\'",
        code_flag=code,
        rank=(
            rf" + CASE WHEN n.name ILIKE {pattern} ESCAPE '\' "
            f"THEN {_NAME_SUBSTRING_BONUS}::float8 ELSE 0 END"
            f" + CASE WHEN h.code_substring THEN {_CODE_SUBSTRING_BONUS}::float8 ELSE 0 END"
        ),
        # A window of SNIPPET_CONTEXT characters either side of the first hit
        # (s.pos, the position of the hit in the cell's code s.code).
        snippet=(
            "WHEN s.pos > 0 THEN "
            f"CASE WHEN s.pos > {ctx} + 1 THEN '…' ELSE '' END "
            f"|| substr(s.code, greatest(s.pos - {ctx}, 1), s.pos - greatest(s.pos - {ctx}, 1)) "
            f"|| '<<' || substr(s.code, s.pos, char_length({q})) || '>>' "
            f"|| substr(s.code, s.pos + char_length({q}), {ctx}) "
            f"|| CASE WHEN char_length(s.code) >= s.pos + char_length({q}) + {ctx} "
            "THEN '…' ELSE '' END "
        ),
        position=f", strpos(lower(c.cell ->> 'code'), lower({q})) AS pos",
    )


def cell_filter(cells: str) -> Parts:
    """One cell with all of ``cells`` (``[{"type": …, "writes": […]}]``, a JSON parameter)."""
    return Parts(where=f"n.cells @> {cells}::jsonb", cell_where=f"t.cell @> ({cells}::jsonb -> 0)")


# -- the statement -----------------------------------------------------------------------

# ``hits`` is MATERIALIZED: all matches are found first (through the GIN
# indexes) and only then ranked and cut to ``limit``.  Without the fence, a
# filter-only search ordered by updated_at lets the planner walk the user's
# (user_id, updated_at) btree newest first, testing every notebook until it
# has ``limit`` hits: quick for a common filter, a walk through all of the
# user's notebooks for a rare one or a typo.
_SEARCH = """
WITH hits AS MATERIALIZED (
    SELECT n.id, n.name, n.cells, n.updated_at, {rank} AS rank
      FROM {source}
     WHERE n.user_id = $1 AND n.deleted_at IS NULL{where}
)
SELECT {columns}
  FROM (SELECT * FROM hits ORDER BY rank DESC, updated_at DESC, id LIMIT $2) AS n
 CROSS JOIN LATERAL (
       SELECT coalesce(jsonb_agg(jsonb_build_object('cell_id', c.cell ->> 'id',
                                                    'snippet', {snippet})
                                 ORDER BY c.idx), '[]'::jsonb) AS matches
         FROM (SELECT t.cell, t.idx
                 FROM jsonb_array_elements(n.cells) WITH ORDINALITY AS t(cell, idx)
                WHERE {cell_where}
                ORDER BY t.idx
                LIMIT {max_matches}) AS c
        CROSS JOIN LATERAL (SELECT c.cell ->> 'code' AS code{position}) AS s) AS m
 ORDER BY n.rank DESC, n.updated_at DESC, n.id
"""
_COLUMNS = select_list(
    SearchRow,
    "n",
    notebook_id="n.id",
    rank="round(n.rank::numeric, 6)::float8",
    matches="m.matches",
)

# With text clauses, the notebooks searched are the caller's matching cells'
# (one pass over cell_search's GIN indexes: text and trigram, both leading
# with user_id where the server has btree_gin) and those with a matching name
# (the names' GIN indexes), grouped to one row per notebook with the cells'
# share of the rank and whether one holds q as typed; then joined to
# notebooks by primary key.  Every join is keyed: no plan can pair rows by
# scanning a CTE per row, which is what a generic plan did with an earlier
# LEFT JOIN on a CTE (seconds for a common word).
_MATCHED = """(SELECT id, sum(text_rank) AS text_rank, bool_or(code_substring) AS code_substring
         FROM (SELECT s.notebook_id AS id,
                      {code_rank} AS text_rank,
                      {code_flag} AS code_substring
                 FROM cell_search s
                WHERE s.user_id = $1 AND ({code_hit})
               UNION ALL
               SELECT m.id, 0, false
                 FROM notebooks m
                WHERE m.user_id = $1 AND m.deleted_at IS NULL AND ({name_hit})) AS matched
        GROUP BY id) AS h
      JOIN notebooks n ON n.id = h.id"""

# The snippet of a cell that no text clause matched: its start.
_START = (
    "left(s.code, {width}) || CASE WHEN char_length(s.code) > {width} THEN '…' ELSE '' END"
).format(width=2 * SNIPPET_CONTEXT)


def _assemble(text: list[Parts], conditions: list[Parts]) -> str:
    """The statement for these text clauses (alternatives) and conditions (all must hold)."""
    every = [*text, *conditions]
    rank = "".join(part.rank for part in every) or "0::float8"
    source = "notebooks n"
    cell_where = [part.cell_where for part in conditions if part.cell_where]
    if text:
        source = _MATCHED.format(
            code_rank=" + ".join(part.code_rank for part in text if part.code_rank) or "0",
            code_flag=" OR ".join(part.code_flag for part in text if part.code_flag) or "false",
            code_hit=" OR ".join(part.code_hit for part in text),
            name_hit=" OR ".join(part.name_hit for part in text),
        )
        hits = [part.cell_hit for part in text]
        cell_where.insert(0, hits[0] if len(hits) == 1 else f"({' OR '.join(hits)})")
    snippets = "".join(part.snippet for part in every)
    snippet = f"CASE {snippets}ELSE {_START} END" if snippets else _START
    return _SEARCH.format(
        source=source,
        rank=rank,
        where="".join(f"\n       AND {part.where}" for part in every if part.where),
        columns=_COLUMNS,
        cell_where="\n                  AND ".join(cell_where),
        snippet=f"btrim(regexp_replace({snippet}, '\\s+', ' ', 'g'))",
        position="".join(part.position for part in every),
        max_matches=MAX_MATCHES,
    )


class Shape(NamedTuple):
    """Which clauses a search has; its parameters are numbered in this order after $1, $2."""

    text: bool
    substring: bool
    filtered: bool


def _statement(shape: Shape) -> str:
    numbers = iter(range(3, 7))
    q = f"${next(numbers)}" if shape.text else ""
    text = [full_text(q)] if shape.text else []
    if shape.substring:
        text.append(substring(q, f"${next(numbers)}"))
    conditions = [cell_filter(f"${next(numbers)}")] if shape.filtered else []
    return _assemble(text, conditions)


STATEMENTS = {
    shape: _statement(shape)
    for shape in (
        Shape(text=True, substring=False, filtered=False),
        Shape(text=True, substring=True, filtered=False),
        Shape(text=True, substring=False, filtered=True),
        Shape(text=True, substring=True, filtered=True),
        Shape(text=False, substring=False, filtered=True),
    )
}


def statement(
    user_id: UUID | str,
    limit: int,
    q: str | None,
    cell_type: str | None,
    writes: str | None,
    *,
    trigram: bool,
) -> SearchStatement:
    """The statement for a search (``trigram``: whether the trigram indexes exist)."""
    substring_too = q is not None and trigram and _TRIGRAM_RUN.search(q) is not None
    filtered = cell_type is not None or writes is not None
    args: list[Any] = [user_id, limit]
    if q is not None:
        args.append(q)
    if substring_too:
        args.append("%" + _LIKE_SPECIAL.sub(r"\\\1", q or "") + "%")
    if filtered:
        cell: dict[str, Any] = {}
        if cell_type is not None:
            cell["type"] = cell_type
        if writes is not None:
            cell["writes"] = [writes]
        args.append(msgspec.json.encode([cell]).decode())
    sql = STATEMENTS[Shape(q is not None, substring_too, filtered)]
    return SearchStatement(sql, tuple(args))


async def run(conn: asyncpg.Connection, search: SearchStatement) -> list[SearchRow]:
    return [SearchRow(*record) for record in await conn.fetch(search.sql, *search.args)]


async def trigram_indexes(conn: asyncpg.Connection) -> bool:
    """Whether substring search has its trigram indexes."""
    return bool(await conn.fetchval(TRIGRAM_INDEXES))
