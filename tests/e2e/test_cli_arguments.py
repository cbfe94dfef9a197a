"""Bad command lines fail early, in one line, before anything starts (issue 16, item 3).

"Before anything starts" is checked, not assumed: the commands run without
``DATABASE_URL`` in an empty working directory, so starting the embedded
PostgreSQL would create ``CELLAR_DATA_DIR``; it must not exist afterwards.
"""

from __future__ import annotations

import socket
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.e2e.conftest import env_without_database, free_port, run_cli
from tests.e2e.test_cli import one_line_error

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["serve", "--port", "80000"], "argument --port: expected a TCP port 0-65535, got '80000'"),
        (["serve", "--port", "-1"], "argument --port: expected a TCP port 0-65535, got '-1'"),
        (["serve", "--port", "http"], "argument --port: expected a TCP port 0-65535, got 'http'"),
        (["serve", "--workers", "0"], "argument --workers: expected a whole number of at least 1"),
        (["serve", "--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
        (["serve", "--hots", "x"], "unrecognized arguments: --hots x"),
        (["import-legacy", "/nonexistent"], "argument DIR: no such directory: '/nonexistent'"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_a_bad_argument_is_one_argparse_line_before_anything_starts(
    args: list[str], expected: str, workdir: Path
) -> None:
    data_dir = workdir / "data"
    result = run_cli(
        ["cellar", *args], env_without_database(CELLAR_DATA_DIR=str(data_dir)), cwd=workdir
    )
    line = one_line_error(result)
    assert result.returncode == 2
    command = "cellar" if args[0] == "frobnicate" else f"cellar {args[0]}"
    assert line.startswith(f"{command}: error: {expected}"), line
    assert line.endswith(f"(see {command} --help)"), line
    assert result.stdout == ""
    assert not data_dir.exists(), "the embedded PostgreSQL was started"


def test_a_busy_port_is_one_line_naming_it_before_postgres_or_serving(workdir: Path) -> None:
    data_dir = workdir / "data"
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_cli(
            ["cellar", "serve", "--port", str(port)],
            env_without_database(CELLAR_DATA_DIR=str(data_dir)),
            cwd=workdir,
        )
    line = one_line_error(result)
    assert line == (
        f"cellar: error: cannot listen on 127.0.0.1:{port}: "
        "the port is already in use (another cellar serve?)"
    )
    assert "serving on" not in result.stdout
    assert not data_dir.exists(), "the embedded PostgreSQL was started"


def test_an_unknown_host_is_one_line(workdir: Path) -> None:
    result = run_cli(
        ["cellar", "serve", "--host", "no-such-host.invalid", "--port", "8000"],
        env_without_database(CELLAR_DATA_DIR=str(workdir / "data")),
        cwd=workdir,
    )
    line = one_line_error(result)
    assert line.startswith("cellar: error: cannot listen on no-such-host.invalid:8000: "), line
    assert not (workdir / "data").exists()


def test_version_is_the_one_in_pyproject(workdir: Path) -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version("cellar") == declared, "reinstall: pip install -e ."
    result = run_cli(["cellar", "--version"], env_without_database(), cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"cellar {declared}\n"
    assert list(workdir.iterdir()) == []
