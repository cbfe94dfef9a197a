"""What the stand-alone benchmarks share: a `cellar serve` of their own, and percentiles.

`bench/realtime.py` and `bench/replicas.py` each start real servers on a
scratch database and measure them from outside; this is how they start one.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import free_port  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT = 90.0  # seconds: migrations are already applied, but the machine may be loaded


def executable(name: str) -> str:
    """A console script of this venv (``cellar``, ``piccolo``), else the one on PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


@contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """One `cellar serve` (one worker, no access log) on a free port: its URL and process,
    once `/health` answers 200; stopped at the end."""
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below)
    process = subprocess.Popen(
        [
            executable("cellar"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"cellar serve did not start: {log.read().decode()[-3000:]}")
            time.sleep(0.2)
        yield url, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def percentile(values: list[float], share: float) -> float:
    """The value at ``share`` (0…1) of the sorted values, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))]
