"""Real ``cellar`` processes for end-to-end tests.

``running_server(env, workers)`` starts ``cellar serve`` on a free port of
127.0.0.1 with exactly the environment it is given, waits (bounded) until
``GET /health`` answers 200, yields the base URL and stops the process at the
end: SIGINT first (uvicorn's graceful shutdown), then SIGTERM, then SIGKILL,
every wait bounded.  The server's stdout and stderr go to a temporary file,
whose tail is part of every failure message.  ``cellar_server`` is the same
with the process handle, for tests that need its pid or its exit code.

``service_env`` is ``os.environ`` after the session's ``database_url`` fixture
ran: DATABASE_URL, the secrets and the external-IdP settings of the session.

``throwaway_postgres`` is a private embedded PostgreSQL for tests that stop
and start the database under a running service (``stop_postgres``, then its
``ensure_postgres_running()``); the session's server is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import psutil
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import pgserver

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_TAIL_CHARS = 4000


def cellar_executable() -> str:
    """The ``cellar`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).with_name("cellar")
    if beside.exists():
        return str(beside)
    found = shutil.which("cellar")
    if found is None:
        pytest.fail("the `cellar` console script is not installed (pip install -e .)")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: str | Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``cellar ARGS`` (or another console script of the venv) to completion, bounded."""
    executable = args[0]
    if not os.path.isabs(executable):
        candidate = Path(sys.executable).with_name(executable)
        executable = str(candidate) if candidate.exists() else executable
    return subprocess.run(
        [executable, *args[1:]],
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class CellarServer:
    """A ``cellar serve`` process and where its output goes."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    returncode: int | None = field(default=None)
    captured: str | None = field(default=None, repr=False)
    stopped_by: signal.Signals | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the server printed so far (kept after the log file is gone)."""
        if self.captured is not None:
            return self.captured
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        return self.output()[-chars:]

    def describe(self, problem: str) -> str:
        return f"{problem}\n--- cellar serve output (tail) ---\n{self.tail()}"

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGINT, then SIGTERM, then SIGKILL, each wait bounded; return the exit code.

        ``stopped_by`` records the signal the process finally exited on (None when
        it had exited before).
        """
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0)):
                self.process.send_signal(sig)
                try:
                    self.process.wait(timeout=wait)
                except subprocess.TimeoutExpired:
                    continue
                self.stopped_by = sig
                break
            else:
                self.process.kill()
                self.process.wait(timeout=10.0)
                self.stopped_by = signal.SIGKILL
        self.returncode = self.process.returncode
        return self.returncode


def wait_until_healthy(server: CellarServer, timeout: float) -> None:
    """Poll ``GET /health`` until 200; fail with the server's output if it dies or times out."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        while True:
            code = server.process.poll()
            if code is not None:
                pytest.fail(server.describe(f"cellar serve exited with code {code} on start-up"))
            try:
                response = http.get("/health")
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            if time.monotonic() > deadline:
                server.stop()
                pytest.fail(
                    server.describe(
                        f"cellar serve not healthy within {timeout:.0f} s (last: {last})"
                    )
                )
            time.sleep(0.2)


@contextmanager
def cellar_server(
    env: Mapping[str, str],
    workers: int = 1,
    *,
    port: int | None = None,
    cwd: str | Path | None = None,
    startup_timeout: float = STARTUP_TIMEOUT,
    options: Sequence[str] = ("--no-access-log",),
) -> Iterator[CellarServer]:
    """Start ``cellar serve OPTIONS``, wait until healthy, yield it, stop it (even on failure)."""
    port = port or free_port()
    fd, log_name = tempfile.mkstemp(prefix="cellar-serve-", suffix=".log")
    log_path = Path(log_name)
    command = [
        cellar_executable(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        *options,
    ]
    with os.fdopen(fd, "wb") as log:
        process = subprocess.Popen(
            command,
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C on pytest does not reach it, the finally below does.
            start_new_session=True,
        )
    server = CellarServer(process=process, url=f"http://127.0.0.1:{port}", log_path=log_path)
    try:
        wait_until_healthy(server, startup_timeout)
        yield server
    finally:
        server.stop()
        server.captured = server.output()
        log_path.unlink(missing_ok=True)


@contextmanager
def running_server(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """``cellar serve`` with ``env`` on a free port; yields its base URL."""
    with cellar_server(env, workers) as server:
        yield server.url


@pytest.fixture
def service_env(database_url: str) -> dict[str, str]:
    """The session's environment (its database and secrets), copied for one test to change."""
    env = dict(os.environ)
    assert env["DATABASE_URL"] == database_url
    return env


# --------------------------------------------------------------------------- embedded PostgreSQL


def env_without_database(**extra: str) -> dict[str, str]:
    """The environment less the session's database and secrets: ``cellar`` goes embedded."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "APP_SECRET_KEY", "ENCRYPTION_KEY", "CELLAR_DATA_DIR"}
    }
    return {**env, **extra}


def embedded_postgres(data_dir: Path) -> list[psutil.Process]:
    """Running ``postgres`` processes whose command line names ``data_dir``."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and any(str(data_dir) in arg for arg in cmdline):
            found.append(process)
    return found


def wait_until_gone(data_dir: Path, timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        left = embedded_postgres(data_dir)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@contextmanager
def _embedded_data_dir(prefix: str) -> Iterator[Path]:
    """A CELLAR_DATA_DIR; afterwards any postgres left on it is ended, then it is deleted."""
    path = Path(tempfile.mkdtemp(prefix=prefix)).resolve()
    try:
        yield path
    finally:
        for process in embedded_postgres(path):  # only after a failure: a clean exit stops it
            try:
                process.terminate()
                process.wait(10)
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                process.kill()
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A fresh CELLAR_DATA_DIR for one test."""
    with _embedded_data_dir("cellar-cli-data-") as path:
        yield path


@pytest.fixture(scope="module")
def shared_data_dir() -> Iterator[Path]:
    """One CELLAR_DATA_DIR for a module's tests that start and stop ``cellar serve`` in turn."""
    with _embedded_data_dir("cellar-shared-data-") as path:
        yield path


@pytest.fixture
def workdir() -> Iterator[Path]:
    """An empty working directory: a command that starts nothing leaves it empty."""
    path = Path(tempfile.mkdtemp(prefix="cellar-cli-cwd-")).resolve()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- headless Chromium

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI containers
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_binary() -> str | None:
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
def chromium() -> str:
    """Debian's chromium, for Playwright's ``executable_path`` (no browser download)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip(
            "no chromium binary (neither `chromium` on PATH nor /usr/bin/chromium): "
            "install Debian's `chromium` package (.ci/run does) to run the browser tests"
        )
    return binary


# --------------------------------------------------------------------------- throwaway PostgreSQL


@pytest.fixture
def throwaway_postgres() -> Iterator[pgserver.PostgresServer]:
    """A private embedded PostgreSQL, stopped and deleted afterwards whatever happened."""
    import pgserver

    data_dir = tempfile.mkdtemp(prefix="cellar-throwaway-pg-")
    try:
        server = pgserver.get_server(data_dir, cleanup_mode="delete")
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    try:
        yield server
    finally:
        server.cleanup()  # stops it if it is running, then deletes the data directory
        shutil.rmtree(data_dir, ignore_errors=True)


def stop_postgres(server: pgserver.PostgresServer) -> None:
    import pgserver

    # pg_ctl is generated at import time (one function per bundled binary).
    pg_ctl = pgserver.pg_ctl  # type: ignore[attr-defined]
    pg_ctl(["-w", "stop"], pgdata=server.pgdata, user=server.system_user, timeout=30)


def assert_not_restarted(service: CellarServer, pid: int) -> None:
    """The same process, whose app started once."""
    assert service.process.poll() is None, service.describe("cellar serve exited")
    assert service.pid == pid
    assert service.output().count("Application startup complete") == 1, service.tail()
