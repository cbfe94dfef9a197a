"""The read cache (app.notebooks.read_cache) seen through the API: never stale, never leaky.

The session's app runs with the default ``READ_CACHE_BYTES``, so every GET in
the suite goes through the cache; these tests keep an entry first (a GET),
change the notebook in every way there is (each route, the execution
engine's outputs, which leave the revision alone, and plain SQL on the
notebook row past the service), and check that the very next GET shows the change.  The cache's
counters (``cellar_read_cache_reads_total``) show that the kept bytes were
really used where nothing changed, so these tests cannot pass by reading in
full every time.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from litestar.serialization import encode_json
from prometheus_client import REGISTRY

from app.database import connection
from tests.api.test_notebooks import (
    add_cell,
    create_notebook,
    fresh_user_headers,
    get_notebook,
    write_outputs,
)

COUNTER = "cellar_read_cache_reads_total"


def reads(result: str, kind: str = "notebook") -> float:
    return REGISTRY.get_sample_value(COUNTER, {"kind": kind, "result": result}) or 0.0


class Counted:
    """The cache's counters (of one kind of answer) from now on."""

    def __init__(self, kind: str = "notebook") -> None:
        self.kind = kind
        self.start = {result: reads(result, kind) for result in ("hit", "stale", "miss")}

    def __getitem__(self, result: str) -> float:
        return reads(result, self.kind) - self.start[result]


async def _read(client: Any, headers: dict[str, str], notebook_id: str) -> Any:
    response = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response


async def _setup(client: Any) -> tuple[dict[str, str], str, str]:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "cached")
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    return headers, notebook_id, cell_id


async def test_an_unchanged_notebook_is_sent_from_the_cache_byte_for_byte(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    await write_outputs(
        client,
        headers,
        notebook_id,
        cell_id,
        stdout="hi\n",
        outputs=[{"mime_type": "application/json", "data": {"a": [1, 2.5, None]}}],
    )
    counted = Counted()
    first = await _read(client, headers, notebook_id)
    second = await _read(client, headers, notebook_id)
    # The write left an older entry (or the realtime listener dropped it already).
    assert counted["stale"] + counted["miss"] == 1 and counted["hit"] == 1
    assert second.content == first.content
    for name in ("etag", "cellar-seq", "vary", "content-type", "content-length"):
        assert second.headers[name] == first.headers[name]
    assert first.headers["etag"] == f'"{first.json()["revision"]}"'
    assert first.headers["content-type"] == "application/json"


async def test_the_bytes_are_what_litestar_would_encode(client: Any) -> None:
    """The answer is encoded by the service; it must be what returning the struct gave."""
    from app.notebooks.connections import ConnectionStringCipher
    from app.notebooks.services import NotebookService
    from app.settings import Settings

    headers, notebook_id, cell_id = await _setup(client)
    await client.put(
        f"/notebooks/{notebook_id}/db",
        json={"connection_string": "postgresql://me:secret@db.example:5432/x"},
        headers=headers,
    )
    await write_outputs(
        client, headers, notebook_id, cell_id, outputs=[{"mime_type": "text/html", "data": "é<"}]
    )
    answer = await _read(client, headers, notebook_id)
    me = (await client.get("/me", headers=headers)).json()
    import os

    settings = Settings.from_env(os.environ)
    service = NotebookService(settings, ConnectionStringCipher(settings.encryption_key or ""))
    notebook, _ = await service.get(uuid.UUID(me["id"]), notebook_id)
    assert answer.content == encode_json(notebook)
    assert "***" in answer.json()["db_conn_string"]


async def test_outputs_written_appear_on_the_next_read(client: Any) -> None:
    """Outputs leave the revision alone: only the seq can tell the cache they changed."""
    headers, notebook_id, cell_id = await _setup(client)
    first = await _read(client, headers, notebook_id)
    before = first.json()
    seq = int(first.headers["cellar-seq"])
    await _read(client, headers, notebook_id)  # kept and used
    for n in range(3):
        await write_outputs(
            client,
            headers,
            notebook_id,
            cell_id,
            status="success",
            stdout=f"run {n}\n",
            outputs=[{"mime_type": "text/plain", "data": f"result {n}"}],
        )
        answer = await _read(client, headers, notebook_id)
        cell = answer.json()["cells"][0]
        assert (cell["stdout"], cell["outputs"][0]["data"]) == (f"run {n}\n", f"result {n}")
        assert int(answer.headers["cellar-seq"]) == seq + n + 1
    after = (await _read(client, headers, notebook_id)).json()
    assert after["revision"] == before["revision"]


async def test_every_change_appears_on_the_next_read(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)

    async def current() -> dict[str, Any]:
        body: dict[str, Any] = (await _read(client, headers, notebook_id)).json()
        return body

    await current()
    url = f"/notebooks/{notebook_id}"
    assert (await client.put(f"{url}/name", json={"name": "renamed"}, headers=headers)).is_success
    assert (await current())["name"] == "renamed"
    connection_string = {"connection_string": "postgresql://u:pw@host/db"}
    assert (await client.put(f"{url}/db", json=connection_string, headers=headers)).is_success
    assert (await current())["db_conn_string"] == "postgresql://u:***@host/db"
    await client.put(f"{url}/cells/{cell_id}", json={"code": "x = 1"}, headers=headers)
    assert (await current())["cells"][0]["code"] == "x = 1"
    second = (await add_cell(client, headers, notebook_id, code="y = x"))["id"]
    assert [c["id"] for c in (await current())["cells"]] == [cell_id, second]
    moved = await client.post(f"{url}/cells/{second}/move", json={"index": 0}, headers=headers)
    assert moved.is_success, moved.text
    assert [c["id"] for c in (await current())["cells"]] == [second, cell_id]
    assert (await client.delete(f"{url}/cells/{second}", headers=headers)).is_success
    shown = await current()
    assert [c["id"] for c in shown["cells"]] == [cell_id]
    assert (await client.delete(url, headers=headers)).is_success
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_changes_by_sql_appear_too(client: Any) -> None:
    """An UPDATE past the service (an operator, the admin) moves seq by the trigger: seen at once.

    ``cell_runs`` has no such trigger: its writers are the service (the admin
    shows it read-only), whose every write moves seq with its event.
    """
    headers, notebook_id, _ = await _setup(client)
    await _read(client, headers, notebook_id)
    await _read(client, headers, notebook_id)
    for name in ("by sql", "again by sql"):
        async with connection() as conn:
            await conn.execute("UPDATE notebooks SET name = $2 WHERE id = $1", notebook_id, name)
        assert (await _read(client, headers, notebook_id)).json()["name"] == name
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET cells = jsonb_set(cells, '{0,code}', '\"z = 3\"') WHERE id = $1",
            notebook_id,
        )
    assert (await _read(client, headers, notebook_id)).json()["cells"][0]["code"] == "z = 3"


async def test_another_users_notebook_is_never_sent_from_the_cache(client: Any) -> None:
    owner, notebook_id, _ = await _setup(client)
    await _read(client, owner, notebook_id)
    await _read(client, owner, notebook_id)  # kept, and used
    other = await fresh_user_headers(client)
    counted = Counted()
    url = f"/notebooks/{notebook_id}"
    assert (await client.get(url, headers=other)).status_code == 404
    assert (await client.get(url, headers={**other, "If-None-Match": '"1"'})).status_code == 404
    assert counted["hit"] == 0
    assert (await client.get(url, headers=owner)).status_code == 200


@pytest.mark.parametrize("tag", ['"{revision}"', '"999"'])
async def test_conditional_reads_are_unchanged(client: Any, tag: str) -> None:
    headers, notebook_id, _ = await _setup(client)
    body = (await _read(client, headers, notebook_id)).json()
    await _read(client, headers, notebook_id)
    sent = tag.format(revision=body["revision"])
    response = await client.get(
        f"/notebooks/{notebook_id}", headers={**headers, "If-None-Match": sent}
    )
    if sent == f'"{body["revision"]}"':
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == sent
    else:
        assert response.status_code == 200
        assert response.json() == body


async def test_the_graph_is_kept_and_follows_every_change(client: Any) -> None:
    headers, notebook_id, cell_id = await _setup(client)
    url = f"/notebooks/{notebook_id}"
    await client.put(f"{url}/cells/{cell_id}", json={"code": "x = 1"}, headers=headers)
    second = (await add_cell(client, headers, notebook_id, code="y = x"))["id"]

    async def graph() -> Any:
        response = await client.get(f"{url}/graph", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        return response

    counted = Counted("graph")
    first = await graph()
    again = await graph()
    assert (counted["miss"], counted["hit"]) == (1, 1)
    assert again.content == first.content
    assert first.json()["edges"] == [[cell_id, second]]
    await client.put(f"{url}/cells/{second}", json={"code": "y = 2"}, headers=headers)
    assert (await graph()).json()["edges"] == []
    await write_outputs(client, headers, notebook_id, cell_id, stdout="ran")  # seq moves
    assert (await graph()).json()["edges"] == []
    assert counted["stale"] + counted["miss"] == 3  # (or dropped by the realtime listener)
    other = await fresh_user_headers(client)
    assert (await client.get(f"{url}/graph", headers=other)).status_code == 404
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET cells = jsonb_set(cells, '{1,reads}', '[\"x\"]') WHERE id = $1",
            notebook_id,
        )
    assert (await graph()).json()["edges"] == [[cell_id, second]]


async def test_the_realtime_listener_frees_an_entry_that_can_no_longer_be_used(
    client: Any,
) -> None:
    """Memory only: the entry goes when the wake-up arrives, before any read finds it stale."""
    cache = client._transport.app.state.read_cache
    headers, notebook_id, cell_id = await _setup(client)
    await _read(client, headers, notebook_id)
    assert cache.holds(notebook_id)
    await write_outputs(client, headers, notebook_id, cell_id, stdout="woken")
    for _ in range(500):  # 10 s at most
        if not cache.holds(notebook_id):
            break
        await asyncio.sleep(0.02)
    assert not cache.holds(notebook_id)
    counted = Counted()
    body = (await _read(client, headers, notebook_id)).json()
    assert body["cells"][0]["stdout"] == "woken"
    assert (counted["miss"], counted["stale"]) == (1, 0)
