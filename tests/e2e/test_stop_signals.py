"""However ``cellar serve`` is stopped, its embedded PostgreSQL stops with it (issue 16, item 1).

Real processes throughout: ``cellar serve`` without ``DATABASE_URL`` on a
data directory of its own, the signal sent as an operator's tools send it
(``kill``, ``docker stop``, systemd, a closed terminal, Ctrl-C to the whole
foreground process group), then a scan of the machine's processes for a
``postgres`` still running on that directory and a look at pgserver's handle
file.  A crash (SIGKILL, of ``cellar serve`` alone or of PostgreSQL too)
must be repaired by the next start, which says so in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.e2e.conftest import (
    CellarServer,
    cellar_executable,
    cellar_server,
    embedded_postgres,
    env_without_database,
    wait_until_gone,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT = 90.0  # initdb and every migration on a fresh data directory
EXIT_TIMEOUT = 30.0
RECOVERED = "recovered from an unclean stop"


def handles(data_dir: Path) -> list[int]:
    """The pids pgserver counts as users of the embedded server."""
    path = data_dir / "pgdata" / ".handle_pids.json"
    pids: list[int] = json.loads(path.read_text()) if path.exists() else []
    return pids


def stop_with(server: CellarServer, sig: signal.Signals, *, whole_group: bool = False) -> int:
    """Send ``sig`` (to the process, or to its process group as a terminal does); wait."""
    if whole_group:
        os.killpg(server.pid, sig)  # start_new_session: the group is the server's own
    else:
        server.process.send_signal(sig)
    try:
        return server.process.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(server.describe(f"cellar serve still running {EXIT_TIMEOUT:.0f} s after {sig}"))


def assert_stopped_cleanly(server: CellarServer, data_dir: Path, code: int) -> None:
    assert code == 0, server.describe(f"exit code {code}")
    left = wait_until_gone(data_dir, timeout=15.0)
    assert left == [], server.describe(f"embedded postgres still running: {left}")
    assert handles(data_dir) == [], "our handle was not given back"
    assert "embedded PostgreSQL stopped" in server.output(), server.tail()


@pytest.mark.parametrize(
    ("sig", "workers", "whole_group"),
    [
        (signal.SIGINT, 1, False),
        (signal.SIGTERM, 1, False),
        (signal.SIGHUP, 1, False),
        (signal.SIGINT, 2, True),
        (signal.SIGTERM, 2, False),
        (signal.SIGHUP, 2, False),
    ],
    ids=["INT", "TERM", "HUP", "INT-group-2-workers", "TERM-2-workers", "HUP-2-workers"],
)
def test_each_stop_signal_stops_the_embedded_postgres(
    sig: signal.Signals, workers: int, whole_group: bool, shared_data_dir: Path, workdir: Path
) -> None:
    env = env_without_database(CELLAR_DATA_DIR=str(shared_data_dir))
    with cellar_server(env, workers, cwd=workdir, startup_timeout=STARTUP_TIMEOUT) as server:
        assert embedded_postgres(shared_data_dir), server.describe("no embedded postgres")
        assert handles(shared_data_dir) == [server.pid]
        code = stop_with(server, sig, whole_group=whole_group)
    assert RECOVERED not in server.output(), server.tail()
    assert_stopped_cleanly(server, shared_data_dir, code)


@pytest.mark.parametrize("postgres_too", [False, True], ids=["serve-killed", "both-killed"])
def test_a_start_after_a_crash_recovers_and_says_so(
    postgres_too: bool, shared_data_dir: Path, workdir: Path
) -> None:
    env = env_without_database(CELLAR_DATA_DIR=str(shared_data_dir))
    with cellar_server(env, cwd=workdir, startup_timeout=STARTUP_TIMEOUT) as crashed:
        crashed.process.kill()
        crashed.process.wait(timeout=EXIT_TIMEOUT)
    assert handles(shared_data_dir) == [crashed.pid], "the dead pid stays in pgserver's file"
    survivors = embedded_postgres(shared_data_dir)
    assert survivors, "PostgreSQL outlives a SIGKILL of cellar serve"
    if postgres_too:
        postmaster = int((shared_data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        assert wait_until_gone(shared_data_dir, timeout=15.0) == []
        assert (shared_data_dir / "pgdata" / "postmaster.pid").exists(), "a stale pid file"

    with cellar_server(env, cwd=workdir, startup_timeout=STARTUP_TIMEOUT) as second:
        lines = [line for line in second.output().splitlines() if RECOVERED in line]
        assert len(lines) == 1, second.tail()
        assert str(crashed.pid) in lines[0], lines[0]
        assert ("PostgreSQL process" in lines[0]) == postgres_too, lines[0]
        assert handles(shared_data_dir) == [second.pid]
        code = stop_with(second, signal.SIGTERM)
    assert_stopped_cleanly(second, shared_data_dir, code)


def test_a_stop_during_start_up_still_stops_postgres(data_dir: Path, workdir: Path) -> None:
    """SIGTERM as soon as PostgreSQL has started (migrations running): it is stopped again."""
    env = env_without_database(CELLAR_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    log = workdir / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [cellar_executable(), "serve", "--port", "0"],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while "embedded PostgreSQL in" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=EXIT_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output_text = log.read_text()
    # Mid-migration it is 128 + 15 with one line; had uvicorn already taken over, 0.
    assert code in (0, 128 + signal.SIGTERM), output_text
    if code:
        assert "cellar: stopped by SIGTERM before serving" in output_text, output_text
    assert "Traceback" not in output_text, output_text
    assert wait_until_gone(data_dir, timeout=15.0) == [], output_text
    assert handles(data_dir) == []
