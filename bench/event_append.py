"""What the event log costs the code edit (SPEC §11): the same UPDATE with and without it.

What it measures
----------------
Throughput and median latency of the code edit's statement at
``--connections`` concurrent connections (16 by default), each editing one
cell of its own 50-cell notebook, autocommit, back to back:

* **with**: as the service runs it: ``app.store.notebooks.EDIT_CODE`` (the
  UPDATE raises ``revision`` and ``seq``, a CTE appends the ``cell_update``
  event), then, committed, the wake-up ``WAKE`` (its own transaction, not
  waiting for the WAL flush);
* **without**: the statement as it was before the event log (the same
  UPDATE and RETURNING, no ``seq``, no event, no wake-up), built here;
* **notify inside**: the first design, ``pg_notify`` inside the change's
  statement: PostgreSQL's notify lock is then held through each commit's
  WAL flush, one notifying commit after the other.

The two take turns for ``--rounds`` rounds of ``--seconds`` each, so machine
noise lands on both.  The issue's goal: the event costs the update at most
10 % of its throughput at 16 connections (ratio without/with <= 1.10).

How
---
A scratch database on ``--pg-url``, migrated with ``piccolo migrations
forwards all``, seeded with one user and one notebook per connection, and
dropped at the end.  Only the statement is timed (asyncpg, prepared), not
HTTP: the figure isolates what the event adds inside PostgreSQL::

    python bench/event_append.py
    python bench/event_append.py --connections 16 --rounds 4 --seconds 5 --json /tmp/ev.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.notebooks.cells import code_edits
from app.store import notebooks as store
from bench.cell_update_vs_outputs import (
    generated_secrets,
    migrate,
    scratch_database,
)

CELLS = 50
# Marks a statement after which the worker sends the wake-up, as the service does.
WAKES = "\n-- then the wake-up"


def _without_event() -> str:
    """``EDIT_CODE`` less its seq, event and notify: the first CTE's UPDATE alone.

    The code edit before the event log: the same SET, WHERE and answer, nothing more.
    """
    update = store.EDIT_CODE.split("), event AS (")[0]
    update = update.replace("seq = n.seq + 1, ", "").replace("WITH changed AS (\n", "", 1)
    head, _, returning = update.rpartition("RETURNING ")
    # Keep only the answer's columns (drop the event's bookkeeping ones).
    answer = returning.split("n.seq AS event_seq, ", 1)[1]
    return f"{head}RETURNING {answer}"


async def _seed(url: str, count: int) -> list[tuple[str, uuid.UUID, str]]:
    conn = await asyncpg.connect(url)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@bench.test"
        )
        targets = []
        for _ in range(count):
            notebook_id = str(uuid.uuid4())
            cells = [
                {
                    "id": str(uuid.uuid4()),
                    "type": "python",
                    "code": f"x{i} = compute_{i}(data, window={i})",
                    "reads": ["data"],
                    "writes": [f"x{i}"],
                    "metadata": {},
                }
                for i in range(CELLS)
            ]
            await conn.execute(
                "INSERT INTO notebooks (id, user_id, kind, cells) VALUES ($1, $2, 'user', $3)",
                notebook_id,
                user_id,
                json.dumps(cells),
            )
            targets.append((notebook_id, user_id, cells[CELLS // 2]["id"]))
        return targets
    finally:
        await conn.close()


async def _worker(
    url: str, target: tuple[str, uuid.UUID, str], statement: str, stop: float, out: list[float]
) -> None:
    notebook_id, user_id, cell_id = target
    conn = await asyncpg.connect(url)
    try:
        after = statement.endswith(WAKES)
        prepared = await conn.prepare(statement)
        notify = await conn.prepare(store.WAKE)
        n = 0
        while time.perf_counter() < stop:
            edits = msgspec.json.encode(code_edits(f"y = x{n % CELLS} + {n}")).decode()
            started = time.perf_counter()
            record = await prepared.fetchrow(notebook_id, user_id, None, None, cell_id, edits)
            if after:
                await notify.fetchrow(record[3], notebook_id)  # as the service: after commit
            out.append(time.perf_counter() - started)
            n += 1
    finally:
        await conn.close()


async def _measure(url: str, targets: list, statement: str, seconds: float) -> tuple[float, float]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    await asyncio.gather(*(_worker(url, t, statement, stop, latencies) for t in targets))
    return len(latencies) / seconds, statistics.median(latencies) * 1000


async def _run(url: str, args: argparse.Namespace) -> dict[str, list[tuple[float, float]]]:
    targets = await _seed(url, args.connections)
    # The rejected design: the wake-up inside the change's statement (its transaction).
    inside = store.EDIT_CODE.replace(
        "event_seq\n  FROM changed",
        "event_seq, pg_notify('cellar_events', event_seq || ':' || event_notebook_id)\n"
        "  FROM changed",
    )
    assert inside != store.EDIT_CODE
    statements = {
        "with": store.EDIT_CODE + WAKES,
        "without": _without_event(),
        "notify inside": inside,
    }
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in statements}
    for statement in statements.values():  # warm-up, not counted
        await _measure(url, targets, statement, 1.0)
    for round_number in range(args.rounds):
        order = list(statements) if round_number % 2 == 0 else list(reversed(statements))
        for name in order:
            figures[name].append(await _measure(url, targets, statements[name], args.seconds))
            rate, p50 = figures[name][-1]
            print(f"round {round_number + 1} {name:20} {rate:8.0f}/s  p50 {p50:.2f} ms")
    return figures


HISTORY_EVENTS = 100_000


async def _history(url: str, reads: int) -> dict[str, float]:
    """p50/p99 of one history page (since near the end) of a notebook with 100,000 events."""
    from app.store import events

    conn = await asyncpg.connect(url)
    try:
        user_id = await conn.fetchval(
            "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@bench.test"
        )
        notebook_id = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO notebooks (id, user_id, kind, cells, seq)"
            " VALUES ($1, $2, 'user', '[]', $3)",
            notebook_id,
            user_id,
            HISTORY_EVENTS,
        )
        await conn.execute(
            "INSERT INTO notebook_events (notebook_id, seq, user_id, revision, actor, op, cell_id,"
            " data) SELECT $1, s, $2, s, 'bench', 'cell_update', 'c' || s % 50,"
            " jsonb_build_object('code', 'x = ' || s, 'reads', '[]'::jsonb,"
            " 'writes', '[\"x\"]'::jsonb)"
            " FROM generate_series(1, $3::int) AS s",
            notebook_id,
            user_id,
            HISTORY_EVENTS,
        )
        await conn.execute("VACUUM (ANALYZE) notebook_events")
        timings = []
        for n in range(reads):
            since = HISTORY_EVENTS - 50 - n % 50
            started = time.perf_counter()
            page = await events.history(conn, notebook_id, user_id, since, 100)
            timings.append((time.perf_counter() - started) * 1000)
            assert page is not None and page.events
        timings.sort()
        return {"p50_ms": statistics.median(timings), "p99_ms": timings[int(len(timings) * 0.99)]}
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--history-reads", type=int, default=2000)
    parser.add_argument("--history-only", action="store_true", help="skip the update A/B")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with scratch_database(args.pg_url) as url:
        migrate({**os.environ, **generated_secrets(), "DATABASE_URL": url})
        history = asyncio.run(_history(url, args.history_reads))
        if args.history_only:
            print(
                f"history of a notebook with {HISTORY_EVENTS} events, since near the end, "
                f"1 conn.: p50 {history['p50_ms']:.2f} ms, p99 {history['p99_ms']:.2f} ms"
            )
            return
        figures = asyncio.run(_run(url, args))
    rate = {name: statistics.median(r for r, _ in rows) for name, rows in figures.items()}
    p50 = {name: statistics.median(p for _, p in rows) for name, rows in figures.items()}
    ratio = rate["without"] / rate["with"]
    print(
        f"median of rounds: without {rate['without']:.0f}/s (p50 {p50['without']:.2f} ms), "
        f"with {rate['with']:.0f}/s (p50 {p50['with']:.2f} ms); "
        f"throughput ratio without/with {ratio:.2f} (goal <= 1.10)"
    )
    print(
        f"history of a notebook with {HISTORY_EVENTS} events, since near the end, 1 conn.: "
        f"p50 {history['p50_ms']:.2f} ms, p99 {history['p99_ms']:.2f} ms (goal p50 < 5 ms)"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps({"rate": rate, "p50_ms": p50, "ratio": ratio, "history": history}, indent=2)
        )


if __name__ == "__main__":
    main()
