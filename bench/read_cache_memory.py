"""Does the read cache hold to its bound?  Memory under a read storm over many notebooks.

What it measures
----------------
``READ_CACHE_BYTES`` bounds what the read cache (app/notebooks/read_cache.py)
counts: each answer's bytes plus a fixed overhead per entry.  The question is
whether the process's memory follows: its resident set (VmRSS) must grow by
the bound, give or take 10 % (issue 19), however many notebooks are read.

One user owns ``--notebooks`` notebooks (default 10,000) whose GET answers are
about ``--kb`` KiB each (default 40: 400 MB of answers in all, well over the
default bound of 256 MiB).  ``cellar serve`` (one worker) runs twice on the same
database: with ``READ_CACHE_BYTES=--bound`` and with ``READ_CACHE_BYTES=0``.
Each time, after a warm-up, wrk reads every notebook ``--passes`` times in a
shuffled order (16 connections), and the resident set is read before and after
the storm (and the server's own gauge ``cellar_read_cache_bytes``).  The
cache's memory is the growth with the cache minus the growth without it (the
rest of the process: buffers, allocator high-water marks).

Run it from the repository root, against a local PostgreSQL (a scratch
database, dropped at the end)::

    python bench/read_cache_memory.py
    python bench/read_cache_memory.py --notebooks 2000 --bound 33554432 --kb 40   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import seed
from cell_update_vs_outputs import (
    cellar_command,
    free_port,
    generated_secrets,
    migrate,
)
from load import Load, run_python, run_wrk, wrk_available
from run import DEFAULT_PG, postgres, scratch_database, start, token_for

MIB = 1024 * 1024
TOLERANCE = 0.10

# One notebook per row of generate_series: one python cell whose run state holds
# ``$2`` bytes of text output (compressible: cheap to store, as large to serve).
_NOTEBOOKS = """
WITH made AS (
    INSERT INTO notebooks (id, user_id, name, kind, cells)
    SELECT 'mem-' || g, $1::uuid, 'memory ' || g, 'user',
           jsonb_build_array(jsonb_build_object('id', 'c1', 'type', 'python',
               'code', 'x = ' || g, 'reads', '[]'::jsonb, 'writes', '["x"]'::jsonb,
               'metadata', '{}'::jsonb))
      FROM generate_series(1, $3) AS g
    RETURNING id
)
INSERT INTO cell_runs (notebook_id, cell_id, status, stdout, outputs)
SELECT id, 'c1', 'success', '',
       json_build_array(json_build_object('mime_type', 'text/plain',
           'data', left(repeat(md5(id), ($2 / 32) + 1), $2), 'metadata', '{}'::json))
  FROM made
"""


def rss_bytes(pid: int) -> int:
    """The process's resident set size (VmRSS), bytes."""
    match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return int(match.group(1)) * 1024


def gauge(metrics: str, name: str) -> float:
    match = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


def counter(metrics: str, result: str) -> float:
    series = f'cellar_read_cache_reads_total{{kind="notebook",result="{result}"}}'
    match = re.search(rf"^{re.escape(series)} (\S+)$", metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def seed_notebooks(url: str, password_hash: str, count: int, kb: int) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, provisioned_at) "
            "VALUES ($1, 'bench@bench.invalid', $2, now())",
            seed.BENCH_USER,
            password_hash,
        )
        await conn.execute(_NOTEBOOKS, seed.BENCH_USER, kb * 1024, count)
        await conn.execute("VACUUM (ANALYZE) notebooks")
        await conn.execute("VACUUM (ANALYZE) cell_runs")
    finally:
        await conn.close()


def storm(url: str, token: str, paths: list[str], seconds: float) -> tuple[int, float]:
    """GET ``paths`` in turn for ``seconds`` (16 connections); (requests, req/s)."""
    load = Load("GET", paths, {"Authorization": f"Bearer {token}"})
    if wrk_available():
        figures = run_wrk(url, load, connections=16, seconds=seconds, pin=[])
    else:
        figures = run_python(url, load, connections=16, seconds=seconds)
    if figures.errors:
        raise RuntimeError(f"{figures.errors} errors during the storm")
    return figures.requests, figures.rps


def measure(
    name: str, env: dict[str, str], paths: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """Start Cellar with ``env``, warm it up, storm it; RSS growth and the cache's figures."""
    port = free_port()
    with start(name, cellar_command(port), port, env, "/health") as server:
        pid = server.server.process.pid
        with httpx.Client(base_url=server.url, timeout=30) as http:
            token = token_for(http, "bench@bench.invalid")
            headers = {"Authorization": f"Bearer {token}"}
            # Warm-up: every code path once (full read, encode, lookup), a few hundred reads.
            for path in paths[:200] * 2:
                assert http.get(path, headers=headers).status_code == 200
            before = rss_bytes(pid)
            started = time.monotonic()
            sent = 0
            rps = 0.0
            # Bounded passes: at the measured rate, enough seconds for --passes reads each.
            while sent < args.passes * len(paths):
                left = args.passes * len(paths) - sent
                # The first storm of 5 s measures the rate; then what is left, 60 s at most.
                seconds = 5.0 if not rps else min(60.0, max(3.0, left / rps))
                done, rps = storm(server.url, token, paths, seconds)
                sent += done
            after = rss_bytes(pid)
            metrics = http.get("/metrics").text
        return {
            "rss_before": before,
            "rss_after": after,
            "growth": after - before,
            "cache_bytes": gauge(metrics, "cellar_read_cache_bytes"),
            "hits": counter(metrics, "hit"),
            "stale": counter(metrics, "stale"),
            "misses": counter(metrics, "miss"),
            "requests": sent,
            "seconds": time.monotonic() - started,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=int, default=10_000)
    parser.add_argument("--kb", type=int, default=40, help="KiB of output per notebook")
    parser.add_argument("--bound", type=int, default=256 * MIB, help="READ_CACHE_BYTES")
    parser.add_argument("--passes", type=float, default=2.0, help="reads of each notebook")
    parser.add_argument("--pg-url", default=os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG)
    parser.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep-db", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reuse", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    answers = args.notebooks * args.kb * 1024
    if answers < 1.2 * args.bound:
        parser.error("the notebooks' answers must exceed the bound (more --notebooks or --kb)")

    from argon2 import PasswordHasher

    paths = [f"/notebooks/mem-{g}" for g in range(1, args.notebooks + 1)]
    random.Random(seed.SEED).shuffle(paths)
    with contextlib.ExitStack() as stack:
        server_url = stack.enter_context(postgres(args))
        url, _ = stack.enter_context(scratch_database(server_url, args))
        env = {**os.environ, **generated_secrets(), "DATABASE_URL": url}
        env["AUTH_TOKEN_RATE_LIMIT_PER_MINUTE"] = "100000"
        print(f"migrating and seeding {args.notebooks:,} notebooks of ~{args.kb} KiB", flush=True)
        migrate(env)
        t = time.monotonic()
        hashed = PasswordHasher().hash(seed.PASSWORD)
        asyncio.run(seed_notebooks(url, hashed, args.notebooks, args.kb))
        print(f"seeded in {time.monotonic() - t:.1f} s", flush=True)
        on = measure("cellar", {**env, "READ_CACHE_BYTES": str(args.bound)}, paths, args)
        off = measure("cellar_nocache", {**env, "READ_CACHE_BYTES": "0"}, paths, args)
    cache = on["growth"] - off["growth"]
    share = cache / args.bound
    print()
    print(
        f"bound (READ_CACHE_BYTES): {args.bound / MIB:.1f} MiB; answers in all: "
        f"{answers / MIB:.0f} MiB over {args.notebooks:,} notebooks"
    )
    for label, figures in (("cache on", on), ("cache off", off)):
        print(
            f"{label}: RSS {figures['rss_before'] / MIB:.1f} → "
            f"{figures['rss_after'] / MIB:.1f} MiB "
            f"(+{figures['growth'] / MIB:.1f}); gauge {figures['cache_bytes'] / MIB:.1f} MiB; "
            f"{figures['requests']:,.0f} reads in {figures['seconds']:.0f} s; hits "
            f"{figures['hits']:,.0f}, stale {figures['stale']:,.0f}, "
            f"misses {figures['misses']:,.0f}"
        )
    verdict = "yes" if abs(share - 1.0) <= TOLERANCE else "no"
    print(
        f"the cache's memory: {cache / MIB:.1f} MiB = {share:.3f} of the bound "
        f"(target: within {TOLERANCE:.0%} of it: {verdict})"
    )
    return 0 if verdict == "yes" else 1


if __name__ == "__main__":
    sys.exit(main())
