"""SPEC §6: every search path uses its GIN index on 10,000 notebooks (EXPLAIN, not timings).

The data is shaped like a real installation: 10,000 notebooks over 61 users,
3,000 of them the searching user's, so a plan on ``user_id`` alone (the
``notebooks_user_updated`` btree) is a real alternative the planner weighs.
Cell types and written names are selective, as search terms are: 5% of the
notebooks have an sql cell, 4% write ``df``, under 1% hold
``revenue_by_region``.  After the bulk insert the table is vacuumed and
analysed, as autovacuum would do: VACUUM also empties the GIN pending lists,
which otherwise make every GIN scan look expensive to the planner.

The statements explained are the service's own, with their parameters bound
as the service binds them.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from app.database import connection, transaction
from app.search.schemas import SearchQuery
from app.search.services import SearchService
from tests.helpers import new_user_headers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

NOTEBOOKS = 10_000
MINE = 3_000
OTHER_USERS = 60

# One statement: the other users, then all notebooks (the first MINE are the caller's).
SEED = """
WITH others AS (
    INSERT INTO users (email)
    SELECT $2 || g || '@example.com' FROM generate_series(1, $4::int) AS g
    RETURNING id
), owners AS (SELECT array_agg(id) AS ids FROM others)
INSERT INTO notebooks (id, user_id, name, kind, cells, created_at, updated_at)
SELECT $2 || n,
       CASE WHEN n <= $5 THEN $1 ELSE owners.ids[1 + n % $4::int] END,
       'analysis ' || n % 997 || ' of topic_' || n % 89,
       'user',
       (SELECT jsonb_agg(jsonb_build_object(
                   'id', n || '-' || c,
                   'type', CASE WHEN c = 2 AND n % 20 = 0 THEN 'sql' ELSE 'python' END,
                   'code', CASE
                       WHEN c = 2 AND n % 20 = 0 THEN
                           'SELECT region_' || n % 31 || ', sum(amount) FROM sales_' || n % 53
                           || ' GROUP BY 1'
                       WHEN c = 1 AND n % 25 = 0 THEN 'df = load_' || n % 97 || '("data.csv")'
                       WHEN c = 3 AND n % 150 = 0 THEN
                           'revenue_by_region = df.groupby("region")["revenue"].sum()'
                       ELSE 'frame_' || (n * 7 + c) % 1000 || ' = compute_' || (n + c * 13) % 700
                           || '(metric_' || n % 400 || ', window=' || c || ')'
                   END,
                   'reads', '[]'::jsonb,
                   'writes', CASE
                       WHEN c = 2 AND n % 20 = 0 THEN '[]'::jsonb
                       WHEN c = 1 AND n % 25 = 0 THEN '["df"]'::jsonb
                       WHEN c = 3 AND n % 150 = 0 THEN '["revenue_by_region"]'::jsonb
                       ELSE jsonb_build_array('frame_' || (n * 7 + c) % 1000)
                   END,
                   'metadata', '{}'::jsonb) ORDER BY c)
          FROM generate_series(1, 3 + n % 6) AS c),
       now() - n * interval '1 minute',
       now() - n * interval '1 minute'
  FROM generate_series(1, $3::int) AS n, owners
"""


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


async def explain(statement_sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The plan of the statement's first executions (a custom plan for these values)."""
    async with connection() as conn:
        raw = await conn.fetchval("EXPLAIN (FORMAT JSON) " + statement_sql, *args)
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


async def explain_generic(statement_sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    """The generic plan PostgreSQL may switch to once asyncpg has reused the statement."""
    async with transaction() as conn:
        # EXECUTE takes no parameters: PostgreSQL quotes the values as literals.
        explain_execute = await conn.fetchval(
            "SELECT 'EXPLAIN (FORMAT JSON) EXECUTE search_plan('"
            " || string_agg(coalesce(quote_literal(value), 'NULL'), ', ' ORDER BY position)"
            " || ')' FROM unnest($1::text[]) WITH ORDINALITY AS a(value, position)",
            [None if value is None else str(value) for value in args],
        )
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE search_plan AS " + statement_sql)
        try:
            raw = await conn.fetchval(explain_execute)
        finally:
            await conn.execute("DEALLOCATE search_plan")
    assert "user_id = $1" in raw  # generic indeed: the plan holds parameters, not values
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


def indexes_used(nodes: list[dict[str, Any]]) -> set[str]:
    return {node["Index Name"] for node in nodes if "Index Name" in node}


def assert_no_cte_rescan(nodes: list[dict[str, Any]]) -> None:
    """No nested loop re-reads a CTE for every outer row (quadratic in the matches).

    A generic plan of an earlier statement did that with a LEFT JOIN on a CTE
    it estimated at one row: 10,000 x 10,000 comparisons for a common word.
    """
    for node in nodes:
        if node["Node Type"] == "Nested Loop":
            inner = node["Plans"][1]
            assert inner["Node Type"] != "CTE Scan", node


def assert_no_seq_scan_on_notebooks(nodes: list[dict[str, Any]]) -> None:
    """Neither the notebooks nor their per-cell search rows are read whole."""
    scans = [n for n in nodes if n["Node Type"] == "Seq Scan"]
    assert all(n.get("Relation Name") not in ("notebooks", "cell_search") for n in scans), scans


@pytest.fixture(scope="module")
async def seeded(client: Any) -> AsyncIterator[tuple[dict[str, str], UUID]]:
    """The caller's headers and id, with 10,000 notebooks in the table; removed afterwards."""
    headers = await new_user_headers(client)
    response = await client.get("/me", headers=headers)
    user_id = UUID(response.json()["id"])
    prefix = f"seed-{secrets.token_hex(4)}-"
    async with connection() as conn:
        await conn.execute(SEED, user_id, prefix, NOTEBOOKS, OTHER_USERS, MINE)
        await conn.execute("VACUUM (ANALYZE) notebooks")
        await conn.execute("VACUUM (ANALYZE) cell_search")
    try:
        yield headers, user_id
    finally:
        async with connection() as conn:
            await conn.execute("DELETE FROM notebooks WHERE id LIKE $1 || '%'", prefix)
            await conn.execute("DELETE FROM users WHERE email LIKE $1 || '%'", prefix)


async def test_the_seed_is_shaped_as_described(seeded: tuple[dict[str, str], UUID]) -> None:
    _, user_id = seeded
    async with connection() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS total, count(DISTINCT user_id) AS owners, "
            "count(*) FILTER (WHERE user_id = $1) AS mine FROM notebooks",
            user_id,
        )
    assert row["total"] >= NOTEBOOKS
    assert row["owners"] > OTHER_USERS
    assert row["mine"] == MINE


TEXT_INDEXES = {
    "cell_search_code_tsv",
    "cell_search_code_trgm",
    "notebooks_name_tsv",
    "notebooks_name_trgm",
}
PATHS = [
    # (name, trigram flag, query, GIN indexes the plan must use)
    (
        "full text",
        False,
        SearchQuery(q="revenue_by_region"),
        {"cell_search_code_tsv", "notebooks_name_tsv"},
    ),
    (
        "full text + substring",
        True,
        SearchQuery(q="revenue_by_region"),
        TEXT_INDEXES,
    ),
    (
        "substring of an identifier",
        True,
        SearchQuery(q="venue_by_reg"),
        TEXT_INDEXES,
    ),
    (
        "negation",
        False,
        SearchQuery(q="revenue_by_region -groupby"),
        {"cell_search_code_tsv", "notebooks_name_tsv"},
    ),
    ("type", True, SearchQuery(type="sql"), {"notebooks_cells_path_ops"}),
    ("writes", True, SearchQuery(writes="df"), {"notebooks_cells_path_ops"}),
    ("type + writes", True, SearchQuery(type="python", writes="df"), {"notebooks_cells_path_ops"}),
]


@pytest.mark.parametrize("plan", [explain, explain_generic], ids=["custom", "generic"])
@pytest.mark.parametrize(
    ("trigram", "query", "expected"),
    [path[1:] for path in PATHS],
    ids=[path[0] for path in PATHS],
)
async def test_each_search_path_uses_its_gin_index(
    seeded: tuple[dict[str, str], UUID],
    trigram: bool,
    query: SearchQuery,
    expected: set[str],
    plan: Callable[[str, tuple[Any, ...]], Awaitable[list[dict[str, Any]]]],
) -> None:
    _, user_id = seeded
    if trigram and not await SearchService().trigram_available():
        pytest.skip("this server has no pg_trgm: substring search is off")
    statement = await SearchService(trigram=trigram).statement(user_id, query)
    nodes = await plan(statement.sql, statement.args)
    assert_no_seq_scan_on_notebooks(nodes)
    assert_no_cte_rescan(nodes)
    assert expected <= indexes_used(nodes), [n.get("Index Name") for n in nodes]


async def test_text_with_a_filter_uses_gin_indexes(seeded: tuple[dict[str, str], UUID]) -> None:
    _, user_id = seeded
    statement = await SearchService().statement(user_id, SearchQuery(q="revenue", type="sql"))
    nodes = await explain(statement.sql, statement.args)
    assert_no_seq_scan_on_notebooks(nodes)
    assert {"cell_search_code_tsv", "cell_search_code_trgm"} <= indexes_used(nodes)


class _Undo(Exception):
    """Raised to roll back a transaction that changed the schema for one test."""


async def test_without_btree_gin_the_plain_gin_indexes_serve_text_search(
    seeded: tuple[dict[str, str], UUID],
) -> None:
    """The layout a server without btree_gin gets (the embedded one): same SQL, same indexes."""
    _, user_id = seeded
    trigram = await SearchService().trigram_available()
    plain = ["CREATE INDEX cell_search_code_tsv ON cell_search USING gin (code_tsv)"]
    if trigram:
        plain.append(
            "CREATE INDEX cell_search_code_trgm ON cell_search USING gin (code gin_trgm_ops)"
        )
    used: list[set[str]] = []
    async with connection() as conn:
        with pytest.raises(_Undo):
            async with conn.transaction():
                await conn.execute("DROP INDEX cell_search_code_tsv")
                await conn.execute("DROP INDEX IF EXISTS cell_search_code_trgm")
                for statement in plain:
                    await conn.execute(statement)
                await conn.execute("ANALYZE cell_search")
                definition = await conn.fetchval(
                    "SELECT indexdef FROM pg_indexes WHERE indexname = 'cell_search_code_tsv'"
                )
                assert "user_id" not in definition
                for query in (SearchQuery(q="revenue_by_region"), SearchQuery(q="venue_by_reg")):
                    statement = await SearchService(trigram=trigram).statement(user_id, query)
                    raw = await conn.fetchval(
                        "EXPLAIN (FORMAT JSON) " + statement.sql, *statement.args
                    )
                    nodes = list(plan_nodes(json.loads(raw)[0]["Plan"]))
                    assert_no_seq_scan_on_notebooks(nodes)
                    used.append(indexes_used(nodes))
                raise _Undo
    expected = {"cell_search_code_tsv"} | ({"cell_search_code_trgm"} if trigram else set())
    assert all(expected <= indexes for indexes in used), used


async def test_answers_at_scale(client: Any, seeded: tuple[dict[str, str], UUID]) -> None:
    """The same searches over HTTP: right answers from the caller's 3,000 notebooks only."""
    headers, _ = seeded
    mine = range(1, MINE + 1)

    def numbers(results: list[dict[str, Any]]) -> set[int]:
        return {int(r["notebook_id"].rsplit("-", 1)[1]) for r in results}

    async def search(**params: Any) -> list[dict[str, Any]]:
        """The first ``limit`` results, through as many pages as that takes (a page may
        come short where matches are sparse: its cost is bounded, docs/paging.md)."""
        results: list[dict[str, Any]] = []
        while True:
            response = await client.get("/notebooks/search", params=params, headers=headers)
            assert response.status_code == 200, response.text
            results += response.json()["results"]
            cursor = response.json()["next_cursor"]
            if cursor is None or len(results) >= params["limit"]:
                return results[: params["limit"]]
            params["cursor"] = cursor

    found = await search(q="revenue_by_region", limit=100)
    assert numbers(found) == {n for n in mine if n % 150 == 0}
    assert all(len(r["matches"]) == 1 for r in found)

    # Nothing to rank by with filters alone: newest first (notebook n is n minutes old).
    found = await search(type="sql", limit=100)
    in_order = [int(r["notebook_id"].rsplit("-", 1)[1]) for r in found]
    assert in_order == sorted(n for n in mine if n % 20 == 0)[:100]

    found = await search(writes="df", limit=100)
    assert numbers(found) == set(sorted(n for n in mine if n % 25 == 0)[:100])
