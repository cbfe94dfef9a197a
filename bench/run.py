"""SPEC §9's benchmark: Cellar against the floor and Jupyter Server, in one run.

    python bench/run.py            # the full run (≤ 15 minutes), writes bench/RESULTS.md
    python bench/run.py --quick    # seconds: tiny data, one round, 1 s per measurement

See bench/README.md for what is measured and how.  In short: a scratch
database (created here, dropped at the end) is seeded with fixed-seed data
(``bench/seed.py``); Cellar (``cellar serve``, one worker), the floor
(``bench/floor.py`` under uvicorn) and Jupyter Server (loopback, no token) are
started pinned to core 0 with the PostgreSQL backends serving them, wrk runs
pinned to core 1, and every operation is measured on every system in turn,
round after round (the order rotating), medians reported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import seed
from cell_update_vs_outputs import (
    BenchError,
    Server,
    cellar_command,
    free_port,
    generated_secrets,
    migrate,
    server_flags,
    with_database,
)
from ipynb_notebooks import images_notebook
from load import Figures, Load, LoadError, NoAnswer, run_python, run_wrk, wrk_available

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

HERE = Path(__file__).resolve().parent
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
NOTES_MARK = "<!-- hand-written notes below this line are kept when the file is regenerated -->"
STARTUP_TIMEOUT = 90.0

CELLAR, FLOOR, JUPYTER = "cellar", "floor", "jupyter"
# --observability: the same build with metrics and the access log off, beside Cellar with
# both on (JSON access lines, GET /metrics), to measure what observability costs.
CELLAR_OFF = "cellar_off"
# --read-cache: the same build with READ_CACHE_BYTES=0 beside Cellar (cache on, the default).
CELLAR_NOCACHE = "cellar_nocache"
LABELS = {
    CELLAR: "Cellar",
    CELLAR_OFF: "Cellar, metrics and logs off",
    CELLAR_NOCACHE: "Cellar, read cache off",
    FLOOR: "floor",
    JUPYTER: "Jupyter Server",
}

# Targets (issue: "make Cellar lead it"; GET's raised by issue 19, the read cache).
GET_VS_FLOOR = 2.5
GET_VS_JUPYTER = 12.0
UPDATE_VS_JUPYTER = 4.0
UPDATE_P99_MS = 20.0
OUTPUTS_GROWTH = 1.2
SEARCH_P50_MS = 20.0
LIST_P50_MS = 5.0
OBSERVED_VS_OFF = 0.95
# SPEC §12 (issue 13): the 4 MB / 150-image notebook in and out, one connection.
IPYNB_IMPORT_P50_MS = 150.0
IPYNB_EXPORT_P50_MS = 60.0
IPYNB_VS_JUPYTER = 3.0
IPYNB_USER = "ipynb@bench.invalid"
IPYNB_FILE = "images.ipynb"


@dataclass
class Profile:
    rounds: int
    seconds: float
    warmup: float
    filler: int
    search: int
    sizes_mb: list[float]
    connections: int = 16


FULL = Profile(rounds=3, seconds=4, warmup=1, filler=10_000, search=90_000, sizes_mb=[0, 1, 5])
QUICK = Profile(rounds=1, seconds=1, warmup=0, filler=200, search=800, sizes_mb=[0, 1])


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- machine ---------------------------------------------------------------------------


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pinning() -> tuple[list[str], list[str], str]:
    """(server prefix, load prefix, description): core 0 for servers, core 1 for wrk."""
    available = cores()
    if shutil.which("taskset") is None or len(available) < 2:
        return [], [], "not pinned (taskset missing or fewer than 2 cores)"
    server, load = str(available[0]), str(available[1])
    return (
        ["taskset", "-c", server],
        ["taskset", "-c", load],
        f"servers and their PostgreSQL backends on core {server}, wrk on core {load}",
    )


def pin_backends(pids: list[int], core: int | None) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            if core is not None:
                os.sched_setaffinity(pid, {core})


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    wrk = "not installed"
    if wrk_available():
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        wrk = (done.stdout + done.stderr).splitlines()[0].split(" Copyright")[0]
    uvloop = version("uvloop") != "not installed"
    httptools = version("httptools") != "not installed"
    return {
        "platform": platform.platform(),
        "cpu": f"{cpu}, {os.cpu_count()} cores ({len(cores())} usable)",
        "memory": memory,
        "python": platform.python_version(),
        "uvicorn": f"{version('uvicorn')} (loop: {'uvloop' if uvloop else 'asyncio'}, "
        f"http: {'httptools' if httptools else 'h11'})",
        "litestar": version("litestar"),
        "asyncpg": version("asyncpg"),
        "msgspec": version("msgspec"),
        "jupyter_server": version("jupyter_server"),
        "wrk": wrk,
    }


# -- database --------------------------------------------------------------------------


async def _admin(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres(args: argparse.Namespace) -> Iterator[str]:
    """The maintenance URL of the server to use: --pg-url, the local one, or embedded."""
    if not args.embedded:
        url = args.pg_url or DEFAULT_PG
        try:
            asyncio.run(_admin(url, "SELECT 1"))
        except (OSError, asyncpg.PostgresError) as exc:
            if args.pg_url:
                raise BenchError(f"cannot reach {url}: {exc}") from None
            log(f"no PostgreSQL at {url} ({type(exc).__name__}); using the embedded one")
        else:
            yield url
            return
    try:
        import pgserver
    except ImportError:
        raise BenchError("no PostgreSQL: pass --pg-url or pip install -e '.[embedded]'") from None
    with tempfile.TemporaryDirectory(prefix="cellar-bench-pg-") as data_dir:
        server = pgserver.get_server(data_dir, cleanup_mode="delete")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()


@contextlib.contextmanager
def scratch_database(server_url: str, args: argparse.Namespace) -> Iterator[tuple[str, bool]]:
    """(URL, fresh) of the run's database: new and dropped at the end, or --reuse NAME."""
    if args.reuse:
        yield with_database(server_url, args.reuse), False
        return
    name = f"cellar_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server_url, name), True
    finally:
        if args.keep_db:
            log(f"kept database {name} (rerun with --reuse {name})")
        else:
            asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            log(f"dropped scratch database {name}")


async def database_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        version = await conn.fetchval("SHOW server_version")
        default = await conn.fetchval("SHOW default_toast_compression")
        rows = await conn.fetch(
            "SELECT c.relname || '.' || a.attname AS col, a.attcompression AS method "
            "  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            " WHERE (c.relname, a.attname) IN (('notebooks', 'cells'), ('cell_runs', 'outputs'))"
        )
        counts = await conn.fetchrow(
            "SELECT count(*) AS notebooks, count(*) FILTER (WHERE user_id = $1) AS search_user, "
            "       count(*) FILTER (WHERE user_id = $2) AS bench_user FROM notebooks",
            seed.SEARCH_USER,
            seed.BENCH_USER,
        )
        hits = await conn.fetchval(
            "SELECT count(*) FROM notebooks WHERE user_id = $1 AND cells @> $2::jsonb",
            seed.SEARCH_USER,
            json.dumps([{"writes": [seed.SEARCH_TERM]}]),
        )
    finally:
        await conn.close()
    methods = {b"p": "pglz", b"l": "lz4"}
    return {
        "server_version": version,
        "compression": {
            r["col"]: methods.get(bytes(r["method"]), f"the default ({default})") for r in rows
        },
        "notebooks": counts["notebooks"],
        "bench_user_notebooks": counts["bench_user"],
        "search_user_notebooks": counts["search_user"],
        "search_hits": hits,
    }


async def backend_pids(url: str, database: str) -> list[int]:
    return [pid for pid, _ in await backends(url, database)]


async def backends(url: str, database: str) -> list[tuple[int, int | None]]:
    """(pid, client port) of every backend connected to ``database`` but this one."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT pid, client_port FROM pg_stat_activity"
            " WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return [(r["pid"], r["client_port"]) for r in rows]


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (Linux /proc): its database connections."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def database_cpu_seconds(run: Run, pid: int | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving process ``pid``."""
    if pid is None:
        return {}
    ports = local_ports(pid)
    found = asyncio.run(backends(run.database_url, run.database))
    return {
        backend: process_cpu_seconds(backend) or 0.0
        for backend, port in found
        if port is not None and port in ports
    }


# -- servers ---------------------------------------------------------------------------


@dataclass
class Started:
    name: str
    url: str
    command: list[str]
    server: Server


@contextlib.contextmanager
def start(
    name: str,
    command: list[str],
    port: int,
    env: dict[str, str],
    ready: str,
    startup_timeout: float = STARTUP_TIMEOUT,
) -> Iterator[Started]:
    """Start ``command``, wait (bounded) until GET ``ready`` answers 200, stop it at the end."""
    url = f"http://127.0.0.1:{port}"
    fd, log_name = tempfile.mkstemp(prefix=f"cellar-bench-{name}-", suffix=".log")
    with os.fdopen(fd, "wb") as out:
        process = subprocess.Popen(
            command,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, url, Path(log_name))
    try:
        deadline = time.monotonic() + startup_timeout
        with httpx.Client(base_url=url, timeout=2.0) as http:
            while True:
                if process.poll() is not None:
                    raise BenchError(f"{name} exited on start-up:\n{server.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(ready).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"{name} not ready in time:\n{server.tail()}")
                time.sleep(0.2)
        log(f"{name} (pid {process.pid}) on {url}")
        yield Started(name, url, command, server)
    finally:
        server.stop()
        server.log.unlink(missing_ok=True)


def floor_command(prefix: list[str], port: int) -> list[str]:
    return [
        *prefix,
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(HERE),
        "floor:app",
        *server_flags(port),
    ]


def jupyter_command(prefix: list[str], port: int, root: Path) -> list[str]:
    return [
        *prefix,
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.allow_root=True",
        "--ServerApp.log_level=WARN",
    ]


def jupyter_available() -> bool:
    try:
        metadata.version("jupyter_server")
        metadata.version("nbformat")
    except metadata.PackageNotFoundError:
        return False
    return True


def install_wrk() -> None:
    """Debian's wrk, when missing and we may (root, apt-get present)."""
    if wrk_available() or shutil.which("apt-get") is None or os.geteuid() != 0:
        return
    log("installing wrk with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)


# -- what is measured ------------------------------------------------------------------


@dataclass
class Measure:
    """One operation on one system: how to load it and with how many connections."""

    op: str
    system: str
    load: Load
    connections: int
    # Rebuilds ``load`` right before each measurement (e.g. a fresh ETag).
    refresh: Callable[[], Load] | None = None


@dataclass
class Run:
    args: argparse.Namespace
    profile: Profile
    deadline: float
    load_prefix: list[str]
    database_url: str
    database: str
    server_core: int | None
    figures: dict[tuple[str, str], list[Figures]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def measure(self, m: Measure, seconds: float, record: bool = True) -> None:
        pids = asyncio.run(backend_pids(self.database_url, self.database))
        pin_backends(pids, self.server_core)
        base = self.urls[m.system]
        if m.refresh is not None:
            m.load = m.refresh()
        cpu_before = process_cpu_seconds(self.pids.get(m.system))
        db_before = database_cpu_seconds(self, self.pids.get(m.system))
        try:
            figures = patient(lambda s: self.load(base, m, s), seconds, f"{m.op} on {m.system}")
        except LoadError as exc:
            self.failures.append(f"{m.op} on {m.system}: {exc}")
            log(f"{m.op} on {m.system} failed: {exc}")
            return
        cpu_after = process_cpu_seconds(self.pids.get(m.system))
        db_after = database_cpu_seconds(self, self.pids.get(m.system))
        if cpu_before is not None and cpu_after is not None and figures.requests:
            figures.server_cpu_us = (cpu_after - cpu_before) / figures.requests * 1e6
            # A backend opened during the measurement counts from its start.
            database = sum(after - db_before.get(pid, 0.0) for pid, after in db_after.items())
            figures.total_cpu_us = figures.server_cpu_us + database / figures.requests * 1e6
        if figures.errors:
            self.failures.append(f"{m.op} on {m.system}: {figures.errors} errors")
        if record:
            self.figures.setdefault((m.op, m.system), []).append(figures)
            log(
                f"{m.op:>14} {m.system:>8}: {figures.rps:8.1f} req/s  p50 {figures.p50_ms:7.2f} ms"
                f"  p99 {figures.p99_ms:7.2f} ms  ({figures.requests} requests, "
                f"{figures.errors} errors)"
            )

    def load(self, base: str, m: Measure, seconds: float) -> Figures:
        if wrk_available():
            return run_wrk(
                base, m.load, connections=m.connections, seconds=seconds, pin=self.load_prefix
            )
        return run_python(base, m.load, connections=m.connections, seconds=seconds)

    def rounds(self, measures: list[Measure], label: str, reserve: float = 0.0) -> int:
        """Every measure once per round, the systems' order rotating; returns rounds done.

        A round starts only if it can end ``reserve`` seconds before the deadline.
        """
        p = self.profile
        per_round = len(measures) * (p.seconds + 1.5) + reserve
        if p.warmup:
            for m in measures:
                self.measure(m, p.warmup, record=False)
        done = 0
        for r in range(p.rounds):
            if self.remaining() < per_round:
                self.notes.append(
                    f"{label}: stopped after {done} of {p.rounds} rounds (time bound)"
                )
                break
            for m in rotated(measures, r):
                self.measure(m, p.seconds)
            done += 1
            log(f"{label}: round {r + 1}/{p.rounds} done")
        return done


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def patient(load: Callable[[float], Figures], seconds: float, what: str) -> Figures:
    """``load(seconds)``, once more over a longer window if not one request came back.

    A slow system (Jupyter's listing takes about a second a request at 16
    connections) can answer nothing within a smoke run's 1 s window; a
    longer one tells a slow server from a dead one, which still fails.
    """
    try:
        return load(seconds)
    except NoAnswer:
        longer = max(4 * seconds, 5.0)
        log(f"{what}: no answer in {seconds:g} s, measuring {longer:g} s")
        return load(longer)


def rotated(measures: list[Measure], r: int) -> list[Measure]:
    """Within each operation, the systems take turns going first."""
    out: list[Measure] = []
    ops: dict[str, list[Measure]] = {}
    for m in measures:
        ops.setdefault(m.op, []).append(m)
    for group in ops.values():
        shift = r % len(group)
        out.extend(group[shift:] + group[:shift])
    return out


def split_body(body: bytes, marker: bytes) -> tuple[bytes, bytes]:
    prefix, found, suffix = body.partition(marker)
    if not found:
        raise BenchError("body marker missing")
    return prefix, suffix


def auth_header(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cellar_like(system: str, token: str, search_token: str, sizes: list[float]) -> list[Measure]:
    """The measures Cellar and the floor share (same routes, same bodies)."""
    auth = {"Authorization": f"Bearer {token}"}
    put = {**auth, "Content-Type": "application/json"}
    update = split_body(b'{"code": "step_7 = step_6.sum()  # edit __N__"}', b"__N__")
    spread_cells = [f"/notebooks/{n}/cells/cell-07" for n in seed.SPREAD_IDS]
    measures = [
        Measure("get", system, Load("GET", [f"/notebooks/{seed.BIG_ID}"], auth), 16),
        # 16 connections over 16 notebooks of one user: the usual case (issue 19).
        Measure("update_spread", system, Load("PUT", spread_cells, put, update), 16),
        # 90 % GET of those notebooks, 10 % code edits of the same notebooks.
        Measure(
            "mixed",
            system,
            Load(
                "GET",
                [f"/notebooks/{n}" for n in seed.SPREAD_IDS],
                auth,
                update,
                write_every=10,
                write_paths=spread_cells,
                write_headers=put,
            ),
            16,
        ),
        Measure(
            "update",
            system,
            Load("PUT", [f"/notebooks/{seed.BIG_ID}/cells/cell-07"], put, update),
            16,
        ),
        Measure("list", system, Load("GET", ["/notebooks"], auth), 16),
        Measure("list_1", system, Load("GET", ["/notebooks"], auth), 1),
    ]
    for size in sizes:
        path = f"/notebooks/bench-out-{size:g}/cells/{seed.EDITED_CELL}"
        body = split_body(b'{"code": "x = __N__"}', b"__N__")
        measures.append(Measure(f"edit_{size:g}mb", system, Load("PUT", [path], put, body), 1))
    return measures


def search_measures(system: str, token: str) -> list[Measure]:
    """Each search at 16 connections (throughput) and at 1 (latency without queueing)."""
    auth = {"Authorization": f"Bearer {token}"}
    text = Load("GET", [f"/notebooks/search?q={seed.SEARCH_TERM}"], auth)
    writes = Load("GET", [f"/notebooks/search?writes={seed.SEARCH_TERM}"], auth)
    return [
        Measure("search_text", system, text, 16),
        Measure("search_text_1", system, text, 1),
        Measure("search_writes", system, writes, 16),
        Measure("search_writes_1", system, writes, 1),
    ]


def jupyter_measures(sizes: list[float]) -> list[Measure]:
    def save(name: str, cell_id: str) -> Load:
        nb = json.loads((jupyter_root_path() / name).read_text())
        for cell in nb["cells"]:
            if cell["id"] == cell_id:
                cell["source"] = "x = __N__"
        model = {"type": "notebook", "format": "json", "content": nb}
        body = split_body(json.dumps(model).encode(), b"__N__")
        return Load("PUT", [f"/api/contents/{name}"], {"Content-Type": "application/json"}, body)

    measures = [
        Measure("get", JUPYTER, Load("GET", ["/api/contents/big.ipynb"]), 16),
        Measure("update", JUPYTER, save("big.ipynb", "cell-07"), 16),
        Measure("list", JUPYTER, Load("GET", ["/api/contents/list"]), 16),
        Measure("list_1", JUPYTER, Load("GET", ["/api/contents/list"]), 1),
    ]
    for size in sizes:
        measures.append(
            Measure(f"edit_{size:g}mb", JUPYTER, save(f"out-{size:g}.ipynb", "target"), 1)
        )
    return measures


def ipynb_measures(run: Run, with_jupyter: bool) -> list[Measure]:
    """Import and export of the 4 MB notebook of 150 figures (SPEC §12), one connection.

    Cellar: ``POST /notebooks/import`` of the file, and ``GET …/ipynb`` of a
    notebook imported from it; Jupyter: its contents API ``PUT`` (a save of
    the same notebook) and ``GET`` of it.  Every import body differs (a
    counter in the title).  The imports land in a user of their own, whose
    notebooks but the exported one are deleted before each measurement, so
    the database does not grow by 8 MB a request over the run.
    """
    text = images_notebook()
    (jupyter_root_path() / IPYNB_FILE).write_text(text)
    document = json.loads(text)
    document["metadata"]["title"] = "__N__"
    body = split_body(json.dumps(document).encode(), b"__N__")
    with httpx.Client(base_url=run.urls[CELLAR], timeout=60) as http:
        registered = http.post(
            "/auth/register", json={"email": IPYNB_USER, "password": seed.PASSWORD}
        )
        if registered.status_code not in (201, 409):
            raise BenchError(f"register: {registered.status_code} {registered.text[:300]}")
        auth = {"Authorization": f"Bearer {token_for(http, IPYNB_USER)}"}
        answer = http.post(
            "/notebooks/import",
            content=text.encode(),
            headers={**auth, "Content-Type": "application/x-ipynb+json"},
        )
        if answer.status_code != 201:
            raise BenchError(f"import: {answer.status_code} {answer.text[:300]}")
        kept = answer.json()["notebook_id"]
    importing = Load(
        "POST", ["/notebooks/import"], {**auth, "Content-Type": "application/x-ipynb+json"}, body
    )

    def emptied() -> Load:
        asyncio.run(_delete_imports(run.database_url, kept))
        return importing

    measures = [
        Measure("ipynb_import", CELLAR, importing, 1, refresh=emptied),
        Measure("ipynb_export", CELLAR, Load("GET", [f"/notebooks/{kept}/ipynb"], auth), 1),
    ]
    if with_jupyter:
        model = {"type": "notebook", "format": "json", "content": document}
        saving = split_body(json.dumps(model).encode(), b"__N__")
        path = f"/api/contents/{IPYNB_FILE}"
        json_body = {"Content-Type": "application/json"}
        measures += [
            Measure("ipynb_import", JUPYTER, Load("PUT", [path], json_body, saving), 1),
            Measure("ipynb_export", JUPYTER, Load("GET", [path]), 1),
        ]
    return measures


async def _delete_imports(url: str, kept: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(
            "DELETE FROM notebooks WHERE id <> $2 AND user_id = "
            "(SELECT id FROM users WHERE email = $1)",
            IPYNB_USER,
            kept,
        )
    finally:
        await conn.close()


_JUPYTER_ROOT: dict[str, Path] = {}


def jupyter_root_path() -> Path:
    return _JUPYTER_ROOT["root"]


# -- the run ---------------------------------------------------------------------------


def token_for(http: httpx.Client, email: str) -> str:
    answer = http.post("/auth/token", json={"email": email, "password": seed.PASSWORD})
    if answer.status_code != 200:
        raise BenchError(f"token for {email}: {answer.status_code} {answer.text[:300]}")
    token: str = answer.json()["access_token"]
    return token


def response_sizes(run: Run, token: str) -> dict[str, int]:
    """Bytes of the big notebook as each system serves it (and a sanity check of each)."""
    sizes = {}
    auth = {"Authorization": f"Bearer {token}"}
    for system, path, headers in (
        (CELLAR, f"/notebooks/{seed.BIG_ID}", auth),
        (FLOOR, f"/notebooks/{seed.BIG_ID}", auth),
        (JUPYTER, "/api/contents/big.ipynb", {}),
    ):
        if system not in run.urls:
            continue
        answer = httpx.get(run.urls[system] + path, headers=headers, timeout=30)
        if answer.status_code != 200:
            raise BenchError(f"{system} GET: {answer.status_code} {answer.text[:300]}")
        sizes[system] = len(answer.content)
    return sizes


def cellar_304(run: Run, token: str) -> Measure:
    """GET with the current ETag: the updates between two rounds change it, so ask each time."""
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/notebooks/{seed.BIG_ID}"

    def load() -> Load:
        answer = httpx.get(run.urls[CELLAR] + path, headers=auth, timeout=30)
        return Load("GET", [path], {**auth, "If-None-Match": answer.headers["etag"]})

    return Measure("get_304", CELLAR, load(), 16, refresh=load)


def execute(args: argparse.Namespace, profile: Profile) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    if args.install_wrk:
        install_wrk()
    if not wrk_available():
        log(
            "wrk is not installed: falling back to the Python load generator "
            "(figures not comparable)"
        )
    server_prefix, load_prefix, pin_text = pinning()
    systems = [CELLAR, CELLAR_OFF, FLOOR] if args.observability else [CELLAR, FLOOR]
    if args.read_cache:
        systems.insert(1, CELLAR_NOCACHE)
    with_jupyter = not args.no_jupyter and jupyter_available()
    if with_jupyter:
        systems.append(JUPYTER)
    commands: dict[str, list[str]] = {}
    result: dict[str, Any] = {"profile": profile.__dict__, "pinning": pin_text}

    secrets_env = generated_secrets()
    from argon2 import PasswordHasher

    password_hash = PasswordHasher().hash(seed.PASSWORD)
    with contextlib.ExitStack() as stack:
        server_url = stack.enter_context(postgres(args))
        url, fresh = stack.enter_context(scratch_database(server_url, args))
        database = url.rsplit("/", 1)[1].split("?")[0]
        env = {
            **os.environ,
            **secrets_env,
            "DATABASE_URL": url,
            "AUTH_TOKEN_RATE_LIMIT_PER_MINUTE": "100000",
        }
        if fresh:
            log("migrating the scratch database")
            migrate(env)
            log(f"seeding {profile.filler} filler notebooks")
            t = time.monotonic()
            asyncio.run(seed_base(url, password_hash, profile))
            result["seed_base_seconds"] = round(time.monotonic() - t, 1)
        else:
            log("reusing the database as it is (--reuse)")
            asyncio.run(reset_passwords(url, password_hash))
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cellar-bench-")))
        _JUPYTER_ROOT["root"] = tmp / "jupyter"
        _JUPYTER_ROOT["root"].mkdir()
        result["ipynb_bytes"] = seed.write_jupyter_root(_JUPYTER_ROOT["root"], profile.sizes_mb)

        core = int(server_prefix[-1]) if server_prefix else None
        run = Run(args, profile, deadline, load_prefix, url, database, core)

        port = free_port()
        cellar_env, command = env, cellar_command(port, server_prefix)
        if args.observability:
            # As deployed: metrics on (the default) and one JSON access line per request,
            # written to the server's log file. The later flags win over cellar_command's.
            cellar_env = {**env, "LOG_FORMAT": "json"}
            command = [*command, "--access-log", "--log-level", "info"]
        cellar = stack.enter_context(start(CELLAR, command, port, cellar_env, "/health"))
        floor_env = {
            **os.environ,
            "FLOOR_DATABASE_URL": url,
            "FLOOR_SECRET_KEY": secrets_env["APP_SECRET_KEY"],
        }
        port = free_port()
        floor = stack.enter_context(
            start(FLOOR, floor_command(server_prefix, port), port, floor_env, "/health")
        )
        started_servers = [cellar, floor]
        if args.read_cache:
            port = free_port()
            nocache_env = {**cellar_env, "READ_CACHE_BYTES": "0"}
            nocache_command = cellar_command(port, server_prefix)
            started_servers.append(
                stack.enter_context(
                    start(CELLAR_NOCACHE, nocache_command, port, nocache_env, "/health")
                )
            )
        if args.observability:
            port = free_port()
            off_env = {**env, "METRICS_ENABLED": "false"}
            off_command = cellar_command(port, server_prefix)  # --no-access-log
            started_servers.append(
                stack.enter_context(start(CELLAR_OFF, off_command, port, off_env, "/health"))
            )
        if with_jupyter:
            jupyter_env = {
                **os.environ,
                "JUPYTER_CONFIG_DIR": str(tmp / "jconfig"),
                "JUPYTER_DATA_DIR": str(tmp / "jdata"),
                "JUPYTER_RUNTIME_DIR": str(tmp / "jruntime"),
                "JUPYTER_PLATFORM_DIRS": "1",
            }
            port = free_port()
            jupyter = stack.enter_context(
                start(
                    JUPYTER,
                    jupyter_command(server_prefix, port, _JUPYTER_ROOT["root"]),
                    port,
                    jupyter_env,
                    "/api/status",
                )
            )
            started_servers.append(jupyter)
        for s in started_servers:
            run.urls[s.name] = s.url
            run.pids[s.name] = s.server.process.pid
            commands[s.name] = s.command

        with httpx.Client(base_url=cellar.url, timeout=30) as http:
            token = token_for(http, "bench@bench.invalid")
            search_token = token_for(http, "search@bench.invalid")
        # Every Cellar compared answers the same set-up requests. Logging in (argon2
        # hashing, 64 MiB) leaves a process measurably slower afterwards: an A/A run of
        # --observability, both sides configured alike, had the one that logged in
        # 9 % behind the other (per-round ratios 0.88-0.94); with both logged in, none.
        for other in (CELLAR_OFF, CELLAR_NOCACHE):
            if other in run.urls:
                with httpx.Client(base_url=run.urls[other], timeout=30) as http:
                    token_for(http, "bench@bench.invalid")
                    token_for(http, "search@bench.invalid")
        result["get_bytes"] = response_sizes(run, token)

        measures = cellar_like(CELLAR, token, search_token, profile.sizes_mb)
        measures.append(cellar_304(run, token))
        measures += cellar_like(FLOOR, token, search_token, profile.sizes_mb)
        if args.observability:
            measures += cellar_like(CELLAR_OFF, token, search_token, profile.sizes_mb)
        if args.read_cache:
            measures += [
                m
                for m in cellar_like(CELLAR_NOCACHE, token, search_token, profile.sizes_mb)
                if m.op in READ_CACHE_OPS
            ]
            # The floor has no graph route: Cellar with and without the cache only.
            graph = Load("GET", [f"/notebooks/{seed.BIG_ID}/graph"], auth_header(token))
            measures += [Measure("graph", s, graph, 16) for s in (CELLAR, CELLAR_NOCACHE)]
        if with_jupyter:
            measures += jupyter_measures(profile.sizes_mb)
        if not args.only or args.only & {"ipynb_import", "ipynb_export"}:
            measures += ipynb_measures(run, with_jupyter)
        measures.sort(key=lambda m: list(OPS).index(m.op) if m.op in OPS else 99)
        search = search_measures(CELLAR, search_token) + search_measures(FLOOR, search_token)
        search.sort(key=lambda m: list(OPS).index(m.op))
        if args.only:
            measures = [m for m in measures if m.op in args.only]
            search = [m for m in search if m.op in args.only]
        # ≈ 15 s per 90,000 notebooks on the development machine; twice that, to be safe.
        seeding = (10 + profile.search / 3000) if fresh and search else 0
        search_time = len(search) * (profile.warmup + (profile.seconds + 1.5) * profile.rounds)
        result["rounds_main"] = run.rounds(measures, "notebooks", reserve=seeding + search_time)

        if fresh and search:
            if run.remaining() < seeding + len(search) * (profile.seconds + 1.5):
                run.notes.append("search: skipped (time bound)")
            else:
                log(f"seeding {profile.search} more notebooks for search, then VACUUM (ANALYZE)")
                t = time.monotonic()
                asyncio.run(seed_search(url, profile))
                result["seed_search_seconds"] = round(time.monotonic() - t, 1)
        if search and "search: skipped (time bound)" not in run.notes:
            result["rounds_search"] = run.rounds(search, "search")
        result["database"] = asyncio.run(database_facts(url))

    result["systems"] = systems
    result["commands"] = {k: shlex.join(v) for k, v in commands.items()}
    result["load"] = "wrk" if wrk_available() else "python fallback"
    result["figures"] = {
        f"{op}/{system}": [f.as_dict() for f in figs] for (op, system), figs in run.figures.items()
    }
    result["failures"] = run.failures
    result["notes"] = run.notes
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


async def seed_base(url: str, password_hash: str, profile: Profile) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await seed.seed_base(conn, password_hash, filler=profile.filler, sizes_mb=profile.sizes_mb)
        await seed.vacuum(conn)
    finally:
        await conn.close()


async def seed_search(url: str, profile: Profile) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await seed.seed_search(conn, count=profile.search)
    finally:
        await conn.close()


async def reset_passwords(url: str, password_hash: str) -> None:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        await conn.execute(
            "UPDATE users SET password_hash = $1 WHERE id = ANY($2::uuid[])",
            password_hash,
            [seed.BENCH_USER, seed.SEARCH_USER],
        )
    finally:
        await conn.close()


# -- the report ------------------------------------------------------------------------

OPS = {
    "get": "GET notebook (220 KB)",
    "get_304": "GET notebook, If-None-Match (304)",
    "update": "update one cell's code",
    "update_spread": "update one cell's code, 16 notebooks of one user",
    "mixed": "90 % GET, 10 % code updates, 16 notebooks of one user",
    "graph": "GET the big notebook's graph",
    "list": "list notebooks (200)",
    "list_1": "list notebooks (200), 1 conn.",
    "edit_0mb": "code update, 0 MB outputs, 1 conn.",
    "edit_1mb": "code update, 1 MB outputs, 1 conn.",
    "edit_5mb": "code update, 5 MB outputs, 1 conn.",
    "ipynb_import": "import the 4 MB .ipynb (150 images), 1 conn.",
    "ipynb_export": "export it as .ipynb, 1 conn.",
    "search_text": "search q=revenue_by_region",
    "search_text_1": "search q=revenue_by_region, 1 conn.",
    "search_writes": "search writes=revenue_by_region",
    "search_writes_1": "search writes=revenue_by_region, 1 conn.",
}


# What --read-cache measures on both Cellars.
READ_CACHE_OPS = ("get", "update", "update_spread", "mixed", "graph")


def medians(result: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """op → system → median of each figure over the rounds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key, rounds in result["figures"].items():
        op, system = key.split("/")
        out.setdefault(op, {})[system] = {
            name: statistics.median(r.get(name, 0.0) for r in rounds)
            for name in ("rps", "p50_ms", "p90_ms", "p99_ms", "server_cpu_us", "total_cpu_us")
        } | {"rounds": len(rounds)}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{suffix}"


def targets(m: dict[str, dict[str, dict[str, float]]]) -> list[tuple[str, str, bool | None]]:
    def get(op: str, system: str, name: str) -> float | None:
        return m.get(op, {}).get(system, {}).get(name)

    checks: list[tuple[str, str, bool | None]] = []

    def check(label: str, value: float | None, ok: Callable[[float], bool], shown: str) -> None:
        checks.append(
            (
                label,
                shown if value is not None else "not measured",
                None if value is None else ok(value),
            )
        )

    r = ratio(get("get", CELLAR, "rps"), get("get", FLOOR, "rps"))
    check(f"GET ≥ {GET_VS_FLOOR}x the floor", r, lambda v: v >= GET_VS_FLOOR, fmt(r, 2, "x"))
    # On a loaded machine req/s follow the scheduler more than the work: the CPU time of
    # the server and its PostgreSQL backends per request is what a dedicated core divides.
    r = ratio(get("get", FLOOR, "total_cpu_us"), get("get", CELLAR, "total_cpu_us"))
    check(
        f"GET ≥ {GET_VS_FLOOR}x the floor by CPU per request (server + its backends)",
        r,
        lambda v: v >= GET_VS_FLOOR,
        fmt(r, 2, "x"),
    )
    r = ratio(get("get", CELLAR, "rps"), get("get", JUPYTER, "rps"))
    check(
        f"GET ≥ {GET_VS_JUPYTER:g}x Jupyter Server",
        r,
        lambda v: v >= GET_VS_JUPYTER,
        fmt(r, 2, "x"),
    )
    r = ratio(get("update", CELLAR, "rps"), get("update", JUPYTER, "rps"))
    check(
        f"cell update ≥ {UPDATE_VS_JUPYTER:g}x Jupyter's save",
        r,
        lambda v: v >= UPDATE_VS_JUPYTER,
        fmt(r, 2, "x"),
    )
    v = get("update", CELLAR, "p99_ms")
    check(
        f"cell update p99 < {UPDATE_P99_MS:g} ms at 16 connections",
        v,
        lambda x: x < UPDATE_P99_MS,
        fmt(v, 2, " ms"),
    )
    v = get("update_spread", CELLAR, "p99_ms")
    check(
        f"cell update over 16 notebooks of one user p99 < {UPDATE_P99_MS:g} ms at 16 connections",
        v,
        lambda x: x < UPDATE_P99_MS,
        fmt(v, 2, " ms"),
    )
    largest = max(
        (op for op in m if op.startswith("edit_")), key=lambda op: float(op[5:-2]), default=None
    )
    if largest is not None and largest != "edit_0mb":
        r = ratio(get(largest, CELLAR, "p50_ms"), get("edit_0mb", CELLAR, "p50_ms"))
        check(
            f"code update at {largest[5:-2]} MB of outputs ≤ {OUTPUTS_GROWTH}x "
            "the 0 MB figure (p50)",
            r,
            lambda x: x <= OUTPUTS_GROWTH,
            fmt(r, 2, "x"),
        )
    for op in ("search_text_1", "search_writes_1"):
        v = get(op, CELLAR, "p50_ms")
        check(
            f"{OPS[op]}: p50 < {SEARCH_P50_MS:g} ms",
            v,
            lambda x: x < SEARCH_P50_MS,
            fmt(v, 2, " ms"),
        )
    v = get("list_1", CELLAR, "p50_ms")
    check(
        f"{OPS['list_1']}: p50 < {LIST_P50_MS:g} ms", v, lambda x: x < LIST_P50_MS, fmt(v, 2, " ms")
    )
    for op, bound in (("ipynb_import", IPYNB_IMPORT_P50_MS), ("ipynb_export", IPYNB_EXPORT_P50_MS)):
        v = get(op, CELLAR, "p50_ms")
        check(f"{OPS[op]}: p50 < {bound:g} ms", v, lambda x, b=bound: x < b, fmt(v, 2, " ms"))
        r = ratio(get(op, JUPYTER, "p50_ms"), get(op, CELLAR, "p50_ms"))
        jupyter = "PUT" if op == "ipynb_import" else "GET"
        check(
            f"{OPS[op]}: ≥ {IPYNB_VS_JUPYTER:g}x Jupyter's contents {jupyter} (p50)",
            r,
            lambda x: x >= IPYNB_VS_JUPYTER,
            fmt(r, 2, "x"),
        )
    for op in ("get", "update"):
        if get(op, CELLAR_OFF, "rps") is None:
            continue  # measured with --observability only
        r = ratio(get(op, CELLAR, "rps"), get(op, CELLAR_OFF, "rps"))
        check(
            f"{op} with metrics and JSON access log ≥ {OBSERVED_VS_OFF}x both off",
            r,
            lambda x: x >= OBSERVED_VS_OFF,
            fmt(r, 3, "x"),
        )
    return checks


def report(result: dict[str, Any], argv: list[str], previous_notes: str) -> str:
    m = medians(result)
    systems = result["systems"]
    lines = [
        "# Benchmark results",
        "",
        f"Generated by `{shlex.join(['python', 'bench/run.py', *argv])}` on "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')} in {result['seconds']:.0f} s "
        f"(see [README.md](README.md) for what is measured and how).",
        "",
        "Medians over rounds of one run; the systems took turns within each round. "
        f"{result['profile']['connections']} connections unless marked, "
        f"{result['profile']['seconds']:g} s per measurement, "
        f"{result.get('rounds_main', 0)} rounds ({result.get('rounds_search', 0)} for search). "
        f"Load generator: {result['load']}.",
        "",
        "## Targets",
        "",
        "| target | measured | met? |",
        "|---|---|---|",
    ]
    for label, shown, ok in targets(m):
        verdict = "-" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {label} | {shown} | {verdict} |")
    lines += ["", "## Figures", ""]
    header = "| operation |"
    rule = "|---|"
    for s in systems:
        header += f" {LABELS[s]} req/s | p50 ms | p99 ms |"
        rule += "---:|---:|---:|"
    header += " Cellar/floor | Cellar/Jupyter |"
    rule += "---:|---:|"
    lines += [header, rule]
    for op, title in OPS.items():
        if op not in m:
            continue
        row = f"| {title} |"
        for s in systems:
            f = m[op].get(s)
            row += (
                " - | - | - |"
                if f is None
                else f" {fmt(f['rps'])} | {fmt(f['p50_ms'], 2)} | {fmt(f['p99_ms'], 2)} |"
            )
        cellar = m[op].get(CELLAR, {}).get("rps")
        row += f" {fmt(ratio(cellar, m[op].get(FLOOR, {}).get('rps')), 2, 'x')} |"
        row += f" {fmt(ratio(cellar, m[op].get(JUPYTER, {}).get('rps')), 2, 'x')} |"
        lines.append(row)
    observed = [op for op in OPS if CELLAR_OFF in m.get(op, {}) and CELLAR in m[op]]
    if observed:
        lines += [
            "",
            "What observability costs (`--observability`): Cellar with metrics and a JSON "
            "access line per request against the same build with both off. Server CPU is the "
            "Cellar process's user + system time per answered request (its PostgreSQL "
            "backends not included), steadier than req/s on a shared machine; off/on is the "
            "throughput that CPU alone predicts.",
            "",
            "| operation | req/s on | req/s off | on/off | CPU µs/request on | off | off/on |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for op in observed:
            on, off = m[op][CELLAR], m[op][CELLAR_OFF]
            lines.append(
                f"| {OPS[op]} | {fmt(on['rps'])} | {fmt(off['rps'])} | "
                f"{fmt(ratio(on['rps'], off['rps']), 3, 'x')} | {fmt(on['server_cpu_us'], 0)} | "
                f"{fmt(off['server_cpu_us'], 0)} | "
                f"{fmt(ratio(off['server_cpu_us'], on['server_cpu_us']), 3, 'x')} |"
            )
    cached = [op for op in OPS if CELLAR_NOCACHE in m.get(op, {}) and CELLAR in m[op]]
    if cached:
        lines += [
            "",
            "The read cache (`--read-cache`, docs/read-cache.md): Cellar as by default "
            "(`READ_CACHE_BYTES` 256 MiB) against the same build with `READ_CACHE_BYTES=0`. "
            "CPU µs/request: the server process's; with PostgreSQL: plus the backends serving "
            "its connections (what one dedicated core divides, steadier than req/s on a "
            "shared machine).",
            "",
            "| operation | req/s on | req/s off | on/off | p99 ms on | p99 ms off "
            "| CPU µs/request on | off | with PostgreSQL on | off | floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for op in cached:
            on, off = m[op][CELLAR], m[op][CELLAR_NOCACHE]
            floor = m[op].get(FLOOR, {})
            lines.append(
                f"| {OPS[op]} | {fmt(on['rps'])} | {fmt(off['rps'])} | "
                f"{fmt(ratio(on['rps'], off['rps']), 2, 'x')} | {fmt(on['p99_ms'], 2)} | "
                f"{fmt(off['p99_ms'], 2)} | {fmt(on['server_cpu_us'], 0)} | "
                f"{fmt(off['server_cpu_us'], 0)} | {fmt(on.get('total_cpu_us'), 0)} | "
                f"{fmt(off.get('total_cpu_us'), 0)} | {fmt(floor.get('total_cpu_us'), 0)} |"
            )
    edits = [op for op in OPS if op.startswith("edit_") and op in m]
    if edits:
        lines += [
            "",
            "Code-update latency against the size of the other cells' outputs (one connection, "
            "requests one after another; ratio = p50 / p50 at 0 MB):",
            "",
            "| outputs | "
            + " | ".join(f"{LABELS[s]} p50 ms | p99 ms | ratio" for s in systems)
            + " |",
            "|---|" + "---:|---:|---:|" * len(systems),
        ]
        for op in edits:
            row = f"| {op[5:-2]} MB |"
            for s in systems:
                f = m[op].get(s)
                base = m.get("edit_0mb", {}).get(s, {}).get("p50_ms")
                row += (
                    " - | - | - |"
                    if f is None
                    else f" {fmt(f['p50_ms'], 2)} | {fmt(f['p99_ms'], 2)} | "
                    f"{fmt(ratio(f['p50_ms'], base), 2, 'x')} |"
                )
            lines.append(row)
    db = result.get("database", {})
    lines += [
        "",
        "## Data",
        "",
        f"- Notebooks in the database: {db.get('notebooks', '?'):,} "
        f"({result['profile']['filler']:,} filler, then {result['profile']['search']:,} more "
        f"for search); the bench user has {db.get('bench_user_notebooks', '?')}, the search "
        f"user {db.get('search_user_notebooks', '?'):,} (of which "
        f"{db.get('search_hits', '?')} write `revenue_by_region`).",
        "- The big notebook as served: "
        + ", ".join(f"{LABELS[s]} {n:,} bytes" for s, n in result.get("get_bytes", {}).items())
        + "; as .ipynb on disk: "
        + ", ".join(f"{k} {v:,} bytes" for k, v in result.get("ipynb_bytes", {}).items())
        + ".",
        f"- Seeding: {result.get('seed_base_seconds', '?')} s (base), "
        f"{result.get('seed_search_seconds', '?')} s (search, with VACUUM (ANALYZE)).",
        "",
        "## Machine",
        "",
    ]
    for key, value in result["machine"].items():
        lines.append(f"- {key}: {value}")
    lines += [
        f"- PostgreSQL {db.get('server_version', '?')}; TOAST compression: "
        + ", ".join(f"{k} {v}" for k, v in db.get("compression", {}).items()),
        f"- Pinning: {result['pinning']}. PostgreSQL's own background processes "
        "(autovacuum, WAL writer, checkpointer) are not pinned.",
        "",
        "## Commands",
        "",
        "```",
        shlex.join(["python", "bench/run.py", *argv]),
    ]
    for system, command in result["commands"].items():
        lines.append(f"# {system}: {command}")
    lines += [
        "# load: taskset -c 1 wrk -t1 -c16 -d<s>s --timeout 10s --latency -s <generated lua> URL",
        "```",
        "",
    ]
    if result["failures"] or result["notes"]:
        lines += ["## Problems during the run", ""]
        lines += [f"- {x}" for x in result["failures"] + result["notes"]]
        lines.append("")
    lines += [
        "## Every round",
        "",
        "| operation | system | req/s | p50 ms | p90 ms | p99 ms | requests | errors | bytes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, rounds in result["figures"].items():
        op, system = key.split("/")
        for f in rounds:
            lines.append(
                f"| {op} | {system} | {f['rps']:.1f} | {f['p50_ms']:.2f} | {f['p90_ms']:.2f} | "
                f"{f['p99_ms']:.2f} | {f['requests']} | {f['errors']} | "
                f"{f.get('bytes_per_request', 0):,.0f} |"
            )
    lines += ["", NOTES_MARK]
    text = "\n".join(lines) + "\n"
    return text + previous_notes


def previous_notes(path: Path) -> str:
    if not path.exists():
        return ""
    _, found, notes = path.read_text().partition(NOTES_MARK + "\n")
    return notes if found else ""


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(
        description="Cellar vs the floor vs Jupyter Server (SPEC §9); writes bench/RESULTS.md."
    )
    cli.add_argument("--quick", action="store_true", help="smoke: tiny data, 1 round, 1 s each")
    cli.add_argument("--rounds", type=int, help="rounds (default 3; 1 with --quick)")
    cli.add_argument("--seconds", type=float, help="seconds per measurement (default 5)")
    cli.add_argument("--filler", type=int, help="filler notebooks (default 10,000)")
    cli.add_argument("--search-notebooks", type=int, help="more notebooks for search (90,000)")
    cli.add_argument("--pg-url", help=f"PostgreSQL server to use (default {DEFAULT_PG})")
    cli.add_argument("--embedded", action="store_true", help="use the embedded pgserver")
    cli.add_argument("--keep-db", action="store_true", help="keep the scratch database")
    cli.add_argument("--reuse", metavar="DATABASE", help="reuse a kept database (no seeding)")
    cli.add_argument("--no-jupyter", action="store_true", help="leave Jupyter Server out")
    cli.add_argument(
        "--install-wrk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="apt-get install wrk when missing and root (default on)",
    )
    cli.add_argument("--max-minutes", type=float, default=15.0, help="time bound of the run")
    cli.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        help=f"measure only these operations, comma-separated (of: {', '.join(OPS)})",
    )
    cli.add_argument(
        "--observability",
        action="store_true",
        help="also run the same Cellar with metrics and access log off, and Cellar itself "
        "with JSON access lines (the A/B of what observability costs)",
    )
    cli.add_argument(
        "--read-cache",
        action="store_true",
        help="also run the same Cellar with READ_CACHE_BYTES=0 for "
        + ", ".join(READ_CACHE_OPS)
        + " (the A/B of the read cache)",
    )
    cli.add_argument("--output", type=Path, help="markdown report (default bench/RESULTS.md)")
    cli.add_argument("--json", type=Path, help="also write every figure as JSON")
    return cli


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    if args.only and not args.only <= set(OPS):
        parser().error(f"--only: unknown operation(s) {', '.join(sorted(args.only - set(OPS)))}")
    base = QUICK if args.quick else FULL
    profile = Profile(
        rounds=args.rounds or base.rounds,
        seconds=args.seconds or base.seconds,
        warmup=base.warmup,
        filler=base.filler if args.filler is None else args.filler,
        search=base.search if args.search_notebooks is None else args.search_notebooks,
        sizes_mb=base.sizes_mb,
    )
    output = args.output or (HERE / ("RESULTS.md" if not args.quick else "RESULTS-quick.md"))
    # SIGTERM (e.g. a CI timeout) unwinds like Ctrl-C: servers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        result = execute(args, profile)
    except (
        BenchError,
        OSError,
        subprocess.SubprocessError,
        asyncpg.PostgresError,
        httpx.HTTPError,
    ) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    result["machine"] = machine()
    output.write_text(report(result, argv, previous_notes(output)))
    log(f"report written to {output}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(output.read_text().split("## Data")[0])
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
