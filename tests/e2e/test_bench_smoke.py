"""``bench/cell_update_vs_outputs.py`` runs end to end (SPEC §9) — a smoke test, not a timing.

The benchmark is run small (10 updates, 0 and 1 MB) as a user would run it,
as a subprocess: once starting its own ``cellar serve`` on the session
database, once against a server that is already running, with a token.  The
test checks that it finishes, writes sensible figures, removes its notebooks
and stops the server it started.  It never asserts that anything is fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import psutil
import pytest

from tests.e2e.conftest import running_server

if TYPE_CHECKING:
    from collections.abc import Sequence

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cell_update_vs_outputs.py"
MB = 1024 * 1024
SMALL = ("--updates", "10", "--warmup", "2", "--rounds", "2", "--sizes-mb", "0,1")


def run_bench(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def check_figures(path: Path, done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    result: dict[str, Any] = json.loads(path.read_text())
    rows = result["sizes"]
    assert [row["size_mb"] for row in rows] == [0, 1]
    for row in rows:
        assert row["n"] == 10, row
        assert row["median_ms"] > 0, row
        assert row["p99_ms"] > 0, row
        assert row["p99_ms"] >= row["median_ms"], row
        assert row["ratio"] > 0, row
    assert rows[0]["ratio"] == 1.0
    # The outputs were really stored: the 1 MB notebook is served with them.
    assert [row["output_bytes"] for row in rows] == [0, MB]
    assert rows[1]["notebook_bytes"] > MB > rows[0]["notebook_bytes"]
    # The printed table has one line per size.
    assert re.search(r"^\s*0 MB\s+10\s", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^\s*1 MB\s+10\s", done.stdout, re.MULTILINE), done.stdout
    return result


async def bench_notebooks_left() -> int:
    connection = await asyncpg.connect(os.environ["DATABASE_URL"], timeout=10)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM notebooks WHERE name LIKE 'bench % MB'"
        )
    finally:
        await connection.close()
    return count


async def test_bench_starts_its_own_server_on_the_database(
    database_url: str, tmp_path: Path
) -> None:
    figures = tmp_path / "figures.json"
    env = dict(os.environ)
    assert env["DATABASE_URL"] == database_url

    done = run_bench([*SMALL, "--json", str(figures)], env)

    result = check_figures(figures, done)
    assert result["base_url"].startswith("http://127.0.0.1:")
    assert await bench_notebooks_left() == 0
    # The server it started is gone.
    started = re.search(r"cellar serve \(pid (\d+)\)", done.stderr)
    assert started, done.stderr
    assert not psutil.pid_exists(int(started.group(1)))


async def test_bench_measures_a_running_server_with_a_token(
    database_url: str, tmp_path: Path
) -> None:
    figures = tmp_path / "figures.json"
    credentials = {
        "email": f"bench-{uuid.uuid4().hex[:12]}@example.com",
        "password": "correct horse battery",
    }
    with running_server(dict(os.environ)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            registered = await http.post("/auth/register", json=credentials)
            assert registered.status_code == 201, registered.text
            issued = await http.post("/auth/token", json=credentials)
            assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]

        args = [*SMALL, "--base-url", url, "--token", token, "--json", str(figures)]
        done = run_bench(args, dict(os.environ))

        result = check_figures(figures, done)
        assert result["base_url"] == url
        assert "cellar serve (pid" not in done.stderr  # it used the given server
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            # The bench user's notebooks are the ones the token gives; bench ones are gone.
            listed = await http.get("/notebooks", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200, listed.text
        assert [n for n in listed.json()["notebooks"] if n["kind"] == "user"] == []


def test_bench_rejects_a_token_without_a_base_url() -> None:
    done = run_bench(["--token", "t"], {**os.environ, "DATABASE_URL": ""})
    assert done.returncode == 2
    assert "--token needs --base-url" in done.stderr
