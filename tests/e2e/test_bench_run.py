"""``bench/run.py --quick`` runs end to end (SPEC §9): a smoke test, never a timing.

The benchmark is run as a user runs it, as a subprocess, on the session's
PostgreSQL server: it creates, seeds and drops its own scratch database,
starts Cellar, the floor and (when the ``bench`` extra is installed) Jupyter
Server, loads them with wrk (or, without wrk, its Python fallback) and writes
its report.  The test checks that every measurement produced figures, that
the report shows them with their ratios, and that nothing is left behind
(servers, database).  It never asserts that anything is fast.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest

from tests.conftest import with_database

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def jupyter_installed() -> bool:
    try:
        metadata.version("jupyter_server")
        metadata.version("nbformat")
    except metadata.PackageNotFoundError:
        return False
    return True


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """The benchmark bounds itself (--max-minutes); the timeout is a last resort."""
    return subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


async def database_exists(server_url: str, name: str) -> bool:
    connection = await asyncpg.connect(server_url, timeout=10)
    try:
        found = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    finally:
        await connection.close()
    return found is not None


async def test_quick_benchmark_measures_every_system_and_cleans_up(
    database_url: str, tmp_path: Path
) -> None:
    server_url = with_database(database_url, "postgres")
    report, figures = tmp_path / "RESULTS.md", tmp_path / "figures.json"
    command = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--max-minutes",
        "4",
        "--pg-url",
        server_url,
        "--output",
        str(report),
        "--json",
        str(figures),
    ]
    done = run(command)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-5000:]}"

    result: dict[str, Any] = json.loads(figures.read_text())
    assert result["failures"] == []
    systems = ["cellar", "floor"] + (["jupyter"] if jupyter_installed() else [])
    assert result["systems"] == systems
    expected = {
        "cellar": ["get", "get_304", "update", "list", "list_1", "edit_0mb", "edit_1mb"],
        "floor": ["get", "update", "list", "list_1", "edit_0mb", "edit_1mb"],
        "jupyter": ["get", "update", "list", "list_1", "edit_0mb", "edit_1mb"],
    }
    for system in ("cellar", "floor"):
        expected[system] += ["search_text", "search_text_1", "search_writes", "search_writes_1"]
        expected[system] += ["update_spread", "mixed"]  # over 16 notebooks (issue 19)
    for system in ("cellar", "jupyter"):  # the 4 MB .ipynb in and out (SPEC §12)
        expected[system] += ["ipynb_import", "ipynb_export"]
    for system in systems:
        for op in expected[system]:
            rounds = result["figures"].get(f"{op}/{system}")
            assert rounds, f"no figures for {op} on {system}"
            for figure in rounds:
                assert figure["requests"] > 0, (op, system, figure)
                assert figure["errors"] == 0, (op, system, figure)
                assert figure["rps"] > 0, (op, system, figure)
                assert 0 < figure["p50_ms"] <= figure["p99_ms"], (op, system, figure)
    # A conditional GET with the current ETag is answered 304, without the notebook.
    assert all(f["bytes_per_request"] < 1000 for f in result["figures"]["get_304/cellar"])
    assert all(f["bytes_per_request"] > 150_000 for f in result["figures"]["get/cellar"])
    # The notebook each system serves is the seeded one, about 220 KB.
    for system in systems:
        assert 150_000 < result["get_bytes"][system] < 300_000, result["get_bytes"]
    assert result["database"]["bench_user_notebooks"] == 200

    text = report.read_text()
    for heading in ("## Targets", "## Figures", "## Machine", "## Commands"):
        assert heading in text
    get_row = next(line for line in text.splitlines() if line.startswith("| GET notebook (220 KB)"))
    assert re.search(r"\| \d+\.\d\dx \|", get_row), get_row  # the Cellar/floor ratio
    if jupyter_installed():
        assert get_row.rstrip().endswith("x |"), get_row  # and Cellar/Jupyter
    else:
        assert "jupyter" not in result["commands"]

    # Nothing left behind: the servers it started are gone, its database dropped.
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", done.stderr)]
    assert len(pids) == len(systems), done.stderr
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    dropped = re.search(r"dropped scratch database (\w+)", done.stderr)
    assert dropped, done.stderr
    assert not await database_exists(server_url, dropped.group(1))


def test_bench_help_runs_without_a_database() -> None:
    done = run([sys.executable, str(BENCH), "--help"])
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout
