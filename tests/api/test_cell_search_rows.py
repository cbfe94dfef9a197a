"""``cell_search``, the per-cell search rows the triggers derive from ``notebooks.cells``.

After every kind of write (REST routes, a direct UPDATE as an import does, a
deletion) the rows are exactly the document's (cell id, code) pairs; and an
edit of one cell rewrites that cell's row only, which is what makes a code
edit cheap (bench/RESULTS.md).
"""

from __future__ import annotations

import json
from typing import Any

from app.database import connection
from tests.api.test_notebooks import create_notebook
from tests.helpers import new_user_headers


async def _document(notebook_id: str) -> set[tuple[str, str]]:
    async with connection() as conn:
        cells = await conn.fetchval("SELECT cells FROM notebooks WHERE id = $1", notebook_id)
    return {(cell["id"], cell["code"]) for cell in json.loads(cells)}


async def _rows(notebook_id: str) -> dict[str, tuple[str, int]]:
    """cell id → (code, the row version's xmin)."""
    async with connection() as conn:
        rows = await conn.fetch(
            "SELECT cell_id, code, xmin::text::bigint AS version FROM cell_search "
            "WHERE notebook_id = $1",
            notebook_id,
        )
    return {row["cell_id"]: (row["code"], row["version"]) for row in rows}


async def _assert_in_step(notebook_id: str) -> dict[str, tuple[str, int]]:
    rows = await _rows(notebook_id)
    assert {(cell_id, code) for cell_id, (code, _) in rows.items()} == await _document(notebook_id)
    return rows


async def test_rows_follow_every_route(client: Any) -> None:
    headers = await new_user_headers(client)
    notebook_id = await create_notebook(client, headers, "indexed")
    rows = await _assert_in_step(notebook_id)
    assert len(rows) == 1  # the blank cell

    url = f"/notebooks/{notebook_id}/cells"
    added = []
    for code in ("a = 1", "b = a + 1", "print(b)"):
        response = await client.post(url, json={"type": "python", "code": code}, headers=headers)
        assert response.status_code == 201
        added.append(response.json()["cell"]["id"])
    before = await _assert_in_step(notebook_id)
    assert len(before) == 4

    response = await client.put(f"{url}/{added[1]}", json={"code": "b = a * 2"}, headers=headers)
    assert response.status_code == 200
    after = await _assert_in_step(notebook_id)
    assert after[added[1]][0] == "b = a * 2"
    # Only the edited cell's row was written: the others keep their row versions.
    assert {k: v for k, v in after.items() if k != added[1]} == {
        k: v for k, v in before.items() if k != added[1]
    }
    assert after[added[1]][1] != before[added[1]][1]

    response = await client.post(f"{url}/{added[2]}/move", json={"index": 0}, headers=headers)
    assert response.status_code == 200
    moved = await _assert_in_step(notebook_id)
    assert moved == after  # a move changes no code: no row rewritten

    response = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "renamed"}, headers=headers
    )
    assert response.status_code == 200
    assert await _assert_in_step(notebook_id) == after

    response = await client.delete(f"{url}/{added[0]}", headers=headers)
    assert response.status_code == 200
    rows = await _assert_in_step(notebook_id)
    assert added[0] not in rows

    response = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code in (200, 204)
    assert await _rows(notebook_id) == {}


async def test_rows_follow_a_whole_document_write(client: Any) -> None:
    """As the legacy import and psql write: cells replaced, added, dropped, repeated ids."""
    headers = await new_user_headers(client)
    notebook_id = await create_notebook(client, headers, "import")

    def cell(cell_id: str, code: str | None) -> dict[str, Any]:
        value: dict[str, Any] = {"id": cell_id, "type": "python", "reads": [], "writes": []}
        if code is not None:
            value["code"] = code
        return value

    async def write(cells: list[dict[str, Any]]) -> None:
        async with connection() as conn:
            await conn.execute(
                "UPDATE notebooks SET cells = $2::jsonb WHERE id = $1",
                notebook_id,
                json.dumps(cells),
            )

    async def codes() -> dict[str, str]:
        return {cell_id: code for cell_id, (code, _) in (await _rows(notebook_id)).items()}

    await write([cell("x", "x = 1"), cell("y", "y = 2"), cell("z", None)])
    assert await codes() == {"x": "x = 1", "y": "y = 2", "z": ""}  # no code: indexed as ""
    await write([cell("y", "y = 3"), cell("w", "w = y")])
    assert await codes() == {"y": "y = 3", "w": "w = y"}

    # A repeated id (the document allows it; the API never makes one): the first one counts.
    await write([cell("d", "first"), cell("d", "second")])
    assert await codes() == {"d": "first"}
    await write([])
    assert await _rows(notebook_id) == {}


async def test_inserted_notebooks_are_indexed_at_once(client: Any) -> None:
    headers = await new_user_headers(client)
    response = await client.get("/notebooks", headers=headers)  # provisions blank + demo
    demo = next(n for n in response.json()["notebooks"] if n["kind"] == "demo")
    rows = await _assert_in_step(demo["id"])
    assert len(rows) == demo["cell_count"] > 1


async def test_rows_follow_the_owner(client: Any) -> None:
    """Search keeps to the caller's rows: a notebook given to another user moves with its cells."""
    first, second = await new_user_headers(client), await new_user_headers(client)
    notebook_id = await create_notebook(client, first, "handed over")
    response = await client.post(
        f"/notebooks/{notebook_id}/cells",
        json={"type": "python", "code": "handover_marker = 1"},
        headers=first,
    )
    assert response.status_code == 201

    async def found(headers: dict[str, str]) -> list[str]:
        response = await client.get(
            "/notebooks/search", params={"q": "handover_marker"}, headers=headers
        )
        assert response.status_code == 200, response.text
        return [result["notebook_id"] for result in response.json()["results"]]

    assert await found(first) == [notebook_id]
    assert await found(second) == []
    second_id = (await client.get("/me", headers=second)).json()["id"]
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET user_id = $2 WHERE id = $1", notebook_id, second_id
        )
        owners = await conn.fetch(
            "SELECT DISTINCT user_id::text FROM cell_search WHERE notebook_id = $1", notebook_id
        )
    assert [row["user_id"] for row in owners] == [second_id]
    assert await found(first) == []
    assert await found(second) == [notebook_id]
