"""What the trash and checkpoints cost (issue 14, SPEC §13), one run.

What it measures
----------------
1. **Checkpoints.**  The store's checkpoint, as ``CheckpointService.create``
   runs it (one transaction: ``room`` locks the notebook and counts, then the
   one ``CREATE`` statement), 100 times in a row, of the benchmark's big
   notebook (``bench-big``, 50 cells, ≈ 220 KB as the API serves it) and of
   a notebook with 5 MB of outputs that do not change (``bench-out-5``):
   p50/p90 latency, and the new storage per checkpoint from
   ``pg_total_relation_size`` of ``notebook_checkpoints``, ``checkpoint_runs``
   and ``run_blobs`` (heap, TOAST, indexes) before and after the 100.  The
   first checkpoint of a notebook stores its payloads once (a copy of the
   live outputs); it is taken before the 100 and reported on its own.
2. **GET, list and search with 10 % of the notebooks in the trash.**  The
   store's statements (``notebooks.GET``, ``notebooks.LIST``, the search
   statement for ``q=revenue_by_region`` and for ``type=sql``) timed on
   ``--notebooks`` notebooks of one user, then again after 10 % of them
   (at random, fixed seed) went to the trash, then VACUUM ANALYZE as
   autovacuum would.  The goal: unchanged within the noise.

How
---
A scratch database ``cellar_trash_<hex>`` on ``--pg-url`` (default the local
server), migrated with ``piccolo migrations forwards all``, seeded with
``bench/seed.py``'s notebooks, dropped at the end.  Statements run on one
asyncpg connection, strictly one after another, timed with
``time.perf_counter``::

    python bench/trash.py
    python bench/trash.py --notebooks 20000 --repeat 300 --json /tmp/trash.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.store import checkpoints, notebooks, search  # noqa: E402
from bench.seed import BIG_ID, big_notebook, output_notebook, stored_cells  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

KIB = 1024
CHECKPOINT_TABLES = ("notebook_checkpoints", "checkpoint_runs", "run_blobs")
USER = uuid.UUID("00000000-0000-4000-8000-00000000c001")


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> list[float]:
    """Milliseconds per call, ``repeat`` calls after 5 warm-up ones."""
    for _ in range(5):
        await work()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p90": round(ordered[int(len(ordered) * 0.9) - 1], 3),
        "max": round(ordered[-1], 3),
    }


async def storage(conn: asyncpg.Connection) -> int:
    return int(
        await conn.fetchval(
            "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest($1::text[]) AS t",
            list(CHECKPOINT_TABLES),
        )
    )


async def seed(conn: asyncpg.Connection, count: int) -> None:
    await conn.execute(
        "INSERT INTO users (id, email, provisioned_at) VALUES ($1, 'trash@bench.invalid', now())",
        USER,
    )
    for notebook_id, cells in ((BIG_ID, big_notebook()), ("bench-out-5", output_notebook(5))):
        await conn.execute(
            "INSERT INTO notebooks (id, user_id, name, kind, cells) "
            "VALUES ($1, $2, $1, 'user', $3::jsonb)",
            notebook_id,
            USER,
            stored_cells(cells),
        )
        await conn.executemany(
            "INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs) "
            "VALUES ($1, $2, $3, $4, $5::json)",
            [
                (notebook_id, c.id, c.status, c.stdout, json.dumps(c.outputs))
                for c in cells
                if c.outputs or c.stdout
            ],
        )
    # The user's other notebooks: three cells each, one in a hundred with the search
    # term, one in twenty with an sql cell; spread over the last days.
    await conn.execute(
        """
        INSERT INTO notebooks (id, user_id, name, kind, cells, updated_at)
        SELECT 'nb-' || n, $1, 'analysis ' || n % 997, 'user',
               jsonb_build_array(
                   jsonb_build_object('id', n || '-1', 'type', 'python', 'reads', '[]'::jsonb,
                       'writes', '[]'::jsonb, 'metadata', '{}'::jsonb,
                       'code', 'frame_' || n % 1000 || ' = compute_' || n % 700 || '(x)'),
                   jsonb_build_object('id', n || '-2',
                       'type', CASE WHEN n % 20 = 0 THEN 'sql' ELSE 'python' END,
                       'reads', '[]'::jsonb, 'writes', '[]'::jsonb, 'metadata', '{}'::jsonb,
                       'code', CASE WHEN n % 100 = 0
                                    THEN 'revenue_by_region = df.groupby("region").sum()'
                                    ELSE 'total_' || n % 300 || ' = 1' END),
                   jsonb_build_object('id', n || '-3', 'type', 'python', 'reads', '[]'::jsonb,
                       'writes', '[]'::jsonb, 'metadata', '{}'::jsonb, 'code', 'print(1)')),
               now() - make_interval(secs => n * 7)
          FROM generate_series(1, $2::int) AS n
        """,
        USER,
        count,
    )


async def checkpoint_figures(conn: asyncpg.Connection, repeat: int) -> dict[str, Any]:
    async def take(notebook_id: str) -> None:
        async with conn.transaction():
            room = await checkpoints.room(conn, notebook_id, USER)
            assert room is not None
            await checkpoints.create(conn, notebook_id, USER, None)

    figures: dict[str, Any] = {}
    for notebook_id in (BIG_ID, "bench-out-5"):
        before_first = await storage(conn)
        start = time.perf_counter()
        await take(notebook_id)
        first_ms = (time.perf_counter() - start) * 1000
        before = await storage(conn)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await take(notebook_id)
            times.append((time.perf_counter() - start) * 1000)
        after = await storage(conn)
        figures[notebook_id] = {
            "first_ms": round(first_ms, 3),
            "first_new_kib": round((before - before_first) / KIB, 1),
            **summary(times),
            "checkpoints": repeat,
            "new_kib_each": round((after - before) / repeat / KIB, 2),
        }
        await conn.execute("DELETE FROM notebook_checkpoints WHERE notebook_id = $1", notebook_id)
    return figures


async def read_figures(conn: asyncpg.Connection, repeat: int) -> dict[str, Any]:
    trigram = await search.trigram_indexes(conn)
    shapes = {
        "search q": search.statement(USER, 20, "revenue_by_region", None, None, trigram=trigram),
        "search type=sql": search.statement(USER, 20, None, "sql", None, trigram=trigram),
    }

    async def get() -> None:
        assert await notebooks.get(conn, BIG_ID, USER) is not None

    async def listed() -> None:
        await notebooks.summaries(conn, USER)

    work: dict[str, Callable[[], Awaitable[Any]]] = {"GET bench-big": get, "list": listed}
    for label, statement in shapes.items():
        work[label] = lambda statement=statement: search.run(conn, statement)
    return {label: summary(await timed(each, repeat)) for label, each in work.items()}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    name = f"cellar_trash_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.pg_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(args.pg_url, name)
    try:
        from cryptography.fernet import Fernet

        env = {
            **os.environ,
            "DATABASE_URL": url,
            "APP_SECRET_KEY": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }
        await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).parent / "piccolo"), "migrations", "forwards", "all"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        conn = await asyncpg.connect(url)
        try:
            await seed(conn, args.notebooks)
            await conn.execute("VACUUM ANALYZE")
            results: dict[str, Any] = {"checkpoints": await checkpoint_figures(conn, 100)}
            results["reads, no trash"] = await read_figures(conn, args.repeat)
            ids = [f"nb-{n}" for n in range(1, args.notebooks + 1)]
            trashed = random.Random(14).sample(ids, len(ids) // 10)
            await conn.execute(
                "UPDATE notebooks SET deleted_at = now() WHERE id = ANY($1::text[])", trashed
            )
            await conn.execute("VACUUM ANALYZE")
            results["reads, 10 % trashed"] = await read_figures(conn, args.repeat)
            await conn.execute(
                "UPDATE notebooks SET deleted_at = NULL WHERE id = ANY($1::text[])", trashed
            )
            await conn.execute("VACUUM ANALYZE")
            results["reads, restored (the noise)"] = await read_figures(conn, args.repeat)
            return results
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--notebooks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    found = asyncio.run(main(arguments))
    if arguments.json:
        arguments.json.write_text(json.dumps(found, indent=2))
    print(json.dumps(found, indent=2))
