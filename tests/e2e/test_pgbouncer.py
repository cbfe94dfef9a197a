"""The API suite's mutation, search and realtime parts again, behind PgBouncer (SPEC §10).

"Works behind PgBouncer in transaction pooling mode (no server-side prepared
statement reuse when DATABASE_POOLER=pgbouncer)".  The same test files run
in a second pytest process with ``--behind-pgbouncer`` (tests/conftest.py):
its harness starts Debian's PgBouncer in front of this session's server,
and migrations, the app and the tests' own queries all go through it.  A
second process because the engine reads DATABASE_URL once per process.  The
harness checks at its end that the clients did log in through PgBouncer;
without DATABASE_POOLER=pgbouncer the same run fails with "prepared statement
... does not exist" (tried).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import with_database
from tests.e2e.conftest import run_cli
from tests.pgbouncer import why_unavailable

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The mutation and search parts of the API suite.
BEHIND_PGBOUNCER = (
    "tests/api/test_notebooks.py",
    "tests/api/test_notebook_pages.py",
    "tests/api/test_cells.py",
    "tests/api/test_search.py",
    "tests/api/test_cell_search_rows.py",
    "tests/api/test_integer_fields.py",
    # Realtime with its LISTEN connection straight to PostgreSQL (DATABASE_LISTEN_URL).
    "tests/api/test_realtime.py",
)
MIN_PASSED = 200
TIMEOUT = 600.0


def test_the_api_suite_passes_behind_pgbouncer(
    request: pytest.FixtureRequest, database_url: str
) -> None:
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(reason)
    if request.config.getoption("--behind-pgbouncer"):
        pytest.skip("this session already runs behind PgBouncer")
    env = {
        **os.environ,
        "TEST_DATABASE_URL": with_database(database_url, "postgres"),
        "DATABASE_POOLER": "none",  # the nested harness sets pgbouncer itself
    }
    env.pop("DATABASE_URL", None)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--behind-pgbouncer",
        *BEHIND_PGBOUNCER,
    ]
    result = run_cli(command, env, cwd=ROOT, timeout=TIMEOUT)
    output = result.stdout + result.stderr
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    assert result.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert int(passed.group(1)) >= MIN_PASSED, summary
    assert not re.search(r"\d+ (failed|error)", summary), summary
    print(f"\nbehind PgBouncer: {summary}")
