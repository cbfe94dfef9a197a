"""SPEC §11 retention: old events go, each notebook's last ``HISTORY_KEEP_LAST`` stay.

Ages are made by moving ``at`` back in the database.  The daily runner
claims a job once per period whatever the number of instances asking at
the same time (several concurrent ``run_due``, as several processes would).
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import pytest

from app.database import connection
from app.history.retention import prune_history
from app.system.daily import DailyJob, run_due
from tests.api.test_notebooks import create_notebook, fresh_user_headers


async def _notebook_with_events(client: Any, renames: int) -> tuple[dict[str, str], str]:
    headers = await fresh_user_headers(client)
    notebook_id = await create_notebook(client, headers, "v0")
    for number in range(1, renames + 1):
        response = await client.put(
            f"/notebooks/{notebook_id}/name", json={"name": f"v{number}"}, headers=headers
        )
        assert response.status_code == 200
    return headers, notebook_id


async def age(notebook_id: str, days: int, up_to_seq: int | None = None) -> None:
    async with connection() as conn:
        await conn.execute(
            "UPDATE notebook_events SET at = at - make_interval(days => $2)"
            " WHERE notebook_id = $1 AND ($3::bigint IS NULL OR seq <= $3)",
            notebook_id,
            days,
            up_to_seq,
        )


async def seqs(notebook_id: str) -> list[int]:
    async with connection() as conn:
        rows = await conn.fetch(
            "SELECT seq FROM notebook_events WHERE notebook_id = $1 ORDER BY seq", notebook_id
        )
    return [row["seq"] for row in rows]


async def test_old_events_go_but_the_last_n_stay(client: Any) -> None:
    headers, old = await _notebook_with_events(client, 9)  # seqs 1…10
    _, young = await _notebook_with_events(client, 9)
    await age(old, 100)
    await age(young, 100, up_to_seq=3)  # 4…10 are young

    deleted = await prune_history(days=90, keep_last=4, batch=1)  # batches of one notebook
    assert deleted >= 6 + 3
    assert await seqs(old) == [7, 8, 9, 10]  # all old: only the last 4
    assert await seqs(young) == [4, 5, 6, 7, 8, 9, 10]  # the young ones stay

    response = await client.get(f"/notebooks/{old}/history", params={"since": 2}, headers=headers)
    assert response.status_code == 410
    assert response.json()["oldest_seq"] == 7

    await prune_history(days=90, keep_last=4)  # again: nothing more of these goes
    assert await seqs(old) == [7, 8, 9, 10]


async def test_zero_days_keeps_only_the_last_n(client: Any) -> None:
    _, notebook_id = await _notebook_with_events(client, 5)
    await prune_history(days=0, keep_last=1)
    assert await seqs(notebook_id) == [6]


async def test_the_kept_log_never_has_a_hole(client: Any) -> None:
    """``at`` is a transaction's start, not in seq order: the prefix up to the newest old
    one goes."""
    _, notebook_id = await _notebook_with_events(client, 5)
    await age(notebook_id, 100, up_to_seq=1)
    async with connection() as conn:  # seq 3 is older than seq 2
        await conn.execute(
            "UPDATE notebook_events SET at = at - interval '200 days'"
            " WHERE notebook_id = $1 AND seq = 3",
            notebook_id,
        )
    await prune_history(days=90, keep_last=2)
    assert await seqs(notebook_id) == [4, 5, 6]


@pytest.fixture
def job_name() -> str:
    return f"test-job-{secrets.token_hex(4)}"


async def test_a_daily_job_runs_once_whoever_asks(
    client: Any, settings: Any, job_name: str
) -> None:
    assert client is not None
    runs: list[int] = []

    async def job(_: Any) -> str:
        runs.append(1)
        await asyncio.sleep(0.05)
        return "done"

    jobs = [DailyJob(job_name, job)]
    outcomes = await asyncio.gather(*(run_due(settings, jobs) for _ in range(6)))
    assert len(runs) == 1
    assert sorted(len(o) for o in outcomes) == [0, 0, 0, 0, 0, 1]
    assert await run_due(settings, jobs) == {}  # not due again yet
    async with connection() as conn:
        row = await conn.fetchrow(
            "SELECT finished_at IS NOT NULL AS finished, outcome FROM cellar_daily_runs"
            " WHERE job = $1",
            job_name,
        )
        assert row["finished"] and row["outcome"] == "done"
        await conn.execute(
            "UPDATE cellar_daily_runs SET started_at = started_at - interval '1 day'"
            " WHERE job = $1",
            job_name,
        )
    assert await run_due(settings, jobs) == {job_name: "done"}
    assert len(runs) == 2


async def test_a_failing_daily_job_is_recorded(client: Any, settings: Any, job_name: str) -> None:
    assert client is not None

    async def job(_: Any) -> str:
        raise RuntimeError("boom")

    outcomes = await run_due(settings, [DailyJob(job_name, job)], every=timedelta(hours=23))
    assert outcomes == {job_name: "failed: RuntimeError: boom"}


async def test_the_prune_history_job_prunes(client: Any, settings: Any) -> None:
    _, notebook_id = await _notebook_with_events(client, 3)
    await age(notebook_id, 1000)
    async with connection() as conn:
        await conn.execute("DELETE FROM cellar_daily_runs WHERE job = 'prune-history'")
    outcomes = await run_due(settings)
    assert outcomes["prune-history"].startswith("pruned ")
    assert len(await seqs(notebook_id)) == 4  # fewer than HISTORY_KEEP_LAST: all kept
