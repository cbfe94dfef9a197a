"""Concurrent clients on two real ``cellar serve`` processes sharing one database (SPEC §3).

"Two clients editing different cells of one notebook at the same time both
keep their edits, also when they talk to different instances of the service:
no lost update, ever."  Two single-worker servers on different ports are
started on the session database; every burst alternates its requests between
them by index, so in-process locks could not help: only the database's row
lock and revision bump can make these pass.

Checked after each burst, through the API (and SQL where the API cannot say):

* 40 edits of 40 different cells without ``expected_revision``: all kept, the
  revision rose by exactly 40 and each edit got its own revision.
* 30 edits of one cell with the same ``expected_revision``: one winner, 29
  conflicts that name the winner's revision, the winner's code stored.
* 20 concurrent first ``GET /notebooks`` of a fresh user: exactly one blank
  and one demo notebook.
* 20 inserts racing 20 output writes: every insert and every output kept, the
  revision rose by exactly 20 (outputs never bump it).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import running_server

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Iterator

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
# Per request; generous, a request only waits for row locks held by its siblings.
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A whole burst: a deadlock (in the database or a pool) fails here instead of hanging.
BURST_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[str, str]]:
    """Two independent ``cellar serve`` processes (one worker each) on the session database."""
    env = dict(os.environ)
    assert env["DATABASE_URL"] == database_url
    with running_server(env, workers=1) as first, running_server(env, workers=1) as second:
        assert first != second
        yield first, second


@dataclass
class Api:
    """One keep-alive client per server and the headers of one user."""

    clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
    headers: dict[str, str]
    user_id: str

    def on(self, index: int) -> httpx.AsyncClient:
        """Request ``index`` of a burst goes to server ``index % 2``."""
        return self.clients[index % 2]

    async def get_notebook(self, notebook_id: str) -> dict[str, Any]:
        response = await self.clients[0].get(f"/notebooks/{notebook_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def new_notebook(self, name: str) -> str:
        response = await self.clients[1].post(
            "/notebooks", json={"name": name}, headers=self.headers
        )
        assert response.status_code == 201, response.text
        notebook_id: str = response.json()["notebook_id"]
        return notebook_id

    async def append_cell(self, notebook_id: str, code: str, via: int = 0) -> dict[str, Any]:
        response = await self.on(via).post(
            f"/notebooks/{notebook_id}/cells",
            json={"type": "python", "code": code},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def api_for_new_user(servers: tuple[str, str]) -> AsyncIterator[Api]:
    """Register a fresh user on one server, get a token from the other."""
    async with (
        httpx.AsyncClient(base_url=servers[0], timeout=REQUEST_TIMEOUT) as first,
        httpx.AsyncClient(base_url=servers[1], timeout=REQUEST_TIMEOUT) as second,
    ):
        email = f"race-{uuid.uuid4().hex[:12]}@example.com"
        credentials = {"email": email, "password": PASSWORD}
        registered = await first.post("/auth/register", json=credentials)
        assert registered.status_code == 201, registered.text
        issued = await second.post("/auth/token", json=credentials)
        assert issued.status_code == 200, issued.text
        headers = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        yield Api((first, second), headers, str(registered.json()["id"]))


async def burst(requests: list[Awaitable[httpx.Response]]) -> list[httpx.Response]:
    """All requests at once, bounded as a whole."""
    async with asyncio.timeout(BURST_TIMEOUT):
        return list(await asyncio.gather(*requests))


def codes(responses: list[httpx.Response]) -> list[int]:
    return [response.status_code for response in responses]


async def test_edits_of_different_cells_on_two_servers_all_survive(
    servers: tuple[str, str],
) -> None:
    async with api_for_new_user(servers) as api:
        notebook_id = await api.new_notebook("forty cells")
        cell_ids = []
        for i in range(40):
            created = await api.append_cell(notebook_id, f"c{i} = 0", via=i)
            cell_ids.append(created["cell"]["id"])
        before = await api.get_notebook(notebook_id)
        start = before["revision"]
        assert [cell["id"] for cell in before["cells"]][1:] == cell_ids

        responses = await burst(
            [
                api.on(i).put(
                    f"/notebooks/{notebook_id}/cells/{cell_id}",
                    json={"code": f"v{i} = {i}"},
                    headers=api.headers,
                )
                for i, cell_id in enumerate(cell_ids)
            ]
        )

        assert codes(responses) == [200] * 40, [r.text for r in responses if r.status_code != 200]
        bodies = [response.json() for response in responses]
        for i, body in enumerate(bodies):
            assert body["status"] == "ok"
            assert body["cell"]["id"] == cell_ids[i]
            assert body["cell"]["code"] == f"v{i} = {i}"
            assert body["cell"]["writes"] == [f"v{i}"]
        # Each mutation got its own revision: no two share one, none is skipped.
        assert sorted(body["revision"] for body in bodies) == list(range(start + 1, start + 41))

        after = await api.get_notebook(notebook_id)
        assert after["revision"] == start + 40
        assert [cell["id"] for cell in after["cells"]] == [c["id"] for c in before["cells"]]
        stored = {cell["id"]: cell["code"] for cell in after["cells"]}
        lost = [i for i, cell_id in enumerate(cell_ids) if stored[cell_id] != f"v{i} = {i}"]
        assert lost == [], f"lost updates of cells {lost}"


async def test_same_expected_revision_on_two_servers_has_exactly_one_winner(
    servers: tuple[str, str],
) -> None:
    async with api_for_new_user(servers) as api:
        notebook_id = await api.new_notebook("one cell, thirty writers")
        await api.append_cell(notebook_id, "x = 0")
        before = await api.get_notebook(notebook_id)
        start = before["revision"]
        cell_id = before["cells"][-1]["id"]

        attempts = [f"x = {i}  # writer {i}" for i in range(30)]
        responses = await burst(
            [
                api.on(i).put(
                    f"/notebooks/{notebook_id}/cells/{cell_id}",
                    json={"code": code, "expected_revision": start},
                    headers=api.headers,
                )
                for i, code in enumerate(attempts)
            ]
        )

        statuses = codes(responses)
        assert sorted(statuses) == [200] + [409] * 29, [r.text for r in responses]
        winner = statuses.index(200)
        won = responses[winner].json()
        assert won["revision"] == start + 1
        assert won["cell"]["code"] == attempts[winner]
        for response in responses:
            if response.status_code == 409:
                body = response.json()
                assert body["revision"] == start + 1, body
                assert body["detail"], body

        after = await api.get_notebook(notebook_id)
        assert after["revision"] == start + 1
        stored = next(cell for cell in after["cells"] if cell["id"] == cell_id)
        assert stored["code"] == attempts[winner]


async def test_concurrent_first_list_calls_provision_exactly_once(
    servers: tuple[str, str],
) -> None:
    async with api_for_new_user(servers) as api:
        responses = await burst(
            [api.on(i).get("/notebooks", headers=api.headers) for i in range(20)]
        )

        assert codes(responses) == [200] * 20, [r.text for r in responses if r.status_code != 200]
        for response in responses:
            kinds = sorted(notebook["kind"] for notebook in response.json()["notebooks"])
            assert kinds == ["blank", "demo"], response.text
        first_ids = {notebook["id"] for notebook in responses[0].json()["notebooks"]}
        assert all({n["id"] for n in r.json()["notebooks"]} == first_ids for r in responses)

        listed = await api.clients[1].get("/notebooks", headers=api.headers)
        assert listed.status_code == 200, listed.text
        assert sorted(n["kind"] for n in listed.json()["notebooks"]) == ["blank", "demo"]

        connection = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=10)
        try:
            rows = await connection.fetch(
                "SELECT kind, count(*) AS n FROM notebooks WHERE user_id::text = $1 GROUP BY kind",
                api.user_id,
            )
        finally:
            await connection.close()
        assert {row["kind"]: row["n"] for row in rows} == {"blank": 1, "demo": 1}


async def test_inserts_racing_output_writes_all_survive(servers: tuple[str, str]) -> None:
    async with api_for_new_user(servers) as api:
        notebook_id = await api.new_notebook("inserts and outputs")
        existing = []
        for i in range(20):
            created = await api.append_cell(notebook_id, f"e{i} = {i}", via=i)
            existing.append(created["cell"]["id"])
        before = await api.get_notebook(notebook_id)
        start, count = before["revision"], len(before["cells"])

        def run_state(i: int) -> dict[str, Any]:
            return {
                "status": "success",
                "stdout": f"printed {i}\n",
                "outputs": [{"mime_type": "text/plain", "data": f"result {i}", "metadata": {}}],
            }

        requests: list[Awaitable[httpx.Response]] = []
        for i in range(20):
            # Interleaved, and each kind alternates between the two servers.
            requests.append(
                api.on(i).post(
                    f"/notebooks/{notebook_id}/cells",
                    json={"type": "python", "code": f"m{i} = {i}"},
                    headers=api.headers,
                )
            )
            requests.append(
                api.on(i + 1).put(
                    f"/notebooks/{notebook_id}/cells/{existing[i]}/outputs",
                    json=run_state(i),
                    headers=api.headers,
                )
            )
        responses = await burst(requests)

        inserts, outputs = responses[0::2], responses[1::2]
        assert codes(inserts) == [201] * 20, [r.text for r in inserts if r.status_code != 201]
        assert codes(outputs) == [200] * 20, [r.text for r in outputs if r.status_code != 200]
        inserted = {r.json()["cell"]["id"]: f"m{i} = {i}" for i, r in enumerate(inserts)}
        revisions = sorted(r.json()["revision"] for r in inserts)
        assert revisions == list(range(start + 1, start + 21))

        after = await api.get_notebook(notebook_id)
        assert after["revision"] == start + 20, "output writes must not bump the revision"
        assert len(after["cells"]) == count + 20
        cells = {cell["id"]: cell for cell in after["cells"]}
        # The old cells keep their order at the front; the appended ones follow.
        assert [cell["id"] for cell in after["cells"][:count]] == [c["id"] for c in before["cells"]]
        assert {cell_id: cells[cell_id]["code"] for cell_id in inserted} == inserted
        for i, cell_id in enumerate(existing):
            state = run_state(i)
            cell = cells[cell_id]
            assert cell["code"] == f"e{i} = {i}"
            assert cell["status"] == state["status"], cell
            assert cell["stdout"] == state["stdout"], cell
            assert cell["outputs"] == state["outputs"], cell


async def test_first_list_calls_do_not_exhaust_a_small_pool(database_url: str) -> None:
    """A first call must not hold one pooled connection while waiting for another.

    With a pool of one connection, a request that keeps its connection during
    provisioning would wait for itself forever; a burst of first calls on a
    pool of N does the same once N of them hold one each.
    """
    env = {**os.environ, "DATABASE_POOL_MIN_SIZE": "1", "DATABASE_POOL_MAX_SIZE": "1"}
    assert env["DATABASE_URL"] == database_url
    with running_server(env, workers=1) as url:
        async with api_for_new_user((url, url)) as api:
            responses = await burst(
                [api.on(i).get("/notebooks", headers=api.headers) for i in range(10)]
            )
        assert codes(responses) == [200] * 10, [r.text for r in responses if r.status_code != 200]
        for response in responses:
            kinds = sorted(notebook["kind"] for notebook in response.json()["notebooks"])
            assert kinds == ["blank", "demo"], response.text
