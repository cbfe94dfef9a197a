"""What metrics and JSON access lines cost, counted in instructions rather than timed.

Why not only req/s
------------------
``bench/run.py --observability`` times Cellar with metrics and a JSON access
line per request against the same build with both off.  On these shared
two-core machines a throughput A/B cannot resolve a few per cent: an A/A run
(the same configuration on both sides) gave paired per-round ratios from
0.85 to 1.12, and ten alternating on/off pairs of 5 s from 0.76 to 1.38
(docs/operations.md).  The instructions a process executes per request do
not depend on its neighbours, so this script counts them: the same requests,
one at a time, against each configuration running under valgrind's
callgrind, counters zeroed after a warm-up and dumped after the measured
requests.  ``off/on`` is the throughput a CPU-bound server would keep with
observability on.  Kernel time is not counted (the access line's one
``write`` is about 1.5 µs, well under 1 % of a request); cycles per
instruction are taken as equal for both, which is what running the same code
paths plus a few short functions gives.

Configurations, as ``bench/run.py --observability`` starts them:

- **on**: the defaults as deployed (metrics on), ``LOG_FORMAT=json``,
  ``--access-log --log-level info``, stdout to a file;
- **off**: ``METRICS_ENABLED=false``, ``--no-access-log --log-level warning``.

Operations: ``GET /notebooks/bench-big`` (the 220 KB notebook; read-cache hits
after the warm-up) and ``PUT …/cells/cell-07`` (a code edit of a copy of it,
one per configuration).

Run it from the repository root, against a local PostgreSQL (a scratch
database, dropped at the end); valgrind is installed with apt-get when missing
and allowed (root).  Start-up under valgrind takes a few minutes::

    python bench/observability_cost.py
    python bench/observability_cost.py --requests 100   # quicker, as exact
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import seed
from cell_update_vs_outputs import (
    free_port,
    generated_secrets,
    migrate,
    server_flags,
    venv_script,
)
from run import DEFAULT_PG, OBSERVED_VS_OFF, postgres, scratch_database, start, token_for

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

STARTUP_TIMEOUT = 900.0  # valgrind: minutes to import everything
GET_PATH = f"/notebooks/{seed.BIG_ID}"  # read only: every GET is a read-cache hit
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Config:
    name: str
    env: dict[str, str]
    flags: list[str]
    # Each edits a copy of the big notebook of its own: the two run at once, and an
    # edit of the notebook the other one reads would turn its cache hits into misses.
    edited: str


CONFIGS = (
    Config(
        "on",
        {"LOG_FORMAT": "json"},
        ["--access-log", "--log-level", "info"],
        seed.SPREAD_IDS[0],
    ),
    Config(
        "off",
        {"METRICS_ENABLED": "false"},
        ["--no-access-log", "--log-level", "warning"],
        seed.SPREAD_IDS[1],
    ),
)


def log(message: str) -> None:
    print(f"observability_cost: {message}", file=sys.stderr, flush=True)


def install_valgrind() -> None:
    if shutil.which("valgrind") or shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    log("installing valgrind with apt-get")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "valgrind"]):
        subprocess.run(command, check=True, capture_output=True)


def seed_database(url: str) -> None:
    from argon2 import PasswordHasher

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await seed.seed_base(
                conn, PasswordHasher().hash(seed.PASSWORD), filler=100, sizes_mb=[]
            )
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def under_callgrind(
    config: Config, env: dict[str, str], out_dir: Path
) -> Iterator[tuple[int, str]]:
    """``cellar serve`` (one worker) under callgrind; yields (pid, URL) once healthy."""
    port = free_port()
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/{config.name}.%p",
        sys.executable,
        venv_script("cellar"),
        "serve",
        *server_flags(port),
        *config.flags,  # later flags win
    ]
    with start(
        config.name,
        command,
        port,
        {**env, **config.env},
        "/health",
        startup_timeout=STARTUP_TIMEOUT,
    ) as started:
        yield started.server.process.pid, started.url


def counted(
    pid: int, out_dir: Path, name: str, requests: int, send: Callable[[int], None]
) -> float:
    """Instructions per request of ``requests`` calls of ``send``, between a zero and a dump."""
    subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
    for n in range(requests):
        send(n)
    before = set(out_dir.glob(f"{name}.{pid}.*"))
    subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for dump in set(out_dir.glob(f"{name}.{pid}.*")) - before:
            match = _TOTALS.search(dump.read_text(errors="replace"))
            if match is not None:
                return int(match.group(1)) / requests
        time.sleep(0.5)
    raise RuntimeError(f"callgrind wrote no dump for {name} (pid {pid})")


def measure(
    config: Config, env: dict[str, str], out_dir: Path, args: argparse.Namespace
) -> dict[str, float]:
    with (
        under_callgrind(config, env, out_dir) as (pid, url),
        httpx.Client(base_url=url, timeout=120) as http,
    ):
        auth = {"Authorization": f"Bearer {token_for(http, 'bench@bench.invalid')}"}

        def call(method: str, path: str, body: dict[str, str] | None = None) -> None:
            # Under valgrind a kept-alive connection can outlast uvicorn's keep-alive
            # timeout between two requests: the server closes it, the next send is reset.
            for attempt in (1, 2):
                try:
                    answer = http.request(method, path, headers=auth, json=body)
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    continue
                if answer.status_code != 200:
                    raise RuntimeError(f"{method}: {answer.status_code} {answer.text[:200]}")
                return

        def get(_: int) -> None:
            call("GET", GET_PATH)

        def put(n: int) -> None:
            call("PUT", f"/notebooks/{config.edited}/cells/cell-07", {"code": f"x = {n}"})

        for n in range(args.warmup):
            put(n)
            get(n)
        figures = {
            "get": counted(pid, out_dir, config.name, args.requests, get),
            "update": counted(pid, out_dir, config.name, args.requests, put),
        }
        log(f"{config.name}: {figures}")
        return figures


def table(results: dict[str, dict[str, float]], requests: int) -> str:
    lines = [
        f"Instructions per request (callgrind, {requests} sequential requests per figure "
        "after a warm-up; same build, same database):",
        "",
        "| operation | on (metrics + JSON access log) | off | off/on | target |",
        "|---|---:|---:|---:|---|",
    ]
    for op, label in (("get", "GET notebook (220 KB)"), ("update", "update one cell's code")):
        on, off = results["on"][op], results["off"][op]
        ratio = off / on
        met = "met" if ratio >= OBSERVED_VS_OFF else "**not met**"
        lines.append(
            f"| {label} | {on:,.0f} | {off:,.0f} | {ratio:.3f}x | ≥ {OBSERVED_VS_OFF}x: {met} |"
        )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--pg-url", default=None, help=f"PostgreSQL maintenance URL (default {DEFAULT_PG})"
    )
    p.add_argument("--embedded", action="store_true", help="use the embedded PostgreSQL")
    p.add_argument("--reuse", default=None, help="a database bench/run.py kept (--keep-db)")
    p.add_argument("--keep-db", action="store_true", help="keep the scratch database")
    p.add_argument("--requests", type=int, default=300, help="measured requests per figure")
    p.add_argument("--warmup", type=int, default=30, help="GET + PUT pairs before measuring")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    install_valgrind()
    if shutil.which("valgrind") is None:
        log("valgrind is not installed (apt-get install valgrind)")
        return 2
    with postgres(args) as server_url, scratch_database(server_url, args) as (url, fresh):
        env = {**os.environ, **generated_secrets(), "DATABASE_URL": url}
        if fresh:
            log("migrating and seeding the scratch database")
            migrate(env)
            seed_database(url)
        with tempfile.TemporaryDirectory(prefix="cellar-callgrind-") as tmp:
            out_dir = Path(tmp)
            # Both at once: instruction counts do not depend on sharing the cores.
            with concurrent.futures.ThreadPoolExecutor(len(CONFIGS)) as pool:
                futures = {c.name: pool.submit(measure, c, env, out_dir, args) for c in CONFIGS}
                results = {name: future.result() for name, future in futures.items()}
    print(table(results, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
