"""SPEC §13: checkpoints (shared payloads, the limit) and the restore of a cell from history."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

import msgspec
import pytest

from app.checkpoints.services import CheckpointService
from app.database import connection
from app.errors import Conflict
from tests.api.test_notebooks import (
    add_cell,
    create_notebook,
    fresh_user_headers,
    get_notebook,
    write_outputs,
)
from tests.conftest import REPLICA_PAIR

CHECKPOINT_KEYS = {"id", "name", "revision", "created_at"}
NOTEBOOK_KEYS = {"id", "name", "kind", "db_conn_string", "revision", "created_at", "updated_at"}


async def user_id_of(client: Any, headers: dict[str, str]) -> UUID:
    response = await client.get("/me", headers=headers)
    return UUID(response.json()["id"])


async def checkpoint(
    client: Any, headers: dict[str, str], notebook_id: str, name: str | None = None
) -> dict[str, Any]:
    body = {} if name is None else {"name": name}
    response = await client.post(
        f"/notebooks/{notebook_id}/checkpoints", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert set(created) == CHECKPOINT_KEYS
    return created


async def count(sql: str, *args: Any) -> int:
    async with connection() as conn:
        return int(await conn.fetchval(sql, *args))


async def blobs_of(user: UUID) -> int:
    return await count("SELECT count(*) FROM run_blobs WHERE user_id = $1", user)


async def with_outputs(client: Any, headers: dict[str, str]) -> tuple[str, str, str]:
    """A notebook with two cells that ran: (notebook, cell a, cell b)."""
    notebook_id = await create_notebook(client, headers, "plots")
    a = await add_cell(client, headers, notebook_id, "x = 1")
    b = await add_cell(client, headers, notebook_id, "SELECT {x}", "sql")
    png = {"mime_type": "image/png", "data": "iVBOR" * 2000, "metadata": {}}
    await write_outputs(client, headers, notebook_id, a["id"], stdout="one", outputs=[png])
    await write_outputs(client, headers, notebook_id, b["id"], stdout="two")
    return notebook_id, a["id"], b["id"]


async def test_a_checkpoint_is_read_unchanged_while_the_notebook_moves_on(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, a, b = await with_outputs(client, headers)
    before = await get_notebook(client, headers, notebook_id)
    taken = await checkpoint(client, headers, notebook_id, "before the change")
    assert taken["name"] == "before the change"
    assert taken["revision"] == before["revision"]

    base = f"/notebooks/{notebook_id}"
    response = await client.put(f"{base}/cells/{a}", json={"code": "x = 2"}, headers=headers)
    assert response.status_code == 200
    await write_outputs(client, headers, notebook_id, a, stdout="changed")
    assert (await client.delete(f"{base}/cells/{b}", headers=headers)).status_code == 200

    response = await client.get(f"{base}/checkpoints/{taken['id']}", headers=headers)
    assert response.status_code == 200, response.text
    read = response.json()
    assert set(read) == NOTEBOOK_KEYS | {"cells"}
    assert read["cells"] == before["cells"]
    assert read["revision"] == before["revision"]
    assert read["id"] == notebook_id and read["name"] == "plots"

    second = await checkpoint(client, headers, notebook_id)
    response = await client.get(f"{base}/checkpoints", headers=headers)
    assert response.status_code == 200
    listed = response.json()["checkpoints"]
    assert [c["id"] for c in listed] == [second["id"], taken["id"]]
    assert listed[0]["name"] is None


async def test_restore_brings_cells_and_runs_back_as_one_revision(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, a, b = await with_outputs(client, headers)
    before = await get_notebook(client, headers, notebook_id)
    taken = await checkpoint(client, headers, notebook_id)
    base = f"/notebooks/{notebook_id}"
    await client.put(f"{base}/cells/{a}", json={"code": "x = 2"}, headers=headers)
    await write_outputs(client, headers, notebook_id, a, stdout="changed")
    await client.delete(f"{base}/cells/{b}", headers=headers)
    await add_cell(client, headers, notebook_id, "z = 3")
    await client.put(f"{base}/name", json={"name": "renamed"}, headers=headers)
    moved_on = await get_notebook(client, headers, notebook_id)

    url = f"{base}/checkpoints/{taken['id']}/restore"
    stale = await client.post(url, json={"expected_revision": 0}, headers=headers)
    assert stale.status_code == 409
    response = await client.post(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "revision": moved_on["revision"] + 1}
    assert int(response.headers["Cellar-Seq"]) > 0

    after = await get_notebook(client, headers, notebook_id)
    assert after["cells"] == before["cells"]
    assert after["name"] == "renamed"  # the name stays
    async with connection() as conn:
        op, data = await conn.fetchrow(
            "SELECT op, data::text FROM notebook_events WHERE notebook_id = $1"
            " ORDER BY seq DESC LIMIT 1",
            notebook_id,
        )
    assert op == "restore"
    assert msgspec.json.decode(data)["checkpoint_id"] == taken["id"]


async def test_unchanged_outputs_are_stored_once(client: Any) -> None:
    headers = await fresh_user_headers(client)
    user = await user_id_of(client, headers)
    notebook_id, a, _ = await with_outputs(client, headers)
    for _ in range(3):
        await checkpoint(client, headers, notebook_id)
    assert await blobs_of(user) == 2  # one payload per cell that ran, shared by all three
    await client.put(f"/notebooks/{notebook_id}/cells/{a}", json={"code": "x = 5"}, headers=headers)
    await checkpoint(client, headers, notebook_id)
    assert await blobs_of(user) == 2  # a code edit leaves outputs (and payloads) as they are
    await write_outputs(client, headers, notebook_id, a, stdout="new")
    await checkpoint(client, headers, notebook_id)
    assert await blobs_of(user) == 3

    # A restore brings the payload's key back with the run state: nothing new to store.
    listed = (await client.get(f"/notebooks/{notebook_id}/checkpoints", headers=headers)).json()
    oldest = listed["checkpoints"][-1]["id"]
    url = f"/notebooks/{notebook_id}/checkpoints/{oldest}/restore"
    assert (await client.post(url, headers=headers)).status_code == 200
    await checkpoint(client, headers, notebook_id)
    assert await blobs_of(user) == 3


async def test_deleting_checkpoints_collects_payloads_nobody_refers_to(client: Any) -> None:
    headers = await fresh_user_headers(client)
    user = await user_id_of(client, headers)
    notebook_id, a, _ = await with_outputs(client, headers)
    first = await checkpoint(client, headers, notebook_id)
    await write_outputs(client, headers, notebook_id, a, stdout="new")
    second = await checkpoint(client, headers, notebook_id)
    assert await blobs_of(user) == 3
    base = f"/notebooks/{notebook_id}/checkpoints"

    response = await client.delete(f"{base}/{first['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert await blobs_of(user) == 2  # a's old payload was only the first checkpoint's
    assert (await client.get(f"{base}/{first['id']}", headers=headers)).status_code == 404
    assert (await client.delete(f"{base}/{first['id']}", headers=headers)).status_code == 404

    # The live run states still refer to the second one's payloads: they stay.
    assert (await client.delete(f"{base}/{second['id']}", headers=headers)).status_code == 200
    assert await blobs_of(user) == 2
    response = await client.delete(f"/notebooks/{notebook_id}?purge=true", headers=headers)
    assert response.status_code == 200
    assert await blobs_of(user) == 0


async def test_purge_leaves_no_checkpoint_row(client: Any) -> None:
    headers = await fresh_user_headers(client)
    user = await user_id_of(client, headers)
    notebook_id, _, _ = await with_outputs(client, headers)
    await checkpoint(client, headers, notebook_id, "kept")
    await checkpoint(client, headers, notebook_id)
    response = await client.delete(f"/notebooks/{notebook_id}?purge=true", headers=headers)
    assert response.status_code == 200
    assert await count("SELECT count(*) FROM notebook_checkpoints WHERE user_id = $1", user) == 0
    assert await count("SELECT count(*) FROM checkpoint_runs WHERE user_id = $1", user) == 0
    assert await blobs_of(user) == 0


async def test_the_oldest_unnamed_goes_first_and_all_named_is_409(
    client: Any, settings: Any
) -> None:
    headers = await fresh_user_headers(client)
    user = await user_id_of(client, headers)
    notebook_id = await create_notebook(client, headers)
    service = CheckpointService(
        msgspec.structs.replace(settings, max_checkpoints_per_notebook=3),
        None,  # type: ignore[arg-type]
    )
    named = await service.create(user, notebook_id, "named")
    oldest = await service.create(user, notebook_id, None)
    newer = await service.create(user, notebook_id, None)
    newest = await service.create(user, notebook_id, None)
    if REPLICA_PAIR:  # the service is called without a consistency token: let it catch up
        await REPLICA_PAIR[0].caught_up()
    kept = [c.id for c in await service.list(user, notebook_id)]
    assert kept == [newest.id, newer.id, named.id]
    assert oldest.id not in kept

    for each in (newer, newest):
        await service.delete(user, notebook_id, str(each.id))
    await service.create(user, notebook_id, "two")
    await service.create(user, notebook_id, "three")
    with pytest.raises(Conflict, match="all named"):
        await service.create(user, notebook_id, "four")
    if REPLICA_PAIR:
        await REPLICA_PAIR[0].caught_up()
    assert len(await service.list(user, notebook_id)) == 3


async def test_bad_requests(client: Any) -> None:
    headers = await fresh_user_headers(client)
    other = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    taken = await checkpoint(client, headers, notebook_id)
    base = f"/notebooks/{notebook_id}/checkpoints"

    response = await client.post(base, json={"name": "n" * 256}, headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == "name"
    # Another user's notebook or checkpoint: 404 on every route, as a missing one.
    for method, url in (
        ("POST", base),
        ("GET", base),
        ("GET", f"{base}/{taken['id']}"),
        ("POST", f"{base}/{taken['id']}/restore"),
        ("DELETE", f"{base}/{taken['id']}"),
    ):
        response = await client.request(method, url, headers=other)
        assert response.status_code == 404, (method, url)
    for missing in ("not-a-uuid", str(uuid.uuid4())):
        for method, url in (
            ("GET", f"{base}/{missing}"),
            ("POST", f"{base}/{missing}/restore"),
            ("DELETE", f"{base}/{missing}"),
        ):
            response = await client.request(method, url, headers=headers)
            assert response.status_code == 404, (method, url)
    # A checkpoint of another notebook of the same user is not this notebook's.
    elsewhere = await create_notebook(client, headers)
    url = f"/notebooks/{elsewhere}/checkpoints/{taken['id']}"
    assert (await client.get(url, headers=headers)).status_code == 404
    assert (await client.post(f"{url}/restore", headers=headers)).status_code == 404
    # In the trash, the notebook's checkpoints are as absent as the notebook.
    assert (await client.delete(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200
    assert (await client.get(base, headers=headers)).status_code == 404
    assert (await client.get(f"{base}/{taken['id']}", headers=headers)).status_code == 404
    assert (await client.post(f"/notebooks/{notebook_id}/restore", headers=headers)).is_success
    assert (await client.get(f"{base}/{taken['id']}", headers=headers)).status_code == 200


# -- restoring a cell from its history ------------------------------------------------------


async def versions(client: Any, headers: dict[str, str], notebook_id: str, cell_id: str) -> Any:
    response = await client.get(
        f"/notebooks/{notebook_id}/cells/{cell_id}/history", headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["versions"]


async def test_restore_a_cell_version(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell = await add_cell(client, headers, notebook_id, "a = 1")
    url = f"/notebooks/{notebook_id}/cells/{cell['id']}"
    for code in ("a = 2", "a = 3"):
        assert (await client.put(url, json={"code": code}, headers=headers)).status_code == 200
    first = (await versions(client, headers, notebook_id, cell["id"]))[-1]
    assert first["code"] == "a = 1"

    response = await client.post(f"{url}/restore", json={"seq": first["seq"]}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["cell"]["code"] == "a = 1" and body["cell"]["writes"] == ["a"]
    notebook = await get_notebook(client, headers, notebook_id)
    assert notebook["revision"] == body["revision"]
    assert [c["code"] for c in notebook["cells"]][-1] == "a = 1"
    assert (await versions(client, headers, notebook_id, cell["id"]))[0]["code"] == "a = 1"


async def test_a_deleted_cell_comes_back_at_its_old_index(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    sql = await add_cell(client, headers, notebook_id, "SELECT 1", "sql")
    await add_cell(client, headers, notebook_id, "tail = 1")
    base = f"/notebooks/{notebook_id}"
    await client.put(f"{base}/cells/{sql['id']}", json={"code": "SELECT {x}"}, headers=headers)
    order = [c["id"] for c in (await get_notebook(client, headers, notebook_id))["cells"]]
    assert order.index(sql["id"]) == 1
    assert (await client.delete(f"{base}/cells/{sql['id']}", headers=headers)).status_code == 200

    seq = (await versions(client, headers, notebook_id, sql["id"]))[-1]["seq"]  # "SELECT 1"
    response = await client.post(
        f"{base}/cells/{sql['id']}/restore", json={"seq": seq}, headers=headers
    )
    assert response.status_code == 200, response.text
    cell = response.json()["cell"]
    assert (cell["id"], cell["type"], cell["code"]) == (sql["id"], "sql", "SELECT 1")
    assert [c["id"] for c in (await get_notebook(client, headers, notebook_id))["cells"]] == order


async def test_a_deleted_cell_comes_back_at_the_end_when_the_list_is_shorter(
    client: Any,
) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cells = [await add_cell(client, headers, notebook_id, f"v{i} = {i}") for i in range(3)]
    base = f"/notebooks/{notebook_id}"
    last = cells[-1]["id"]
    for each in (last, cells[0]["id"], cells[1]["id"]):
        assert (await client.delete(f"{base}/cells/{each}", headers=headers)).status_code == 200
    seq = (await versions(client, headers, notebook_id, last))[-1]["seq"]
    response = await client.post(f"{base}/cells/{last}/restore", json={"seq": seq}, headers=headers)
    assert response.status_code == 200, response.text
    ids = [c["id"] for c in (await get_notebook(client, headers, notebook_id))["cells"]]
    assert ids[-1] == last and len(ids) == 2


async def test_restore_a_cell_bad_input(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    cell = await add_cell(client, headers, notebook_id, "a = 1")
    other = await add_cell(client, headers, notebook_id, "b = 1")
    url = f"/notebooks/{notebook_id}/cells/{cell['id']}/restore"
    other_seq = (await versions(client, headers, notebook_id, other["id"]))[0]["seq"]
    for body, status in (
        ({}, 400),
        ({"seq": 0}, 400),
        ({"seq": "x"}, 400),
        ({"seq": 10_000}, 404),
        ({"seq": other_seq}, 404),  # a version of another cell
    ):
        response = await client.post(url, json=body, headers=headers)
        assert response.status_code == status, (body, response.text)
    stranger = await fresh_user_headers(client)
    seq = (await versions(client, headers, notebook_id, cell["id"]))[0]["seq"]
    response = await client.post(url, json={"seq": seq}, headers=stranger)
    assert response.status_code == 404


async def test_the_daily_purge_takes_a_trashed_notebooks_checkpoints_and_payloads(
    client: Any,
) -> None:
    from app.notebooks.services import purge_trash

    headers = await fresh_user_headers(client)
    user = await user_id_of(client, headers)
    notebook_id, a, _ = await with_outputs(client, headers)
    kept, _, _ = await with_outputs(client, headers)
    await write_outputs(client, headers, notebook_id, a, stdout="only here")
    for each in (notebook_id, kept):
        await checkpoint(client, headers, each)
    assert await blobs_of(user) == 3  # equal payloads of the two notebooks are one
    assert (await client.delete(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET deleted_at = now() - interval '40 days' WHERE id = $1",
            notebook_id,
        )
    await purge_trash(30)
    assert await count("SELECT count(*) FROM notebooks WHERE id = $1", notebook_id) == 0
    assert await count("SELECT count(*) FROM notebook_checkpoints WHERE user_id = $1", user) == 1
    assert await blobs_of(user) == 2  # the other notebook's stay
