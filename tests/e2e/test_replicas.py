"""Cellar in front of a primary and a hot standby (issue 18): as an operator would try it.

The first test runs ``cellar serve`` against a pair made by hand: the
standby in ``/health``, a write followed at once by a read with its token
(never stale, also with replay paused), and the standby killed under a read
load (no error reaches a client).

The read routes' API tests run against a primary and a hot standby too.

The files below run again in a second pytest process with ``--with-replica``
(tests/conftest.py): its harness makes a primary and a standby with Debian's
``initdb`` and ``pg_basebackup -R``, builds the schema on the primary, points
the app's ``DATABASE_REPLICA_URLS`` at the standby and sends every consistency
token back as a frontend does; it fails when the standby served no read.  A
second process because the engine reads DATABASE_URL once per process.
``tests/api/test_replica_routing.py`` (skipped in a plain session) pauses the
standby's replay and stops it there.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest

from tests.e2e.conftest import cellar_server, run_cli
from tests.helpers import PASSWORD, unique_email
from tests.replicas import Pair, running_pair, why_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The read routes (list and its pages, GET, graph, search, conditional GETs, history,
# trash, checkpoints, the read cache) and the replica's own tests.
WITH_REPLICA = (
    "tests/api/test_replica_routing.py",
    "tests/api/test_notebooks.py",
    "tests/api/test_search.py",
    "tests/api/test_preconditions.py",
    "tests/api/test_notebook_pages.py",
    "tests/api/test_events.py",
    "tests/api/test_history.py",
    "tests/api/test_trash.py",
    "tests/api/test_read_cache.py",
    "tests/api/test_checkpoints.py",
)
# Checks of the primary's query plans on freshly seeded data, which a new cluster's
# statistics may not support yet; they read nothing through the seam.
DESELECTED = ("tests/api/test_notebook_pages.py::test_a_page_deep_in_the_list_is_one_index_range",)
MIN_PASSED = 200
TIMEOUT = 900.0
READERS = 4


@pytest.fixture
def pair() -> Iterator[Pair]:
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with running_pair() as made:
        yield made


async def _create_database(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE DATABASE cellar")
    finally:
        await connection.close()


def _login(http: httpx.Client) -> dict[str, str]:
    email = unique_email("replica")
    assert (
        http.post("/auth/register", json={"email": email, "password": PASSWORD}).status_code == 201
    )
    token = http.post("/auth/token", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def _standby_status(http: httpx.Client) -> str:
    health = http.get("/health")
    assert health.status_code == 200, health.text
    (replica,) = health.json()["replicas"]
    return str(replica["status"])


def _wait_for(http: httpx.Client, status: str) -> None:
    deadline = time.monotonic() + 15
    while _standby_status(http) != status:
        assert time.monotonic() < deadline, f"the standby never became {status}"
        time.sleep(0.1)


def test_cellar_in_front_of_a_primary_and_a_standby(
    pair: Pair, service_env: dict[str, str]
) -> None:
    asyncio.run(_create_database(pair.primary_url))
    env = {
        **service_env,
        "DATABASE_URL": pair.url(pair.primary_port, "cellar"),
        "DATABASE_REPLICA_URLS": pair.url(pair.standby_port, "cellar"),
    }
    migrated = run_cli(["piccolo", "migrations", "forwards", "all"], env, cwd=ROOT, timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with cellar_server(env) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        _wait_for(http, "healthy")
        headers = _login(http)
        assert http.get("/notebooks", headers=headers).status_code == 200
        created = http.post("/notebooks", json={"name": "v0"}, headers=headers)
        notebook_id = created.json()["notebook_id"]

        # A write followed at once by a read with its token, with replay running and paused.
        for prefix in ("running", "paused"):
            if prefix == "paused":
                asyncio.run(pair.pause())
            for i in range(1, 21):
                name = f"{prefix} {i}"
                saved = http.put(
                    f"/notebooks/{notebook_id}/name", json={"name": name}, headers=headers
                )
                token = {"Cellar-Consistency": saved.headers["cellar-consistency"]}
                read = http.get(f"/notebooks/{notebook_id}", headers={**headers, **token})
                assert read.json()["name"] == name
        # Without the token the paused standby answers: what it had before the pause.
        stale = http.get(f"/notebooks/{notebook_id}", headers=headers)
        assert not stale.json()["name"].startswith("paused"), stale.json()["name"]
        asyncio.run(pair.resume())
        asyncio.run(pair.caught_up())
        served = re.search(
            rf'cellar_db_reads_total{{server="127.0.0.1:{pair.standby_port}/cellar"}} (\S+)',
            http.get("/metrics").text,
        )
        assert served is not None and float(served.group(1)) > 0

        # Readers under load while the standby is killed: no error reaches them.
        failures: list[str] = []
        answered = [0] * READERS
        stop = threading.Event()

        def reader(index: int) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as own:
                while not stop.is_set():
                    for url in (f"/notebooks/{notebook_id}", "/notebooks"):
                        try:
                            answer = own.get(url, headers=headers)
                        except httpx.HTTPError as exc:
                            failures.append(f"{url}: {exc!r}")
                            continue
                        if answer.status_code != 200:
                            failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
                        answered[index] += 1

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(READERS)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            before = sum(answered)
            pair.stop_standby()
            _wait_for(http, "down")
            time.sleep(1.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert not failures, failures[:5]
        assert before > 0 and sum(answered) > before
        assert http.get("/health").json()["status"] == "healthy"
        pair.start_standby()
        _wait_for(http, "healthy")


def test_the_read_routes_pass_against_a_primary_and_a_standby(
    request: pytest.FixtureRequest,
) -> None:
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    if request.config.getoption("--with-replica"):
        pytest.skip("this session already runs with a replica")
    env = {**os.environ}
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URLS", "TEST_DATABASE_URL"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--with-replica",
        *(f"--deselect={test}" for test in DESELECTED),
        *WITH_REPLICA,
    ]
    result = run_cli(command, env, cwd=ROOT, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= MIN_PASSED, summary
    assert not re.search(r"\d+ (failed|error|skipped)", summary), summary
    print(f"\nwith a standby: {summary}")
