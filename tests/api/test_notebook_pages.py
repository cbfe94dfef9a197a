"""``GET /notebooks?limit=&cursor=`` (SPEC §3, issue 20): keyset pages of the list.

A walk gives every notebook once, newest first, whatever the page size; a
notebook edited during the walk is given again after its edit (never lost),
one not edited exactly once; a new one is given too.  Bad limits and cursors
are 400s naming the parameter.  The plan of a page is one range of the
``notebooks_user_updated_id`` index (EXPLAIN on 6,000 notebooks, not timings).
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from app.database import connection
from app.store import notebooks as store
from tests.api.test_notebooks import assert_bad_field, create_notebook, fresh_user_headers
from tests.api.test_search_explain import indexes_used, plan_nodes

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


async def page(client: Any, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = await client.get("/notebooks", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"notebooks", "next_cursor"}
    return body


async def walk(
    client: Any, headers: dict[str, str], limit: int, between: Any = None
) -> list[dict[str, Any]]:
    """Every page, in order; ``between(n)`` runs after page n (0-based)."""
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    for n in range(10_000):
        body = await page(client, headers, **params)
        assert len(body["notebooks"]) <= limit
        seen.extend(body["notebooks"])
        if body["next_cursor"] is None:
            return seen
        assert body["notebooks"], "a page before the last is never empty"
        params["cursor"] = body["next_cursor"]
        if between is not None:
            await between(n)
    raise AssertionError("the walk did not end")


async def user_with_notebooks(client: Any, count: int) -> tuple[dict[str, str], list[str]]:
    headers = await fresh_user_headers(client)
    ids = [await create_notebook(client, headers, f"nb {i}") for i in range(count)]
    return headers, ids


async def test_pages_give_the_whole_list_in_order(client: Any) -> None:
    headers, _ = await user_with_notebooks(client, 9)
    whole = (await page(client, headers))["notebooks"]
    assert len(whole) == 11  # and the blank and demo, provisioned by the first call
    for limit in (1, 2, 3, 4, 11, 12, 1000):
        assert await walk(client, headers, limit) == whole, limit


async def test_last_page_has_a_null_cursor_and_a_full_last_page_is_exact(client: Any) -> None:
    headers, _ = await user_with_notebooks(client, 2)  # 4 notebooks with blank and demo
    first = await page(client, headers, limit=2)
    assert len(first["notebooks"]) == 2 and isinstance(first["next_cursor"], str)
    second = await page(client, headers, limit=2, cursor=first["next_cursor"])
    assert len(second["notebooks"]) == 2
    assert second["next_cursor"] is None  # no empty page after a full last one


async def test_the_first_paged_call_provisions(client: Any) -> None:
    headers = await fresh_user_headers(client)
    first = await page(client, headers, limit=1)
    assert len(first["notebooks"]) == 1 and first["next_cursor"] is not None
    second = await page(client, headers, limit=1, cursor=first["next_cursor"])
    assert second["next_cursor"] is None
    kinds = {nb["kind"] for nb in first["notebooks"] + second["notebooks"]}
    assert kinds == {"blank", "demo"}


async def test_a_cursor_alone_pages_by_the_default_size(client: Any) -> None:
    headers, _ = await user_with_notebooks(client, 3)
    first = await page(client, headers, limit=1)
    rest = await page(client, headers, cursor=first["next_cursor"])
    assert len(rest["notebooks"]) == 4 and rest["next_cursor"] is None


async def test_edits_during_the_walk_lose_nothing_and_repeat_only_the_edited(
    client: Any,
) -> None:
    headers, _ = await user_with_notebooks(client, 14)
    before = {nb["id"]: nb for nb in (await page(client, headers))["notebooks"]}
    oldest_first = sorted(before.values(), key=lambda nb: (nb["updated_at"], nb["id"]))
    edits: dict[str, list[int]] = {}  # notebook -> how many rows the walk had given by then
    created: list[str] = []
    seen: list[dict[str, Any]] = []

    async def edit(notebook_id: str) -> None:
        response = await client.put(
            f"/notebooks/{notebook_id}/name", json={"name": f"edit {len(seen)}"}, headers=headers
        )
        assert response.status_code == 200, response.text
        edits.setdefault(notebook_id, []).append(len(seen))

    params: dict[str, Any] = {"limit": 4}
    pages = 0
    while True:
        body = await page(client, headers, **params)
        seen.extend(body["notebooks"])
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
        pages += 1
        if pages == 1:
            await edit(oldest_first[0]["id"])  # not reached yet: moves to the front
            await edit(oldest_first[-1]["id"])  # the newest, seen already
        if pages == 2:
            created.append(await create_notebook(client, headers, "new"))
            await edit(oldest_first[1]["id"])
            await edit(oldest_first[0]["id"])  # edited twice
    positions: dict[str, list[int]] = {}
    for i, nb in enumerate(seen):
        positions.setdefault(nb["id"], []).append(i)
    # Nothing lost: every notebook there was, and the new one.
    assert set(positions) == set(before) | set(created)
    for notebook_id, shown in positions.items():
        if notebook_id not in edits:
            assert len(shown) == 1, (notebook_id, shown)  # not edited: exactly once
            continue
        # Given again only after an edit: each showing but the first follows a new edit.
        for earlier, later in itertools.pairwise(shown):
            assert any(earlier < at <= later for at in edits[notebook_id]), (shown, edits)
        # The last showing is the notebook as last edited.
        assert seen[shown[-1]]["name"] == f"edit {edits[notebook_id][-1]}"
    # The newest notebook, seen on the first page then edited, comes once more, edited.
    assert len(positions[oldest_first[-1]["id"]]) == 2


async def test_bad_limit_is_400_naming_it(client: Any) -> None:
    headers = await fresh_user_headers(client)
    for limit in ("0", "1001", "-1", "ten", "1.5"):
        response = await client.get("/notebooks", params={"limit": limit}, headers=headers)
        assert_bad_field(response, "limit")
    assert len((await page(client, headers, limit=1000))["notebooks"]) == 2


async def test_bad_cursors_are_400_naming_it(client: Any) -> None:
    headers, _ = await user_with_notebooks(client, 3)
    cursor = (await page(client, headers, limit=1))["next_cursor"]
    payload, mac = cursor.split(".")
    position = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    position[3] = "another-notebook"
    forged = base64.urlsafe_b64encode(json.dumps(position).encode()).rstrip(b"=").decode()
    other = await fresh_user_headers(client)
    await page(client, other)
    for bad, who in [
        (f"{forged}.{mac}", headers),  # edited by hand
        (cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB"), headers),  # MAC changed
        (cursor, other),  # another user's
        ("", headers),
        ("not a cursor", headers),
        ("a.b.c", headers),
        ("x" * 2000, headers),
        ("%%%.%%%", headers),
    ]:
        response = await client.get("/notebooks", params={"limit": 1, "cursor": bad}, headers=who)
        assert_bad_field(response, "cursor")


# -- EXPLAIN: one index range per page ------------------------------------------------------

MINE = 4_000
OTHERS = 2_000

SEED = """
INSERT INTO notebooks (id, user_id, name, kind, cells, created_at, updated_at)
SELECT $2 || n, CASE WHEN n <= $3 THEN $1::uuid ELSE $4::uuid END, 'nb ' || n, 'user',
       '[{"id": "c", "type": "python", "code": "x = 1", "reads": [], "writes": ["x"],
          "metadata": {}}]'::jsonb,
       now() - n * interval '1 second', now() - n * interval '1 second'
  FROM generate_series(1, $5::int) AS n
"""


@pytest.fixture(scope="module")
async def seeded(client: Any) -> AsyncIterator[UUID]:
    headers = await fresh_user_headers(client)
    user_id = UUID((await client.get("/me", headers=headers)).json()["id"])
    other_headers = await fresh_user_headers(client)
    other_id = UUID((await client.get("/me", headers=other_headers)).json()["id"])
    prefix = f"page-{secrets.token_hex(4)}-"
    async with connection() as conn:
        await conn.execute(SEED, user_id, prefix, MINE, other_id, MINE + OTHERS)
        await conn.execute("VACUUM (ANALYZE) notebooks")
    try:
        yield user_id
    finally:
        async with connection() as conn:
            await conn.execute("DELETE FROM notebooks WHERE id LIKE $1 || '%'", prefix)


async def explain_page(user_id: UUID, at: store.Position, limit: int) -> list[dict[str, Any]]:
    """The plan of ``store.page`` for this position, parameters bound as it binds them."""
    nowhere = (datetime.min.replace(tzinfo=UTC), "")
    here = (at.updated_at, at.id)
    first, second = (here, nowhere) if at.phase == 1 else (nowhere, here)
    async with connection() as conn:
        raw = await conn.fetchval(
            "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) " + store.PAGE,
            user_id,
            at.horizon,
            *first,
            *second,
            limit + 1,
        )
    return list(plan_nodes(json.loads(raw)[0]["Plan"]))


async def test_a_page_deep_in_the_list_is_one_index_range(seeded: UUID) -> None:
    async with connection() as conn:
        horizon = await conn.fetchval("SELECT now()")
        middle = await conn.fetchrow(
            "SELECT updated_at, id FROM notebooks WHERE user_id = $1"
            " ORDER BY updated_at DESC, id DESC OFFSET 2500 LIMIT 1",
            seeded,
        )
    for at in (
        store.START,
        store.Position(horizon, 1, middle["updated_at"], middle["id"]),
        store.Position(horizon, 2, middle["updated_at"], middle["id"]),
    ):
        nodes = await explain_page(seeded, at, 50)
        assert indexes_used(nodes) >= {"notebooks_user_updated_id"}, nodes
        assert not [n for n in nodes if n["Node Type"] in ("Seq Scan", "Bitmap Heap Scan")]
        # The index gives the order: nothing sorts the user's notebooks.
        sorts = [n for n in nodes if n["Node Type"] == "Sort"]
        assert all(n["Plan Rows"] <= 2 * 51 for n in sorts), sorts
        scans = [n for n in nodes if n.get("Index Name") == "notebooks_user_updated_id"]
        assert all("Index Cond" in n and "user_id" in n["Index Cond"] for n in scans)
        # Each part starts where its rows are: an empty part touches the few index
        # pages of one descent, not the user's whole range (phase 2 once started at
        # the oldest notebook and read every entry before finding nothing).
        for scan in scans:
            touched = scan["Shared Hit Blocks"] + scan["Shared Read Blocks"]
            if scan["Actual Rows"] == 0:
                assert touched <= 4, (at, scan)
