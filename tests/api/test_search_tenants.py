"""Search windows of a heavy user in a shared database read a window, not all their notebooks.

Its own module: the 50,000-notebook crowd of test_search_pages would make every
user look heavy to the planner, which is exactly the case this is not about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import pytest

from app.database import connection
from app.search.schemas import SearchQuery
from app.store import search as store
from tests.api.test_notebooks import fresh_user_headers
from tests.api.test_search_pages import analyze, analyzed, forget, me, rows_read, seed

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


HEAVY, OTHERS, FEW = 3_000, 300, 40


@pytest.fixture(scope="module")
async def heavy(client: Any) -> AsyncIterator[UUID]:
    """A user with HEAVY notebooks among OTHERS users of FEW each, the way a shared
    database looks.  A plan made for any user (a generic plan) expects the average
    user's share, a few notebooks in the window's range, and chose to read all of
    the user's notebooks through a bitmap and sort them: every search of a heavy user
    then read them all (9,500 rows, 40 ms a window, in the benchmark's data)."""
    headers = await fresh_user_headers(client)
    user_id = await me(client, headers)
    others = [uuid4() for _ in range(OTHERS)]
    async with connection() as conn:
        await conn.execute(
            "INSERT INTO users (id, email, provisioned_at)"
            " SELECT u, 'tenant-' || u || '@example.com', now() FROM unnest($1::uuid[]) AS u",
            others,
        )
    # Interleaved, as users write: the heavy user's notebooks spread over the table's
    # pages, so reading them in index order costs a page each (what made the bitmap win).
    prefixes = []
    for other in others:
        prefixes.append(await seed(user_id, HEAVY // OTHERS))
        prefixes.append(await seed(other, FEW))
    await analyze()
    try:
        yield user_id
    finally:
        await forget(prefixes)
        async with connection() as conn:
            await conn.execute("DELETE FROM users WHERE id = ANY($1::uuid[])", others)


@pytest.mark.parametrize(
    "query",
    [SearchQuery(q="common_term"), SearchQuery(writes="common_term")],
    ids=["text", "writes"],
)
async def test_a_heavy_user_among_many_reads_a_window_not_all_their_notebooks(
    heavy: UUID, query: SearchQuery
) -> None:
    nodes = await analyzed(heavy, query)
    assert "notebooks_user_updated_id" in {n.get("Index Name") for n in nodes}
    assert rows_read(nodes, "notebooks") <= 4 * store.VISITS < HEAVY
