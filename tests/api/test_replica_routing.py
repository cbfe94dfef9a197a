"""Reads from a real hot standby, never stale after a write with its token (issue 18).

These tests need a session on a primary and its standby (``--with-replica``,
tests/conftest.py; tests/e2e/test_replicas.py runs them so) and skip
otherwise.  The standby's WAL replay is paused to make it lag for as long as
a test needs: a read that sends the token back must then come from the
primary, and a read without one must come (stale) from the standby, which
proves the standby really serves reads.  Which server answered is read from
``cellar_db_reads_total``.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client import REGISTRY

from app.database import get_engine, pool_options
from app.replicas.replicaset import ReplicaSet, replica_name
from tests.conftest import REPLICA_PAIR
from tests.helpers import new_user_headers

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from app.settings import Settings
    from tests.replicas import Pair

LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}$")


@pytest.fixture(autouse=True)
def pair(database_url: str) -> Pair:
    """The session's primary and standby (known once the session's database exists)."""
    if not REPLICA_PAIR:
        pytest.skip("needs --with-replica (tests/e2e/test_replicas.py runs it)")
    return REPLICA_PAIR[0]


@pytest.fixture
async def tokenless(client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The same app, through a client that never sends a consistency token back."""
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://testserver"
    ) as plain:
        yield plain


@pytest.fixture
async def paused(pair: Pair) -> AsyncIterator[Pair]:
    """The standby with replay paused for the test, then resumed and caught up."""
    await pair.caught_up()
    await pair.pause()
    try:
        yield pair
    finally:
        await pair.resume()
        await pair.caught_up()


def reads(server: str) -> float:
    return REGISTRY.get_sample_value("cellar_db_reads_total", {"server": server}) or 0.0


def standby(settings: Settings) -> str:
    return replica_name(settings.database_replica_urls[0])


async def notebook(client: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """A new notebook's id and the token of its creation."""
    created = await client.post("/notebooks", json={"name": "first"}, headers=headers)
    assert created.status_code == 201, created.text
    return created.json()["notebook_id"], created.headers["cellar-consistency"]


async def test_every_mutation_answer_carries_a_token(client: httpx.AsyncClient) -> None:
    headers = await new_user_headers(client)
    notebook_id, token = await notebook(client, headers)
    assert LSN.match(token), token
    renamed = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "second"}, headers=headers
    )
    assert LSN.match(renamed.headers["cellar-consistency"])
    read = await client.get(f"/notebooks/{notebook_id}", headers=headers)
    assert "cellar-consistency" not in read.headers  # reads carry none
    refused = await client.put(
        f"/notebooks/{notebook_id}/name",
        json={"name": "x", "expected_revision": 0},
        headers=headers,
    )
    assert refused.status_code == 409
    assert "cellar-consistency" not in refused.headers  # nothing was written


async def test_a_read_with_the_token_is_never_stale_while_the_standby_lags(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair, settings: Settings
) -> None:
    headers = await new_user_headers(client)
    await client.get("/notebooks", headers=headers)  # provisioned, on the primary
    await paused.resume()
    notebook_id, _ = await notebook(client, headers)
    await paused.caught_up()
    await paused.pause()

    renamed = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "after the pause"}, headers=headers
    )
    token = {"Cellar-Consistency": renamed.headers["cellar-consistency"]}
    primary_before = reads("primary")
    for _ in range(5):
        fresh = await tokenless.get(f"/notebooks/{notebook_id}", headers={**headers, **token})
        assert fresh.json()["name"] == "after the pause"
        listed = await tokenless.get("/notebooks", headers={**headers, **token})
        names = {n["id"]: n["name"] for n in listed.json()["notebooks"]}
        assert names[notebook_id] == "after the pause"
        found = await tokenless.get(
            "/notebooks/search", params={"q": "after the pause"}, headers={**headers, **token}
        )
        assert [r["notebook_id"] for r in found.json()["results"]] == [notebook_id]
    assert reads("primary") >= primary_before + 15

    # Without the token the lagging standby answers: the routing really reads from it.
    replica_before = reads(standby(settings))
    stale = await tokenless.get(f"/notebooks/{notebook_id}", headers=headers)
    assert stale.json()["name"] == "first"
    assert reads(standby(settings)) == replica_before + 1


async def test_the_trash_with_the_token_while_the_standby_lags(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair
) -> None:
    headers = await new_user_headers(client)
    await paused.resume()
    notebook_id, _ = await notebook(client, headers)
    await paused.caught_up()
    await paused.pause()
    trashed = await client.delete(f"/notebooks/{notebook_id}", headers=headers)
    assert trashed.status_code == 200, trashed.text
    token = {"Cellar-Consistency": trashed.headers["cellar-consistency"]}
    gone = await tokenless.get(f"/notebooks/{notebook_id}", headers={**headers, **token})
    assert gone.status_code == 404
    listed = await tokenless.get("/notebooks/trash", headers={**headers, **token})
    assert [n["id"] for n in listed.json()["notebooks"]] == [notebook_id]
    # The lagging standby, asked without the token, has not seen it go.
    stale = await tokenless.get("/notebooks/trash", headers=headers)
    assert stale.json()["notebooks"] == []


async def test_a_checkpoint_with_the_token_while_the_standby_lags(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair
) -> None:
    headers = await new_user_headers(client)
    await paused.resume()
    notebook_id, _ = await notebook(client, headers)
    await paused.caught_up()
    await paused.pause()
    made = await client.post(
        f"/notebooks/{notebook_id}/checkpoints", json={"name": "before"}, headers=headers
    )
    assert made.status_code == 201, made.text
    token = {"Cellar-Consistency": made.headers["cellar-consistency"]}
    base = f"/notebooks/{notebook_id}/checkpoints"
    listed = await tokenless.get(base, headers={**headers, **token})
    assert [c["id"] for c in listed.json()["checkpoints"]] == [made.json()["id"]]
    read = await tokenless.get(f"{base}/{made.json()['id']}", headers={**headers, **token})
    assert read.status_code == 200
    assert read.json()["name"] == "first"
    # The lagging standby, asked without the token, has no checkpoint yet.
    stale = await tokenless.get(base, headers=headers)
    assert stale.json()["checkpoints"] == []


async def test_if_none_match_newer_than_the_standby_goes_to_the_primary(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair
) -> None:
    headers = await new_user_headers(client)
    await paused.resume()
    notebook_id, _ = await notebook(client, headers)
    await paused.caught_up()
    await paused.pause()
    saved = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "newer"}, headers=headers
    )
    revision = saved.json()["revision"]
    # No token, but the client holds the newer revision: 304, not the standby's older 200.
    same = await tokenless.get(
        f"/notebooks/{notebook_id}", headers={**headers, "If-None-Match": f'"{revision}"'}
    )
    assert same.status_code == 304
    assert same.headers["etag"] == f'"{revision}"'
    # Holding the older revision without the token, the standby's view is as new as the
    # client's (304); with the token the client learns of its own save.
    older = f'"{revision - 1}"'
    stale = await tokenless.get(
        f"/notebooks/{notebook_id}", headers={**headers, "If-None-Match": older}
    )
    assert stale.status_code == 304
    token = saved.headers["cellar-consistency"]
    fresh = await tokenless.get(
        f"/notebooks/{notebook_id}",
        headers={**headers, "If-None-Match": older, "Cellar-Consistency": token},
    )
    assert fresh.status_code == 200
    assert fresh.json()["revision"] == revision


async def test_a_notebook_the_standby_does_not_have_yet_comes_from_the_primary(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair
) -> None:
    headers = await new_user_headers(client)
    await client.get("/notebooks", headers=headers)
    notebook_id, _ = await notebook(client, headers)
    read = await tokenless.get(f"/notebooks/{notebook_id}", headers=headers)
    assert read.status_code == 200
    graph = await tokenless.get(f"/notebooks/{notebook_id}/graph", headers=headers)
    assert graph.status_code == 200


async def test_a_new_user_lists_their_notebooks_without_a_token(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair
) -> None:
    headers = await new_user_headers(client)  # registered on the primary, not replayed
    listed = await tokenless.get("/notebooks", headers=headers)
    assert listed.status_code == 200
    assert sorted(n["kind"] for n in listed.json()["notebooks"]) == ["blank", "demo"]


async def test_a_malformed_token_is_a_400_naming_the_header(client: httpx.AsyncClient) -> None:
    headers = await new_user_headers(client)
    answer = await client.get(
        "/notebooks", headers={**headers, "Cellar-Consistency": "not a position"}
    )
    assert answer.status_code == 400
    assert "Cellar-Consistency" in answer.text


async def test_health_and_metrics_show_the_standby(
    client: httpx.AsyncClient, settings: Settings, pair: Pair
) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    (replica,) = health.json()["replicas"]
    assert replica["name"] == standby(settings)
    assert replica["status"] == "healthy"
    assert LSN.match(replica["replayed"])
    scraped = (await client.get("/metrics")).text
    assert f'cellar_replica_lag_seconds{{replica="{standby(settings)}"}}' in scraped
    assert f'cellar_replica_healthy{{replica="{standby(settings)}"}} 1.0' in scraped
    assert 'cellar_db_reads_total{server="primary"}' in scraped


async def test_a_lagging_standby_is_skipped(pair: Pair, settings: Settings) -> None:
    """The monitor itself, with a lag limit of half a second: paused replay → lagging."""
    replicas = ReplicaSet(
        settings.database_replica_urls,
        max_lag_seconds=0.5,
        pool_options=pool_options(settings),
        primary=lambda: get_engine().pool,
        primary_url=settings.database_url or "",
        interval=0.1,
    )
    await replicas.start()
    try:
        assert replicas.choose(None) is not None
        await pair.pause()
        try:
            async with get_engine().pool.acquire() as conn:  # type: ignore[union-attr]
                await conn.fetchval("SELECT txid_current()")  # commits: WAL to replay
            for _ in range(20):
                await asyncio.sleep(0.1)
                await replicas.check()
            (replica,) = replicas.replicas
            assert replica.status == "lagging", (replica.status, replica.lag)
            assert replica.lag is not None and replica.lag > 0.5
            assert replicas.choose(None) is None
        finally:
            await pair.resume()
        await pair.caught_up()
        await replicas.check()
        assert replicas.replicas[0].status == "healthy"
    finally:
        await replicas.stop()


async def test_a_stopped_standby_is_no_error_for_clients(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, pair: Pair, settings: Settings
) -> None:
    headers = await new_user_headers(client)
    notebook_id, _ = await notebook(client, headers)
    await pair.caught_up()
    pair.stop_standby()
    try:
        for _ in range(10):  # the first reads may still pick it: they fall back
            answer = await tokenless.get(f"/notebooks/{notebook_id}", headers=headers)
            assert answer.status_code == 200, answer.text
            listed = await tokenless.get("/notebooks", headers=headers)
            assert listed.status_code == 200, listed.text
        for _ in range(50):  # the monitor's next check, at most a second away
            health = await client.get("/health")
            assert health.status_code == 200
            if health.json()["replicas"][0]["status"] == "down":
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("/health does not show the stopped standby as down")
    finally:
        pair.start_standby()
    for _ in range(100):
        await asyncio.sleep(0.1)
        if (await client.get("/health")).json()["replicas"][0]["status"] == "healthy":
            break
    else:
        raise AssertionError("the standby did not come back")


async def test_the_event_stream_carries_tokens_past_each_event(
    client: httpx.AsyncClient, tokenless: httpx.AsyncClient, paused: Pair, settings: Settings
) -> None:
    """An event read by the realtime service comes with a token that a lagging standby has
    not reached: a read sending it back shows the change the event announced."""
    from app.auth.services import AuthService
    from app.auth.tokens import TokenService
    from app.realtime.services import RealtimeService
    from app.replicas import tokens

    headers = await new_user_headers(client)
    await paused.resume()
    notebook_id, _ = await notebook(client, headers)
    await paused.caught_up()
    await paused.pause()
    renamed = await client.put(
        f"/notebooks/{notebook_id}/name", json={"name": "announced"}, headers=headers
    )
    written = tokens.parse(renamed.headers["cellar-consistency"])

    signer = TokenService(secret_key=settings.app_secret_key or "x", lifetime_seconds=60)
    realtime = RealtimeService(settings, signer, AuthService())
    assert realtime.token(notebook_id) is None  # nothing read yet
    events = await realtime._fetch(notebook_id, 0, 100)
    assert events[-1].op == "rename"
    token = realtime.token(notebook_id)
    assert token is not None and tokens.parse(token) >= written
    fresh = await tokenless.get(
        f"/notebooks/{notebook_id}", headers={**headers, "Cellar-Consistency": token}
    )
    assert fresh.json()["name"] == "announced"
    stale = await tokenless.get(f"/notebooks/{notebook_id}", headers=headers)
    assert stale.json()["name"] == "first"  # the standby really is behind the event
