"""Search over one user's notebooks (SPEC §6): one SQL statement per search.

Every statement keeps to ``user_id = $1``; the other conditions are the
ones the GIN indexes serve.  Code is indexed per cell, in ``cell_search``
(kept by triggers from the cells document, so that an edit re-indexes one
cell, not the notebook: see the migration that made it; its rows carry the
owner, which leads its GIN indexes where the server has btree_gin); names
and the cells document are indexed on ``notebooks``:

- full text: ``code_tsv @@ websearch_to_tsquery('simple', q)`` over cells
  (``cell_search_code_tsv``) or ``name_tsv @@ …`` (``notebooks_name_tsv``).
  The ``simple`` parser splits identifiers at underscores, so
  ``revenue_by_region`` is the phrase revenue <-> by <-> region and matches
  both ``q=revenue_by_region`` and ``q=revenue``;
- substring: ``code ILIKE '%q%'`` or ``name ILIKE '%q%'``
  (``cell_search_code_trgm``, ``notebooks_name_trgm``), only where those
  trigram indexes exist and ``q`` holds a run of three letters or digits, the
  least a trigram index can narrow down; without them search is full text only;
- cell filters: ``cells @> '[{"type": …, "writes": […]}]'``
  (``notebooks_cells_path_ops``), the JSON built by msgspec.

A notebook's rank is its name's ``ts_rank_cd`` (weight A) plus the sum of its
matching cells' (weight B), plus the substring bonuses below.  All of the
user's matches are found first, then ranked and cut to ``limit``;
only for those notebooks a LATERAL subquery walks the cells to pick at most
``MAX_MATCHES`` matching cells, each with a snippet (``ts_headline``, a window
around a substring hit, or the start of a cell matched by a filter).  All user
input is bound as parameters; the SQL text varies only with which of the
conditions above apply, so asyncpg prepares a handful of statements in all.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import msgspec

from app.database import connection
from app.errors import InvalidInput
from app.notebooks.schemas import CELL_TYPES
from app.search.schemas import (
    MAX_LIMIT,
    MAX_QUERY_LENGTH,
    MAX_VARIABLE_LENGTH,
    SearchMatch,
    SearchQuery,
    SearchResult,
    SearchResults,
)

if TYPE_CHECKING:
    from uuid import UUID

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

_TRIGRAM_INDEXES = """
SELECT to_regclass('cell_search_code_trgm') IS NOT NULL
   AND to_regclass('notebooks_name_trgm') IS NOT NULL
"""

_HEADLINE_OPTIONS = "MaxFragments=1, MaxWords=12, MinWords=3, StartSel=<<, StopSel=>>"

# The statement's skeleton.  The {placeholders} are filled with the constant
# fragments below and $n parameter numbers, never with user input.
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
     WHERE n.user_id = $1{where}
)
SELECT n.id, n.name, round(n.rank::numeric, 6)::float8 AS rank, m.matches
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

# A scalar subquery, so that even in a generic plan (asyncpg reuses prepared
# statements) the query text is parsed once per search, not once per row.
_TSQUERY = "(SELECT websearch_to_tsquery('simple', {q}))"
_CELL_TEXT_HIT = "to_tsvector('simple', t.cell ->> 'code') @@ " + _TSQUERY
_CELL_SUBSTRING_HIT = r"(t.cell ->> 'code') ILIKE {pattern} ESCAPE '\'"
_CODE_SUBSTRING_HIT = r"s.code ILIKE {pattern} ESCAPE '\'"
_NAME_SUBSTRING_HIT = r"{table}.name ILIKE {pattern} ESCAPE '\'"

# With q, the notebooks searched are the caller's matching cells' (one pass
# over cell_search's GIN indexes: text and trigram, both leading with user_id
# where the server has btree_gin) and those with a matching name (the names'
# GIN indexes), grouped to one row per notebook with the cells' share of the
# rank and whether one holds q as typed; then joined to notebooks by primary
# key.  Every join is keyed: no plan can pair rows by scanning a CTE per row,
# which is what a generic plan did with an earlier LEFT JOIN on a CTE
# (seconds for a common word).
_MATCHED = """(SELECT id, sum(text_rank) AS text_rank, bool_or(code_substring) AS code_substring
         FROM (SELECT s.notebook_id AS id,
                      CASE WHEN s.code_tsv @@ {tsquery}
                           THEN ts_rank_cd(s.code_tsv, {tsquery})::float8 ELSE 0 END AS text_rank,
                      {code_substring} AS code_substring
                 FROM cell_search s
                WHERE s.user_id = $1 AND ({code_hit})
               UNION ALL
               SELECT m.id, 0, false
                 FROM notebooks m
                WHERE m.user_id = $1 AND ({name_hit})) AS matched
        GROUP BY id) AS h
      JOIN notebooks n ON n.id = h.id"""

# Snippets, first match wins: the query's words highlighted by ts_headline; a
# window of {ctx} characters either side of the first substring hit; the start
# of a cell that only a filter matched.  s.code is the cell's code, s.pos the
# position of the substring hit.
_HEADLINE = (
    "WHEN to_tsvector('simple', s.code) @@ {tsquery} "
    "THEN ts_headline('simple', s.code, {tsquery}, '{options}') "
)
_WINDOW = (
    "WHEN s.pos > 0 THEN "
    "CASE WHEN s.pos > {ctx} + 1 THEN '…' ELSE '' END "
    "|| substr(s.code, greatest(s.pos - {ctx}, 1), s.pos - greatest(s.pos - {ctx}, 1)) "
    "|| '<<' || substr(s.code, s.pos, char_length({q})) || '>>' "
    "|| substr(s.code, s.pos + char_length({q}), {ctx}) "
    "|| CASE WHEN char_length(s.code) >= s.pos + char_length({q}) + {ctx} "
    "THEN '…' ELSE '' END "
)
_START = (
    "left(s.code, {width}) || CASE WHEN char_length(s.code) > {width} THEN '…' ELSE '' END"
).format(width=2 * SNIPPET_CONTEXT)


class SearchStatement(NamedTuple):
    """The one statement a search runs, and its arguments in ``$n`` order."""

    sql: str
    args: tuple[Any, ...]


class SearchService:
    def __init__(self, trigram: bool | None = None) -> None:
        """``trigram``: whether the trigram indexes exist; None = ask the database once."""
        self._trigram = trigram

    async def search(self, user_id: UUID, query: SearchQuery) -> SearchResults:
        """The caller's notebooks that match, best first, with their matching cells."""
        statement = await self.statement(user_id, query)
        async with connection() as conn:
            rows = await conn.fetch(statement.sql, *statement.args)
        return SearchResults(
            results=[
                SearchResult(
                    notebook_id=row["id"],
                    name=row["name"],
                    rank=row["rank"],
                    # JSON built by PostgreSQL in the API's shape: passed through, not decoded.
                    matches=cast("list[SearchMatch]", msgspec.Raw(row["matches"])),
                )
                for row in rows
            ]
        )

    async def statement(self, user_id: UUID, query: SearchQuery) -> SearchStatement:
        """Validate ``query`` and build the SQL that answers it (also used to EXPLAIN it)."""
        query = normalise(query)
        args: list[Any] = [user_id, query.limit]

        def bind(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        rank, where, cell_where, snippets, position = "0::float8", [], [], [], ""
        source = "notebooks n"
        if query.q is not None:
            q = bind(query.q)
            tsquery = _TSQUERY.format(q=q)
            snippets.append(_HEADLINE.format(tsquery=tsquery, options=_HEADLINE_OPTIONS))
            rank = f"ts_rank_cd(n.name_tsv, {tsquery})::float8 + h.text_rank"
            code_hit, name_hit = f"s.code_tsv @@ {tsquery}", f"m.name_tsv @@ {tsquery}"
            code_substring = "false"
            if _TRIGRAM_RUN.search(query.q) and await self.trigram_available():
                pattern = bind("%" + _LIKE_SPECIAL.sub(r"\\\1", query.q) + "%")
                code_substring = _CODE_SUBSTRING_HIT.format(pattern=pattern)
                name_substring = _NAME_SUBSTRING_HIT.format(table="n", pattern=pattern)
                code_hit += f" OR {code_substring}"
                name_hit += " OR " + _NAME_SUBSTRING_HIT.format(table="m", pattern=pattern)
                rank += (
                    f" + CASE WHEN {name_substring} THEN {_NAME_SUBSTRING_BONUS}::float8 ELSE 0 END"
                    f" + CASE WHEN h.code_substring THEN {_CODE_SUBSTRING_BONUS}::float8"
                    " ELSE 0 END"
                )
                cell_text_hit = _CELL_TEXT_HIT.format(q=q)
                cell_substring_hit = _CELL_SUBSTRING_HIT.format(pattern=pattern)
                cell_where.append(f"({cell_text_hit} OR {cell_substring_hit})")
                position = f", strpos(lower(c.cell ->> 'code'), lower({q})) AS pos"
                snippets.append(_WINDOW.format(q=q, ctx=SNIPPET_CONTEXT))
            else:
                cell_where.append(_CELL_TEXT_HIT.format(q=q))
            source = _MATCHED.format(
                tsquery=tsquery, code_substring=code_substring, code_hit=code_hit, name_hit=name_hit
            )
        if query.type is not None or query.writes is not None:
            cells = bind(_cell_filter(query))
            where.append(f"n.cells @> {cells}::jsonb")
            cell_where.append(f"t.cell @> ({cells}::jsonb -> 0)")
        snippet = f"CASE {''.join(snippets)}ELSE {_START} END" if snippets else _START
        sql = _SEARCH.format(
            source=source,
            rank=rank,
            where="".join(f"\n       AND {condition}" for condition in where),
            cell_where="\n                  AND ".join(cell_where),
            snippet=f"btrim(regexp_replace({snippet}, '\\s+', ' ', 'g'))",
            position=position,
            max_matches=MAX_MATCHES,
        )
        return SearchStatement(sql, tuple(args))

    async def trigram_available(self) -> bool:
        """Whether substring search has its trigram indexes (asked once per service)."""
        if self._trigram is None:
            async with connection() as conn:
                self._trigram = bool(await conn.fetchval(_TRIGRAM_INDEXES))
        return self._trigram


def normalise(query: SearchQuery) -> SearchQuery:
    """Blank means absent; anything else out of bounds is a 400 naming its field."""
    q = query.q
    if q is not None:
        if len(q) > MAX_QUERY_LENGTH:
            raise InvalidInput("q", f"longer than {MAX_QUERY_LENGTH} characters")
        if "\x00" in q:
            raise InvalidInput("q", "must not contain NUL characters")
        q = q.strip() or None
    writes = (query.writes or "").strip() or None
    if writes is not None and (len(writes) > MAX_VARIABLE_LENGTH or not writes.isidentifier()):
        raise InvalidInput("writes", "expected a variable name")
    if query.type is not None and query.type not in CELL_TYPES:
        raise InvalidInput("type", f"expected one of {', '.join(sorted(CELL_TYPES))}")
    if not 1 <= query.limit <= MAX_LIMIT:
        raise InvalidInput("limit", f"expected 1 to {MAX_LIMIT}")
    if q is None and query.type is None and writes is None:
        raise InvalidInput("q", "give q, type or writes")
    return SearchQuery(q=q, type=query.type, writes=writes, limit=query.limit)


def _cell_filter(query: SearchQuery) -> str:
    """``[{"type": …, "writes": [name]}]``: the notebook has one cell with all of these."""
    cell: dict[str, Any] = {}
    if query.type is not None:
        cell["type"] = query.type
    if query.writes is not None:
        cell["writes"] = [query.writes]
    return msgspec.json.encode([cell]).decode()
