"""Realtime fan-out across two instances (issue 12, SPEC §11): latency, memory, refused sockets.

What it measures
----------------
1. **Fan-out latency**, commit on instance A → message on a WebSocket client
   of instance B, with ``--idle`` idle subscribers (1,000) spread over both
   instances (each following one of ``--notebooks`` quiet notebooks) and
   ``--rate`` edits per second (50) of one notebook through A for
   ``--seconds`` (20).  Two clocks, both on this machine:

   - *at → message*: from the event's ``at`` (``now()`` of the edit's
     transaction, which commits a little later) to the message's arrival: an
     upper bound of commit → message;
   - *answer → message*: from the edit's HTTP answer (sent after the
     commit) to the message's arrival; negative when the message comes
     first.  A lower bound.

   Goal (issue 12): p50 < 10 ms, p99 < 50 ms.
2. **Memory per idle subscriber**: the two servers' RSS before and after the
   idle subscribers connected (and a pause), the growth divided by their
   number.  Goal: < 64 KiB.
3. **Refused connections**: ``--bad-tokens`` (10,000) WebSocket connections
   with a bad token, 50 at a time, each closed by the server with 4401; the
   servers' open file descriptors and RSS before and after.  Goal: nothing
   left behind.

How
---
A scratch database ``cellar_rt_<random>`` on ``--pg-url`` (default the local
server), migrated with ``piccolo migrations forwards all``, two ``cellar
serve --workers 1 --no-access-log --log-level warning`` on it, one user; the
clients (``websockets``) and the edits (httpx, paced) run in this process.
Everything is stopped and the database dropped at the end.  Prints a table;
``--json PATH`` writes the figures::

    python bench/realtime.py
    python bench/realtime.py --idle 200 --seconds 5 --bad-tokens 500   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
from cryptography.fernet import Fernet
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import executable, percentile, serve  # noqa: E402

if TYPE_CHECKING:
    import psutil

PASSWORD = "bench password"


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 2),
        "p90_ms": round(percentile(values, 0.9) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def ws(url: str, notebook_id: str) -> str:
    return url.replace("http://", "ws://") + f"/notebooks/{notebook_id}/events"


async def account(http: httpx.AsyncClient, notebooks: int) -> tuple[str, list[str], str]:
    """One user: (token, ids of ``notebooks`` quiet notebooks, the edited one's id)."""
    credentials = {"email": f"rt-{secrets.token_hex(6)}@example.com", "password": PASSWORD}
    assert (await http.post("/auth/register", json=credentials)).status_code == 201
    token = (await http.post("/auth/token", json=credentials)).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    for n in range(notebooks + 1):
        created = await http.post("/notebooks", json={"name": f"nb {n}"}, headers=headers)
        assert created.status_code == 201, created.text
        ids.append(created.json()["notebook_id"])
    return token, ids[1:], ids[0]


def rss(processes: list[psutil.Process]) -> int:
    return sum(process.memory_info().rss for process in processes)


def fds(processes: list[psutil.Process]) -> int:
    return sum(process.num_fds() for process in processes)


async def open_idle(
    urls: list[str], notebooks: list[str], token: str, count: int
) -> list[ClientConnection]:
    sockets: list[ClientConnection] = []
    for start in range(0, count, 50):
        batch = [
            connect(
                ws(urls[i % 2], notebooks[i % len(notebooks)]),
                subprotocols=["bearer", token],  # type: ignore[list-item]
                open_timeout=60,
                ping_interval=None,
                compression=None,
            )
            for i in range(start, min(count, start + 50))
        ]
        sockets.extend(await asyncio.gather(*batch))
    return sockets


async def fan_out(
    database_url: str, a: str, b: str, token: str, notebook_id: str, rate: float, seconds: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    committed: dict[int, float] = {}  # seq → when this process's own LISTEN heard its commit

    def heard(_: object, __: int, ___: str, payload: object) -> None:
        seq, _sep, notebook = str(payload).partition(":")
        if notebook == notebook_id:
            committed[int(seq)] = time.time()

    listening = await asyncpg.connect(database_url)
    await listening.add_listener("cellar_events", heard)
    from_commit: list[float] = []
    async with httpx.AsyncClient(base_url=a, timeout=30) as http:
        shown = await http.get(f"/notebooks/{notebook_id}", headers=headers)
        cell_id = shown.json()["cells"][0]["id"]
        answered: dict[int, float] = {}
        from_at: list[float] = []
        from_answer: list[float] = []
        arrived: dict[int, float] = {}
        seen: dict[int, float] = {}  # seq → when the message reached the client of B
        count = int(rate * seconds)
        async with connect(
            ws(b, notebook_id), subprotocols=["bearer", token], compression=None
        ) as socket:  # type: ignore[list-item]

            async def receive() -> None:
                while len(arrived) < count:
                    async with asyncio.timeout(30):
                        message = json.loads(await socket.recv())
                    if message.get("op") != "cell_update":
                        continue
                    now = time.time()
                    from_at.append(now - datetime.fromisoformat(message["at"]).timestamp())
                    seen[message["seq"]] = now
                    arrived[message["revision"]] = now  # a code edit's revision is its own

            async def edit(n: int) -> None:
                answer = await http.put(
                    f"/notebooks/{notebook_id}/cells/{cell_id}",
                    json={"code": f"x = {n}"},
                    headers=headers,
                )
                assert answer.status_code == 200, answer.text
                answered[answer.json()["revision"]] = time.time()

            await asyncio.sleep(0.5)
            receiver = asyncio.create_task(receive())
            started = time.monotonic()
            edits = []
            for n in range(count):
                delay = started + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                edits.append(asyncio.create_task(edit(n)))
            await asyncio.gather(*edits)
            elapsed = time.monotonic() - started
            async with asyncio.timeout(60):
                await receiver
        for revision, when in answered.items():
            if revision in arrived:
                from_answer.append(arrived[revision] - when)
    await asyncio.sleep(0.5)
    await listening.close()
    for seq, when in seen.items():
        if seq in committed:
            from_commit.append(when - committed[seq])
    return {
        "edits": count,
        "edits_per_second": round(count / elapsed, 1),
        "commit_to_message": summary_ms(from_commit),
        "at_to_message": summary_ms(from_at),
        "answer_to_message": summary_ms(from_answer),
    }


async def refused(url: str, notebook_id: str, attempts: int) -> dict[str, int]:
    codes: dict[int, int] = {}

    async def one() -> None:
        async with connect(
            ws(url, notebook_id), subprotocols=["bearer", "bad-token"], open_timeout=60
        ) as socket:
            with suppress(ConnectionClosed):
                async with asyncio.timeout(30):
                    await socket.recv()
            code = socket.close_code or 0
            codes[code] = codes.get(code, 0) + 1

    for start in range(0, attempts, 50):
        await asyncio.gather(*(one() for _ in range(start, min(attempts, start + 50))))
    return codes


async def measure(args: argparse.Namespace, urls: list[str], servers: list[psutil.Process]) -> Any:
    a, b = urls
    async with httpx.AsyncClient(base_url=a, timeout=30) as http:
        token, quiet, edited = await account(http, args.notebooks)
    # Warm both servers (one subscription each, then gone) before the first RSS reading.
    for socket in await open_idle(urls, quiet, token, 2):
        await socket.close()
    await asyncio.sleep(1.0)
    before = rss(servers)
    idle = await open_idle(urls, quiet, token, args.idle)
    await asyncio.sleep(2.0)
    gc.collect()
    after = rss(servers)
    memory = {
        "idle_subscribers": args.idle,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "per_subscriber_kib": round((after - before) / args.idle / 1024, 1),
    }
    latency = await fan_out(args.database_url, a, b, token, edited, args.rate, args.seconds)
    for socket in idle:
        await socket.close()
    await asyncio.sleep(1.0)
    fds_before, rss_before = fds(servers), rss(servers)
    codes = await refused(a, edited, args.bad_tokens)
    await asyncio.sleep(2.0)
    leftovers = {
        "attempts": args.bad_tokens,
        "close_codes": {str(code): n for code, n in codes.items()},
        "fds_before": fds_before,
        "fds_after": fds(servers),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_mib": round(rss(servers) / 2**20, 1),
    }
    return {"fan_out": latency, "memory": memory, "refused": leftovers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--notebooks", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--bad-tokens", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    name = f"cellar_rt_{secrets.token_hex(4)}"
    asyncio.run(_admin(args.pg_url, f'CREATE DATABASE "{name}"'))
    try:
        url = args.database_url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "APP_SECRET_KEY": secrets.token_urlsafe(48),
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": "100000",
        }
        migrated = subprocess.run(
            [executable("piccolo"), "migrations", "forwards", "all"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if migrated.returncode != 0:
            raise SystemExit(migrated.stdout + migrated.stderr)
        with ExitStack() as stack:
            started = [stack.enter_context(serve(env)) for _ in range(2)]
            urls = [started_url for started_url, _ in started]
            figures = asyncio.run(measure(args, urls, [process for _, process in started]))
    finally:
        asyncio.run(_admin(args.pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    fan, memory, refusals = figures["fan_out"], figures["memory"], figures["refused"]
    print(f"fan-out, {fan['edits']} edits at {fan['edits_per_second']}/s through A, client on B,")
    print(f"  with {memory['idle_subscribers']} idle subscribers over A and B:")
    for label in ("commit_to_message", "at_to_message", "answer_to_message"):
        row = fan[label]
        print(
            f"  {label:18} p50 {row['p50_ms']:7.2f} ms  p90 {row['p90_ms']:7.2f} ms  "
            f"p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms  (n={row['n']})"
        )
    print(
        f"memory: RSS {memory['rss_before_mib']} → {memory['rss_after_mib']} MiB for "
        f"{memory['idle_subscribers']} subscribers: {memory['per_subscriber_kib']} KiB each"
    )
    print(
        f"refused: {refusals['attempts']} bad tokens, close codes {refusals['close_codes']}; "
        f"fds {refusals['fds_before']} → {refusals['fds_after']}, "
        f"RSS {refusals['rss_before_mib']} → {refusals['rss_after_mib']} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
