"""The read cache from outside: two real instances, each with its own cache (issue 19).

A client edits a notebook through one instance while another reads it
through the other as fast as it can.  Every read that started after a write
was acknowledged must show that write (code by revision, outputs by content),
never anything older, and each read must be one consistent version; the
reading instance's counters show that it did send kept bytes in between.
Another user's notebook is never sent from a cache, and an instance with
the cache off sends exactly the same bytes and headers.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.e2e.conftest import running_server

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
WRITES = 30


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[str, str]]:
    """Two ``cellar serve`` processes on the session database, the cache on (the default)."""
    env = dict(os.environ)
    assert env["DATABASE_URL"] == database_url
    env.pop("READ_CACHE_BYTES", None)
    with running_server(env) as first, running_server(env) as second:
        yield first, second


async def new_user(http: httpx.AsyncClient) -> dict[str, str]:
    credentials = {"email": f"cache-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    assert (await http.post("/auth/register", json=credentials)).status_code == 201
    token = (await http.post("/auth/token", json=credentials)).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def new_notebook(http: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """A notebook and the id of its one cell."""
    created = await http.post("/notebooks", json={"name": "raced"}, headers=headers)
    notebook_id: str = created.json()["notebook_id"]
    body = (await http.get(f"/notebooks/{notebook_id}", headers=headers)).json()
    return notebook_id, body["cells"][0]["id"]


def counter(metrics: str, result: str) -> float:
    series = f'cellar_read_cache_reads_total{{kind="notebook",result="{result}"}}'
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_a_read_after_an_acknowledged_write_always_shows_it(
    servers: tuple[str, str],
) -> None:
    async with (
        httpx.AsyncClient(base_url=servers[0], timeout=TIMEOUT) as writer,
        httpx.AsyncClient(base_url=servers[1], timeout=TIMEOUT) as reader,
    ):
        headers = await new_user(writer)
        notebook_id, cell_id = await new_notebook(writer, headers)
        url = f"/notebooks/{notebook_id}"
        before = (await reader.get("/metrics")).text
        # (acknowledged at, what: "code" or "outputs", n); revision of each code write.
        acks: list[tuple[float, str, int]] = []
        revision_of: dict[int, int] = {}
        reads: list[tuple[float, dict[str, Any], str]] = []
        done = asyncio.Event()

        async def write() -> None:
            for n in range(1, WRITES + 1):
                saved = await writer.put(
                    f"{url}/cells/{cell_id}", json={"code": f"x = {n}"}, headers=headers
                )
                assert saved.status_code == 200, saved.text
                revision_of[n] = saved.json()["revision"]
                acks.append((time.monotonic(), "code", n))
                ran = await writer.put(
                    f"{url}/cells/{cell_id}/outputs",
                    json={"status": "success", "outputs": [{"mime_type": "text/plain", "data": n}]},
                    headers=headers,
                )
                assert ran.status_code == 200, ran.text
                acks.append((time.monotonic(), "outputs", n))
                await asyncio.sleep(0.02)  # room for reads of an unchanged notebook
            done.set()

        async def read() -> None:
            while not done.is_set():
                started = time.monotonic()
                response = await reader.get(url, headers=headers)
                assert response.status_code == 200, response.text
                reads.append((started, response.json(), response.headers["etag"]))

        async with asyncio.timeout(120):
            await asyncio.gather(write(), read())

        for started, body, tag in reads:
            cell = body["cells"][0]
            code = int(cell["code"].removeprefix("x = ") or 0)
            outputs = cell["outputs"][0]["data"] if cell["outputs"] else 0
            acknowledged = {
                kind: max((n for at, what, n in acks if what == kind and at < started), default=0)
                for kind in ("code", "outputs")
            }
            assert code >= acknowledged["code"], (started, body)
            assert outputs >= acknowledged["outputs"], (started, body)
            # One version: the code's revision, its outputs or the previous run's.
            if code:
                assert body["revision"] == revision_of[code]
            assert tag == f'"{body["revision"]}"'
            assert outputs in (code, code - 1)
        after = (await reader.get("/metrics")).text
        assert len(reads) > 2 * WRITES
        assert counter(after, "hit") > counter(before, "hit"), "no read was sent from the cache"
        full = sum(counter(after, r) - counter(before, r) for r in ("stale", "miss"))
        assert full >= 1  # stale, or dropped by the realtime listener first


async def test_another_users_notebook_is_never_sent_from_a_cache(
    servers: tuple[str, str],
) -> None:
    async with (
        httpx.AsyncClient(base_url=servers[0], timeout=TIMEOUT) as first,
        httpx.AsyncClient(base_url=servers[1], timeout=TIMEOUT) as second,
    ):
        owner = await new_user(first)
        notebook_id, _ = await new_notebook(first, owner)
        url = f"/notebooks/{notebook_id}"
        for http in (first, second, first, second):
            assert (await http.get(url, headers=owner)).status_code == 200  # kept on both
        stranger = await new_user(second)
        for http in (first, second):
            assert (await http.get(url, headers=stranger)).status_code == 404
            tagged = {**stranger, "If-None-Match": '"1"'}
            assert (await http.get(url, headers=tagged)).status_code == 404


async def test_answers_are_byte_identical_with_the_cache_off(
    servers: tuple[str, str], database_url: str
) -> None:
    env = {**os.environ, "READ_CACHE_BYTES": "0"}
    assert env["DATABASE_URL"] == database_url
    with running_server(env) as uncached:
        async with (
            httpx.AsyncClient(base_url=servers[0], timeout=TIMEOUT) as cached,
            httpx.AsyncClient(base_url=uncached, timeout=TIMEOUT) as plain,
        ):
            headers = await new_user(cached)
            notebook_id, cell_id = await new_notebook(cached, headers)
            url = f"/notebooks/{notebook_id}"
            connection = {"connection_string": "postgresql://me:s3cret@db.example/x"}
            assert (await cached.put(f"{url}/db", json=connection, headers=headers)).is_success
            outputs = [
                {"mime_type": "text/html", "data": "<b>é ✓</b>"},
                {"mime_type": "application/json", "data": {"k": [1, 2.5, None, "\u2028"]}},
            ]
            ran = await cached.put(
                f"{url}/cells/{cell_id}/outputs",
                json={"status": "error", "stdout": "out\n", "outputs": outputs, "error": "E"},
                headers=headers,
            )
            assert ran.is_success
            answers = [
                await cached.get(url, headers=headers),
                await cached.get(url, headers=headers),  # from the cache
                await plain.get(url, headers=headers),
            ]
            assert [a.status_code for a in answers] == [200] * 3
            assert answers[0].content == answers[1].content == answers[2].content
            for name in ("etag", "cellar-seq", "vary", "content-type", "content-length"):
                assert len({a.headers.get(name) for a in answers}) == 1, name
            assert "s3cret" not in answers[1].text
