"""Realtime's fan-out, catch-up, positions and tickets against the session's PostgreSQL (SPEC §11).

The hub and the listener are driven here directly, on the real events
table, with events appended as every mutation appends them (DESIGN.md: the
notebook's ``seq`` raised, the event inserted and ``pg_notify`` sent in one
transaction).  The routes themselves, over real sockets and two instances,
are tests/e2e/test_realtime.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import TYPE_CHECKING, Any

import pytest

from app.database import connection, listen_config
from app.errors import Gone, NotFound
from app.realtime.hub import Hub, Subscriber
from app.realtime.listener import Listener
from app.realtime.services import RealtimeService
from app.store import events as events_store
from app.store import realtime as realtime_store
from tests.helpers import new_user_headers, within

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

    from app.settings import Settings
    from app.store.events import Event

WAIT = 30.0  # seconds a wait may take at most (a slow, shared machine: load 10 on 2 cores)


async def fetch(notebook_id: str, since: int, limit: int) -> list[Event]:
    async with connection() as conn:
        return await events_store.after(conn, notebook_id, since, limit)


async def new_notebook(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    headers = await new_user_headers(client)
    created = await client.post("/notebooks", json={"name": "realtime"}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["notebook_id"], headers


async def append(notebook_id: str, op: str = "cell_update", notify: bool = True) -> int:
    """An event as a mutation writes it: seq + 1, the row and the wake-up, one transaction."""
    async with connection() as conn, conn.transaction():
        seq, user_id, revision = await conn.fetchrow(
            "UPDATE notebooks SET seq = seq + 1 WHERE id = $1 RETURNING seq, user_id, revision",
            notebook_id,
        )
        await conn.execute(
            "INSERT INTO notebook_events (notebook_id, seq, user_id, revision, actor, op, data)"
            " VALUES ($1, $2, $3, $4, 'system', $5, '{}')",
            notebook_id,
            seq,
            user_id,
            revision,
            op,
        )
        if notify:
            await conn.execute("SELECT pg_notify('cellar_events', $1)", f"{seq}:{notebook_id}")
    return int(seq)


async def current_seq(notebook_id: str) -> int:
    async with connection() as conn:
        return int(await conn.fetchval("SELECT seq FROM notebooks WHERE id = $1", notebook_id))


async def collect(subscriber: Subscriber, upto: int, heartbeat: float = 0.2) -> list[int]:
    """The seqs the subscriber hands out until ``upto`` (heartbeats left out), bounded in time."""
    seqs: list[int] = []

    async def run() -> None:
        async for event in subscriber.events(fetch, heartbeat):
            if event is not None:
                seqs.append(event.seq)
                if event.seq >= upto:
                    return

    await within(run(), WAIT)
    return seqs


async def until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the wait"
        await asyncio.sleep(0.02)


@pytest.fixture
async def listening(client: httpx.AsyncClient, settings: Settings) -> Any:
    """A hub with its own listener on the session database, stopped afterwards."""
    hub = Hub(fetch, max_queued=1000)
    listener = Listener(hub, listen_config(settings), check_interval=0.2)
    listener.start()
    await within(listener.connected.wait(), WAIT)
    yield hub, listener
    await listener.stop()


async def test_backlog_then_live_events_in_order_each_once(
    client: httpx.AsyncClient, listening: tuple[Hub, Listener]
) -> None:
    hub, _ = listening
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    for _ in range(3):
        await append(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, await current_seq(notebook_id))
    reading = asyncio.create_task(collect(subscriber, base + 53))

    async def writer(n: int) -> None:
        for _ in range(n):
            await append(notebook_id)

    # Five writers at once: commits interleave with the subscriber's catch-up.
    await asyncio.gather(*(writer(10) for _ in range(5)))
    assert await reading == list(range(base + 1, base + 54))
    hub.unsubscribe(subscriber)
    assert notebook_id not in hub.topics


async def test_two_subscribers_share_one_read_per_wake_up(
    client: httpx.AsyncClient, listening: tuple[Hub, Listener]
) -> None:
    hub, _ = listening
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    first = hub.subscribe(notebook_id, base, base)
    second = hub.subscribe(notebook_id, base, base)
    assert len(hub.topics[notebook_id].subscribers) == 2
    readers = [asyncio.create_task(collect(s, base + 5)) for s in (first, second)]
    for _ in range(5):
        await append(notebook_id)
    expected = list(range(base + 1, base + 6))
    assert [await reader for reader in readers] == [expected, expected]


async def test_since_and_only_new_events(
    client: httpx.AsyncClient, listening: tuple[Hub, Listener]
) -> None:
    hub, _ = listening
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    for _ in range(4):
        await append(notebook_id)
    # From base + 2: the two after it, then what comes.
    later = hub.subscribe(notebook_id, base + 2, base + 4)
    # From now (no since): only what comes.
    fresh = hub.subscribe(notebook_id, base + 4, base + 4)
    readers = [asyncio.create_task(collect(s, base + 5)) for s in (later, fresh)]
    await append(notebook_id)
    assert await readers[0] == [base + 3, base + 4, base + 5]
    assert await readers[1] == [base + 5]


async def test_a_hole_in_what_the_topic_hands_on_is_read_from_the_table(
    client: httpx.AsyncClient,
) -> None:
    hub = Hub(fetch, max_queued=1000)  # no listener: the test hands events on itself
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, base)
    for _ in range(3):
        await append(notebook_id, notify=False)
    last = await fetch(notebook_id, base + 2, 10)
    subscriber.push(last)  # only the third: the first two must come from the table
    assert await collect(subscriber, base + 3) == [base + 1, base + 2, base + 3]


async def test_events_missed_without_a_notification_come_with_the_next_wake_up(
    client: httpx.AsyncClient,
) -> None:
    hub = Hub(fetch, max_queued=1000)
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, base)
    events = subscriber.events(fetch, heartbeat=0.2)
    # A heartbeat first: the catch-up from the table is over before anything is
    # appended (appended during it, the events would rightly come from the table).
    assert await within(anext(events), WAIT) is None
    await append(notebook_id, notify=False)
    await append(notebook_id, notify=False)
    # In the table, but no notification: only heartbeats.
    assert await within(anext(events), WAIT) is None
    assert await within(anext(events), WAIT) is None
    hub.wake_all()  # what the listener does once it listens again
    woken: list[int] = []
    while len(woken) < 2:  # heartbeats may come while the topic reads the table
        event = await within(anext(events), WAIT)
        if event is not None:
            woken.append(event.seq)
    assert woken == [base + 1, base + 2]
    await events.aclose()


async def test_a_client_that_does_not_read_is_closed_with_4429_and_its_queue_dropped(
    client: httpx.AsyncClient,
) -> None:
    hub = Hub(fetch, max_queued=5)
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, base)
    for _ in range(5):
        await append(notebook_id, notify=False)
    hub.notify(notebook_id, base + 5)
    await until(lambda: subscriber.queued == 5)
    assert subscriber.close_code is None
    await append(notebook_id, notify=False)
    hub.notify(notebook_id, base + 6)
    await within(subscriber.closed(), WAIT)
    assert subscriber.close_code == 4429
    assert subscriber.queued == 0
    assert "since" in subscriber.close_reason


async def test_the_trash_event_is_sent_then_the_subscription_closes_with_4404(
    client: httpx.AsyncClient, listening: tuple[Hub, Listener]
) -> None:
    hub, _ = listening
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, base)
    reading = asyncio.create_task(collect(subscriber, base + 99))
    await append(notebook_id)
    await append(notebook_id, op="trash")
    await append(notebook_id)  # not sent: the subscription ended with the trash
    await within(subscriber.closed(), WAIT)
    assert subscriber.close_code == 4404
    assert await reading == [base + 1, base + 2]


async def test_the_listener_reconnects_and_nothing_is_missed_or_repeated(
    client: httpx.AsyncClient, listening: tuple[Hub, Listener]
) -> None:
    hub, listener = listening
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = hub.subscribe(notebook_id, base, base)
    reading = asyncio.create_task(collect(subscriber, base + 20))
    for _ in range(5):
        await append(notebook_id)
    before = listener.connections
    async with connection() as conn:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'cellar-listen' AND datname = current_database()"
        )
    assert killed >= 1
    for _ in range(10):  # notifications of these may go nowhere: the table has them
        await append(notebook_id)
    await until(lambda: listener.connections > before)
    for _ in range(5):
        await append(notebook_id)
    assert await reading == list(range(base + 1, base + 21))


async def test_where_a_subscription_starts(client: httpx.AsyncClient, settings: Settings) -> None:
    service = RealtimeService(settings, tokens=None, auth=None)  # type: ignore[arg-type]
    notebook_id, headers = await new_notebook(client)
    me = (await client.get("/me", headers=headers)).json()["id"]
    from uuid import UUID

    user_id = UUID(me)
    base = await current_seq(notebook_id)
    for _ in range(5):
        await append(notebook_id)
    now = base + 5
    start = await service.position(user_id, notebook_id, None)
    assert (start.position, start.current) == (now, now)
    assert (await service.position(user_id, notebook_id, base + 2)).position == base + 2
    # Beyond the last seq: an empty backlog, then live (from now).
    assert (await service.position(user_id, notebook_id, now + 1000)).position == now
    async with connection() as conn:
        await conn.execute(
            "DELETE FROM notebook_events WHERE notebook_id = $1 AND seq <= $2",
            notebook_id,
            base + 3,
        )
    assert (await service.position(user_id, notebook_id, base + 3)).position == base + 3
    with pytest.raises(Gone) as pruned:
        await service.position(user_id, notebook_id, base + 2)
    assert pruned.value.body()["oldest_seq"] == base + 4
    assert pruned.value.status_code == 410
    other_headers = await new_user_headers(client)
    other = UUID((await client.get("/me", headers=other_headers)).json()["id"])
    with pytest.raises(NotFound):
        await service.position(other, notebook_id, None)
    with pytest.raises(NotFound):
        await service.position(user_id, "no-such-notebook", None)


async def test_tickets_are_issued_for_the_owner_and_used_once(client: httpx.AsyncClient) -> None:
    notebook_id, headers = await new_notebook(client)
    issued = await client.post(f"/notebooks/{notebook_id}/events/ticket", headers=headers)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["expires_in"] == 60 and len(body["ticket"]) >= 40
    ticket_hash = hashlib.sha256(body["ticket"].encode()).digest()
    async with connection() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM realtime_tickets WHERE notebook_id = $1", notebook_id
        )
        assert stored == 1
        # The table holds the hash only: the ticket itself is nowhere in it.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM realtime_tickets WHERE ticket_hash = $1::text::bytea",
                body["ticket"],
            )
            == 0
        )
        redeemed = await realtime_store.redeem_ticket(conn, ticket_hash)
        assert redeemed is not None and redeemed.valid
        assert redeemed.notebook_id == notebook_id
        assert await realtime_store.redeem_ticket(conn, ticket_hash) is None  # used up

        expiring = (
            await client.post(f"/notebooks/{notebook_id}/events/ticket", headers=headers)
        ).json()["ticket"]
        expiring_hash = hashlib.sha256(expiring.encode()).digest()
        await conn.execute(
            "UPDATE realtime_tickets SET expires_at = now() - interval '1 second'"
            " WHERE ticket_hash = $1",
            expiring_hash,
        )
        late = await realtime_store.redeem_ticket(conn, expiring_hash)
        assert late is not None and not late.valid

    other = await new_user_headers(client)
    refused = await client.post(f"/notebooks/{notebook_id}/events/ticket", headers=other)
    assert refused.status_code == 404, refused.text
    missing = await client.post("/notebooks/no-such/events/ticket", headers=headers)
    assert missing.status_code == 404
    assert (await client.post(f"/notebooks/{notebook_id}/events/ticket")).status_code == 401


async def test_the_events_route_without_a_stream_or_socket_answers_406(
    client: httpx.AsyncClient,
) -> None:
    notebook_id, headers = await new_notebook(client)
    answer = await client.get(f"/notebooks/{notebook_id}/events", headers=headers)
    assert answer.status_code == 406
    assert "text/event-stream" in answer.json()["detail"]
    sse = {"Accept": "text/event-stream"}
    for query, status in [("?since=-1", 400), ("?since=x", 400), ("", 401), ("?ticket=nope", 401)]:
        refused = await client.get(f"/notebooks/{notebook_id}/events{query}", headers=sse)
        assert refused.status_code == status, (query, refused.text)
    bad_id = await client.get(
        f"/notebooks/{notebook_id}/events", headers={**sse, **headers, "Last-Event-ID": "z"}
    )
    assert bad_id.status_code == 400 and bad_id.json()["field"] == "Last-Event-ID"
    other = await client.get("/notebooks/no-such/events", headers={**sse, **headers})
    assert other.status_code == 404
    # An empty Last-Event-ID is no position: since applies (and is checked).
    empty = await client.get(
        f"/notebooks/{notebook_id}/events?since=-1",
        headers={**sse, **headers, "Last-Event-ID": ""},
    )
    assert empty.status_code == 400 and empty.json()["field"] == "since"


async def test_subscribers_of_a_notebook_deleted_for_good_are_closed_by_the_sweep(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    service = RealtimeService(settings, tokens=None, auth=None)  # type: ignore[arg-type]
    kept, _ = await new_notebook(client)
    purged, headers = await new_notebook(client)
    followers = [service.hub.subscribe(n, 0, 0) for n in (kept, purged)]
    await service.sweep()
    assert [f.close_code for f in followers] == [None, None]
    # Deleted for good, as a purge or the admin does it: no event is left to say so.
    answer = await client.delete(f"/notebooks/{purged}?purge=true", headers=headers)
    assert answer.status_code == 200, answer.text
    await service.sweep()
    assert [f.close_code for f in followers] == [None, 4404]
    await within(followers[1].closed(), WAIT)


async def test_the_sweep_reads_what_a_lost_wake_up_did_not_announce(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    service = RealtimeService(settings, tokens=None, auth=None)  # type: ignore[arg-type]
    notebook_id, _ = await new_notebook(client)
    base = await current_seq(notebook_id)
    subscriber = service.hub.subscribe(notebook_id, base, base)
    reading = asyncio.create_task(collect(subscriber, base + 2))
    await append(notebook_id, notify=False)  # committed, its wake-up lost
    await append(notebook_id, notify=False)
    await asyncio.sleep(0.3)
    assert not reading.done()
    await service.sweep()
    assert await reading == [base + 1, base + 2]
