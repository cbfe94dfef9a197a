"""Issue 20: one user with 50,000 notebooks among 100,000+, paged lists and search.

    .venv/bin/python bench/crowd.py [--pg-url URL] [--rounds 3] [--seconds 4] [--reuse DB]

A scratch database (``cellar_bench_<random>``, dropped at the end unless
``--keep-db``) is migrated and seeded with the crowd user's 50,000 notebooks
of 10 python cells (``seed.seed_crowd``: ``x5`` in every one, ``zebra_quota``
in one in 10,000) and 60,000 smaller notebooks of 100 other users
(``seed._SMALL_NOTEBOOKS``), then VACUUM (ANALYZE).  ``cellar serve`` (one
worker) answers; wrk (``-c1``: latency without queueing; the Python fallback
without wrk, flagged) measures each operation below ``--rounds`` times, the
operations taking turns, and the medians are printed as a markdown table
(``--json FILE`` keeps every figure).  Targets (issue 20): a list page of 50
p50 < 5 ms at any depth; search for a term in all 50,000 notebooks, first
page p50 < 25 ms; a rare term p50 < 10 ms.  The unpaged list is reported
without a target, so its cost stays visible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import asyncpg
import httpx
import seed
from cell_update_vs_outputs import (
    BenchError,
    cellar_serve,
    generated_secrets,
    migrate,
    scratch_database,
    with_database,
)
from load import Figures, Load, LoadError, run_python, run_wrk, wrk_available

if TYPE_CHECKING:
    from collections.abc import Iterator

OTHERS = 60_000
DEEP_PAGE = 500
PAGE = 50

# (name, what, target p50 in ms or None)
OPS: list[tuple[str, str, float | None]] = [
    ("list_crowd_first", "list, first page of 50", 5.0),
    ("list_crowd_deep", f"list, page {DEEP_PAGE} of 50 (by cursors)", 5.0),
    ("list_crowd_all", "list, unpaged (all 50,000)", None),
    ("search_crowd_common", f"search q={seed.CROWD_COMMON} (in all 50,000), first page", 25.0),
    ("search_crowd_common_deep", f"search q={seed.CROWD_COMMON}, page 20 (by cursors)", None),
    ("search_crowd_rare", f"search q={seed.CROWD_RARE} (5 notebooks)", 10.0),
    ("search_crowd_writes", f"search writes={seed.CROWD_COMMON} (all 50,000), first page", None),
    ("search_crowd_negation", f"search q={seed.CROWD_COMMON} -{seed.CROWD_RARE}", None),
]


def log(message: str) -> None:
    print(f"[crowd] {message}", file=sys.stderr, flush=True)


async def _seed(url: str, password_hash: str, others: int, crowd: int) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(
            "INSERT INTO users (id, email, provisioned_at) "
            "SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, "
            "       'filler' || g || '@bench.invalid', now() "
            "  FROM generate_series(1, $1) AS g",
            seed.FILLER_USERS,
        )
        await conn.execute(
            seed._SMALL_NOTEBOOKS.format(
                owner="('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % $2), 12, '0'))::uuid",
                id_prefix="filler-",
            ),
            others,
            seed.FILLER_USERS,
        )
        await seed.seed_crowd(conn, count=crowd)
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE id = $2", password_hash, seed.CROWD_USER
        )
    finally:
        await conn.close()


async def _password(url: str, password_hash: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE id = $2", password_hash, seed.CROWD_USER
        )
    finally:
        await conn.close()


async def _facts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS notebooks, count(*) FILTER (WHERE user_id = $1) AS crowd,"
            " (SELECT count(*) FROM cell_search) AS cell_rows FROM notebooks",
            seed.CROWD_USER,
        )
        return dict(row)
    finally:
        await conn.close()


@contextlib.contextmanager
def database(args: argparse.Namespace, password_hash: str) -> Iterator[str]:
    if args.reuse:
        url = with_database(args.pg_url, args.reuse)
        asyncio.run(_password(url, password_hash))
        yield url
        return
    with contextlib.ExitStack() as stack:
        if args.keep_db:
            import secrets

            name = f"cellar_bench_{secrets.token_hex(4)}"
            asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{name}"'))
            url = with_database(args.pg_url, name)
            log(f"keeping the scratch database {name} (--reuse {name})")
        else:
            url = stack.enter_context(scratch_database(args.pg_url))
        env = {**os.environ, **generated_secrets(), "DATABASE_URL": url}
        log("migrating")
        migrate(env)
        log(f"seeding {args.others:,} notebooks of others and {args.crowd:,} of the crowd user")
        asyncio.run(_seed(url, password_hash, args.others, args.crowd))
        yield url


async def _admin(pg_url: str, statement: str) -> None:
    conn = await asyncpg.connect(pg_url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def follow(http: httpx.Client, path: str, params: dict[str, Any], pages: int) -> str:
    """The cursor of page ``pages + 1``, by following ``next_cursor`` from the first."""
    cursor = None
    for _ in range(pages):
        response = http.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        if response.status_code != 200:
            raise BenchError(f"{path}: {response.status_code} {response.text[:300]}")
        cursor = response.json()["next_cursor"]
        if cursor is None:
            raise BenchError(f"{path}: the walk ended before page {pages + 1}")
    assert isinstance(cursor, str)
    return cursor


def paths(http: httpx.Client) -> dict[str, str]:
    def url(path: str, **params: Any) -> str:
        return f"{path}?{urlencode(params)}" if params else path

    search = "/notebooks/search"
    deep = follow(http, "/notebooks", {"limit": PAGE}, DEEP_PAGE - 1)
    common_deep = follow(http, search, {"q": seed.CROWD_COMMON}, 19)
    return {
        "list_crowd_first": url("/notebooks", limit=PAGE),
        "list_crowd_deep": url("/notebooks", limit=PAGE, cursor=deep),
        "list_crowd_all": "/notebooks",
        "search_crowd_common": url(search, q=seed.CROWD_COMMON),
        "search_crowd_common_deep": url(search, q=seed.CROWD_COMMON, cursor=common_deep),
        "search_crowd_rare": url(search, q=seed.CROWD_RARE),
        "search_crowd_writes": url(search, writes=seed.CROWD_COMMON),
        "search_crowd_negation": url(search, q=f"{seed.CROWD_COMMON} -{seed.CROWD_RARE}"),
    }


def measure(base: str, load: Load, seconds: float) -> Figures:
    if wrk_available():
        return run_wrk(base, load, connections=1, seconds=seconds, pin=[])
    return run_python(base, load, connections=1, seconds=seconds)


def table(result: dict[str, Any]) -> str:
    lines = [
        "| operation (1 connection) | p50 ms | p90 ms | p99 ms | req/s | body | target |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, what, target in OPS:
        rounds = result["figures"].get(name)
        if not rounds:
            continue
        p50 = statistics.median(r["p50_ms"] for r in rounds)
        shown = "-" if target is None else f"< {target:g} ms: {'met' if p50 < target else 'MISSED'}"
        lines.append(
            f"| {what} | {p50:.2f} | {statistics.median(r['p90_ms'] for r in rounds):.2f} | "
            f"{statistics.median(r['p99_ms'] for r in rounds):.2f} | "
            f"{statistics.median(r['rps'] for r in rounds):,.0f} | "
            f"{result['bytes'][name]:,} B | {shown} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--others", type=int, default=OTHERS)
    parser.add_argument("--crowd", type=int, default=seed.CROWD_SIZE)
    parser.add_argument("--reuse", help="a database seeded by an earlier --keep-db run")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--only", help="comma-separated operation names")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    from argon2 import PasswordHasher

    password_hash = PasswordHasher().hash(seed.PASSWORD)
    result: dict[str, Any] = {"figures": {}, "bytes": {}, "tool": "wrk"}
    if not wrk_available():
        result["tool"] = "python fallback (not comparable)"
    with database(args, password_hash) as url:
        result["data"] = asyncio.run(_facts(url))
        log(f"data: {result['data']}")
        env = {**os.environ, **generated_secrets(), "DATABASE_URL": url}
        with cellar_serve(env) as base, httpx.Client(base_url=base, timeout=60) as http:
            token = http.post(
                "/auth/token", json={"email": "crowd@bench.invalid", "password": seed.PASSWORD}
            ).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            every = paths(http)
            for name, path in every.items():
                response = http.get(path)
                if response.status_code != 200:
                    raise BenchError(f"{name}: {response.status_code} {response.text[:300]}")
                result["bytes"][name] = len(response.content)
            chosen = [name for name, _, _ in OPS if only is None or name in only]
            for r in range(args.rounds):
                for name in chosen[r % len(chosen) :] + chosen[: r % len(chosen)]:
                    load = Load("GET", [every[name]], {"Authorization": f"Bearer {token}"})
                    with contextlib.suppress(LoadError):  # warm-up (the unpaged list
                        measure(base, load, 1.0)  # may take longer than a second)
                    figures = measure(base, load, args.seconds)
                    if figures.errors:
                        raise BenchError(f"{name}: {figures.errors} errors")
                    result["figures"].setdefault(name, []).append(figures.as_dict())
                    log(f"round {r + 1} {name}: p50 {figures.p50_ms:.2f} ms")
    print(table(result))
    print(f"\nData: {result['data']}; load: {result['tool']}, {args.rounds} rounds")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
