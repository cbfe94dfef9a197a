"""The read routes' API tests against a primary and a hot standby (issue 18).

The files below run again in a second pytest process with ``--with-replica``
(tests/conftest.py): its harness makes a primary and a standby with Debian's
``initdb`` and ``pg_basebackup -R``, builds the schema on the primary, points
the app's ``DATABASE_REPLICA_URLS`` at the standby and sends every consistency
token back as a frontend does; it fails when the standby served no read.  A
second process because the engine reads DATABASE_URL once per process.
``tests/api/test_replica_routing.py`` (skipped in a plain session) pauses the
standby's replay and stops it there.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli
from tests.replicas import why_unavailable

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The read routes (list, GET, graph, search, conditional GETs) and the replica's own tests.
WITH_REPLICA = (
    "tests/api/test_replica_routing.py",
    "tests/api/test_notebooks.py",
    "tests/api/test_search.py",
    "tests/api/test_preconditions.py",
    "tests/api/test_notebook_pages.py",
    "tests/api/test_events.py",
)
MIN_PASSED = 200
TIMEOUT = 900.0


def test_the_read_routes_pass_against_a_primary_and_a_standby(
    request: pytest.FixtureRequest,
) -> None:
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    if request.config.getoption("--with-replica"):
        pytest.skip("this session already runs with a replica")
    env = {**os.environ}
    for name in ("DATABASE_URL", "DATABASE_REPLICA_URLS", "TEST_DATABASE_URL"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--with-replica",
        *WITH_REPLICA,
    ]
    result = run_cli(command, env, cwd=ROOT, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= MIN_PASSED, summary
    assert not re.search(r"\d+ (failed|error|skipped)", summary), summary
    print(f"\nwith a standby: {summary}")
