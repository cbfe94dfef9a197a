"""SPEC §11: every change of a notebook writes its event, in the same transaction.

Each route's event (seq, revision, actor, op, cell_id, data) is read back
from ``notebook_events`` as written; the ``Cellar-Seq`` header names it.  A
refused change leaves none; the connection string never appears in clear;
outputs entries over 64 KiB are truncated; a NUL in outputs is no 500; the
admin's rename (the revision trigger) is an ``admin`` event; the wake-up
(``pg_notify``) arrives at commit and never for a rolled-back change.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from app.database import connection, transaction
from app.store import notebooks as store
from app.store.notebooks import Precondition
from tests.api.test_notebooks import (
    create_notebook,
    fresh_user_headers,
    get_notebook,
    list_notebooks,
)
from tests.helpers import within

KIB = 1024


async def events(notebook_id: str) -> list[dict[str, Any]]:
    async with connection() as conn:
        rows = await conn.fetch(
            "SELECT seq, revision, actor, op, cell_id, data::text AS data, user_id"
            " FROM notebook_events WHERE notebook_id = $1 ORDER BY seq",
            notebook_id,
        )
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


async def notebook_seq(notebook_id: str) -> int:
    async with connection() as conn:
        return int(await conn.fetchval("SELECT seq FROM notebooks WHERE id = $1", notebook_id))


async def me(client: Any, headers: dict[str, str]) -> str:
    response = await client.get("/me", headers=headers)
    user_id: str = response.json()["id"]
    return user_id


async def _setup(client: Any) -> tuple[dict[str, str], str, str, str]:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "first")
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    return headers, notebook_id, cell_id, await me(client, headers)


async def test_create_is_event_one_by_the_owner(client: Any) -> None:
    headers = await fresh_user_headers(client)
    response = await client.post("/notebooks", json={"name": "n"}, headers=headers)
    assert response.status_code == 201
    assert response.headers["Cellar-Seq"] == "1"
    notebook_id = response.json()["notebook_id"]
    [event] = await events(notebook_id)
    assert (event["seq"], event["revision"], event["op"], event["cell_id"]) == (
        1,
        0,
        "create",
        None,
    )
    assert event["actor"] == await me(client, headers) == str(event["user_id"])
    assert event["data"]["name"] == "n"
    assert event["data"]["kind"] == "user"
    assert len(event["data"]["cells"]) == 1
    assert await notebook_seq(notebook_id) == 1
    got = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert got.headers["Cellar-Seq"] == "1"


async def test_provisioned_notebooks_are_created_by_the_system(client: Any) -> None:
    headers = await fresh_user_headers(client)
    for notebook in await list_notebooks(client, headers):
        [event] = await events(notebook["id"])
        assert (event["seq"], event["op"], event["actor"]) == (1, "create", "system")
        assert event["data"]["kind"] == notebook["kind"]


async def test_each_route_writes_its_event_and_answers_its_seq(client: Any) -> None:
    headers, notebook_id, first, user = await _setup(client)
    base = f"/notebooks/{notebook_id}"

    answers = [
        await client.put(f"{base}/name", json={"name": "renamed"}, headers=headers),
        await client.post(
            f"{base}/cells", json={"type": "python", "code": "x = 1"}, headers=headers
        ),
    ]
    second = answers[-1].json()["cell"]["id"]
    answers += [
        await client.put(f"{base}/cells/{first}", json={"code": "y = x"}, headers=headers),
        await client.post(f"{base}/cells/{first}/move", json={"index": 1}, headers=headers),
        await client.put(
            f"{base}/cells/{second}/outputs",
            json={"status": "success", "stdout": "hi", "outputs": []},
            headers=headers,
        ),
        await client.delete(f"{base}/cells/{second}", headers=headers),
    ]
    for answer in answers:
        assert answer.status_code in (200, 201), answer.text
    assert [int(a.headers["Cellar-Seq"]) for a in answers] == [2, 3, 4, 5, 6, 7]

    log = await events(notebook_id)
    assert [e["seq"] for e in log] == [1, 2, 3, 4, 5, 6, 7]
    assert [e["op"] for e in log] == [
        "create",
        "rename",
        "cell_insert",
        "cell_update",
        "cell_move",
        "outputs",
        "cell_delete",
    ]
    # outputs do not raise the revision
    assert [e["revision"] for e in log] == [0, 1, 2, 3, 4, 4, 5]
    assert {e["actor"] for e in log[1:]} == {user}
    assert [e["cell_id"] for e in log] == [None, None, second, first, first, second, second]
    assert log[1]["data"] == {"name": "renamed"}
    assert log[2]["data"]["index"] == 1
    assert log[2]["data"]["cell"]["code"] == "x = 1"
    assert log[3]["data"] == {"code": "y = x", "reads": ["x"], "writes": ["y"]}
    assert log[4]["data"] == {"from": 0, "to": 1}
    assert log[5]["data"] == {"status": "success", "stdout": "hi", "outputs": [], "error": None}
    assert await notebook_seq(notebook_id) == 7
    got = await client.get(base, headers=headers)
    assert got.headers["Cellar-Seq"] == "7"
    assert got.json()["revision"] == 5


async def test_a_refused_change_leaves_no_event(client: Any) -> None:
    headers, notebook_id, cell_id, _ = await _setup(client)
    base = f"/notebooks/{notebook_id}"
    refused = [
        await client.put(
            f"{base}/name", json={"name": "x", "expected_revision": 7}, headers=headers
        ),
        await client.put(
            f"{base}/name", json={"name": "x"}, headers={**headers, "If-Match": '"9"'}
        ),
        await client.post(f"{base}/cells", json={"type": "python", "index": 5}, headers=headers),
        await client.post(f"{base}/cells/{cell_id}/move", json={"index": 3}, headers=headers),
        await client.put(f"{base}/cells/nope", json={"code": "x"}, headers=headers),
        await client.delete(f"{base}/cells/nope", headers=headers),
        await client.put(f"{base}/cells/nope/outputs", json={"status": "success"}, headers=headers),
    ]
    assert [r.status_code for r in refused] == [409, 412, 400, 400, 404, 404, 404]
    assert [e["op"] for e in await events(notebook_id)] == ["create"]
    assert await notebook_seq(notebook_id) == 1


async def test_the_connection_string_is_never_in_an_event_in_clear(client: Any) -> None:
    headers, notebook_id, _, _ = await _setup(client)
    secret = "s3cr3t-pa55word"
    response = await client.put(
        f"/notebooks/{notebook_id}/db",
        json={"connection_string": f"postgresql://ann:{secret}@db.example/sales"},
        headers=headers,
    )
    assert response.status_code == 200
    cleared = await client.put(
        f"/notebooks/{notebook_id}/db", json={"connection_string": None}, headers=headers
    )
    assert cleared.status_code == 200
    assert cleared.headers["Cellar-Seq"] == "3"
    log = await events(notebook_id)
    assert [e["op"] for e in log] == ["create", "set_connection", "set_connection"]
    assert log[1]["data"] == {"db_conn_string": "postgresql://ann:***@db.example/sales"}
    assert log[2]["data"] == {"db_conn_string": None}
    async with connection() as conn:
        found = await conn.fetchval(
            "SELECT count(*) FROM notebook_events WHERE data::text LIKE '%' || $1 || '%'", secret
        )
    assert found == 0


async def test_a_nul_in_a_connection_string_is_no_500(client: Any) -> None:
    headers, notebook_id, _, _ = await _setup(client)
    response = await client.put(
        f"/notebooks/{notebook_id}/db",
        json={"connection_string": "host=db password=p\u0000w dbname=x\u0000y"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    log = await events(notebook_id)
    assert log[-1]["data"] == {"db_conn_string": "host=db password=*** dbname=x\ufffdy"}


async def test_outputs_over_64_kib_are_truncated_in_the_event_only(client: Any) -> None:
    headers, notebook_id, cell_id, _ = await _setup(client)
    small = {"mime_type": "text/plain", "data": "ok", "metadata": {}}
    big = {"mime_type": "text/plain", "data": "x" * (70 * KIB), "metadata": {}}
    edge = {"mime_type": "text/plain", "data": "y" * (64 * KIB - 60), "metadata": {}}
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={"status": "success", "outputs": [small, big, edge]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = (await events(notebook_id))[-1]["data"]
    big_bytes = len(json.dumps(big, separators=(",", ":")))
    assert data["outputs"][0] == small
    assert data["outputs"][1] == {"truncated": True, "bytes": big_bytes}
    assert data["outputs"][2] == edge  # 64 KiB or less: kept
    # the run state itself keeps everything
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert cell["outputs"][1] == big


async def test_a_nul_in_outputs_is_no_500(client: Any) -> None:
    headers, notebook_id, cell_id, _ = await _setup(client)
    output = {"mime_type": "text/pl\u0000ain", "data": {"v": "a\u0000b", "k": "\\u0000"}}
    response = await client.put(
        f"/notebooks/{notebook_id}/cells/{cell_id}/outputs",
        json={"status": "success", "outputs": [output]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = (await events(notebook_id))[-1]["data"]
    assert data["outputs"][0]["mime_type"] == "text/pl\ufffdain"
    assert data["outputs"][0]["data"] == {"v": "a\ufffdb", "k": "\\u0000"}
    cell = (await get_notebook(client, headers, notebook_id))["cells"][0]
    assert cell["outputs"][0]["data"]["v"] == "a\u0000b"


async def test_the_admins_rename_is_an_admin_event(client: Any) -> None:
    _, notebook_id, _, _ = await _setup(client)
    async with connection() as conn:
        await conn.execute("UPDATE notebooks SET name = 'by admin' WHERE id = $1", notebook_id)
        await conn.execute(
            "UPDATE notebooks SET db_conn_string = 'gAAAAtoken' WHERE id = $1", notebook_id
        )
        await conn.execute("UPDATE notebooks SET demo_version = 3 WHERE id = $1", notebook_id)
    log = await events(notebook_id)
    assert [(e["seq"], e["op"], e["actor"], e["revision"]) for e in log[1:]] == [
        (2, "rename", "admin", 1),
        (3, "set_connection", "admin", 2),
    ]
    assert log[1]["data"] == {"name": "by admin"}
    assert log[2]["data"] == {"db_conn_string": "***"}
    assert await notebook_seq(notebook_id) == 3


async def test_trash_and_restore_are_events_and_purging_takes_them_all(client: Any) -> None:
    headers, notebook_id, _, _ = await _setup(client)
    before = await events(notebook_id)
    response = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
    assert response.status_code == 200
    response = await client.post(f"/notebooks/{notebook_id}/restore", headers=headers)
    assert response.status_code == 200
    log = await events(notebook_id)
    assert [(e["op"], e["data"]) for e in log[len(before) :]] == [("trash", {}), ("untrash", {})]
    assert [e["seq"] for e in log] == list(range(1, len(log) + 1))
    assert int(response.headers["Cellar-Seq"]) == len(log)
    response = await client.delete(f"/notebooks/{notebook_id}?purge=true", headers=headers)
    assert response.status_code == 200
    assert await events(notebook_id) == []


async def test_concurrent_edits_get_consecutive_seqs_in_commit_order(client: Any) -> None:
    headers, notebook_id, _, _ = await _setup(client)
    base = f"/notebooks/{notebook_id}"
    cells = []
    for _ in range(6):
        added = await client.post(f"{base}/cells", json={"type": "python"}, headers=headers)
        cells.append(added.json()["cell"]["id"])
    answers = await asyncio.gather(
        *(
            client.put(f"{base}/cells/{cell}", json={"code": f"v{i} = {i}"}, headers=headers)
            for i, cell in enumerate(cells * 3)
        ),
        *(
            client.put(f"{base}/cells/{cell}/outputs", json={"status": "running"}, headers=headers)
            for cell in cells
        ),
    )
    assert all(a.status_code == 200 for a in answers)
    log = await events(notebook_id)
    assert [e["seq"] for e in log] == list(range(1, 8 + 18 + 6))
    revisions = [e["revision"] for e in log]
    assert revisions == sorted(revisions)
    assert sorted(int(a.headers["Cellar-Seq"]) for a in answers) == list(range(8, 8 + 24))


@pytest.fixture
async def listener(client: Any, database_url: str) -> Any:
    assert client is not None
    conn = await asyncpg.connect(database_url)
    received: asyncio.Queue[str] = asyncio.Queue()
    await conn.add_listener("cellar_events", lambda *args: received.put_nowait(args[3]))
    yield received
    await conn.close()


async def test_the_wake_up_arrives_at_commit_never_after_a_rollback(
    client: Any, listener: asyncio.Queue[str]
) -> None:
    headers, notebook_id, _, _ = await _setup(client)
    assert await within(listener.get(), 5) == f"1:{notebook_id}"
    user_id = await me(client, headers)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with transaction() as conn:
            changed = await store.rename(conn, notebook_id, UUID(user_id), Precondition(), "gone")
            assert changed is not None and changed.seq == 2
            raise Rollback
    assert [e["op"] for e in await events(notebook_id)] == ["create"]
    assert await notebook_seq(notebook_id) == 1
    response = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "kept"}, headers=headers
    )
    assert response.headers["Cellar-Seq"] == "2"
    assert await within(listener.get(), 5) == f"2:{notebook_id}"

    # a refused change sends nothing; outputs and a cell edit each send theirs
    refused = await client.put(
        f"/notebooks/{notebook_id}/name",
        json={"name": "x", "expected_revision": 0},
        headers=headers,
    )
    assert refused.status_code == 409
    cell_id = (await get_notebook(client, headers, notebook_id))["cells"][0]["id"]
    base = f"/notebooks/{notebook_id}/cells/{cell_id}"
    await client.put(f"{base}/outputs", json={"status": "running"}, headers=headers)
    await client.put(base, json={"code": "z = 1"}, headers=headers)
    assert await within(listener.get(), 5) == f"3:{notebook_id}"
    assert await within(listener.get(), 5) == f"4:{notebook_id}"
    await asyncio.sleep(0.2)
    assert listener.empty()


async def test_a_wake_up_inside_a_callers_transaction_waits_for_its_commit(
    client: Any, listener: asyncio.Queue[str]
) -> None:
    _, notebook_id, _, _ = await _setup(client)
    assert await within(listener.get(), 5) == f"1:{notebook_id}"
    async with transaction() as conn:
        await store.wake(conn, notebook_id, 7)
        await asyncio.sleep(0.2)
        assert listener.empty()  # queued, not sent
    assert await within(listener.get(), 5) == f"7:{notebook_id}"


async def test_an_ipynb_import_is_event_one_by_the_importer(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": "a1",
                "source": "x = 1",
                "metadata": {},
                "execution_count": 1,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}],
            }
        ],
    }
    response = await client.post(
        "/notebooks/import",
        content=json.dumps(notebook).encode(),
        params={"name": "from jupyter"},
        headers={**headers, "Content-Type": "application/x-ipynb+json"},
    )
    assert response.status_code == 201, response.text
    notebook_id = response.json()["notebook_id"]
    [event] = await events(notebook_id)
    assert (event["seq"], event["op"], event["actor"]) == (1, "import", await me(client, headers))
    assert event["data"]["name"] == "from jupyter"
    assert [cell["code"] for cell in event["data"]["cells"]] == ["x = 1"]
    assert await notebook_seq(notebook_id) == 1


async def test_the_ipynb_import_answers_cellar_seq(client: Any) -> None:
    headers = await fresh_user_headers(client)
    body = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}
    response = await client.post(
        "/notebooks/import",
        content=json.dumps(body).encode(),
        headers={**headers, "Content-Type": "application/x-ipynb+json"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Cellar-Seq"] == "1"
