"""What read replicas cost (issue 18): the primary-only path, and a read with a token.

What it measures
----------------
1. **The routing on the primary-only path.**  ``GET /notebooks/{id}`` and
   ``GET /notebooks`` on two ``cellar serve`` processes over the same
   database: one with ``DATABASE_REPLICA_URLS`` empty (``none``), one with it
   set to the primary itself (``self``: every read goes through the seam, the
   replica set and a second pool, to the same server).  The goal: within noise.
2. **A read with a token the replica has passed.**  On a third process whose
   replica is a real hot standby (``standby``): each iteration renames the
   notebook (its answer's ``Cellar-Consistency`` token), waits until the
   standby has replayed past the token (asked of the standby directly), then
   times ``GET /notebooks/{id}`` with the token (the seam asks the standby how
   far it is: one more round trip, unless the monitor saw it pass in the
   meantime), the same GET without a token, and with the token ``0/0``
   (passed, and known to be: no question), in rotating order.  The goal: the
   difference of the medians (token - none) < 0.3 ms.

3. **The seam alone, in process** (``--seam-reads``): the bench process
   itself routes ``store.get`` through ``app.replicas.routing.read`` with a
   replica set on the same standby, without HTTP, uvicorn or a second
   process in between: without a token; with a token the set knows the
   standby passed; with one it must ask about (its cached position is reset
   before each read); and straight on the primary's pool as ``connection()``
   does, beside ``read`` with no replica set installed (the seam's cost when
   ``DATABASE_REPLICA_URLS`` is empty).  On a loaded machine the HTTP
   figures above swing by more than the 0.3 ms at stake; these show what
   the token itself costs.

How
---
A primary and a hot standby made as the tests make them (``tests/replicas.py``:
Debian's ``initdb``, ``pg_basebackup -R``), a database ``cellar`` migrated
with ``piccolo migrations forwards all``, the three servers started here
(``--workers 1 --no-access-log --log-level warning``), one keep-alive httpx
client per server, requests strictly one after another, each timed with
``time.perf_counter`` from send to fully-read answer; the server's CPU time
(user + system, psutil) over each batch gives its CPU per request, which a
loaded machine blurs less than latency.  The servers take turns
within each of ``--rounds`` rounds so machine noise lands on all alike.
Everything is stopped and deleted at the end.  Prints a table; ``--json PATH``
writes the figures::

    python bench/replicas.py
    python bench/replicas.py --rounds 3 --requests 200 --json /tmp/replicas.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import executable, percentile, serve  # noqa: E402
from tests.replicas import Pair, running_pair, why_unavailable  # noqa: E402

CELLS = 20
NOTEBOOKS = 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process and its children (a uvicorn worker)."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median_ms": statistics.median(values) * 1000,
        "p90_ms": percentile(values, 0.9) * 1000,
        "p99_ms": percentile(values, 0.99) * 1000,
    }


def timed(
    http: httpx.Client, url: str, headers: dict[str, str], rename: str | None = None
) -> float:
    """One GET of ``url`` (with ``rename``: a PUT of that name to ``url``), timed."""
    started = time.perf_counter()
    if rename is None:
        answer = http.get(url, headers=headers)
    else:
        answer = http.put(url, json={"name": rename}, headers=headers)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
    return elapsed


class Standby:
    """One connection to the standby, kept open, asked how far it has replayed."""

    def __init__(self, pair: Pair) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(pair.standby_url))

    def replayed(self) -> int:
        value: int = self.loop.run_until_complete(
            self.connection.fetchval("SELECT pg_last_wal_replay_lsn()")
        )
        return value

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def seed(http: httpx.Client) -> tuple[dict[str, str], str]:
    email = f"bench-{secrets.token_hex(4)}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    http.post("/auth/register", json=credentials).raise_for_status()
    token = http.post("/auth/token", json=credentials).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    http.get("/notebooks", headers=headers).raise_for_status()
    ids = []
    for i in range(NOTEBOOKS):
        created = http.post("/notebooks", json={"name": f"bench {i}"}, headers=headers)
        ids.append(created.json()["notebook_id"])
    for c in range(CELLS):
        code = f"value_{c} = value_{c - 1} + 1 if {c} else 0\nprint(value_{c})\n"
        http.post(
            f"/notebooks/{ids[0]}/cells", json={"type": "python", "code": code}, headers=headers
        ).raise_for_status()
    return headers, ids[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=300, help="per server, op and round")
    parser.add_argument("--token-reads", type=int, default=300, help="per round")
    parser.add_argument("--seam-reads", type=int, default=3000, help="per kind, in process")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = why_unavailable()
    if reason is not None:
        sys.exit(f"bench/replicas.py: {reason}")

    with ExitStack() as stack:
        pair = stack.enter_context(running_pair())
        asyncio.run(_create_database(pair.primary_url))
        primary = pair.url(pair.primary_port, "cellar")
        standby = pair.url(pair.standby_port, "cellar")
        base = {
            **os.environ,
            "DATABASE_URL": primary,
            "APP_SECRET_KEY": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_REPLICA_URLS": "",
        }
        migrated = subprocess.run(
            [executable("piccolo"), "migrations", "forwards", "all"],
            env=base,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            sys.exit(migrated.stdout + migrated.stderr)
        servers = {
            "none": stack.enter_context(serve(base)),
            "self": stack.enter_context(serve({**base, "DATABASE_REPLICA_URLS": primary})),
            "standby": stack.enter_context(serve({**base, "DATABASE_REPLICA_URLS": standby})),
        }
        urls = {name: url for name, (url, _) in servers.items()}
        pids = {name: process.pid for name, (_, process) in servers.items()}
        cpu: dict[str, float] = {}
        clients = {
            name: stack.enter_context(httpx.Client(base_url=url)) for name, url in urls.items()
        }
        headers, notebook_id = seed(clients["none"])
        asyncio.run(pair.caught_up())
        watcher = Standby(pair)
        stack.callback(watcher.close)
        ops = {"get": f"/notebooks/{notebook_id}", "list": "/notebooks"}
        figures: dict[str, list[float]] = {}
        with_token: list[float] = []
        without_token: list[float] = []
        known_token: list[float] = []
        for name in urls:  # warm-up
            for path in ops.values():
                for _ in range(50):
                    timed(clients[name], path, headers)
        for round_number in range(args.rounds):
            order = ["none", "self"] if round_number % 2 == 0 else ["self", "none"]
            for op, path in ops.items():
                for name in order:
                    before = cpu_seconds(pids[name])
                    figures.setdefault(f"{op} {name}", []).extend(
                        timed(clients[name], path, headers) for _ in range(args.requests)
                    )
                    spent = cpu_seconds(pids[name]) - before
                    cpu[f"{op} {name}"] = cpu.get(f"{op} {name}", 0.0) + spent
            # A mutation: with replicas its answer carries the token (one more statement).
            for name in order:
                before = cpu_seconds(pids[name])
                figures.setdefault(f"rename {name}", []).extend(
                    timed(clients[name], f"{ops['get']}/name", headers, rename=f"{name} {n}")
                    for n in range(args.requests // 3)
                )
                spent = cpu_seconds(pids[name]) - before
                cpu[f"rename {name}"] = cpu.get(f"rename {name}", 0.0) + spent
            http = clients["standby"]
            for i in range(args.token_reads):
                saved = http.put(
                    f"/notebooks/{notebook_id}/name", json={"name": f"r{i}"}, headers=headers
                )
                token = saved.headers["cellar-consistency"]
                while watcher.replayed() < lsn(token):
                    time.sleep(0.0005)
                url = ops["get"]
                kinds = {
                    "token": (with_token, {**headers, "Cellar-Consistency": token}),
                    "none": (without_token, headers),
                    # A token the monitor already knows passed: no question to the standby.
                    "known": (known_token, {**headers, "Cellar-Consistency": "0/0"}),
                }
                order = list(kinds)
                for kind in order[i % 3 :] + order[: i % 3]:  # each first as often
                    values, sent = kinds[kind]
                    values.append(timed(http, url, sent))
        # Which server answered the standby's reads (all but the provisioning: the standby).
        served = {
            line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
            for line in clients["standby"].get("/metrics").text.splitlines()
            if line.startswith("cellar_db_reads_total{")
        }
        seam = asyncio.run(measure_seam(primary, standby, headers, notebook_id, args))

    report: dict[str, Any] = {name: summary(values) for name, values in figures.items()}
    report["reads on the standby's server, by server"] = served
    for name, seconds in cpu.items():
        report[name]["server_cpu_us_per_request"] = seconds / len(figures[name]) * 1e6
    report["get standby, token passed"] = summary(with_token)
    report["get standby, no token"] = summary(without_token)
    report["get standby, token 0/0"] = summary(known_token)
    print(
        f"{'measurement':32} {'n':>6} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8}"
        f" {'server CPU us/req':>18}"
    )
    print(f"reads of the standby's server: {served}")
    for name, values in report.items():
        if "n" not in values:
            continue
        cpu_figure = values.get("server_cpu_us_per_request")
        print(
            f"{name:32} {values['n']:>6} {values['median_ms']:>10.3f}"
            f" {values['p90_ms']:>8.3f} {values['p99_ms']:>8.3f}"
            f" {'' if cpu_figure is None else f'{cpu_figure:.0f}':>18}"
        )
    for op in (*ops, "rename"):
        ratio = report[f"{op} self"]["median_ms"] / report[f"{op} none"]["median_ms"]
        work = (
            report[f"{op} self"]["server_cpu_us_per_request"]
            / report[f"{op} none"]["server_cpu_us_per_request"]
        )
        print(
            f"{op}: replicas set to the primary / none = {ratio:.3f} (median),"
            f" {work:.3f} (server CPU per request)"
        )
    added = (
        report["get standby, token passed"]["median_ms"]
        - report["get standby, no token"]["median_ms"]
    )
    print(f"HTTP: a read with a passed token adds {added:.3f} ms (median; goal < 0.3 ms)")
    for name, values in seam.items():
        report[f"seam {name}"] = summary(values)
        print(f"seam {name:27} {len(values):>6} {statistics.median(values) * 1000:>10.3f}")
    asked = statistics.median(seam["token, asked"]) - statistics.median(seam["no token"])
    print(f"seam: a token the standby must be asked about adds {asked * 1000:.3f} ms (median)")
    empty = statistics.median(seam["no replicas, read()"]) / statistics.median(
        seam["primary, connection()"]
    )
    print(f"seam: read() without replicas / connection() = {empty:.3f} (median)")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


async def measure_seam(
    primary: str, standby: str, headers: dict[str, str], notebook_id: str, args: Any
) -> dict[str, list[float]]:
    """``routing.read`` in this process, on the same standby, by kind of read (see 3.)."""
    os.environ.update(DATABASE_URL=primary, DATABASE_REPLICA_URLS=standby, **_secrets())
    from app.database import connection, get_engine, pool_options
    from app.replicas import routing
    from app.replicas.replicaset import ReplicaSet
    from app.settings import Settings
    from app.store import notebooks as store

    settings = Settings.from_env(os.environ)
    engine = get_engine()
    await engine.start_connection_pool(**pool_options(settings))
    replicas = ReplicaSet(
        settings.database_replica_urls,
        max_lag_seconds=5,
        pool_options=pool_options(settings),
        primary=lambda: engine.pool,
        primary_url=primary,
    )
    await replicas.start()
    routing.install(replicas)
    (replica,) = replicas.replicas
    user = await _owner(notebook_id)
    position = replica.replayed

    def query(conn: asyncpg.Connection) -> Any:
        return store.get(conn, notebook_id, user)

    async def on_primary() -> None:
        async with connection() as conn:
            await query(conn)

    async def unrouted() -> None:
        routing.install(None)  # DATABASE_REPLICA_URLS empty: the seam is connection()
        try:
            await routing.read(query)
        finally:
            routing.install(replicas)

    async def routed(token: bytes | None, forget: bool) -> None:
        if forget:
            replica.replayed = 0
        reset = routing.REQUESTED.set(token)
        try:
            await routing.read(query)
        finally:
            routing.REQUESTED.reset(reset)

    token = f"{position >> 32:X}/{position & 0xFFFFFFFF:X}".encode()
    kinds = {
        "primary, connection()": on_primary,
        "no replicas, read()": unrouted,
        "no token": lambda: routed(None, False),
        "token, known passed": lambda: routed(token, False),
        "token, asked": lambda: routed(token, True),
    }
    found: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for _ in range(100):
            for run in kinds.values():
                await run()
        for i in range(args.seam_reads):
            names = list(kinds)
            for name in names[i % len(names) :] + names[: i % len(names)]:
                started = time.perf_counter()
                await kinds[name]()
                found[name].append(time.perf_counter() - started)
    finally:
        routing.install(None)
        await replicas.stop()
        await engine.close_connection_pool()
    return found


def _secrets() -> dict[str, str]:
    return {
        "APP_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }


async def _owner(notebook_id: str) -> Any:
    from app.database import get_engine

    pool = get_engine().pool
    assert pool is not None
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT user_id FROM notebooks WHERE id = $1", notebook_id)


async def _create_database(url: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("CREATE DATABASE cellar")
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
