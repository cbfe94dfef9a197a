"""SPEC §11 retention: old events go, each notebook's last ``HISTORY_KEEP_LAST`` stay.

Ages are made by moving ``at`` back in the database.  The daily run
goes on one instance at a time whatever the number asking together (several
concurrent ``run_job``, as several processes would).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.database import connection
from app.history.retention import prune_history
from app.system.daily import DailyJobs
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


async def test_the_daily_prune_runs_on_one_instance_at_a_time(client: Any) -> None:
    """As create_app registers it: instances asking together, one runs it, the others skip."""
    _, notebook_id = await _notebook_with_events(client, 3)
    await age(notebook_id, 1000)

    async def prune() -> int:
        removed = await prune_history(days=90, keep_last=1)
        await asyncio.sleep(0.2)  # still running when the others ask
        return removed

    daily = DailyJobs({"prune-history": prune})
    results = await asyncio.gather(*(daily.run_job("prune-history") for _ in range(4)))
    ran = [r for r in results if r is not None]
    assert len(ran) == 1 and ran[0] >= 3
    assert await seqs(notebook_id) == [4]
