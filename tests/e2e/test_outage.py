"""PostgreSQL stopped and started under a running ``cellar serve`` (issue 17).

While the database cannot be reached every route that needs it answers 503
``{status_code, detail}`` with ``Retry-After`` (``/health`` its own 503
body), never 500: the auth middleware's user lookup fails first on most
routes, so it is covered as well as the handlers behind it.  The outage is
logged once, not once per request, and its end once.  When PostgreSQL is
back the same process answers 200 within a second (the issue's bound),
without a restart.

A throwaway embedded PostgreSQL (``throwaway_postgres``, as in
``test_health.py``) gets the schema from Piccolo's migrations and is stopped
with ``pg_ctl stop`` (fast mode: sessions are terminated with
``AdminShutdown``); the session's server is never touched.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from app.system.outage import DatabaseOutage
from tests.conftest import TEST_ENV, with_database
from tests.e2e.conftest import (
    CellarServer,
    assert_not_restarted,
    cellar_server,
    run_cli,
    stop_postgres,
)
from tests.helpers import PASSWORD, external_token
from tests.openapi import operations

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pgserver

pytestmark = pytest.mark.e2e

# The contract: 200 again within a second after PostgreSQL is back.
RECOVERY_BOUND = 1.0
OUTAGE_LOGGED = "database unavailable"
RECOVERY_LOGGED = "database reachable again"
UNHEALTHY = {"status": "unhealthy", "database": "disconnected"}
LOG_GRACE = 5.0
# Requests in flight while PostgreSQL stops: a bounded storm of this many threads.
STORM_THREADS = 6
STORM_SECONDS_MAX = 30.0


@pytest.fixture
def service(
    throwaway_postgres: pgserver.PostgresServer,
) -> Iterator[tuple[CellarServer, pgserver.PostgresServer]]:
    """``cellar serve`` on a migrated database of the throwaway PostgreSQL."""
    throwaway_postgres.psql("CREATE DATABASE cellar;")
    env = {
        **os.environ,
        **TEST_ENV,
        "DATABASE_URL": with_database(throwaway_postgres.get_uri(), "cellar"),
    }
    migrated = run_cli(["piccolo", "migrations", "forwards", "all"], env, timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with cellar_server(env) as server:
        yield server, throwaway_postgres


class Account:
    """A user with a notebook of one cell, made while the database is up."""

    def __init__(self, http: httpx.Client) -> None:
        email = f"outage-{uuid.uuid4().hex[:12]}@example.com"
        self.credentials = {"email": email, "password": PASSWORD}
        registered = http.post("/auth/register", json=self.credentials)
        assert registered.status_code == 201, registered.text
        issued = http.post("/auth/token", json=self.credentials)
        assert issued.status_code == 200, issued.text
        self.headers = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        created = http.post("/notebooks", json={"name": "outage"}, headers=self.headers)
        assert created.status_code == 201, created.text
        self.notebook_id: str = created.json()["notebook_id"]
        shown = http.get(f"/notebooks/{self.notebook_id}", headers=self.headers)
        assert shown.status_code == 200, shown.text
        self.cell_id: str = shown.json()["cells"][0]["id"]

    @property
    def ids(self) -> dict[str, str]:
        return {"notebook_id": self.notebook_id, "cell_id": self.cell_id}


def external_headers() -> dict[str, str]:
    """A token of the external identity provider: its user lookup goes through Piccolo."""
    return {"Authorization": f"Bearer {external_token()}"}


def is_outage_answer(response: httpx.Response) -> bool:
    if response.status_code != 503 or response.headers.get("Retry-After", "") == "":
        return False
    if not response.headers["Retry-After"].isdigit():
        return False
    body: dict[str, Any] = response.json()
    return body == UNHEALTHY or (body["status_code"] == 503 and bool(body["detail"]))


def logged(server: CellarServer, text: str, expected: int = 1) -> int:
    """How often ``text`` is in the server's output, once ``expected`` times or a grace passed.

    Litestar writes log records from a queue listener thread: a line may reach
    the output a moment after the answer that caused it.
    """
    deadline = time.monotonic() + LOG_GRACE
    while time.monotonic() < deadline and server.output().count(text) < expected:
        time.sleep(0.05)
    time.sleep(0.2)  # and anything right behind it
    return server.output().count(text)


def first_error(server: CellarServer) -> str:
    """The server's output from its first unexpected error on (or its tail)."""
    output = server.output()
    start = output.find("Uncaught exception")
    return output[start : start + 6000] if start >= 0 else server.tail()


def wait_for_200(http: httpx.Client, account: Account) -> float:
    """Seconds until an authenticated read answers 200; every answer before is a 503."""
    started = time.monotonic()
    while True:
        response = http.get(f"/notebooks/{account.notebook_id}", headers=account.headers)
        waited = time.monotonic() - started
        if response.status_code == 200:
            return waited
        assert is_outage_answer(response), f"{response.status_code} {response.text}"
        assert waited < 15.0, "still no 200 15 s after PostgreSQL was back"
        time.sleep(0.02)


def test_every_route_answers_503_while_the_database_is_stopped(
    service: tuple[CellarServer, pgserver.PostgresServer],
) -> None:
    server, postgres = service
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        pid = server.pid
        account = Account(http)
        document = http.get("/schema/openapi.json").json()
        known = {**account.credentials, "code": "x = 1"}
        # Every operation that needs the database documents its 503 (GET / does not).
        routes = [
            route
            for route in operations(document)
            if "503" in document["paths"][route.path][route.method]["responses"]
        ]
        assert len(routes) >= 15, [str(route) for route in routes]

        stopped = time.monotonic()
        stop_postgres(postgres)
        answers: list[tuple[str, httpx.Response]] = []
        for route in routes:
            request = route.request(document, account.ids, known)
            response = http.request(
                request.method,
                request.path,
                content=request.content,
                headers={**account.headers, **request.headers},
            )
            answers.append((str(route), response))
        answers.append(("GET /me (external token)", http.get("/me", headers=external_headers())))
        wrong = [
            f"{route}: {response.status_code} {dict(response.headers)} {response.text[:200]}"
            for route, response in answers
            if not is_outage_answer(response)
        ]
        assert wrong == [], "\n".join(wrong)
        # Open routes that need no database still work.
        assert http.get("/schema/openapi.json").status_code == 200

        assert logged(server, OUTAGE_LOGGED) == 1, server.tail()
        output = server.output()
        assert "Uncaught exception" not in output, server.tail()
        assert output.count("Traceback") == 1, server.tail()  # the outage's first failure

        postgres.ensure_postgres_running()
        outage = time.monotonic() - stopped
        recovered_in = wait_for_200(http, account)
        print(
            f"\noutage of {outage:.1f} s, {len(answers)} routes answered 503; "
            f"200 again {recovered_in:.3f} s after PostgreSQL was back"
        )
        assert recovered_in < RECOVERY_BOUND
        # The end is logged by the first success once failures have stopped for a while.
        time.sleep(DatabaseOutage.SETTLE_SECONDS)
        assert http.get("/me", headers=account.headers).status_code == 200
        assert logged(server, RECOVERY_LOGGED) == 1, server.tail()

        # A second outage is logged again, once.
        stop_postgres(postgres)
        for _ in range(3):
            assert is_outage_answer(http.get("/me", headers=account.headers))
        assert logged(server, OUTAGE_LOGGED, 2) == 2, server.tail()
        postgres.ensure_postgres_running()
        assert wait_for_200(http, account) < RECOVERY_BOUND
        assert_not_restarted(server, pid)


def test_requests_in_flight_when_the_database_stops_get_503_then_200(
    service: tuple[CellarServer, pgserver.PostgresServer],
) -> None:
    """A storm of reads and writes across a stop/start: only 2xx and 503, then 2xx again."""
    server, postgres = service
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        pid = server.pid
        accounts = [Account(http) for _ in range(STORM_THREADS)]
    statuses: list[list[tuple[float, int, str]]] = [[] for _ in accounts]
    stop = threading.Event()

    def storm(index: int) -> None:
        account = accounts[index]
        path = f"/notebooks/{account.notebook_id}"
        with httpx.Client(base_url=server.url, timeout=10.0) as client:
            step = 0
            while not stop.is_set():
                step += 1
                if step % 2:
                    response = client.put(
                        f"{path}/cells/{account.cell_id}",
                        json={"code": f"x = {step}"},
                        headers=account.headers,
                    )
                else:
                    response = client.get(path, headers=account.headers)
                bad = "" if response.status_code != 503 or is_outage_answer(response) else "!"
                statuses[index].append((time.monotonic(), response.status_code, bad))

    threads = [threading.Thread(target=storm, args=(i,), daemon=True) for i in range(len(accounts))]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        stopped = time.monotonic()
        stop_postgres(postgres)
        time.sleep(1.0)
        postgres.ensure_postgres_running()
        back = time.monotonic()
        deadline = back + STORM_SECONDS_MAX
        # Until every thread has had a success that started after PostgreSQL was back.
        while time.monotonic() < deadline:
            recent = [[s for t, s, _ in seen if t > back + RECOVERY_BOUND] for seen in statuses]
            if all(200 in codes for codes in recent):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15.0)

    every = [(status, bad) for seen in statuses for _, status, bad in seen]
    codes = sorted({status for status, _ in every})
    assert set(codes) <= {200, 503}, (codes, first_error(server))
    assert not any(bad for _, bad in every), "a 503 without Retry-After or the error body"
    assert 503 in codes, "the storm never saw the outage"
    for seen in statuses:  # each thread succeeds again within the bound after the restart
        after = [status for t, status, _ in seen if t > back + RECOVERY_BOUND]
        assert after and set(after) == {200}, after[:20]
    first_200 = [min(t for t, s, _ in seen if t > back and s == 200) for seen in statuses]
    print(
        f"\nstorm: {len(every)} requests, {sum(s == 503 for s, _ in every)} answered 503 "
        f"during an outage of {back - stopped:.1f} s; each thread's first 200 "
        f"{max(first_200) - back:.3f} s after PostgreSQL was back at the latest"
    )
    assert logged(server, OUTAGE_LOGGED) == 1, server.tail()
    assert "Uncaught exception" not in server.output(), server.tail()
    assert_not_restarted(server, pid)
