"""``cellar prune-history`` as an operator runs it (SPEC §10, §11).

Help without a database, a run against the session's database that prunes
what is expired and says how much, and one-line errors with SPEC §10's exit
codes: 2 for a bad setting or argument, 1 for a database it cannot reach.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from typing import TYPE_CHECKING

import asyncpg
import pytest

from tests.e2e.conftest import env_without_database, run_cli

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.e2e


def test_help_needs_no_database(workdir: Path) -> None:
    result = run_cli(["cellar", "prune-history", "--help"], env_without_database(), cwd=workdir)
    assert result.returncode == 0, result.stderr
    for word in ("HISTORY_RETENTION_DAYS", "HISTORY_KEEP_LAST", "--retention-days", "--keep-last"):
        assert word in result.stdout
    assert list(workdir.iterdir()) == []


def _seed(url: str) -> str:
    """A notebook of a fresh user with 5 events, all 100 days old."""

    async def seed() -> str:
        conn = await asyncpg.connect(url)
        try:
            user_id = await conn.fetchval(
                "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@prune.test"
            )
            notebook_id = str(uuid.uuid4())
            await conn.execute(
                "INSERT INTO notebooks (id, user_id, kind, cells, seq) VALUES ($1, $2, 'user', "
                "'[]', 5)",
                notebook_id,
                user_id,
            )
            await conn.execute(
                "INSERT INTO notebook_events (notebook_id, seq, user_id, revision, at, actor, op,"
                " data) SELECT $1, s, $2, s, now() - interval '100 days', 'system', 'rename',"
                " '{}' FROM generate_series(1, 5) AS s",
                notebook_id,
                user_id,
            )
            return notebook_id
        finally:
            await conn.close()

    return asyncio.run(seed())


def _seqs(url: str, notebook_id: str) -> list[int]:
    async def read() -> list[int]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(
                "SELECT seq FROM notebook_events WHERE notebook_id = $1 ORDER BY seq", notebook_id
            )
            return [row["seq"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(read())


def test_it_prunes_and_says_how_much(service_env: dict[str, str], database_url: str) -> None:
    notebook_id = _seed(database_url)
    result = run_cli(
        ["cellar", "prune-history", "--keep-last", "2"],
        {**service_env, "HISTORY_RETENTION_DAYS": "30"},
    )
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        r"cellar: pruned (\d+) events older than 30 days \(the last 2 of each notebook kept\)\n",
        result.stdout,
    )
    assert match is not None, result.stdout
    assert int(match.group(1)) >= 3
    assert _seqs(database_url, notebook_id) == [4, 5]

    again = run_cli(["cellar", "prune-history", "--retention-days", "1000"], service_env)
    assert again.returncode == 0, again.stderr
    assert _seqs(database_url, notebook_id) == [4, 5]


@pytest.mark.parametrize(
    ("args", "overrides", "named"),
    [
        ([], {"HISTORY_KEEP_LAST": "0"}, "HISTORY_KEEP_LAST"),
        ([], {"HISTORY_RETENTION_DAYS": "-1"}, "HISTORY_RETENTION_DAYS"),
        (["--keep-last", "none"], {}, "--keep-last"),
        (["--retention-days", "-3"], {}, "--retention-days"),
    ],
)
def test_a_bad_setting_or_argument_is_one_line_and_exit_2(
    service_env: dict[str, str], args: list[str], overrides: dict[str, str], named: str
) -> None:
    result = run_cli(["cellar", "prune-history", *args], {**service_env, **overrides})
    assert result.returncode == 2
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreachable_database_is_one_line_and_exit_1(service_env: dict[str, str]) -> None:
    env = {
        **service_env,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "DATABASE_CONNECT_TIMEOUT": "1",
    }
    result = run_cli(["cellar", "prune-history"], env)
    assert result.returncode == 1
    # (Piccolo warns on its own when its engine first fails to connect.)
    assert result.stderr.strip().splitlines()[-1].startswith("cellar: error: cannot connect")
    assert "Traceback" not in result.stderr
