"""Does updating one cell's code get slower as the notebook's outputs grow? (SPEC §9)

What it measures
----------------
The latency of ``PUT /notebooks/{id}/cells/{cell_id}`` with new code, the
request a notebook frontend sends on every edit, on three notebooks that are
identical except for how many bytes of outputs their *other* cells hold:
0, 1 and 5 MB by default (``--sizes-mb``).  The outputs are written the way
the execution engine writes them, through ``PUT …/cells/{cell_id}/outputs``:
PNG-like base64 strings (incompressible, like real images) split evenly
across the same number of cells in every notebook, so the notebooks differ
only in output bytes.  The edited cell itself has no outputs, so the
response has the same size everywhere.

Why
---
Outputs can be megabytes (plots, tables) while code is a few hundred bytes.
If a code edit read, rewrote or re-sent the outputs (one JSON document per
notebook, a full-row UPDATE dragging large TOASTed values along, a
read-modify-write of the whole notebook), every keystroke-save would cost
time proportional to the plots on the page.  The spec's goal: from 0 to 5 MB
of outputs, the median update is at most 1.5x slower (ratio <= 1.5).

How
---
Against the real service on loopback: one ``cellar serve`` process (started
here on a free port unless ``--base-url`` is given), one keep-alive httpx
client, requests strictly one after another, each timed with
``time.perf_counter`` from send to fully-read answer.  After a warm-up
(``--warmup`` updates per notebook, not counted), the sizes take turns in
``--rounds`` rounds (the order rotating each round), so machine noise lands
on every size alike.  It prints size, n, median, p99 and the ratio of each
median to the 0 MB median; ``--json PATH`` also writes the figures.

Where the server comes from
---------------------------
* ``--base-url URL [--token T]``: an already running service; without a
  token a bench user is registered there.
* otherwise ``cellar serve`` is started against ``DATABASE_URL`` when the
  environment has it (assumed migrated; ``APP_SECRET_KEY`` and
  ``ENCRYPTION_KEY`` are generated when absent), else against a scratch
  database created on ``--pg-url``, migrated with ``piccolo migrations
  forwards all`` and dropped at the end.

The bench notebooks are deleted at the end.  Needs only the standard library,
httpx and asyncpg::

    python bench/cell_update_vs_outputs.py
    python bench/cell_update_vs_outputs.py --updates 2000 --json /tmp/updates.json
    python bench/cell_update_vs_outputs.py --base-url http://127.0.0.1:8000 --token T
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator

MB = 1024 * 1024
GOAL_RATIO = 1.5
PASSWORD = "bench password, long enough"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REQUEST_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
MIGRATE_TIMEOUT = 300.0


class BenchError(Exception):
    """A failure to report in one line."""


# -- the service -------------------------------------------------------------------


def venv_script(name: str) -> str:
    """A console script of the interpreter running this file (the project's venv)."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise BenchError(f"`{name}` not found next to {sys.executable} nor on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def generated_secrets() -> dict[str, str]:
    # A Fernet key is 32 url-safe base64-encoded bytes.
    return {
        "APP_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


async def _admin(pg_url: str, statement: str) -> None:
    connection = await asyncpg.connect(pg_url, timeout=10)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(pg_url: str) -> Iterator[str]:
    """A new database on ``pg_url``'s server, dropped afterwards; yields its URL."""
    name = f"cellar_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(pg_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(pg_url, name)
    finally:
        asyncio.run(_admin(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        print(f"dropped scratch database {name}", file=sys.stderr)


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [venv_script("piccolo"), "migrations", "forwards", "all"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=MIGRATE_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"migrations failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGINT (graceful), then SIGTERM, then SIGKILL; every wait bounded."""
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, STOP_TIMEOUT), (signal.SIGTERM, 5.0)):
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.process.kill()
                self.process.wait(timeout=10.0)


def server_flags(port: int) -> list[str]:
    """uvicorn's options as every benchmarked Python server gets them: loopback, one worker."""
    return [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def cellar_command(port: int, prefix: list[str] | None = None) -> list[str]:
    return [*(prefix or []), venv_script("cellar"), "serve", *server_flags(port)]


@contextlib.contextmanager
def cellar_serve(env: dict[str, str]) -> Iterator[str]:
    """``cellar serve`` (one worker) on a free loopback port; yields its URL once healthy."""
    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix="cellar-bench-", suffix=".log")
    command = cellar_command(port)
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", Path(log_name))
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        with httpx.Client(base_url=server.url, timeout=2.0) as http:
            while True:
                if process.poll() is not None:
                    raise BenchError(f"cellar serve exited on start-up:\n{server.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/health").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"cellar serve not healthy in time:\n{server.tail()}")
                time.sleep(0.2)
        print(f"cellar serve (pid {process.pid}) on {server.url}", file=sys.stderr)
        yield server.url
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


@contextlib.contextmanager
def service(args: argparse.Namespace) -> Iterator[str]:
    """The base URL to measure: given, or a server started (and stopped) here."""
    if args.base_url:
        yield args.base_url.rstrip("/")
        return
    env = dict(os.environ)
    for name, value in generated_secrets().items():
        if not env.get(name, "").strip():
            env[name] = value
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL", "").strip():
            env["DATABASE_URL"] = stack.enter_context(scratch_database(args.pg_url))
            print("migrating the scratch database", file=sys.stderr)
            migrate(env)
        yield stack.enter_context(cellar_serve(env))


# -- the measurement ---------------------------------------------------------------


def check(response: httpx.Response, expected: int) -> dict[str, Any]:
    if response.status_code != expected:
        raise BenchError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def bench_token(http: httpx.Client) -> str:
    credentials = {"email": f"bench-{uuid.uuid4().hex[:12]}@example.com", "password": PASSWORD}
    check(http.post("/auth/register", json=credentials), 201)
    token: str = check(http.post("/auth/token", json=credentials), 200)["access_token"]
    return token


def png_like(size: int, seed: int) -> str:
    """A base64 string of exactly ``size`` characters that looks like an encoded PNG."""
    raw = PNG_SIGNATURE + seed.to_bytes(8, "big") + os.urandom(max(0, size * 3 // 4))
    return base64.b64encode(raw).decode()[:size]


@dataclass
class Subject:
    """One notebook under test: ``size_mb`` of outputs over its other cells."""

    size_mb: float
    notebook_id: str = ""
    cell_id: str = ""
    output_bytes: int = 0
    notebook_bytes: int = 0
    timings: list[float] = field(default_factory=list)
    edits: int = 0

    @property
    def label(self) -> str:
        return f"{self.size_mb:g} MB"

    def update(self, http: httpx.Client) -> float:
        """One code update; returns its latency in seconds."""
        self.edits += 1
        body = {"code": f"x = {self.edits}\ny = x * 2  # edit {self.edits}"}
        path = f"/notebooks/{self.notebook_id}/cells/{self.cell_id}"
        started = time.perf_counter()
        response = http.put(path, json=body)
        took = time.perf_counter() - started
        check(response, 200)
        return took


def prepare(http: httpx.Client, subject: Subject, output_cells: int) -> None:
    """Create the notebook: ``output_cells`` cells sharing the outputs, then the edited cell."""
    created = check(http.post("/notebooks", json={"name": f"bench {subject.label}"}), 201)
    subject.notebook_id = created["notebook_id"]
    base = f"/notebooks/{subject.notebook_id}"
    total = round(subject.size_mb * MB)
    share, rest = divmod(total, output_cells)
    for k in range(output_cells):
        cell = check(
            http.post(f"{base}/cells", json={"type": "python", "code": f"plot{k} = render({k})"}),
            201,
        )["cell"]
        size = share + (1 if k < rest else 0)
        outputs = (
            [{"mime_type": "image/png", "data": png_like(size, k), "metadata": {"k": k}}]
            if size
            else []
        )
        run = {"status": "success", "stdout": "", "outputs": outputs}
        check(http.put(f"{base}/cells/{cell['id']}/outputs", json=run), 200)
        subject.output_bytes += size
    target = check(http.post(f"{base}/cells", json={"type": "python", "code": "x = 0"}), 201)
    subject.cell_id = target["cell"]["id"]
    # Proof the outputs are really stored: the whole notebook as the API serves it.
    subject.notebook_bytes = len(http.get(base).content)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def measure(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    subjects = [Subject(size) for size in args.sizes_mb]
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:
        token = args.token or bench_token(http)
        http.headers["Authorization"] = f"Bearer {token}"
        try:
            for subject in subjects:
                print(f"preparing the {subject.label} notebook", file=sys.stderr)
                prepare(http, subject, args.output_cells)
            for subject in subjects:
                for _ in range(args.warmup):
                    subject.update(http)
            rounds = max(1, min(args.rounds, args.updates))
            per_round = [
                args.updates // rounds + (1 if r < args.updates % rounds else 0)
                for r in range(rounds)
            ]
            for r, count in enumerate(per_round):
                shift = r % len(subjects)
                for subject in subjects[shift:] + subjects[:shift]:
                    subject.timings.extend(subject.update(http) for _ in range(count))
                print(f"round {r + 1}/{rounds} done", file=sys.stderr)
        finally:
            for subject in subjects:
                if subject.notebook_id:
                    with contextlib.suppress(httpx.HTTPError):
                        http.delete(f"/notebooks/{subject.notebook_id}", params={"purge": "true"})

    baseline = statistics.median(subjects[0].timings)
    rows = []
    for subject in subjects:
        median = statistics.median(subject.timings)
        rows.append(
            {
                "size_mb": subject.size_mb,
                "output_bytes": subject.output_bytes,
                "notebook_bytes": subject.notebook_bytes,
                "n": len(subject.timings),
                "median_ms": median * 1000,
                "p99_ms": percentile(subject.timings, 0.99) * 1000,
                "mean_ms": statistics.fmean(subject.timings) * 1000,
                "ratio": median / baseline,
            }
        )
    return {
        "benchmark": "cell code update vs outputs of the other cells",
        "request": "PUT /notebooks/{id}/cells/{cell_id}",
        "base_url": base_url,
        "updates_per_size": args.updates,
        "warmup_per_size": args.warmup,
        "rounds": args.rounds,
        "output_cells": args.output_cells,
        "goal_ratio": GOAL_RATIO,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sizes": rows,
    }


def table(result: dict[str, Any]) -> str:
    header = ("outputs", "n", "median ms", "p99 ms", "ratio", "GET bytes")
    lines = ["{:>9}  {:>5}  {:>10}  {:>8}  {:>6}  {:>10}".format(*header)]
    for row in result["sizes"]:
        lines.append(
            f"{row['size_mb']:>6g} MB  {row['n']:>5}  {row['median_ms']:>10.2f}  "
            f"{row['p99_ms']:>8.2f}  {row['ratio']:>5.2f}x  {row['notebook_bytes']:>10}"
        )
    largest = result["sizes"][-1]
    if len(result["sizes"]) > 1:
        verdict = "met" if largest["ratio"] <= result["goal_ratio"] else "MISSED"
        lines.append(
            f"goal: median at {largest['size_mb']:g} MB <= {result['goal_ratio']}x "
            f"the {result['sizes'][0]['size_mb']:g} MB median: {verdict}"
        )
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------


def sizes(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None
    if not values or any(value < 0 for value in values):
        raise argparse.ArgumentTypeError("expected one or more sizes >= 0")
    return values


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        description="Latency of a cell code update on notebooks with 0, 1 and 5 MB of outputs.",
    )
    cli.add_argument("--base-url", help="a running service (default: start cellar serve here)")
    cli.add_argument("--token", help="bearer token for --base-url (default: register a user)")
    cli.add_argument("--updates", type=positive, default=500, help="timed updates per size")
    cli.add_argument(
        "--sizes-mb", type=sizes, default=[0.0, 1.0, 5.0], help="comma-separated, first = baseline"
    )
    cli.add_argument("--warmup", type=int, default=20, help="untimed updates per size first")
    cli.add_argument("--rounds", type=positive, default=5, help="sizes take turns this often")
    cli.add_argument(
        "--output-cells", type=positive, default=5, help="cells the outputs are split over"
    )
    cli.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="server for the scratch database when DATABASE_URL is not set",
    )
    cli.add_argument("--json", type=Path, help="also write the figures to this file")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.token and not args.base_url:
        parser().error("--token needs --base-url")
    if max(args.sizes_mb) * MB / args.output_cells > 12 * MB:
        parser().error("more than 12 MB of outputs per cell: raise --output-cells")
    try:
        with service(args) as base_url:
            result = measure(args, base_url)
    except (
        BenchError,
        httpx.HTTPError,
        OSError,
        subprocess.SubprocessError,
        asyncpg.PostgresError,
    ) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
