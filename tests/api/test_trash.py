"""SPEC §13, the trash: delete → gone everywhere → restore → identical; purge → no row left.

Fresh users per test; the purge's age is made by moving ``deleted_at`` back
in the database, as the days would.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.database import connection
from app.notebooks.services import purge_trash
from app.system.daily import DailyJobs
from tests.api.test_notebooks import (
    add_cell,
    create_notebook,
    fresh_user_headers,
    get_notebook,
    list_notebooks,
    write_outputs,
)

TRASH_KEYS = {"id", "name", "kind", "revision", "cell_count", "updated_at", "deleted_at"}


async def trash_list(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/notebooks/trash", headers=headers)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"notebooks"}
    notebooks: list[dict[str, Any]] = response.json()["notebooks"]
    for notebook in notebooks:
        assert set(notebook) == TRASH_KEYS
    return notebooks


async def rows_of(notebook_id: str) -> dict[str, int]:
    """How many rows of the notebook each table holds."""
    async with connection() as conn:
        counts = {}
        for table in ("notebooks", "cell_runs", "cell_search"):
            column = "id" if table == "notebooks" else "notebook_id"
            counts[table] = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE {column} = $1",
                notebook_id,
            )
        return counts


async def age(notebook_id: str, days: float) -> None:
    """Make the notebook look as if it went to the trash ``days`` ago."""
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebooks SET deleted_at = now() - make_interval(secs => $2) WHERE id = $1",
            notebook_id,
            days * 86400,
        )


async def a_notebook_with_a_run(client: Any, headers: dict[str, str]) -> tuple[str, str]:
    notebook_id = await create_notebook(client, headers, "quarterly findings")
    cell = await add_cell(client, headers, notebook_id, "zebrafish_total = 41")
    await write_outputs(client, headers, notebook_id, cell["id"], stdout="41\n")
    response = await client.put(
        f"/notebooks/{notebook_id}/db",
        json={"connection_string": "postgresql://u:secret@db/x"},
        headers=headers,
    )
    assert response.status_code == 200
    return notebook_id, cell["id"]


async def test_delete_moves_to_the_trash_and_it_is_gone_everywhere(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, cell_id = await a_notebook_with_a_run(client, headers)
    before = await get_notebook(client, headers, notebook_id)
    base = f"/notebooks/{notebook_id}"

    response = await client.delete(base, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

    # GET, every route, the list and search: as absent as a missing notebook.
    assert (await client.get(base, headers=headers)).status_code == 404
    assert (await client.get(f"{base}/graph", headers=headers)).status_code == 404
    assert (await client.get(f"{base}/ipynb", headers=headers)).status_code == 404
    response = await client.get(base, headers={**headers, "Accept": "application/x-ipynb+json"})
    assert response.status_code == 404
    assert (
        await client.put(f"{base}/name", json={"name": "x"}, headers=headers)
    ).status_code == 404
    response = await client.put(f"{base}/cells/{cell_id}", json={"code": "y = 1"}, headers=headers)
    assert response.status_code == 404
    response = await client.put(
        f"{base}/cells/{cell_id}/outputs", json={"status": "idle"}, headers=headers
    )
    assert response.status_code == 404
    response = await client.post(f"{base}/cells", json={"type": "python"}, headers=headers)
    assert response.status_code == 404
    assert notebook_id not in {n["id"] for n in await list_notebooks(client, headers)}
    for q in ("zebrafish_total", "quarterly", "zebra"):
        response = await client.get("/notebooks/search", params={"q": q}, headers=headers)
        assert response.status_code == 200
        assert response.json()["results"] == [], q
    response = await client.get("/notebooks/search", params={"type": "python"}, headers=headers)
    assert notebook_id not in {r["notebook_id"] for r in response.json()["results"]}
    # Deleting it again (not for good) finds nothing to delete.
    assert (await client.delete(base, headers=headers)).status_code == 404

    # The trash lists it, one revision later, with its data kept (runs, search rows).
    [trashed] = await trash_list(client, headers)
    assert trashed["id"] == notebook_id
    assert trashed["name"] == "quarterly findings"
    assert trashed["revision"] == before["revision"] + 1
    assert trashed["cell_count"] == len(before["cells"])
    counts = await rows_of(notebook_id)
    assert counts["notebooks"] == 1 and counts["cell_runs"] == 1
    assert counts["cell_search"] == 0  # the search holds live notebooks only


async def test_restore_brings_it_back_identical(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, _ = await a_notebook_with_a_run(client, headers)
    before = await get_notebook(client, headers, notebook_id)
    assert (await client.delete(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200

    response = await client.post(f"/notebooks/{notebook_id}/restore", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "revision": before["revision"] + 2}

    after = await get_notebook(client, headers, notebook_id)
    for key in ("name", "kind", "db_conn_string", "created_at", "cells"):
        assert after[key] == before[key], key
    assert after["revision"] == before["revision"] + 2
    assert await trash_list(client, headers) == []
    assert notebook_id in {n["id"] for n in await list_notebooks(client, headers)}
    response = await client.get("/notebooks/search", params={"q": "zebrafish"}, headers=headers)
    assert [r["notebook_id"] for r in response.json()["results"]] == [notebook_id]
    assert (await rows_of(notebook_id))["cell_search"] == len(after["cells"])

    # Not in the trash any more: restoring again is 404, as for a live or missing one.
    again = await client.post(f"/notebooks/{notebook_id}/restore", headers=headers)
    assert again.status_code == 404
    missing = await client.post(f"/notebooks/{uuid.uuid4()}/restore", headers=headers)
    assert missing.status_code == 404


async def test_trash_is_most_recently_deleted_first_and_only_the_owners(client: Any) -> None:
    headers = await fresh_user_headers(client)
    other = await fresh_user_headers(client)
    first = await create_notebook(client, headers, "first")
    second = await create_notebook(client, headers, "second")
    theirs = await create_notebook(client, other, "theirs")
    for notebook_id, owner in ((first, headers), (second, headers), (theirs, other)):
        assert (await client.delete(f"/notebooks/{notebook_id}", headers=owner)).status_code == 200

    assert [n["id"] for n in await trash_list(client, headers)] == [second, first]
    assert [n["id"] for n in await trash_list(client, other)] == [theirs]
    # Another user's trashed notebook: 404 to restore and to purge, as a missing one.
    response = await client.post(f"/notebooks/{theirs}/restore", headers=headers)
    assert response.status_code == 404
    response = await client.delete(f"/notebooks/{theirs}?purge=true", headers=headers)
    assert response.status_code == 404
    assert [n["id"] for n in await trash_list(client, other)] == [theirs]


async def test_trash_is_not_taken_for_a_notebook_id(client: Any) -> None:
    headers = await fresh_user_headers(client)
    assert await trash_list(client, headers) == []
    assert (await client.get("/notebooks/trash/graph", headers=headers)).status_code == 404
    # Read as DELETE /notebooks/{notebook_id}: no notebook has that id.
    assert (await client.delete("/notebooks/trash", headers=headers)).status_code == 404


async def test_purge_deletes_every_row_for_good(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, _ = await a_notebook_with_a_run(client, headers)
    url = f"/notebooks/{notebook_id}"
    assert (await client.delete(url, headers=headers)).status_code == 200

    stale = await client.delete(
        url, params={"purge": "true", "expected_revision": 0}, headers=headers
    )
    assert stale.status_code == 409
    assert (await rows_of(notebook_id))["notebooks"] == 1

    response = await client.delete(url, params={"purge": "true"}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert await rows_of(notebook_id) == {"notebooks": 0, "cell_runs": 0, "cell_search": 0}
    assert await trash_list(client, headers) == []
    assert (await client.post(f"{url}/restore", headers=headers)).status_code == 404
    assert (await client.delete(url, params={"purge": "true"}, headers=headers)).status_code == 404


async def test_purge_of_a_live_notebook_skips_the_trash(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id, _ = await a_notebook_with_a_run(client, headers)
    response = await client.delete(f"/notebooks/{notebook_id}?purge=true", headers=headers)
    assert response.status_code == 200
    assert await rows_of(notebook_id) == {"notebooks": 0, "cell_runs": 0, "cell_search": 0}
    assert await trash_list(client, headers) == []


@pytest.mark.parametrize("value", ["maybe", "yes please"])
async def test_purge_must_be_a_boolean(client: Any, value: str) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    response = await client.delete(f"/notebooks/{notebook_id}?purge={value}", headers=headers)
    assert response.status_code == 400
    assert "purge" in response.text
    await get_notebook(client, headers, notebook_id)


async def test_trash_and_restore_keep_the_revision_rules(client: Any) -> None:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    url = f"/notebooks/{notebook_id}"
    response = await client.delete(url, params={"expected_revision": 5}, headers=headers)
    assert response.status_code == 409
    response = await client.delete(url, headers={**headers, "If-Match": '"0"'})
    assert response.status_code == 200
    response = await client.post(f"{url}/restore", json={"expected_revision": 0}, headers=headers)
    assert response.status_code == 409
    assert response.json()["revision"] == 1
    response = await client.post(f"{url}/restore", headers={**headers, "If-Match": '"0"'})
    assert response.status_code == 412
    response = await client.post(f"{url}/restore", json={"expected_revision": 1}, headers=headers)
    assert response.status_code == 200
    assert response.json()["revision"] == 2


async def test_a_trashed_blank_or_demo_is_not_provisioned_again(client: Any) -> None:
    headers = await fresh_user_headers(client)
    provisioned = await list_notebooks(client, headers)
    assert sorted(n["kind"] for n in provisioned) == ["blank", "demo"]
    for notebook in provisioned:
        url = f"/notebooks/{notebook['id']}"
        assert (await client.delete(url, headers=headers)).status_code == 200

    assert await list_notebooks(client, headers) == []
    assert await list_notebooks(client, headers) == []
    assert sorted(n["kind"] for n in await trash_list(client, headers)) == ["blank", "demo"]
    for notebook in provisioned:
        url = f"/notebooks/{notebook['id']}/restore"
        assert (await client.post(url, headers=headers)).status_code == 200
    assert sorted(n["kind"] for n in await list_notebooks(client, headers)) == ["blank", "demo"]


async def test_purge_trash_takes_only_what_is_older_than_the_retention(client: Any) -> None:
    headers = await fresh_user_headers(client)
    old, recent, live = [await create_notebook(client, headers) for _ in range(3)]
    cell = await add_cell(client, headers, old, "x = 1")
    await write_outputs(client, headers, old, cell["id"], stdout="1")
    for notebook_id in (old, recent):
        assert (
            await client.delete(f"/notebooks/{notebook_id}", headers=headers)
        ).status_code == 200
    await age(old, 31)
    await age(recent, 29)

    assert await purge_trash(30) >= 1
    assert await rows_of(old) == {"notebooks": 0, "cell_runs": 0, "cell_search": 0}
    assert (await rows_of(recent))["notebooks"] == 1
    assert (await rows_of(live))["notebooks"] == 1
    assert [n["id"] for n in await trash_list(client, headers)] == [recent]

    await purge_trash(0)
    assert (await rows_of(recent))["notebooks"] == 0
    assert (await rows_of(live))["notebooks"] == 1


async def test_daily_purge_runs_once_at_a_time(client: Any) -> None:
    """The daily job under its advisory lock: a second runner finds it held and skips."""
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    assert (await client.delete(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200
    await age(notebook_id, 40)
    jobs = DailyJobs({"purge-trash": lambda: purge_trash(30)})

    async with connection() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('cellar daily: purge-trash'))")
        assert await jobs.run_all() == {"purge-trash": None}
    assert (await rows_of(notebook_id))["notebooks"] == 1

    done = await jobs.run_all()
    assert done["purge-trash"] is not None and done["purge-trash"] >= 1
    assert (await rows_of(notebook_id))["notebooks"] == 0


async def test_a_failing_daily_job_does_not_stop_the_others(client: Any) -> None:
    assert client is not None
    ran: list[str] = []

    async def broken() -> int:
        raise RuntimeError("boom")

    async def fine() -> int:
        ran.append("fine")
        return 0

    assert await DailyJobs({"broken": broken, "fine": fine}).run_all() == {"fine": 0}
    assert ran == ["fine"]


async def test_the_exports_write_live_notebooks_only(client: Any) -> None:
    """cellar export-ipynb and export-legacy skip the trash (docs/trash.md)."""
    from app.store import ipynb, legacy

    headers = await fresh_user_headers(client)
    me = (await client.get("/me", headers=headers)).json()
    live = await create_notebook(client, headers, "live")
    trashed = await create_notebook(client, headers, "trashed")
    assert (await client.delete(f"/notebooks/{trashed}", headers=headers)).status_code == 200
    async with connection() as conn, conn.transaction():
        exported = [row.id async for _, row in ipynb.export_rows(conn, uuid.UUID(me["id"]))]
        counted = await ipynb.count(conn, uuid.UUID(me["id"]))
    assert exported == [live] and counted == 1
    async with connection() as conn, conn.transaction():
        every = {row.id async for row in legacy.export_rows(conn)}
        total = await legacy.count(conn)
    assert live in every and trashed not in every
    assert total == len(every)
