"""Realtime over real sockets (SPEC §11): two ``cellar serve`` on one database, a restart.

* Two single-worker instances on the session database: a WebSocket client of
  one and an SSE client of the other both get every edit made through
  either, in seq order, each once (the edits alternate between instances).
* The token as ``Sec-WebSocket-Protocol: bearer, <token>`` (answered with
  ``bearer``) or as the first message; tickets for ``EventSource``: single
  use, that notebook only, expiring; every refusal is a close code after
  the WebSocket was accepted (4401, 4404, 4410, 4400), or the HTTP status.
* A throwaway PostgreSQL is stopped and started under a running service with
  a subscriber connected: once edits go through again, the subscriber gets
  every event, none twice, on the same socket.
* Many refused connection attempts leave no connection (file descriptor)
  behind in the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket as socket_module
import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import TEST_ENV, with_database
from tests.e2e.conftest import cellar_server, run_cli, stop_postgres
from tests.helpers import PASSWORD, within

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pgserver

    from tests.e2e.conftest import CellarServer

pytestmark = pytest.mark.e2e

WAIT = 30.0  # seconds one expected message may take on a slow, shared machine
REALTIME_ENV = {"REALTIME_HEARTBEAT_SECONDS": "1", "REALTIME_AUTH_TIMEOUT_SECONDS": "2"}


def ws_url(base: str, notebook_id: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + f"/notebooks/{notebook_id}/events{query}"


@pytest.fixture(scope="module")
def servers(database_url: str) -> Iterator[tuple[CellarServer, CellarServer]]:
    """Two ``cellar serve`` processes on the session database."""
    env = {**os.environ, **REALTIME_ENV}
    assert env["DATABASE_URL"] == database_url
    with cellar_server(env) as first, cellar_server(env) as second:
        yield first, second


class Account:
    """A fresh user with one notebook, through an instance's API (``await Account.new(http)``)."""

    token: str
    headers: dict[str, str]
    notebook_id: str
    cell_id: str
    seq: int  # the notebook's seq when made (Cellar-Seq)

    @classmethod
    async def new(cls, http: httpx.AsyncClient) -> Account:
        self = cls()
        credentials = {"email": f"rt-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
        assert (await http.post("/auth/register", json=credentials)).status_code == 201
        issued = await http.post("/auth/token", json=credentials)
        assert issued.status_code == 200, issued.text
        self.token = issued.json()["access_token"]
        self.headers = {"Authorization": f"Bearer {self.token}"}
        created = await http.post("/notebooks", json={"name": "live"}, headers=self.headers)
        assert created.status_code == 201, created.text
        self.notebook_id = created.json()["notebook_id"]
        shown = await http.get(f"/notebooks/{self.notebook_id}", headers=self.headers)
        self.cell_id = shown.json()["cells"][0]["id"]
        self.seq = int(shown.headers["Cellar-Seq"])
        return self

    async def edit(self, http: httpx.AsyncClient, n: int) -> None:
        """One change through ``http``'s instance (a rename or a code edit), retried while 503."""
        if n % 2:
            path, body = f"/notebooks/{self.notebook_id}/name", {"name": f"name {n}"}
        else:
            path = f"/notebooks/{self.notebook_id}/cells/{self.cell_id}"
            body = {"code": f"x = {n}"}
        deadline = time.monotonic() + WAIT
        while True:
            try:
                answer = await http.put(path, json=body, headers=self.headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code != 503:
                break
            assert time.monotonic() < deadline, "still no answer but 503"
            await asyncio.sleep(0.1)
        assert answer.status_code == 200, answer.text

    async def ticket(self, http: httpx.AsyncClient, notebook_id: str | None = None) -> str:
        issued = await http.post(
            f"/notebooks/{notebook_id or self.notebook_id}/events/ticket", headers=self.headers
        )
        assert issued.status_code == 201, issued.text
        return str(issued.json()["ticket"])


async def next_event(socket: ClientConnection) -> dict[str, Any]:
    """The next event on the socket (heartbeats skipped)."""
    while True:
        message = json.loads(await within(socket.recv(), WAIT))
        if message.get("type") != "heartbeat":
            return message  # type: ignore[no-any-return]


async def close_code(url: str, first: str | None = None, **options: Any) -> tuple[int, str]:
    """Connect, optionally send ``first``, and return how the server closed the socket."""
    async with connect(url, open_timeout=WAIT, **options) as socket:
        if first is not None:
            await socket.send(first)
        with pytest.raises(ConnectionClosed):
            while True:
                await within(socket.recv(), WAIT)
        assert socket.close_code is not None
        return socket.close_code, socket.close_reason or ""


async def sse_events(
    http: httpx.AsyncClient, path: str, count: int, headers: dict[str, str]
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Read ``count`` SSE events: (events, their ids, whether a heartbeat came)."""
    events: list[dict[str, Any]] = []
    ids: list[str] = []
    heartbeat = False
    sse = {"Accept": "text/event-stream", **headers}
    async with http.stream("GET", path, headers=sse) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        async for line in answer.aiter_lines():
            if line.startswith("id: "):
                ids.append(line[4:])
            elif line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == count:
                    break
            elif line.startswith(": heartbeat"):
                heartbeat = True
    return events, ids, heartbeat


async def test_edits_through_either_instance_reach_clients_of_both(
    servers: tuple[CellarServer, CellarServer],
) -> None:
    first, second = servers
    async with (
        httpx.AsyncClient(base_url=first.url, timeout=WAIT) as one,
        httpx.AsyncClient(base_url=second.url, timeout=WAIT) as two,
    ):
        account = await Account.new(one)
        start = account.seq
        socket = await connect(
            ws_url(second.url, account.notebook_id, f"?since={start}"),
            subprotocols=["bearer", account.token],  # type: ignore[list-item]
            open_timeout=WAIT,
        )
        assert socket.subprotocol == "bearer"
        # A second subscriber of the same instance, authenticated by its first message.
        by_message = await connect(ws_url(second.url, account.notebook_id), open_timeout=WAIT)
        await by_message.send(json.dumps({"token": account.token}))
        await asyncio.sleep(0.5)  # the first message is read before anything is sent
        ticket = await account.ticket(two)
        edits = 12
        sse = asyncio.create_task(
            sse_events(
                one,
                f"/notebooks/{account.notebook_id}/events?since={start}&ticket={ticket}",
                edits,
                {},
            )
        )
        await asyncio.sleep(1.0)
        for n in range(edits):
            await account.edit((one, two)[n % 2], n)
        received = [await next_event(socket) for _ in range(edits)]
        live = [await next_event(by_message) for _ in range(edits)]
        events, ids, _ = await within(sse, WAIT)
        expected = list(range(start + 1, start + edits + 1))
        assert [event["seq"] for event in received] == expected
        assert [event["seq"] for event in live] == expected
        assert [event["seq"] for event in events] == expected
        assert ids == [str(seq) for seq in expected]
        assert {event["op"] for event in received} == {"rename", "cell_update"}
        assert received == events == live
        # Nothing more: each event came once.
        for client in (socket, by_message):
            with pytest.raises(TimeoutError):
                await within(next_event(client), 2.5)
            await client.close()
        metrics = (await two.get("/metrics")).text
        assert "cellar_realtime_events_delivered_total" in metrics


async def test_catch_up_with_since_and_last_event_id(
    servers: tuple[CellarServer, CellarServer],
) -> None:
    first, second = servers
    async with httpx.AsyncClient(base_url=first.url, timeout=WAIT) as http:
        account = await Account.new(http)
        start = account.seq
        for n in range(5):
            await account.edit(http, n)
        async with connect(
            ws_url(second.url, account.notebook_id, f"?since={start + 2}"),
            subprotocols=["bearer", account.token],  # type: ignore[list-item]
        ) as socket:
            backlog = [await next_event(socket) for _ in range(3)]
            assert [event["seq"] for event in backlog] == [start + 3, start + 4, start + 5]
            heartbeat = json.loads(await within(socket.recv(), WAIT))
            assert heartbeat == {"type": "heartbeat", "seq": start + 5}
        # SSE: Last-Event-ID takes the place of since (an EventSource reconnecting).
        _, ids, _ = await sse_events(
            http,
            f"/notebooks/{account.notebook_id}/events?since=0",
            2,
            {**account.headers, "Last-Event-ID": str(start + 3)},
        )
        assert ids == [str(start + 4), str(start + 5)]
        # Beyond the last seq: nothing old, then what comes.
        async with connect(
            ws_url(second.url, account.notebook_id, "?since=999999"),
            subprotocols=["bearer", account.token],  # type: ignore[list-item]
        ) as socket:
            await asyncio.sleep(0.5)
            await account.edit(http, 7)
            assert (await next_event(socket))["seq"] == start + 6


async def test_refusals_are_close_codes_after_the_handshake(
    servers: tuple[CellarServer, CellarServer],
) -> None:
    first, second = servers
    async with httpx.AsyncClient(base_url=first.url, timeout=WAIT) as http:
        account = await Account.new(http)
        other = await Account.new(http)
        url = ws_url(second.url, account.notebook_id)
        bearer = ["bearer", account.token]
        assert (await close_code(url, subprotocols=["bearer", "not-a-token"]))[0] == 4401
        assert (await close_code(url, first='{"token": "nope"}'))[0] == 4401
        assert (await close_code(url, first="hello"))[0] == 4401
        code, reason = await close_code(url)  # nothing sent within the auth timeout
        assert code == 4401 and "token" in reason
        assert (await close_code(url + "?since=-1", subprotocols=bearer))[0] == 4400
        assert (await close_code(url + "?since=1.5", subprotocols=bearer))[0] == 4400
        missing = ws_url(second.url, "no-such-notebook")
        assert (await close_code(missing, subprotocols=bearer))[0] == 4404
        theirs = ws_url(second.url, other.notebook_id)
        assert (await close_code(theirs, subprotocols=bearer))[0] == 4404

        # Tickets: single use, this notebook only, on either instance.
        ticket = await account.ticket(http)
        async with connect(url + f"?ticket={ticket}", open_timeout=WAIT) as socket:
            await asyncio.sleep(0.3)
            await account.edit(http, 1)
            assert (await next_event(socket))["op"] == "rename"
        assert (await close_code(url + f"?ticket={ticket}"))[0] == 4401  # used
        sse = {"Accept": "text/event-stream"}
        used = await http.get(
            f"/notebooks/{account.notebook_id}/events?ticket={ticket}", headers=sse
        )
        assert used.status_code == 401
        wrong = await account.ticket(http)
        other_url = ws_url(second.url, other.notebook_id, f"?ticket={wrong}")
        assert (await close_code(other_url))[0] == 4401
        # A ticket for another user's notebook cannot even be asked for.
        refused = await http.post(
            f"/notebooks/{other.notebook_id}/events/ticket", headers=account.headers
        )
        assert refused.status_code == 404

        # Pruned history: 4410 / 410 with the oldest kept seq.
        for n in range(3):
            await account.edit(http, n)
        import asyncpg

        conn = await asyncpg.connect(os.environ["DATABASE_URL"])
        try:
            await conn.execute(
                "DELETE FROM notebook_events WHERE notebook_id = $1 AND seq <= $2",
                account.notebook_id,
                account.seq + 2,
            )
        finally:
            await conn.close()
        code, _ = await close_code(url + f"?since={account.seq}", subprotocols=bearer)
        assert code == 4410
        gone = await http.get(
            f"/notebooks/{account.notebook_id}/events?since={account.seq}",
            headers={**sse, **account.headers},
        )
        assert gone.status_code == 410
        assert gone.json()["oldest_seq"] == account.seq + 3


async def test_refused_connections_leave_nothing_behind(
    servers: tuple[CellarServer, CellarServer],
) -> None:
    first, _ = servers
    async with httpx.AsyncClient(base_url=first.url, timeout=WAIT) as http:
        account = await Account.new(http)
    process = psutil.Process(first.pid)
    url = ws_url(first.url, account.notebook_id)

    async def attempt() -> None:
        await close_code(url, subprotocols=["bearer", "bad-token"])

    await attempt()
    before = process.num_fds()
    for _ in range(10):
        await asyncio.gather(*(attempt() for _ in range(30)))
    await asyncio.sleep(1.0)
    assert process.num_fds() <= before + 2  # the pool may open a connection meanwhile
    async with httpx.AsyncClient(base_url=first.url, timeout=WAIT) as http:
        metrics = (await http.get("/metrics")).text
    clients = [line for line in metrics.splitlines() if line.startswith("cellar_realtime_clients")]
    assert clients and float(clients[0].split()[-1]) == 0.0, clients


@pytest.fixture
def restartable(
    throwaway_postgres: pgserver.PostgresServer,
) -> Iterator[tuple[CellarServer, pgserver.PostgresServer]]:
    """``cellar serve`` on a throwaway PostgreSQL that the test stops and starts."""
    throwaway_postgres.psql("CREATE DATABASE cellar;")
    env = {
        **os.environ,
        **TEST_ENV,
        **REALTIME_ENV,
        "DATABASE_URL": with_database(throwaway_postgres.get_uri(), "cellar"),
    }
    migrated = run_cli(["piccolo", "migrations", "forwards", "all"], env, timeout=120)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    with cellar_server(env) as server:
        yield server, throwaway_postgres


async def test_a_database_restart_loses_and_repeats_nothing(
    restartable: tuple[CellarServer, pgserver.PostgresServer],
) -> None:
    server, postgres = restartable
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        account = await Account.new(http)
        start = account.seq
        async with connect(
            ws_url(server.url, account.notebook_id, f"?since={start}"),
            subprotocols=["bearer", account.token],  # type: ignore[list-item]
        ) as socket:
            for n in range(3):
                await account.edit(http, n)
            before = [await next_event(socket) for _ in range(3)]
            await asyncio.to_thread(stop_postgres, postgres)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(postgres.ensure_postgres_running)
            # Edits go through again (retried while 503), right after the restart.
            for n in range(3, 8):
                await account.edit(http, n)
            after = [await next_event(socket) for _ in range(5)]
            seqs = [event["seq"] for event in before + after]
            assert seqs == list(range(start + 1, start + 9)), seqs
            with pytest.raises(TimeoutError):  # and none twice
                await within(next_event(socket), 2.5)
    assert "listening again" in server.output(), server.tail()


async def test_a_notebook_sent_to_the_trash_closes_its_subscribers_with_4404(
    servers: tuple[CellarServer, CellarServer],
) -> None:
    first, second = servers
    async with httpx.AsyncClient(base_url=first.url, timeout=WAIT) as http:
        account = await Account.new(http)
        async with connect(
            ws_url(second.url, account.notebook_id),
            subprotocols=["bearer", account.token],  # type: ignore[list-item]
        ) as socket:
            await asyncio.sleep(0.3)
            trashed = await http.delete(
                f"/notebooks/{account.notebook_id}", headers=account.headers
            )
            assert trashed.status_code == 200, trashed.text
            assert (await next_event(socket))["op"] == "trash"
            with pytest.raises(ConnectionClosed):
                await next_event(socket)
            assert socket.close_code == 4404
        # And a trashed notebook cannot be followed: 4404 / 404.
        url = ws_url(second.url, account.notebook_id)
        assert (await close_code(url, subprotocols=["bearer", account.token]))[0] == 4404
        restored = await http.post(
            f"/notebooks/{account.notebook_id}/restore", headers=account.headers
        )
        assert restored.status_code == 200, restored.text
        ticket = await account.ticket(http)
        async with connect(url + f"?ticket={ticket}&since={account.seq}") as socket:
            ops = [(await next_event(socket))["op"] for _ in range(2)]
            assert ops == ["trash", "untrash"]


def realtime_clients(metrics: str) -> float:
    line = next(li for li in metrics.splitlines() if li.startswith("cellar_realtime_clients"))
    return float(line.split()[-1])


async def test_a_client_that_stops_reading_is_dropped_with_4429(database_url: str) -> None:
    """The server queues at most REALTIME_MAX_QUEUED events, then ends the subscription."""
    env = {**os.environ, **REALTIME_ENV, "REALTIME_MAX_QUEUED": "5"}
    assert env["DATABASE_URL"] == database_url
    with cellar_server(env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            account = await Account.new(http)
            # A small receive buffer, and the client library stops reading after one
            # message: the server's socket buffer fills, then its queue.
            sock = socket_module.socket()
            sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 32 * 1024)
            host, port = server.url.removeprefix("http://").split(":")
            sock.connect((host, int(port)))
            client = await connect(
                ws_url(server.url, account.notebook_id, f"?since={account.seq}"),
                subprotocols=["bearer", account.token],  # type: ignore[list-item]
                sock=sock,
                max_queue=1,
                max_size=None,
            )
            big = "x = '" + "a" * 200_000 + "'"
            path = f"/notebooks/{account.notebook_id}/cells/{account.cell_id}"
            edits = 60  # 12 MB of events: more than the socket buffers hold
            for n in range(edits):
                body = {"code": f"{big} # {n}"}
                answer = await http.put(path, json=body, headers=account.headers)
                assert answer.status_code == 200, answer.text
            # The subscription ends on the server while the client still holds its socket.
            deadline = time.monotonic() + 60
            while realtime_clients((await http.get("/metrics")).text) != 0:
                assert time.monotonic() < deadline, "the slow client was never dropped"
                await asyncio.sleep(0.5)
            seqs: list[int] = []
            with pytest.raises(ConnectionClosed):
                while True:
                    message = json.loads(await within(client.recv(), WAIT))
                    if message.get("type") != "heartbeat":
                        seqs.append(message["seq"])
            # What did arrive came in order, each once, and not all of it.
            assert seqs == list(range(account.seq + 1, account.seq + 1 + len(seqs)))
            assert len(seqs) < edits
            assert client.close_code in (4429, 1006), client.close_code


async def test_a_stopping_server_ends_its_streams_at_once(database_url: str) -> None:
    """SSE streams never end by themselves: the stop ends them; WebSockets are closed."""
    env = {**os.environ, **REALTIME_ENV}
    assert env["DATABASE_URL"] == database_url
    with cellar_server(env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            account = await Account.new(http)
            socket = await connect(
                ws_url(server.url, account.notebook_id),
                subprotocols=["bearer", account.token],  # type: ignore[list-item]
            )
            lines: list[str] = []

            async def follow() -> None:
                headers = {"Accept": "text/event-stream", **account.headers}
                path = f"/notebooks/{account.notebook_id}/events"
                with contextlib.suppress(httpx.HTTPError):
                    async with http.stream("GET", path, headers=headers) as answer:
                        async for line in answer.aiter_lines():
                            lines.append(line)

            stream = asyncio.create_task(follow())
            await asyncio.sleep(1.5)
            started = time.monotonic()
            code = await asyncio.to_thread(server.stop)
            took = time.monotonic() - started
            await within(stream, WAIT)
            with pytest.raises(ConnectionClosed):
                while True:  # heartbeats sent before the stop, then the close
                    await within(socket.recv(), WAIT)
    assert code == 0 and server.stopped_by == signal.SIGINT, server.tail()
    assert took < 10.0, server.tail()
    assert socket.close_code in (1001, 1012), socket.close_code  # ours, or uvicorn's own
    assert "event: close" in lines and 'data: {"code":1001,"reason":"server stopping"}' in lines


async def test_every_worker_of_a_process_group_follows_the_events(database_url: str) -> None:
    """``--workers 2``: each worker has its own listening connection and hub."""
    env = {**os.environ, **REALTIME_ENV}
    assert env["DATABASE_URL"] == database_url
    with cellar_server(env, workers=2) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            account = await Account.new(http)
            sockets = [
                await connect(
                    ws_url(server.url, account.notebook_id),
                    subprotocols=["bearer", account.token],  # type: ignore[list-item]
                )
                for _ in range(6)
            ]
            await asyncio.sleep(0.5)
            await account.edit(http, 1)
            events = [await next_event(socket) for socket in sockets]
            assert {event["seq"] for event in events} == {account.seq + 1}
            for socket in sockets:
                await socket.close()
            await asyncio.sleep(0.5)
            metrics = (await http.get("/metrics")).text
            assert "cellar_realtime_events_delivered_total 6.0" in metrics, metrics[-3000:]
