"""SPEC §11 over HTTP: ``GET /notebooks/{id}/history`` and ``GET …/cells/{cell_id}/history``.

Pages of events after ``since``, oldest first, with ``next_seq``; bad
``since``/``limit`` are 400 naming the field; pruned events answer 410 with
``oldest_seq``; a cell's code versions newest first, also once deleted;
another user's notebook is as absent as a missing one.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.database import connection
from tests.api.test_notebooks import (
    assert_bad_field,
    create_notebook,
    fresh_user_headers,
    get_notebook,
)


async def _notebook_with_history(client: Any) -> tuple[dict[str, str], str, str]:
    """A notebook whose events are 1 create, 2…6 renames; and its one cell's id."""
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "v0")
    for number in range(1, 6):
        response = await client.put(
            f"/notebooks/{notebook_id}/name", json={"name": f"v{number}"}, headers=headers
        )
        assert response.status_code == 200
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    return headers, notebook_id, cell_id


async def history(client: Any, headers: dict[str, str], notebook_id: str, **params: Any) -> Any:
    return await client.get(f"/notebooks/{notebook_id}/history", params=params, headers=headers)


async def test_pages_of_events_oldest_first(client: Any) -> None:
    headers, notebook_id, _ = await _notebook_with_history(client)
    response = await history(client, headers, notebook_id)
    assert response.status_code == 200
    assert response.headers["Cellar-Seq"] == "6"
    body = response.json()
    assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4, 5, 6]
    assert body["next_seq"] == 6
    first, second = body["events"][:2]
    assert set(first) == {"seq", "revision", "at", "actor", "op", "cell_id", "data"}
    assert (first["op"], first["revision"], first["cell_id"]) == ("create", 0, None)
    assert second["data"] == {"name": "v1"}

    pages, since = [], 0
    while True:
        body = (await history(client, headers, notebook_id, since=since, limit=4)).json()
        if not body["events"]:
            assert body["next_seq"] == since
            break
        pages.append([e["seq"] for e in body["events"]])
        since = body["next_seq"]
    assert pages == [[1, 2, 3, 4], [5, 6]]


async def test_since_at_or_beyond_the_latest_is_an_empty_page(client: Any) -> None:
    headers, notebook_id, _ = await _notebook_with_history(client)
    for since in (6, 1000):
        body = (await history(client, headers, notebook_id, since=since)).json()
        assert body == {"events": [], "next_seq": since}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": -1}, "since"),
        ({"since": "x"}, "since"),
        ({"since": 2**63}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "many"}, "limit"),
    ],
)
async def test_bad_since_or_limit_is_a_400_naming_it(
    client: Any, params: dict[str, Any], field: str
) -> None:
    headers, notebook_id, _ = await _notebook_with_history(client)
    assert_bad_field(await history(client, headers, notebook_id, **params), field)


async def test_limit_bounds_are_accepted(client: Any) -> None:
    headers, notebook_id, _ = await _notebook_with_history(client)
    for limit in (1, 1000):
        assert (await history(client, headers, notebook_id, limit=limit)).status_code == 200


async def test_pruned_events_answer_410_with_the_oldest_kept(client: Any) -> None:
    headers, notebook_id, _ = await _notebook_with_history(client)
    async with connection() as conn:
        await conn.execute(
            "DELETE FROM notebook_events WHERE notebook_id = $1 AND seq < 4", notebook_id
        )
    for since in (0, 1, 2):
        response = await history(client, headers, notebook_id, since=since)
        assert response.status_code == 410, response.text
        assert response.json()["oldest_seq"] == 4
    body = (await history(client, headers, notebook_id, since=3)).json()
    assert [e["seq"] for e in body["events"]] == [4, 5, 6]
    body = (await history(client, headers, notebook_id)).json()  # absent: the oldest kept
    assert [e["seq"] for e in body["events"]] == [4, 5, 6]


async def test_another_users_or_a_missing_notebook_is_404(client: Any) -> None:
    _, notebook_id, cell_id = await _notebook_with_history(client)
    stranger = await fresh_user_headers(client)
    for path in ("history", f"cells/{cell_id}/history"):
        for target in (notebook_id, "no-such-notebook", "nul%00"):
            response = await client.get(f"/notebooks/{target}/{path}", headers=stranger)
            assert response.status_code == 404, (path, target)


async def test_a_cells_versions_newest_first_also_once_deleted(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    base = f"/notebooks/{notebook_id}"
    added = await client.post(
        f"{base}/cells", json={"type": "python", "code": "a = 1"}, headers=headers
    )
    cell_id = added.json()["cell"]["id"]
    other = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    for code in ("a = 2", "a = 3"):
        await client.put(f"{base}/cells/{cell_id}", json={"code": code}, headers=headers)
    await client.put(f"{base}/cells/{other}", json={"code": "b = 1"}, headers=headers)
    await client.post(f"{base}/cells/{cell_id}/move", json={"index": 0}, headers=headers)
    await client.put(f"{base}/cells/{cell_id}/outputs", json={"status": "success"}, headers=headers)

    response = await client.get(f"{base}/cells/{cell_id}/history", headers=headers)
    assert response.status_code == 200
    versions = response.json()["versions"]
    assert [v["code"] for v in versions] == ["a = 3", "a = 2", "a = 1"]
    assert [v["revision"] for v in versions] == [3, 2, 1]
    assert set(versions[0]) == {"seq", "revision", "at", "actor", "code"}

    deleted = await client.delete(f"{base}/cells/{cell_id}", headers=headers)
    assert deleted.status_code == 200
    versions = (await client.get(f"{base}/cells/{cell_id}/history", headers=headers)).json()[
        "versions"
    ]
    assert [v["code"] for v in versions] == [None, "a = 3", "a = 2", "a = 1"]
    assert versions[0]["seq"] == int(deleted.headers["Cellar-Seq"])


async def test_a_cell_never_in_the_notebook_is_404(client: Any) -> None:
    headers, notebook_id, cell_id = await _notebook_with_history(client)
    missing = await client.get(f"/notebooks/{notebook_id}/cells/nope/history", headers=headers)
    assert missing.status_code == 404
    # a cell that came with the notebook and was never edited: there, no versions yet
    present = await client.get(f"/notebooks/{notebook_id}/cells/{cell_id}/history", headers=headers)
    assert present.status_code == 200
    assert present.json() == {"versions": []}
