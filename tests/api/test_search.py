"""SPEC §6 over HTTP: relevance, filters, ranking, snippets, isolation, hostile input.

Every test works with fresh users, so the exact-set assertions ("type=sql finds
exactly these notebooks") only ever see the notebooks the test made.  The
no-trigram fallback runs the same service with its trigram flag off.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest

from app.database import QueryCounter, connection
from app.search.schemas import SearchQuery
from app.search.services import MAX_MATCHES, SearchService
from tests.conftest import REPLICA_PAIR
from tests.helpers import new_user_headers

# -- helpers -------------------------------------------------------------------------------


async def make_notebook(
    client: Any, headers: dict[str, str], name: str, *cells: tuple[str, str]
) -> tuple[str, list[str]]:
    """A notebook holding exactly ``cells`` ((type, code) pairs); returns its id and cell ids."""
    response = await client.post("/notebooks", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.text
    notebook_id: str = response.json()["notebook_id"]
    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    blank = response.json()["cells"][0]["id"]
    cell_ids = []
    for cell_type, code in cells:
        response = await client.post(
            f"/notebooks/{notebook_id}/cells",
            json={"type": cell_type, "code": code},
            headers=headers,
        )
        assert response.status_code == 201, response.text
        cell_ids.append(response.json()["cell"]["id"])
    response = await client.delete(f"/notebooks/{notebook_id}/cells/{blank}", headers=headers)
    assert response.status_code == 200, response.text
    return notebook_id, cell_ids


async def search(client: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/notebooks/search", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"results", "next_cursor"}
    results: list[dict[str, Any]] = body["results"]
    for result in results:
        assert set(result) == {"notebook_id", "name", "rank", "matches"}
        for match in result["matches"]:
            assert set(match) == {"cell_id", "snippet"}
    return results


def ids(results: list[dict[str, Any]]) -> list[str]:
    return [result["notebook_id"] for result in results]


def by_id(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {result["notebook_id"]: result for result in results}


async def user_id(client: Any, headers: dict[str, str]) -> UUID:
    response = await client.get("/me", headers=headers)
    assert response.status_code == 200, response.text
    return UUID(response.json()["id"])


async def without_trigram(
    client: Any, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    """The same search through a service that believes the server has no pg_trgm."""
    found = await SearchService(trigram=False).search(
        await user_id(client, headers), SearchQuery(**params)
    )
    return [
        {"notebook_id": result.notebook_id, "name": result.name, "rank": result.rank}
        for result in found.results
    ]


def assert_bad_field(response: Any, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body.get("field") == field, body
    assert field in body["detail"], body


REVENUE = 'revenue_by_region = sales.groupby("region")["amount"].sum()'


# -- routing -------------------------------------------------------------------------------


async def test_search_route_is_not_taken_for_a_notebook_id(client: Any) -> None:
    headers = await new_user_headers(client)
    response = await client.get("/notebooks/search", headers=headers)
    assert_bad_field(response, "q")  # not 404 "notebook not found"
    assert await search(client, headers, q="anything") == []


async def test_search_needs_a_token(client: Any) -> None:
    response = await client.get("/notebooks/search", params={"q": "revenue"})
    assert response.status_code == 401


# -- relevance -----------------------------------------------------------------------------


async def test_identifier_is_found_by_itself_and_by_its_words(client: Any) -> None:
    headers = await new_user_headers(client)
    revenue, (cell,) = await make_notebook(client, headers, "Q3", ("python", REVENUE))
    await make_notebook(client, headers, "other", ("python", "costs = load()"))

    for q, highlighted in [
        ("revenue_by_region", "<<revenue>>_<<by>>_<<region>>"),
        ("revenue", "<<revenue>>_by_region"),
        ("REVENUE_BY_REGION", "<<revenue>>_<<by>>_<<region>>"),
        ("region", "revenue_by_<<region>>"),
    ]:
        results = await search(client, headers, q=q)
        assert ids(results) == [revenue], q
        assert [m["cell_id"] for m in results[0]["matches"]] == [cell]
        assert highlighted in results[0]["matches"][0]["snippet"], q
        assert results[0]["rank"] > 0


async def test_words_in_any_order_and_web_search_syntax(client: Any) -> None:
    headers = await new_user_headers(client)
    both, _ = await make_notebook(client, headers, "a", ("python", "churn = predict(model, x)"))
    churn_only, _ = await make_notebook(client, headers, "b", ("python", "churn = 1"))

    assert ids(await search(client, headers, q="model churn")) == [both]
    assert ids(await search(client, headers, q="churn -model")) == [churn_only]
    assert set(ids(await search(client, headers, q="model or churn"))) == {both, churn_only}
    assert ids(await search(client, headers, q='"churn = predict"')) == [both]


async def test_dotted_names(client: Any) -> None:
    """The simple parser keeps ``model.predict`` as one token; substring search finds its parts."""
    headers = await new_user_headers(client)
    notebook_id, _ = await make_notebook(client, headers, "a", ("python", "y = model.predict(x)"))
    assert ids(await search(client, headers, q="model.predict")) == [notebook_id]
    assert ids(await search(client, headers, q="predict")) == [notebook_id]
    assert await without_trigram(client, headers, q="predict") == []


async def test_name_matches_with_empty_matches(client: Any) -> None:
    headers = await new_user_headers(client)
    notebook_id, _ = await make_notebook(client, headers, "Quarterly forecast", ("python", "x = 1"))
    results = await search(client, headers, q="forecast")
    assert ids(results) == [notebook_id]
    assert results[0]["name"] == "Quarterly forecast"
    assert results[0]["matches"] == []


async def test_substring_finds_part_of_an_identifier_with_a_window_snippet(client: Any) -> None:
    headers = await new_user_headers(client)
    notebook_id, (cell,) = await make_notebook(client, headers, "n", ("python", REVENUE))

    results = await search(client, headers, q="venue_by")
    assert ids(results) == [notebook_id]
    assert results[0]["matches"] == [
        {"cell_id": cell, "snippet": 're<<venue_by>>_region = sales.groupby("regio…'}
    ]
    assert ids(await search(client, headers, q="VENUE")) == [notebook_id]  # any case
    named, _ = await make_notebook(client, headers, "Forecasting", ("python", "x = 1"))
    assert ids(await search(client, headers, q="ecast")) == [named]  # names too


async def test_type_sql_finds_exactly_the_notebooks_with_sql_cells(client: Any) -> None:
    headers = await new_user_headers(client)
    sql_only, (query_cell,) = await make_notebook(
        client, headers, "s", ("sql", "SELECT region, sum(amount) FROM sales GROUP BY 1")
    )
    await make_notebook(client, headers, "p", ("python", "select = 'SELECT 1'"))
    mixed, (_, mixed_sql, _) = await make_notebook(
        client,
        headers,
        "m",
        ("python", "x = 10"),
        ("sql", "SELECT * FROM t WHERE v > {x}"),
        ("markdown", "# notes"),
    )

    results = await search(client, headers, type="sql")
    assert set(ids(results)) == {sql_only, mixed}
    assert {r["notebook_id"]: [m["cell_id"] for m in r["matches"]] for r in results} == {
        sql_only: [query_cell],
        mixed: [mixed_sql],
    }
    assert by_id(results)[mixed]["matches"][0]["snippet"] == "SELECT * FROM t WHERE v > {x}"
    assert ids(await search(client, headers, type="markdown")) == [mixed]
    assert await search(client, headers, type="raw") == []


async def test_writes_df_finds_exactly_the_notebooks_whose_cells_write_df(client: Any) -> None:
    headers = await new_user_headers(client)
    assigns, (writer, _) = await make_notebook(
        client,
        headers,
        "a",
        ("python", "import pandas as pd\ndf = pd.read_csv('x.csv')"),
        ("python", "df.head()"),
    )
    await make_notebook(client, headers, "reads only", ("python", "summary = df.describe()"))
    await make_notebook(client, headers, "sql", ("sql", "SELECT * FROM df"))
    loops, (loop_cell,) = await make_notebook(
        client, headers, "loop", ("python", "for df in frames:\n    print(df)")
    )
    await make_notebook(client, headers, "similar", ("python", "df2 = 1\ndfs = []"))

    results = await search(client, headers, writes="df")
    assert set(ids(results)) == {assigns, loops}
    assert by_id(results)[assigns]["matches"][0]["cell_id"] == writer
    assert [m["cell_id"] for m in by_id(results)[loops]["matches"]] == [loop_cell]

    # Filters describe one cell: a python cell writing df; sql cells write nothing.
    assert set(ids(await search(client, headers, writes="df", type="python"))) == {assigns, loops}
    assert await search(client, headers, writes="df", type="sql") == []


async def test_text_and_filters_narrow_each_other(client: Any) -> None:
    headers = await new_user_headers(client)
    both, (_, sql_cell) = await make_notebook(
        client,
        headers,
        "both",
        ("python", "revenue = 1"),
        ("sql", "SELECT revenue FROM sales"),
    )
    await make_notebook(client, headers, "python", ("python", "revenue = 2"))
    await make_notebook(client, headers, "other sql", ("sql", "SELECT cost FROM sales"))

    results = await search(client, headers, q="revenue", type="sql")
    assert ids(results) == [both]
    assert [m["cell_id"] for m in results[0]["matches"]] == [sql_cell]


async def test_ranking_name_and_identifier_hits_first(client: Any) -> None:
    headers = await new_user_headers(client)
    words_only, _ = await make_notebook(
        client, headers, "a", ("python", "# churn by region, churn by month")
    )
    identifier, _ = await make_notebook(client, headers, "b", ("python", "churn_by_region = f()"))
    named, _ = await make_notebook(client, headers, "Churn by region", ("python", "x = 1"))

    results = await search(client, headers, q="churn_by_region")
    assert ids(results) == [named, identifier, words_only]
    ranks = [result["rank"] for result in results]
    assert ranks == sorted(ranks, reverse=True)
    assert ranks[-1] > 0


async def test_limit_and_matches_per_notebook_are_capped(client: Any) -> None:
    headers = await new_user_headers(client)
    busy, cells = await make_notebook(
        client, headers, "busy", *[("python", f"metric_{i} = ratio * {i}") for i in range(8)]
    )
    for index in range(3):
        await make_notebook(client, headers, f"n{index}", ("python", "ratio = 0.5"))

    results = await search(client, headers, q="ratio")
    assert len(results) == 4
    assert [m["cell_id"] for m in by_id(results)[busy]["matches"]] == cells[:MAX_MATCHES]
    assert len(await search(client, headers, q="ratio", limit=2)) == 2
    assert len(await search(client, headers, q="ratio", limit=1)) == 1


async def test_one_statement_however_many_results(client: Any) -> None:
    headers = await new_user_headers(client)
    await make_notebook(client, headers, "one", ("python", "alpha = 1"))
    for index in range(12):
        await make_notebook(
            client, headers, f"n{index}", ("python", "beta = 1"), ("sql", "SELECT beta")
        )

    # With a standby (--with-replica): counted once it has replayed everything, with the
    # token 0/0 it has passed, so that no read asks it how far it is or falls back.
    passed = {**headers, "Cellar-Consistency": "0/0"}

    async def statements(**params: Any) -> tuple[int, int]:
        if REPLICA_PAIR:
            await REPLICA_PAIR[0].caught_up()
        for _ in range(3):
            await asyncio.sleep(0)  # let the query logger catch up
        before = QueryCounter.total
        found = await search(client, passed, **params)
        for _ in range(3):
            await asyncio.sleep(0)
        return QueryCounter.total - before, len(found)

    await statements(q="alpha")  # warm up: the service's one-off trigram check
    small, large = await statements(q="alpha"), await statements(q="beta")
    assert small[1] == 1 and large[1] == 12
    assert small[0] == large[0]
    assert small[0] == (await statements(type="sql"))[0]


# -- isolation -----------------------------------------------------------------------------


async def test_only_the_callers_notebooks_on_every_path(client: Any) -> None:
    alice, bob = await new_user_headers(client), await new_user_headers(client)
    code = 'revenue_by_region = df.groupby("region").sum()'
    alice_ids = {
        (await make_notebook(client, alice, "revenue report", ("python", code)))[0],
        (await make_notebook(client, alice, "q", ("sql", "SELECT revenue FROM t")))[0],
    }
    bob_ids = {
        (await make_notebook(client, bob, "revenue report", ("python", code)))[0],
        (await make_notebook(client, bob, "q", ("sql", "SELECT revenue FROM t")))[0],
    }
    paths: list[dict[str, Any]] = [
        {"q": "revenue"},  # full text
        {"q": "revenue_by_region"},  # full text + substring
        {"q": "venue"},  # substring only
        {"q": "q"},  # too short for trigrams: full text only
        {"type": "sql"},
        {"writes": "revenue_by_region"},
        {"q": "revenue", "type": "sql"},
        {"q": "-nothing"},  # negation only: everything but, still only mine
    ]
    for params in paths:
        for headers, mine, theirs in ((alice, alice_ids, bob_ids), (bob, bob_ids, alice_ids)):
            found = set(ids(await search(client, headers, **params)))
            assert found, params
            assert found <= mine, params
            assert not found & theirs, params
            found = set(ids(await without_trigram(client, headers, **params)))
            assert not found & theirs, params


# -- no pg_trgm ----------------------------------------------------------------------------


async def test_without_trigram_indexes_search_is_full_text_only(client: Any) -> None:
    headers = await new_user_headers(client)
    notebook_id, _ = await make_notebook(client, headers, "n", ("python", REVENUE))
    uid = await user_id(client, headers)

    fallback = SearchService(trigram=False)
    for q in ("revenue_by_region", "revenue"):
        assert ids(await without_trigram(client, headers, q=q)) == [notebook_id]
    assert await without_trigram(client, headers, q="venue_by") == []
    assert ids(await without_trigram(client, headers, writes="revenue_by_region")) == [notebook_id]
    statement = await fallback.statement(uid, SearchQuery(q="revenue_by_region"))
    assert "ILIKE" not in statement.sql

    # The app's own service found pg_trgm and its indexes, as the database says.
    async with connection() as conn:
        has_trgm = await conn.fetchval(
            "SELECT count(*) = 1 FROM pg_extension WHERE extname = 'pg_trgm'"
        )
    assert await SearchService().trigram_available() is has_trgm
    assert ids(await search(client, headers, q="venue_by")) == ([notebook_id] if has_trgm else [])


# -- whatever a user types -----------------------------------------------------------------


HOSTILE = [
    '"',
    "'",
    "\\",
    "''; DROP TABLE notebooks; --",
    'x"); DROP TABLE users; --',
    "a & b | !c",
    "<->",
    "revenue:*",
    "revenue:A",
    "!!!",
    "()",
    "-",
    "or",
    '"unterminated phrase',
    "%",
    "_",
    "%%%",
    "___",
    "100%",
    "a\\",
    "\\\\\\",
    "$1",
    "{x}",
    "ü" * 500,
    "revenue " * 62,
    "x" * 500,
    "\t\n revenue \r\n",
    "\U0001f600 emoji",
]


@pytest.fixture(scope="module")
async def one_user(client: Any) -> dict[str, str]:
    """One user with one notebook, for tests that only read."""
    headers = await new_user_headers(client)
    await make_notebook(client, headers, "n", ("python", REVENUE))
    return headers


@pytest.mark.parametrize("q", HOSTILE)
async def test_any_q_a_user_can_type_is_safe(client: Any, one_user: dict[str, str], q: str) -> None:
    results = await search(client, one_user, q=q)
    assert isinstance(results, list)
    async with connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM notebooks") > 0


@pytest.mark.parametrize("raw", ["%FF%FE", "%ED%A0%80", "a&q=b", "%F0%9F%98%80" * 500])
async def test_raw_query_strings_are_safe(client: Any, one_user: dict[str, str], raw: str) -> None:
    response = await client.get(f"/notebooks/search?q={raw}", headers=one_user)
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [], "next_cursor": None}


async def test_like_wildcards_and_backslashes_are_literal(client: Any) -> None:
    headers = await new_user_headers(client)
    await make_notebook(client, headers, "a", ("python", 'token = "abc123def"'))
    await make_notebook(client, headers, "b", ("python", 'token = "abcXdef"'))
    backslash, _ = await make_notebook(client, headers, "c", ("python", 'p = r"data\\subdir"'))
    percent, _ = await make_notebook(client, headers, "d", ("python", 'label = "100%_done"'))
    await make_notebook(client, headers, "e", ("python", 'label = "100 percent done"'))

    assert await search(client, headers, q="abc%def") == []  # % is not a wildcard
    assert await search(client, headers, q="abc_def") == []  # _ is not a wildcard
    assert ids(await search(client, headers, q="ata\\subd")) == [backslash]
    assert ids(await search(client, headers, q="100%_done")) == [percent]


async def test_q_of_500_characters_is_accepted_and_501_is_400(client: Any) -> None:
    headers = await new_user_headers(client)
    assert await search(client, headers, q="r" * 500) == []
    response = await client.get("/notebooks/search", params={"q": "r" * 501}, headers=headers)
    assert_bad_field(response, "q")
    response = await client.get("/notebooks/search", params={"q": "r" * 5000}, headers=headers)
    assert_bad_field(response, "q")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "", "type": "", "writes": ""}, "type"),
        ({"q": "", "writes": ""}, "q"),
        ({"q": "a\x00b"}, "q"),
        ({"type": "python3"}, "type"),
        ({"type": "SQL"}, "type"),
        ({"writes": "not a name"}, "writes"),
        ({"writes": "df.x"}, "writes"),
        ({"writes": "1df"}, "writes"),
        ({"writes": "x" * 256}, "writes"),
        ({"q": "x", "limit": 0}, "limit"),
        ({"q": "x", "limit": 101}, "limit"),
        ({"q": "x", "limit": -1}, "limit"),
        ({"q": "x", "limit": "ten"}, "limit"),
    ],
)
async def test_bad_search_is_400_naming_the_field(
    client: Any, one_user: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get("/notebooks/search", params=params, headers=one_user)
    assert_bad_field(response, field)


async def test_q_may_be_left_out_with_a_filter_and_limit_100_is_allowed(client: Any) -> None:
    headers = await new_user_headers(client)
    notebook_id, _ = await make_notebook(client, headers, "n", ("python", "df = 1"))
    assert ids(await search(client, headers, writes="df", limit=100)) == [notebook_id]
    assert ids(await search(client, headers, q="", writes="df")) == [notebook_id]
    assert ids(await search(client, headers, writes=" df ")) == [notebook_id]


# -- search means what it says (issue 16 item 6) -------------------------------------------


async def test_a_negation_excludes_notebooks_holding_the_term_in_any_cell(client: Any) -> None:
    headers = await new_user_headers(client)
    kmeans, _ = await make_notebook(
        client,
        headers,
        "clusters",
        ("python", "from sklearn.cluster import KMeans"),
        ("python", "import pandas as pd"),
    )
    plain, _ = await make_notebook(client, headers, "frames", ("python", "import pandas as pd"))
    named, _ = await make_notebook(client, headers, "KMeans notes", ("python", "import pandas"))
    assert set(ids(await search(client, headers, q="kmeans"))) == {kmeans, named}
    # Today's cells without KMeans no longer let their notebook through.
    assert set(ids(await search(client, headers, q="pandas -KMeans"))) == {plain}
    # Negations only: every notebook of the user without the term (blank and demo too).
    found = set(ids(await search(client, headers, q="-KMeans", limit=100)))
    assert plain in found and kmeans not in found and named not in found
    # The snippets are the cells that match the positive part.
    (result,) = await search(client, headers, q="pandas -KMeans")
    assert [m["snippet"] for m in result["matches"]] == ["import <<pandas>>"]
    # A hyphen inside a word is not a negation.
    assert await search(client, headers, q="scikit-learn") == []


async def test_emoji_and_symbols_find_the_cells_that_hold_them(client: Any) -> None:
    headers = await new_user_headers(client)
    wave, (cell,) = await make_notebook(client, headers, "w", ("python", 'print("👋 hello")'))
    await make_notebook(client, headers, "n", ("python", 'print("hello")'))
    (result,) = await search(client, headers, q="👋")
    assert result["notebook_id"] == wave
    # The snippet's end depends on the server's locale: under LC_CTYPE=C PostgreSQL's text
    # parser takes non-ASCII characters for letters, so 👋 is a word there and the snippet
    # is ts_headline's (which drops the trailing punctuation); elsewhere it is the
    # substring's window.  Either way the cell is found and the emoji marked.
    (match,) = result["matches"]
    assert match["cell_id"] == cell
    assert match["snippet"] in ('print("<<👋>> hello")', 'print("<<👋>> hello')
    percent, _ = await make_notebook(client, headers, "p", ("python", "x = 10 %% 3"))
    assert ids(await search(client, headers, q="%%")) == [percent]
    assert await search(client, headers, q="🦄") == []


async def test_punctuation_is_ignored_by_words_and_kept_by_substrings(client: Any) -> None:
    """docs/paging.md "Punctuation": ``%matplotlib`` finds matplotlib, the magic first."""
    headers = await new_user_headers(client)
    magic, _ = await make_notebook(client, headers, "a", ("python", "%matplotlib inline"))
    imported, _ = await make_notebook(client, headers, "b", ("python", "import matplotlib"))
    found = await search(client, headers, q="%matplotlib")
    assert set(ids(found)) == {magic, imported}
    if await SearchService().trigram_available():
        assert ids(found)[0] == magic  # as typed, with its %: the substring's bonus
