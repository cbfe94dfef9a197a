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
matching cells' (weight B), plus the substring bonuses below.  Results come
in pages (docs/paging.md): the caller's matches are walked by recency in
windows of at most ``WINDOW`` matches, each window ranked on its own, so a
page costs a window, not every match; only for the page's notebooks a
LATERAL subquery walks the cells to pick at most ``MAX_MATCHES`` matching
cells, each with a snippet (``ts_headline``, a window around a substring
hit, or the start of a cell matched by a filter).  All user input is bound
as parameters; the SQL text depends only on which clauses apply and on the
walk's phase, so the handful of statements is built once, at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import asyncpg
import msgspec

from .rows import select_list

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
# A negation in web search syntax: a word with a leading minus, at the start or after
# a space (``a-b`` is one term, as websearch_to_tsquery reads it).
_NEGATION = re.compile(r"(?:^|\s)-[^\s-]")
_WORD = re.compile(r"[^\W_]")

TRIGRAM_INDEXES = """
SELECT to_regclass('cell_search_code_trgm') IS NOT NULL
   AND to_regclass('notebooks_name_trgm') IS NOT NULL
"""


class SearchRow(msgspec.Struct, frozen=True):
    notebook_id: str
    name: str | None
    rank: float
    matches: str  # JSON text in the API's shape, built by PostgreSQL: passed on, not decoded


class Found(NamedTuple):
    """One row of a window, with where it stands in the walk."""

    row: SearchRow
    rank: float  # exact, for the keyset (the row's is rounded)
    updated_at: datetime


class Batch(NamedTuple):
    """What one window statement gives: rows in rank order, and where the window ends."""

    rows: list[Found]
    end: tuple[datetime, str] | None  # None: the window runs to the end of its phase
    horizon: datetime


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
    # What must hold of the notebook as a whole (all its code and its name): a
    # negated term is absent from every cell.  ``pure``: the query is negations only,
    # so no cell or name "hits" and no index can find the matches: the walk does.
    whole: str = ""
    pure: str = ""


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


def negated_text(q: str) -> Parts:
    """``q`` with negations (``-KMeans``): they hold per notebook, not per cell.

    A notebook is found by a cell or its name matching the positive part of
    ``q`` (``querytree``: what an index can search for), and kept only when
    its whole text (every cell's ``code_tsv`` and the name, concatenated by
    ``cellar_tsvector_agg``) matches ``q``: ``pandas -KMeans`` is a notebook
    with pandas somewhere and KMeans nowhere.  A query of negations only
    (``-KMeans``) has no positive part: every notebook without KMeans.
    """
    plain = full_text(q)
    tree = f"querytree(websearch_to_tsquery('simple', {q}))"
    positive = f"(SELECT CASE WHEN {tree} = 'T' THEN NULL ELSE {tree}::tsquery END)"
    whole = (
        "(coalesce((SELECT cellar_tsvector_agg(w.code_tsv) FROM cell_search w"
        " WHERE w.notebook_id = n.id), ''::tsvector) || n.name_tsv)"
        f" @@ {_tsquery(q)}"
    )
    return Parts(
        code_hit=f"s.code_tsv @@ {positive}",
        name_hit=f"m.name_tsv @@ {positive}",
        code_rank=(
            f"CASE WHEN s.code_tsv @@ {positive}\n"
            f"                           THEN ts_rank_cd(s.code_tsv, {positive})::float8 ELSE 0 END"
        ),
        cell_hit=plain.cell_hit,
        rank=f"coalesce(ts_rank_cd(n.name_tsv, {positive})::float8, 0) + h.text_rank",
        snippet=plain.snippet,
        whole=whole,
        pure=f"(SELECT {tree} = 'T')",
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


# -- the statement: one window of the walk ---------------------------------------------

WINDOW = 50
"""Matches ranked together: the candidate set pages are cut from (docs/paging.md)."""

VISITS = 500
"""Notebooks the walk looks at for one window, at most."""

PROBE = 50
PROBE_HITS = 2
"""The walk is taken when the first PROBE notebooks of the range hold PROBE_HITS matches
(or are all there is); else the term is rare and the GIN indexes find the window."""

# A search walks the caller's matching notebooks by recency (``(updated_at,
# id)``, as the list), in two phases around a horizon as the list does: phase 1
# newest first up to the horizon, phase 2 the notebooks changed since, oldest
# change first.  The walk is cut into windows of at most WINDOW matches; a
# window's notebooks are ranked among themselves and its rows given in rank
# order.  A window is a range of recency positions, (start, end]: once its end
# is known (the cursor keeps it) an edit can only take a notebook out of it
# (to phase 2), so the rank order of what stays holds, and a keyset on
# (rank, updated_at, id) within it gives no duplicate and no gap.
#
# A window's members are found by one of two means, the cheaper for the term:
# - the walk: the next VISITS notebooks of the range, through the list's btree
#   (notebooks_user_updated_id), each tested on its own rows (EXISTS on
#   cell_search by primary key, the name, the cells document), stopping at
#   WINDOW matches: a common term fills the window within the first few
#   hundred notebooks;
# - the GIN indexes: every match of the range at once, then the WINDOW first
#   by recency.  Only when the walk is not conclusive (fewer than WINDOW
#   matches in VISITS notebooks, and more notebooks in the range), that is
#   for a term in under a tenth of the notebooks: few matches, a cheap bitmap.
# The GIN branch is gated by a one-time filter: it does not run when the walk
# decided.  Either way a window costs at most VISITS cheap tests or the GIN
# scan of a rare term, whatever the number of matches.
_WINDOW = """
WITH found AS MATERIALIZED (
    -- Every match of the range, through the GIN indexes; only read when the probe
    -- says the term is rare.  The fence keeps even a generic plan from walking the
    -- btree instead (which is the walk's job).
    SELECT n.id, n.updated_at
      FROM {source}
     WHERE n.user_id = $1 AND {range}{where}
), probe AS (
    SELECT $11::boolean{pure} OR count(*) FILTER (WHERE {walk_match}) >= {probe_hits}
           OR count(*) < {probe} AS walk
      FROM (SELECT n.id, n.updated_at, n.name, n.name_tsv, n.cells
              FROM notebooks n
             WHERE n.user_id = $1 AND {range}
             ORDER BY {recency}
             LIMIT {probe}) AS n{walk_cells}
), members AS MATERIALIZED (
    (SELECT n.id, n.updated_at
       FROM (SELECT n.id, n.updated_at, n.name, n.name_tsv, n.cells
               FROM notebooks n
              WHERE n.user_id = $1 AND {range}
              ORDER BY {recency}
              LIMIT {visits}) AS n{walk_cells}
      WHERE {walk_match} AND (SELECT walk FROM probe)
      LIMIT {window})
    UNION ALL
    (SELECT n.id, n.updated_at
       FROM found AS n
      WHERE NOT (SELECT walk FROM probe)
      ORDER BY {recency}
      LIMIT {window})
), edge AS (
    -- The window's end: its last member when it is full; else, for the walk, the last
    -- notebook it looked at (when it stopped before the end of the range); else the
    -- end of the range.
    SELECT t.id IS NULL AND v.id IS NULL AS last,
           CASE WHEN t.id IS NOT NULL THEN t.updated_at
                WHEN v.id IS NOT NULL THEN v.updated_at
                ELSE $6::timestamptz END AS stamp,
           CASE WHEN t.id IS NOT NULL THEN t.id
                WHEN v.id IS NOT NULL THEN v.id
                ELSE $7::text END AS id
      FROM (SELECT 1) AS one
      LEFT JOIN (SELECT n.updated_at, n.id::text AS id FROM members n
                  ORDER BY {recency} OFFSET {window} - 1 LIMIT 1) AS t ON true
      LEFT JOIN (SELECT n.updated_at, n.id::text AS id FROM notebooks n
                  WHERE n.user_id = $1 AND {range} AND (SELECT walk FROM probe)
                    AND (SELECT count(*) FROM members) < {window}
                  ORDER BY {recency} OFFSET {visits} - 1 LIMIT 1) AS v ON true
), hits AS (
    SELECT n.id, n.name, n.cells, n.updated_at, {rank} AS rank
      FROM members k
      JOIN notebooks n ON n.id = k.id{text_rank}
), page AS (
    SELECT * FROM hits
     WHERE (rank, updated_at, id) < ($8::float8, $9::timestamptz, $10::text)
     ORDER BY rank DESC, updated_at DESC, id DESC
     LIMIT $2
)
SELECT {columns}, n.rank AS exact_rank, n.updated_at, e.stamp, e.id, e.last,
       coalesce($3::timestamptz, now()) AS horizon
  FROM edge AS e
  LEFT JOIN LATERAL (
       SELECT n.*, m.matches
         FROM page AS n
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
  ) AS n ON true
 ORDER BY n.rank DESC, n.updated_at DESC, n.id DESC
"""
# $1 the user, $2 how many rows, $3 the horizon (NULL: now(), a walk's first
# window), ($4, $5) the window's start (exclusive), ($6, $7) the end of the
# range (inclusive: the window's end once known, else the end of the phase),
# ($8, $9, $10) the last row given of this window in rank order ('Infinity'
# at its start), $11 true to walk whatever the probe says (the retry after the
# GIN branch ran out of time); the clauses' parameters follow from $12.
# Phase 1 runs down the recency order, phase 2 up.
_PHASES = {
    1: {
        "range": "n.deleted_at IS NULL"
        " AND n.updated_at <= coalesce($3::timestamptz, now())"
        " AND (n.updated_at, n.id) < ($4::timestamptz, $5::text)"
        " AND (n.updated_at, n.id) >= ($6::timestamptz, $7::text)",
        "recency": "n.updated_at DESC, n.id DESC",
    },
    2: {
        "range": "n.deleted_at IS NULL"
        " AND n.updated_at > coalesce($3::timestamptz, now())"
        " AND (n.updated_at, n.id) > ($4::timestamptz, $5::text)"
        " AND (n.updated_at, n.id) <= ($6::timestamptz, $7::text)",
        "recency": "n.updated_at, n.id",
    },
}
FIRST_PARAMETER = 12

_COLUMNS = select_list(
    SearchRow,
    "n",
    notebook_id="n.id",
    rank="round(n.rank::numeric, 6)::float8",
    matches="n.matches",
)

# With text clauses, the GIN branch's matches are the caller's matching cells'
# (one pass over cell_search's GIN indexes: text and trigram, both leading
# with user_id where the server has btree_gin) and those with a matching name
# (the names' GIN indexes), grouped to one row per notebook; then joined to
# notebooks by primary key.  Every join is keyed: no plan can pair rows by
# scanning a CTE per row, which is what a generic plan did with an earlier
# LEFT JOIN on a CTE (seconds for a common word).
_MATCHED = """(SELECT DISTINCT id
         FROM (SELECT s.notebook_id AS id
                 FROM cell_search s
                WHERE s.user_id = $1 AND ({code_hit})
               UNION ALL
               SELECT m.id
                 FROM notebooks m
                WHERE m.user_id = $1 AND m.deleted_at IS NULL AND ({name_hit})) AS matched) AS h
      CROSS JOIN LATERAL (SELECT * FROM notebooks n WHERE n.id = h.id LIMIT 1) AS n"""

# Without text clauses, the GIN branch's matches are the notebooks whose cells
# document holds the filter (notebooks_cells_path_ops).
_FILTERED = """(SELECT m.id FROM notebooks m
        WHERE m.user_id = $1 AND m.deleted_at IS NULL{filters}) AS h
      CROSS JOIN LATERAL (SELECT * FROM notebooks n WHERE n.id = h.id LIMIT 1) AS n"""
# Either way each candidate is looked up by primary key (a LATERAL with LIMIT 1
# cannot be turned into a join): a plan made without the values (a generic plan)
# could otherwise hash-join the candidates with every notebook of the user.

# A member's share of the rank from its cells: the matching cell_search rows of
# that one notebook (by primary key), WINDOW notebooks at most.
_TEXT_RANK = """
      CROSS JOIN LATERAL (
            SELECT coalesce(sum({code_rank}), 0) AS text_rank,
                   coalesce(bool_or({code_flag}), false) AS code_substring
              FROM cell_search s
             WHERE s.notebook_id = n.id AND ({code_hit})) AS h"""

# The snippet of a cell that no text clause matched: its start.
_START = (
    "left(s.code, {width}) || CASE WHEN char_length(s.code) > {width} THEN '…' ELSE '' END"
).format(width=2 * SNIPPET_CONTEXT)


def _assemble(text: list[Parts], conditions: list[Parts], phase: int) -> str:
    """The statement for these text clauses (alternatives) and conditions (all must hold)."""
    every = [*text, *conditions]
    rank = "".join(part.rank for part in every) or "0::float8"
    cell_where = [part.cell_where for part in conditions if part.cell_where]
    where = "".join(f" AND {part.where}" for part in every if part.where)
    source = _FILTERED.format(filters=where.replace("n.cells", "m.cells"))
    walk_match = [part.where for part in conditions if part.where]
    wholes = [part.whole for part in text if part.whole]
    where += "".join(f" AND {whole}" for whole in wholes)
    pure = "".join(f" OR {part.pure}" for part in text if part.pure)
    text_rank = walk_cells = ""
    if text:
        code_hit = " OR ".join(part.code_hit for part in text)
        name_hit = " OR ".join(part.name_hit for part in text)
        source = _MATCHED.format(code_hit=code_hit, name_hit=name_hit)
        text_rank = _TEXT_RANK.format(
            code_rank=" + ".join(part.code_rank for part in text if part.code_rank) or "0",
            code_flag=" OR ".join(part.code_flag for part in text if part.code_flag) or "false",
            code_hit=code_hit,
        )
        # A LATERAL probe with LIMIT 1, not EXISTS: PostgreSQL may turn an EXISTS into
        # one hashed scan of every match, the very cost the walk is there to avoid.
        walk_cells = (
            "\n      LEFT JOIN LATERAL (SELECT true AS hit FROM cell_search s"
            f"\n                          WHERE s.notebook_id = n.id AND ({code_hit})"
            "\n                          LIMIT 1) AS c ON true"
        )
        walk_match.insert(0, f"(c.hit OR {name_hit.replace('m.', 'n.')}{pure})")
        walk_match[1:1] = wholes
        hits = [part.cell_hit for part in text]
        cell_where.insert(0, hits[0] if len(hits) == 1 else f"({' OR '.join(hits)})")
    snippets = "".join(part.snippet for part in every)
    snippet = f"CASE {snippets}ELSE {_START} END" if snippets else _START
    return _WINDOW.format(
        **_PHASES[phase],
        source=source,
        rank=rank,
        where=where,
        walk_match=" AND ".join(walk_match),
        pure=pure,
        walk_cells=walk_cells,
        text_rank=text_rank,
        visits=VISITS,
        window=WINDOW,
        probe=PROBE,
        probe_hits=PROBE_HITS,
        columns=_COLUMNS,
        cell_where="\n                  AND ".join(cell_where),
        snippet=f"btrim(regexp_replace({snippet}, '\\s+', ' ', 'g'))",
        position="".join(part.position for part in every),
        max_matches=MAX_MATCHES,
    )


class Shape(NamedTuple):
    """Which clauses a search has; its parameters are numbered in this order."""

    text: bool
    substring: bool
    filtered: bool
    negated: bool = False  # q holds a negation (-word): see negated_text


def _statement(shape: Shape, phase: int) -> str:
    numbers = iter(range(FIRST_PARAMETER, FIRST_PARAMETER + 4))
    q = f"${next(numbers)}" if shape.text else ""
    text = [(negated_text if shape.negated else full_text)(q)] if shape.text else []
    if shape.substring:
        text.append(substring(q, f"${next(numbers)}"))
    conditions = [cell_filter(f"${next(numbers)}")] if shape.filtered else []
    return _assemble(text, conditions, phase)


SHAPES = (
    Shape(text=True, substring=False, filtered=False),
    Shape(text=True, substring=True, filtered=False),
    Shape(text=True, substring=False, filtered=True),
    Shape(text=True, substring=True, filtered=True),
    Shape(text=False, substring=False, filtered=True),
    Shape(text=True, substring=False, filtered=False, negated=True),
    Shape(text=True, substring=False, filtered=True, negated=True),
)
STATEMENTS = {(shape, phase): _statement(shape, phase) for shape in SHAPES for phase in (1, 2)}

_LATEST = datetime.max.replace(tzinfo=UTC)  # asyncpg sends these as infinity, -infinity
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class Window(NamedTuple):
    """Where a search's walk stands (the cursor holds it)."""

    horizon: datetime | None  # None: not started; the first window sets it
    phase: Literal[1, 2]
    start: tuple[datetime, str]  # exclusive
    end: tuple[datetime, str] | None  # inclusive; None: not known yet (the next WINDOW)
    after: tuple[float, datetime, str] | None  # the last row given in rank order


START = Window(None, 1, (_LATEST, ""), None, None)


def phase_end(phase: int) -> tuple[datetime, str]:
    """The end of a phase's range: the oldest notebook (phase 1), the present (phase 2)."""
    return (_EARLIEST, "") if phase == 1 else (_LATEST, "")


def statement(
    user_id: UUID | str,
    limit: int,
    q: str | None,
    cell_type: str | None,
    writes: str | None,
    *,
    trigram: bool,
    at: Window = START,
    walk: bool = False,
) -> SearchStatement:
    """The statement for one window of a search (``trigram``: whether the trigram indexes
    exist), from ``at``, ``limit`` rows at most."""
    negated = q is not None and _NEGATION.search(q) is not None
    # Symbols only (no letter or digit: an emoji, ``%%``): nothing for full text, no
    # trigram either; the substring is tested cell by cell on the walk, which is forced.
    symbols = q is not None and _WORD.search(q) is None
    substring_too = (
        q is not None
        and not negated
        and (symbols or (trigram and _TRIGRAM_RUN.search(q) is not None))
    )
    walk = walk or symbols
    filtered = cell_type is not None or writes is not None
    end = at.end if at.end is not None else phase_end(at.phase)
    after = at.after if at.after is not None else (float("inf"), _LATEST, "")
    args: list[Any] = [
        user_id,
        limit,
        at.horizon,
        *at.start,
        *end,
        *after,
        walk,
    ]
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
    sql = STATEMENTS[Shape(q is not None, substring_too, filtered, negated), at.phase]
    return SearchStatement(sql, tuple(args))


GIN_TIMEOUT_MS = 50
"""How long a window may take before it is done again by the walk alone (see _WINDOW)."""

# For the statement's transaction: a plan made for its values, and the bound.  A
# generic plan (made once per connection) saved 1 to 3 ms of planning a search, but
# it expects the average user's share of the window's range: for a heavy user among
# many light ones it read all of the user's notebooks through a bitmap and sorted
# them, each window (bench/run.py's search user, 10,000 of 100,200 notebooks: 40 ms
# a window, search p50 53 ms against 17 ms planned for the values;
# tests/api/test_search_tenants.py).  Walk or GIN stays the probe's decision, and
# every candidate is looked up by primary key through a LATERAL whatever the plan.
WINDOW_SETTINGS = (
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true),"
    " set_config('statement_timeout', $1, true)"
)
_WALK_ARGUMENT = 10  # $11


async def run(conn: asyncpg.Connection, search: SearchStatement) -> Batch:
    """One window's rows, in rank order, and its end.

    The GIN branch costs what its index conditions match, which for a term made
    of common parts (``run_7``: every cell has ``run``) can be far more than its
    matches.  So the statement runs under ``GIN_TIMEOUT_MS``, and when that runs
    out it runs again with the walk forced, whose cost is bounded by VISITS.
    """
    try:
        async with conn.transaction():
            await conn.execute(WINDOW_SETTINGS, f"{GIN_TIMEOUT_MS}ms")
            records = await conn.fetch(search.sql, *search.args)
    except asyncpg.QueryCanceledError:
        args = list(search.args)
        args[_WALK_ARGUMENT] = True
        async with conn.transaction():
            await conn.execute(WINDOW_SETTINGS, "0")
            records = await conn.fetch(search.sql, *args)
    first = records[0]  # always one: the window's edge, with the page's rows if any
    end = None if first[8] else (first[6], first[7])
    rows = [
        Found(SearchRow(*record[:4]), record[4], record[5])
        for record in records
        if record[0] is not None
    ]
    return Batch(rows, end, first[9])


async def trigram_indexes(conn: asyncpg.Connection) -> bool:
    """Whether substring search has its trigram indexes."""
    return bool(await conn.fetchval(TRIGRAM_INDEXES))
