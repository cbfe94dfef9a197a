"""The database keeps SPEC §3's revision rule for writers that do not (the admin, plain SQL).

The ``notebooks_bump_revision`` trigger raises ``revision`` by one (and
``updated_at``) when name, cells or db_conn_string change in an UPDATE that
left the revision alone; the REST service bumps the revision itself, so its
mutations still raise it by exactly one, and a writer that sets the revision
(the legacy importer) keeps the value it set.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from app.database import connection
from app.notebooks.tables import Notebook
from app.users.tables import User
from tests.helpers import new_user_headers, unique_email

if TYPE_CHECKING:
    import httpx


async def new_notebook(client: Any) -> str:
    """A notebook row written directly (revision 0), owned by a fresh user."""
    assert client is not None  # the app (and so the pool) is up
    owner = await User.insert(User(email=unique_email("trigger"))).returning(User.id)
    notebook_id = str(uuid.uuid4())
    async with connection() as conn:
        await conn.execute(
            "INSERT INTO notebooks (id, user_id, name, kind, cells, updated_at) "
            "VALUES ($1, $2, 'start', 'user', '[]'::jsonb, now() - interval '1 hour')",
            notebook_id,
            owner[0]["id"],
        )
    return notebook_id


async def state(notebook_id: str) -> dict[str, Any]:
    async with connection() as conn:
        row = await conn.fetchrow(
            "SELECT revision, updated_at, name, cells::text AS cells FROM notebooks WHERE id = $1",
            notebook_id,
        )
    assert row is not None
    return dict(row)


@pytest.mark.parametrize(
    "assignment",
    [
        "name = 'renamed'",
        "name = NULL",
        'cells = \'[{"id": "c1", "type": "python", "code": "x = 1"}]\'::jsonb',
        "db_conn_string = 'gAAAAAtoken'",
    ],
)
async def test_a_plain_update_of_content_raises_the_revision_by_one(
    client: httpx.AsyncClient, assignment: str
) -> None:
    notebook_id = await new_notebook(client)
    before = await state(notebook_id)
    async with connection() as conn:
        await conn.execute(f"UPDATE notebooks SET {assignment} WHERE id = $1", notebook_id)
    after = await state(notebook_id)
    assert after["revision"] == before["revision"] + 1
    assert after["updated_at"] > before["updated_at"]


@pytest.mark.parametrize(
    "assignment",
    [
        "name = 'start'",  # the same value: no change
        "cells = '[]'::jsonb",
        "demo_version = 3",  # not part of the rule
        "kind = 'demo'",
        "updated_at = now()",
    ],
)
async def test_an_update_that_changes_no_content_leaves_the_revision(
    client: httpx.AsyncClient, assignment: str
) -> None:
    notebook_id = await new_notebook(client)
    before = await state(notebook_id)
    async with connection() as conn:
        await conn.execute(f"UPDATE notebooks SET {assignment} WHERE id = $1", notebook_id)
    assert (await state(notebook_id))["revision"] == before["revision"]


async def test_a_writer_that_sets_the_revision_keeps_it(client: httpx.AsyncClient) -> None:
    """The service's own ``revision + 1`` and the importer's explicit value are not bumped again."""
    notebook_id = await new_notebook(client)
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET revision = revision + 1, name = 'one', updated_at = now() "
            "WHERE id = $1",
            notebook_id,
        )
        assert (await state(notebook_id))["revision"] == 1
        await conn.execute(
            "UPDATE notebooks SET revision = 7, name = 'seven' WHERE id = $1", notebook_id
        )
        assert (await state(notebook_id))["revision"] == 7


async def test_piccolo_updates_are_bumped_like_the_admins(client: httpx.AsyncClient) -> None:
    """The admin writes through Piccolo's ``update``, which knows nothing of revisions."""
    notebook_id = await new_notebook(client)
    await Notebook.update({Notebook.name: "via piccolo"}).where(Notebook.id == notebook_id)
    assert (await state(notebook_id))["revision"] == 1
    await Notebook.update({Notebook.name: "via piccolo"}).where(Notebook.id == notebook_id)
    assert (await state(notebook_id))["revision"] == 1


async def test_every_rest_mutation_still_raises_the_revision_by_exactly_one(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user_headers(client)
    created = await client.post("/notebooks", json={"name": "rest"}, headers=headers)
    notebook_id = created.json()["notebook_id"]
    url = f"/notebooks/{notebook_id}"

    async def revision() -> int:
        value: int = (await client.get(url, headers=headers)).json()["revision"]
        return value

    start = await revision()
    cell = await client.post(f"{url}/cells", json={"type": "python"}, headers=headers)
    cell_id = cell.json()["cell"]["id"]
    steps = [
        ("PUT", f"{url}/name", {"name": "renamed"}),
        ("PUT", f"{url}/name", {"name": "renamed"}),  # same name: still one change
        ("PUT", f"{url}/db", {"connection_string": "postgresql://u:p@h/d"}),
        ("PUT", f"{url}/cells/{cell_id}", {"code": "x = 1"}),
        ("POST", f"{url}/cells/{cell_id}/move", {"index": 0}),
        ("DELETE", f"{url}/cells/{cell_id}", None),
    ]
    expected = start + 1
    assert await revision() == expected
    for method, path, body in steps:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code == 200, (path, response.text)
        expected += 1
        assert response.json()["revision"] == expected, path
        assert await revision() == expected, path


async def test_concurrent_plain_updates_each_count(client: httpx.AsyncClient) -> None:
    """Row locks serialise the updates; the trigger sees each committed revision."""
    notebook_id = await new_notebook(client)

    async def rename(i: int) -> None:
        async with connection() as conn:
            await conn.execute("UPDATE notebooks SET name = $2 WHERE id = $1", notebook_id, f"n{i}")

    await asyncio.gather(*(rename(i) for i in range(5)))
    assert (await state(notebook_id))["revision"] == 5
