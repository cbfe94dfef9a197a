"""``GET /notebooks/search?limit=&cursor=`` (SPEC §6, issue 20): search in pages.

Pages follow each other through windows of the walk (app/store/search.py):
every match once, in rank order within each window; edits during the walk
repeat a notebook only after its edit and lose none; bad limits and cursors
are 400s naming the parameter.  At 50,000 notebooks of one user with a term
in all of them, EXPLAIN ANALYZE shows a page reading a bounded number of
rows, not the matches (row counts from the plan, never timings).
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from app.database import connection
from app.search.schemas import SearchQuery
from app.search.services import SearchService
from app.store import search as store
from tests.api.test_notebooks import assert_bad_field, fresh_user_headers
from tests.api.test_search_explain import plan_nodes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# Notebook g of a seeded user: two python cells; "common_term" in every one,
# "sparse_term" in one in 9, the name "report g"; notebook g is g minutes old.
SEED = """
INSERT INTO notebooks (id, user_id, name, kind, cells, created_at, updated_at)
SELECT $2 || g, $1::uuid, 'report ' || g, 'user',
       jsonb_build_array(
           jsonb_build_object('id', 'a', 'type', 'python', 'reads', '[]'::jsonb,
                              'writes', '["common_term"]'::jsonb, 'metadata', '{}'::jsonb,
                              'code', 'common_term = load(' || g || ')'),
           jsonb_build_object('id', 'b', 'type', CASE WHEN g % 9 = 0 THEN 'sql' ELSE 'python' END,
                              'reads', '[]'::jsonb, 'writes', '[]'::jsonb,
                              'metadata', '{}'::jsonb,
                              'code', CASE WHEN g % 9 = 0 THEN 'select sparse_term from t'
                                           ELSE 'print(' || g || ')' END)),
       now() - g * interval '1 minute', now() - g * interval '1 minute'
  FROM generate_series(1, $3::int) AS g
"""


async def seed(user_id: UUID, count: int) -> str:
    prefix = f"sp-{secrets.token_hex(4)}-"
    async with connection() as conn:
        await conn.execute(SEED, user_id, prefix, count)
    return prefix


async def analyze() -> None:
    """Fresh statistics after a seed, as the planner of a live database would have them."""
    async with connection() as conn:
        await conn.execute("VACUUM (ANALYZE) notebooks")
        await conn.execute("VACUUM (ANALYZE) cell_search")


async def forget(prefixes: list[str]) -> None:
    """Delete what ``seed`` made under these prefixes."""
    async with connection() as conn:
        await conn.execute(
            "DELETE FROM notebooks WHERE id LIKE ANY($1)", [p + "%" for p in prefixes]
        )


async def me(client: Any, headers: dict[str, str]) -> UUID:
    return UUID((await client.get("/me", headers=headers)).json()["id"])


async def page(client: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/notebooks/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"results", "next_cursor"}
    assert len(body["results"]) <= params.get("limit", 20)
    return body


async def walk(
    client: Any, headers: dict[str, str], between: Any = None, **params: Any
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n in range(1000):
        body = await page(client, headers, **params)
        found += body["results"]
        if body["next_cursor"] is None:
            return found
        params["cursor"] = body["next_cursor"]
        if between is not None:
            await between(n, found)
    raise AssertionError("the walk did not end")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "common_term"}, lambda g: True),
        ({"q": "sparse_term"}, lambda g: g % 9 == 0),
        ({"type": "sql"}, lambda g: g % 9 == 0),
        ({"writes": "common_term"}, lambda g: True),
        ({"q": "mon_ter"}, lambda g: True),  # a substring (or nothing without pg_trgm)
    ],
    ids=["common", "sparse", "type", "writes", "substring"],
)
@pytest.mark.parametrize("limit", [1, 7, 100])
async def test_pages_give_every_match_once(
    client: Any, params: dict[str, Any], expected: Any, limit: int
) -> None:
    headers = await fresh_user_headers(client)
    count = 240  # several windows of store.WINDOW
    prefix = await seed(await me(client, headers), count)
    found = await walk(client, headers, limit=limit, **params)
    ids = [r["notebook_id"] for r in found]
    assert len(ids) == len(set(ids)), "no duplicates"
    want = {f"{prefix}{g}" for g in range(1, count + 1) if expected(g)}
    if params.get("q") == "mon_ter" and not await SearchService().trigram_available():
        want = set()
    assert set(ids) == want


async def test_within_a_window_best_first(client: Any) -> None:
    headers = await fresh_user_headers(client)
    prefix = await seed(await me(client, headers), 30)
    rename = await client.put(
        f"/notebooks/{prefix}17/name", json={"name": "common_term common_term"}, headers=headers
    )
    assert rename.status_code == 200
    found = (await page(client, headers, q="common_term", limit=30))["results"]
    assert found[0]["notebook_id"] == f"{prefix}17"  # the name's weight first
    ranks = [r["rank"] for r in found]
    assert ranks == sorted(ranks, reverse=True)


async def test_edits_during_a_search_walk_lose_nothing(client: Any) -> None:
    headers = await fresh_user_headers(client)
    count = 160
    prefix = await seed(await me(client, headers), count)
    edits: dict[str, list[int]] = {}

    async def edit(g: int, found: list[dict[str, Any]]) -> None:
        notebook_id = f"{prefix}{g}"
        response = await client.put(
            f"/notebooks/{notebook_id}/name", json={"name": f"e{len(found)}"}, headers=headers
        )
        assert response.status_code == 200, response.text
        edits.setdefault(notebook_id, []).append(len(found))

    async def between(n: int, found: list[dict[str, Any]]) -> None:
        if n == 0:
            await edit(count, found)  # the oldest: not reached yet
            await edit(1, found)  # the newest: given already
        if n == 3:
            await edit(count - 1, found)
            await edit(count, found)  # again

    found = await walk(client, headers, between, q="common_term", limit=9)
    shown: dict[str, list[int]] = {}
    for i, r in enumerate(found):
        shown.setdefault(r["notebook_id"], []).append(i)
    assert set(shown) == {f"{prefix}{g}" for g in range(1, count + 1)}
    for notebook_id, at in shown.items():
        if notebook_id not in edits:
            assert len(at) == 1, notebook_id
        for earlier, later in itertools.pairwise(at):
            assert any(earlier < e <= later for e in edits[notebook_id]), (at, edits)
        assert found[at[-1]]["name"] == (
            f"e{edits[notebook_id][-1]}" if notebook_id in edits else found[at[-1]]["name"]
        )
    assert len(shown[f"{prefix}1"]) == 2  # seen, edited, seen again as edited


async def test_bad_limits_and_cursors_are_400_naming_them(client: Any) -> None:
    headers = await fresh_user_headers(client)
    await seed(await me(client, headers), 5)
    for limit in ("0", "101", "-3", "x"):
        response = await client.get(
            "/notebooks/search", params={"q": "common_term", "limit": limit}, headers=headers
        )
        assert_bad_field(response, "limit")
    cursor = (await page(client, headers, q="common_term", limit=2))["next_cursor"]
    listed = await client.get("/notebooks", params={"limit": 1}, headers=headers)
    list_cursor = listed.json()["next_cursor"]
    other = await fresh_user_headers(client)
    await seed(await me(client, other), 5)
    for params, who in [
        ({"q": "common_term", "cursor": cursor[:-3] + "abc"}, headers),  # edited
        ({"q": "common_term", "cursor": list_cursor}, headers),  # from the list
        ({"q": "sparse_term", "cursor": cursor}, headers),  # another question
        ({"q": "common_term", "type": "sql", "cursor": cursor}, headers),
        ({"q": "common_term", "cursor": cursor}, other),  # another user
        ({"q": "common_term", "cursor": "garbage"}, headers),
    ]:
        response = await client.get("/notebooks/search", params=params, headers=who)
        assert_bad_field(response, "cursor")
    # And the search's cursor on the list.
    response = await client.get(
        "/notebooks", params={"limit": 1, "cursor": cursor}, headers=headers
    )
    assert_bad_field(response, "cursor")
    # The same question with another page size follows the same cursor.
    assert (await page(client, headers, q="common_term", limit=3, cursor=cursor))["results"]


# -- 50,000 notebooks of one user, a term in all of them ----------------------------------

CROWD = 50_000


@pytest.fixture(scope="module")
async def crowd(client: Any) -> AsyncIterator[UUID]:
    headers = await fresh_user_headers(client)
    user_id = await me(client, headers)
    prefix = await seed(user_id, CROWD)
    await analyze()
    try:
        yield user_id
    finally:
        await forget([prefix])


async def analyzed(user_id: UUID, query: SearchQuery) -> list[dict[str, Any]]:
    """The first window's plan as it ran, planned for its values as search plans it
    (app.store.search.run); EXPLAIN ANALYZE: row counts, not times."""
    statement = await SearchService().statement(user_id, query)
    async with connection() as conn, conn.transaction():
        # EXECUTE takes no parameters: PostgreSQL quotes the values as literals.
        explain_execute = await conn.fetchval(
            "SELECT 'EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF) EXECUTE window_plan('"
            " || string_agg(coalesce(quote_literal(value), 'NULL'), ', ' ORDER BY position)"
            " || ')' FROM unnest($1::text[]) WITH ORDINALITY AS a(value, position)",
            [None if value is None else str(value) for value in statement.args],
        )
        await conn.execute(store.WINDOW_SETTINGS, "0")  # the plan mode search runs under
        await conn.execute("PREPARE window_plan AS " + statement.sql)
        try:
            raw = await conn.fetchval(explain_execute)
        finally:
            await conn.execute("DEALLOCATE window_plan")
    assert str(user_id) in raw  # planned for its values indeed
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


def rows_read(nodes: list[dict[str, Any]], relation: str) -> int:
    """Rows the scans of ``relation`` produced, over all their loops."""
    return sum(
        n["Actual Rows"] * n["Actual Loops"]
        for n in nodes
        if n.get("Relation Name") == relation and "Scan" in n["Node Type"]
    )


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(q="common_term"),
        SearchQuery(writes="common_term"),
        SearchQuery(q="mon_ter"),
        SearchQuery(q="common_term -absent_term"),
        SearchQuery(q="-absent_term"),
        SearchQuery(q="👋"),
    ],
    ids=["text", "writes", "substring", "negation", "negation-only", "emoji"],
)
async def test_a_term_in_all_50000_notebooks_reads_a_window_not_the_matches(
    crowd: UUID, query: SearchQuery
) -> None:
    nodes = await analyzed(crowd, query)
    # The walk: the list's btree, at most a window's worth of notebooks and their rows.
    assert "notebooks_user_updated_id" in {n.get("Index Name") for n in nodes}
    assert rows_read(nodes, "notebooks") <= 4 * store.VISITS
    assert rows_read(nodes, "cell_search") <= 4 * store.VISITS
    # The GIN branch (every match of the range, CTE "found") did not run.
    (found,) = [n for n in nodes if n.get("Subplan Name") == "CTE found"]
    assert found["Actual Loops"] == 0, found
    # (The GIN branch's plan, never run here, may well be a scan: it expects every row.)
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n["Actual Loops"] > 0]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (SearchQuery(q="sparse_term_never"), "cell_search_code_tsv"),
        (SearchQuery(type="raw"), "notebooks_cells_path_ops"),
    ],
    ids=["text", "type"],
)
async def test_a_rare_term_goes_to_its_gin_index(
    crowd: UUID, query: SearchQuery, index: str
) -> None:
    nodes = await analyzed(crowd, query)
    used = {n.get("Index Name") for n in nodes if n.get("Actual Loops", 0) > 0}
    assert index in used, used
    # The walk gave up after its probe.
    assert rows_read(nodes, "notebooks") <= 2 * store.PROBE + store.WINDOW
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"]
