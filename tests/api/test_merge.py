"""SPEC §11: merge instead of conflict for a stale code edit of a cell nobody touched.

Two clients ("tabs") hold the same revision; what the second one's stale
``PUT …/cells/{cell_id}`` gets depends only on what the log says happened
to that cell since: nothing (or a move, or outputs, or other cells) → 200
``merged: true``; an update or deletion of it → 409 (412 for ``If-Match``)
with those events as ``conflicts``, and nothing changes.  The check and the
edit hold the notebook's row, so concurrent stale edits of one cell let
exactly one through, and of different cells let all through.
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.database import connection
from tests.api.test_notebooks import create_notebook, fresh_user_headers, get_notebook


async def _notebook(client: Any, cells: int = 3) -> tuple[dict[str, str], str, list[str], int]:
    """A notebook of ``cells`` cells; its cell ids and revision."""
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    for _ in range(cells - 1):
        added = await client.post(
            f"/notebooks/{notebook_id}/cells", json={"type": "python"}, headers=headers
        )
        assert added.status_code == 201
    notebook = await get_notebook(client, headers, notebook_id)
    return headers, notebook_id, [c["id"] for c in notebook["cells"]], notebook["revision"]


async def edit(
    client: Any,
    headers: dict[str, str],
    notebook_id: str,
    cell_id: str,
    code: str,
    revision: int | None = None,
    if_match: int | None = None,
) -> Any:
    body: dict[str, Any] = {"code": code}
    if revision is not None:
        body["expected_revision"] = revision
    if if_match is not None:
        headers = {**headers, "If-Match": f'"{if_match}"'}
    return await client.put(f"/notebooks/{notebook_id}/cells/{cell_id}", json=body, headers=headers)


async def codes(client: Any, headers: dict[str, str], notebook_id: str) -> dict[str, str]:
    notebook = await get_notebook(client, headers, notebook_id)
    return {c["id"]: c["code"] for c in notebook["cells"]}


async def test_an_edit_at_the_current_revision_is_not_a_merge(client: Any) -> None:
    headers, notebook_id, cells, revision = await _notebook(client)
    response = await edit(client, headers, notebook_id, cells[0], "a = 1", revision)
    assert response.status_code == 200
    assert response.json()["merged"] is False


async def test_a_stale_edit_of_an_untouched_cell_merges(client: Any) -> None:
    headers, notebook_id, (a, b, c), revision = await _notebook(client)
    first = await edit(client, headers, notebook_id, a, "a = 1", revision)
    assert first.status_code == 200
    moved = await client.post(
        f"/notebooks/{notebook_id}/cells/{b}/move", json={"index": 2}, headers=headers
    )
    assert moved.status_code == 200
    outputs = await client.put(
        f"/notebooks/{notebook_id}/cells/{b}/outputs", json={"status": "success"}, headers=headers
    )
    assert outputs.status_code == 200

    stale = await edit(client, headers, notebook_id, b, "b = a", revision)
    assert stale.status_code == 200, stale.text
    body = stale.json()
    assert body["merged"] is True
    assert body["revision"] == revision + 3
    assert body["cell"]["code"] == "b = a" and body["cell"]["reads"] == ["a"]
    assert int(stale.headers["Cellar-Seq"]) == int(outputs.headers["Cellar-Seq"]) + 1
    assert await codes(client, headers, notebook_id) == {a: "a = 1", b: "b = a", c: ""}

    # If-Match alike
    again = await edit(client, headers, notebook_id, c, "c = 3", if_match=revision)
    assert again.status_code == 200
    assert again.json()["merged"] is True


async def test_a_stale_edit_of_a_changed_cell_is_409_with_the_conflicts(client: Any) -> None:
    headers, notebook_id, (a, b, _), revision = await _notebook(client)
    first = await edit(client, headers, notebook_id, a, "a = 1", revision)
    other = await edit(client, headers, notebook_id, b, "b = 1", revision + 1)
    assert first.status_code == other.status_code == 200

    stale = await edit(client, headers, notebook_id, a, "a = 2", revision)
    assert stale.status_code == 409, stale.text
    body = stale.json()
    assert body["revision"] == revision + 2
    assert "expected_revision" in body["detail"]
    [conflict] = body["conflicts"]
    assert (conflict["op"], conflict["cell_id"], conflict["revision"]) == (
        "cell_update",
        a,
        revision + 1,
    )
    assert conflict["seq"] == int(first.headers["Cellar-Seq"])
    assert conflict["data"]["code"] == "a = 1"
    assert (await codes(client, headers, notebook_id))[a] == "a = 1"

    by_header = await edit(client, headers, notebook_id, a, "a = 2", if_match=revision)
    assert by_header.status_code == 412
    assert [e["op"] for e in by_header.json()["conflicts"]] == ["cell_update"]

    # a revision before the conflicting edit still conflicts; one after it merges
    after = await edit(client, headers, notebook_id, a, "a = 3", revision + 1)
    assert after.status_code == 200 and after.json()["merged"] is True


async def test_a_stale_edit_of_a_deleted_cell_is_409_with_the_deletion(client: Any) -> None:
    headers, notebook_id, (a, _, _), revision = await _notebook(client)
    deleted = await client.delete(f"/notebooks/{notebook_id}/cells/{a}", headers=headers)
    assert deleted.status_code == 200
    stale = await edit(client, headers, notebook_id, a, "a = 2", revision)
    assert stale.status_code == 409
    assert [e["op"] for e in stale.json()["conflicts"]] == ["cell_delete"]


async def test_a_stale_edit_of_a_cell_that_never_was_is_404(client: Any) -> None:
    headers, notebook_id, (a, _, _), revision = await _notebook(client)
    await edit(client, headers, notebook_id, a, "a = 1", revision)
    stale = await edit(client, headers, notebook_id, "no-such-cell", "x", revision)
    assert stale.status_code == 404


async def test_other_mutations_keep_the_plain_rule(client: Any) -> None:
    headers, notebook_id, (a, b, _), revision = await _notebook(client)
    await edit(client, headers, notebook_id, a, "a = 1", revision)
    base = f"/notebooks/{notebook_id}"
    refused = [
        await client.put(
            f"{base}/name", json={"name": "x", "expected_revision": revision}, headers=headers
        ),
        await client.post(
            f"{base}/cells/{b}/move",
            json={"index": 0, "expected_revision": revision},
            headers=headers,
        ),
        await client.delete(
            f"{base}/cells/{b}", params={"expected_revision": revision}, headers=headers
        ),
        await client.post(
            f"{base}/cells", json={"type": "python", "expected_revision": revision}, headers=headers
        ),
    ]
    assert [r.status_code for r in refused] == [409, 409, 409, 409]
    assert all("conflicts" not in r.json() for r in refused)


async def test_a_revision_from_the_future_or_a_pruned_past_is_no_merge(client: Any) -> None:
    headers, notebook_id, (a, b, _), revision = await _notebook(client)
    await edit(client, headers, notebook_id, a, "a = 1", revision)
    future = await edit(client, headers, notebook_id, b, "b = 1", revision + 50)
    assert future.status_code == 409
    async with connection() as conn:
        await conn.execute(
            "DELETE FROM notebook_events WHERE notebook_id = $1 AND revision <= $2",
            notebook_id,
            revision,
        )
    pruned = await edit(client, headers, notebook_id, b, "b = 1", revision)
    assert pruned.status_code == 409
    body = pruned.json()
    assert body["conflicts"] == [] and "pruned" in body["detail"]
    assert (await codes(client, headers, notebook_id))[b] == ""


async def test_concurrent_stale_edits_of_one_cell_let_exactly_one_through(client: Any) -> None:
    headers, notebook_id, (a, _, _), revision = await _notebook(client)
    answers = await asyncio.gather(
        *(edit(client, headers, notebook_id, a, f"a = {i}", revision) for i in range(8))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [409] * 7
    [winner] = [r for r in answers if r.status_code == 200]
    assert winner.json()["merged"] is False
    assert (await codes(client, headers, notebook_id))[a] == winner.json()["cell"]["code"]
    for loser in (r for r in answers if r.status_code == 409):
        assert [e["seq"] for e in loser.json()["conflicts"]] == [int(winner.headers["Cellar-Seq"])]


async def test_concurrent_stale_edits_of_different_cells_all_merge(client: Any) -> None:
    headers, notebook_id, cells, revision = await _notebook(client, cells=8)
    answers = await asyncio.gather(
        *(
            edit(client, headers, notebook_id, cell, f"v{i} = {i}", revision)
            for i, cell in enumerate(cells)
        )
    )
    assert [r.status_code for r in answers] == [200] * 8
    assert sum(r.json()["merged"] for r in answers) == 7
    assert sorted(r.json()["revision"] for r in answers) == list(range(revision + 1, revision + 9))
    assert await codes(client, headers, notebook_id) == {
        cell: f"v{i} = {i}" for i, cell in enumerate(cells)
    }
