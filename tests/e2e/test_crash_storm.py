"""A write storm over two instances, one of them SIGKILLed in the middle (issue 17, SPEC §3).

Two ``cellar serve`` processes share the session database (as in
``test_concurrency.py``, whose client helpers this reuses).  Writers insert
cells and edit cells they inserted, in a few shared notebooks, alternating
between the instances, for a bounded time; part-way through, one instance
is killed with SIGKILL, and from then on the writers use the survivor.  A
request that got no answer (in flight on the killed instance, or refused by
it) may or may not have committed.  Afterwards, from the database:

* every acknowledged write is there: its cell, with its code;
* each notebook's revision rose by exactly the acknowledged writes plus the
  unanswered ones that did commit (found by their unique code), and the
  acknowledged revisions are distinct and inside that range: gap-free
  except for the writes that committed unanswered;
* ``cell_search`` holds exactly the (cell, code) pairs of ``cells``, and the
  search API finds acknowledged code;
* the survivor kept serving, without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import assert_not_restarted, cellar_server
from tests.e2e.test_concurrency import Api, api_for_new_user

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import CellarServer

pytestmark = pytest.mark.e2e

NOTEBOOKS = 4
WRITERS = 8
STORM_SECONDS = 4.0
KILL_AFTER_SECONDS = 1.5
MAX_WRITES_PER_WRITER = 300  # bounded in count as well as in time
EDIT_EVERY = 3  # every third write edits a cell the writer inserted earlier


@dataclass
class Write:
    kind: str  # "insert" or "edit"
    notebook_id: str
    code: str
    cell_id: str | None = None  # known for edits, and for answered inserts
    answered: bool = False
    revision: int | None = None


@pytest.fixture
def two_servers(service_env: dict[str, str]) -> Iterator[tuple[CellarServer, CellarServer]]:
    with cellar_server(service_env) as survivor, cellar_server(service_env) as victim:
        yield survivor, victim


async def writer(
    api: Api, index: int, notebooks: list[str], victim_dead: asyncio.Event, deadline: float
) -> list[Write]:
    writes: list[Write] = []
    mine: list[Write] = []  # answered inserts of this writer, not yet edited
    for n in range(MAX_WRITES_PER_WRITER):
        if time.monotonic() > deadline:
            break
        via = 0 if victim_dead.is_set() else (index + n) % 2
        client = api.clients[via]
        if n % EDIT_EVERY == EDIT_EVERY - 1 and mine:
            target = mine.pop(0)
            write = Write("edit", target.notebook_id, f"e{index}_{n} = {n}", target.cell_id)
            request = client.put(
                f"/notebooks/{write.notebook_id}/cells/{write.cell_id}",
                json={"code": write.code},
                headers=api.headers,
            )
        else:
            notebook_id = notebooks[(index + n) % len(notebooks)]
            write = Write("insert", notebook_id, f"w{index}_{n} = {n}")
            request = client.post(
                f"/notebooks/{notebook_id}/cells",
                json={"type": "python", "code": write.code},
                headers=api.headers,
            )
        writes.append(write)
        try:
            response = await request
        except httpx.TransportError:
            continue  # no answer: committed or not, the database will say
        assert response.status_code in (200, 201), response.text
        body: dict[str, Any] = response.json()
        write.answered, write.revision = True, body["revision"]
        if write.kind == "insert":
            write.cell_id = body["cell"]["id"]
            mine.append(write)
    return writes


async def storm(api: Api, notebooks: list[str], victim: CellarServer) -> tuple[list[Write], float]:
    victim_dead = asyncio.Event()
    started = time.monotonic()
    deadline = started + STORM_SECONDS

    async def kill() -> float:
        await asyncio.sleep(KILL_AFTER_SECONDS)
        victim.process.kill()  # SIGKILL: no shutdown, in-flight requests cut
        victim_dead.set()
        return time.monotonic() - started

    async with asyncio.timeout(STORM_SECONDS + 60.0):
        killed_at, *per_writer = await asyncio.gather(
            kill(),
            *(writer(api, i, notebooks, victim_dead, deadline) for i in range(WRITERS)),
        )
    return [write for writes in per_writer for write in writes], killed_at


async def stored(notebook_ids: list[str]) -> dict[str, Any]:
    """Per notebook: revision, {cell id: code} from cells, and the cell_search pairs."""
    connection = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=10)
    try:
        rows = await connection.fetch(
            "SELECT id, revision, cells::text AS cells FROM notebooks WHERE id = ANY($1)",
            notebook_ids,
        )
        search = await connection.fetch(
            "SELECT notebook_id, cell_id, code FROM cell_search WHERE notebook_id = ANY($1)",
            notebook_ids,
        )
    finally:
        await connection.close()
    found: dict[str, Any] = {}
    for row in rows:
        cells = {cell["id"]: cell["code"] for cell in json.loads(row["cells"])}
        found[row["id"]] = {"revision": row["revision"], "cells": cells, "search": set()}
    for row in search:
        found[row["notebook_id"]]["search"].add((row["cell_id"], row["code"]))
    return found


def committed(write: Write, cells: dict[str, str]) -> bool:
    """Whether an unanswered write is in the notebook (codes are unique per write)."""
    if write.kind == "edit":
        return cells.get(str(write.cell_id)) == write.code
    return write.code in cells.values()


async def test_a_sigkill_mid_storm_loses_no_acknowledged_write(
    two_servers: tuple[CellarServer, CellarServer],
) -> None:
    survivor, victim = two_servers
    pid = survivor.pid
    async with api_for_new_user((survivor.url, victim.url)) as api:
        notebooks = [await api.new_notebook(f"storm {i}") for i in range(NOTEBOOKS)]
        before = await stored(notebooks)

        writes, killed_at = await storm(api, notebooks, victim)

        after = await stored(notebooks)
        answered = [write for write in writes if write.answered]
        unanswered = [write for write in writes if not write.answered]
        assert victim.process.poll() is not None, "the victim should be dead"
        assert len(answered) > 100, f"only {len(answered)} answered writes"
        report: list[str] = []
        for notebook_id in notebooks:
            cells = after[notebook_id]["cells"]
            mine = [write for write in answered if write.notebook_id == notebook_id]
            # Every acknowledged write is there, with its code (edits: the later one wins;
            # an edit of a cell always comes after its insert, so an insert's code may be
            # replaced only by an edit of the same cell).
            edited = {write.cell_id for write in writes if write.kind == "edit"}
            for write in mine:
                assert write.cell_id in cells, f"lost {write}"
                if write.kind == "edit" or write.cell_id not in edited:
                    assert cells[write.cell_id] == write.code, f"lost {write}"
            # Revisions: distinct, in range, and gap-free but for unanswered commits.
            start, end = before[notebook_id]["revision"], after[notebook_id]["revision"]
            revisions = [write.revision for write in mine]
            assert len(set(revisions)) == len(revisions), "two writes share a revision"
            assert all(revision is not None and start < revision <= end for revision in revisions)
            late = [
                write
                for write in unanswered
                if write.notebook_id == notebook_id and committed(write, cells)
            ]
            assert end - start == len(mine) + len(late), (notebook_id, start, end, len(mine))
            # The search rows are the document's, cell for cell.
            assert after[notebook_id]["search"] == set(cells.items()), notebook_id
            report.append(f"{notebook_id[:8]}: +{end - start} ({len(late)} unanswered committed)")

        sample = answered[-1]
        found = await api.clients[0].get(
            "/notebooks/search", params={"q": sample.code.split(" ")[0]}, headers=api.headers
        )
        assert found.status_code == 200, found.text
        assert sample.notebook_id in [hit["notebook_id"] for hit in found.json()["results"]]

        alive = await api.clients[0].get(f"/notebooks/{notebooks[0]}", headers=api.headers)
        assert alive.status_code == 200, alive.text
    assert_not_restarted(survivor, pid)
    print(
        f"\nstorm: {len(writes)} writes, {len(answered)} answered, {len(unanswered)} unanswered,"
        f" victim killed at {killed_at:.2f} s; " + "; ".join(report)
    )
