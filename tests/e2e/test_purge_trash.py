"""``cellar purge-trash`` as an operator runs it (SPEC §13).

Help without a database, a run against the session's database that deletes
what has been in the trash long enough and says how many, and one-line
errors: 2 for a bad setting or argument.
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
    result = run_cli(["cellar", "purge-trash", "--help"], env_without_database(), cwd=workdir)
    assert result.returncode == 0, result.stderr
    for word in ("TRASH_RETENTION_DAYS", "--older-than-days"):
        assert word in result.stdout
    assert list(workdir.iterdir()) == []


def _run(url: str, statement: str, *args: object) -> object:
    async def work() -> object:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(work())


def _trashed(url: str, days_ago: int) -> str:
    """A notebook of a fresh user, in the trash since ``days_ago`` days."""
    user_id = _run(
        url, "INSERT INTO users (email) VALUES ($1) RETURNING id", f"{uuid.uuid4()}@purge.test"
    )
    notebook_id = str(uuid.uuid4())
    _run(
        url,
        "INSERT INTO notebooks (id, user_id, kind, cells, deleted_at)"
        " VALUES ($1, $2, 'user', '[]', now() - make_interval(days => $3))",
        notebook_id,
        user_id,
        days_ago,
    )
    return notebook_id


def _exists(url: str, notebook_id: str) -> bool:
    return bool(_run(url, "SELECT count(*) FROM notebooks WHERE id = $1", notebook_id))


def test_it_purges_what_is_old_enough_and_says_how_many(
    service_env: dict[str, str], database_url: str
) -> None:
    old, recent = _trashed(database_url, 40), _trashed(database_url, 10)
    result = run_cli(["cellar", "purge-trash"], {**service_env, "TRASH_RETENTION_DAYS": "30"})
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(
        r"cellar: (\d+) notebooks deleted for good \(in the trash for over 30 days\)\n",
        result.stdout,
    )
    assert match is not None, result.stdout
    assert int(match.group(1)) >= 1
    assert not _exists(database_url, old)
    assert _exists(database_url, recent)

    again = run_cli(["cellar", "purge-trash", "--older-than-days", "5"], service_env)
    assert again.returncode == 0, again.stderr
    assert not _exists(database_url, recent)


@pytest.mark.parametrize(
    ("args", "overrides", "named"),
    [
        ([], {"TRASH_RETENTION_DAYS": "-1"}, "TRASH_RETENTION_DAYS"),
        (["--older-than-days", "soon"], {}, "--older-than-days"),
    ],
)
def test_a_bad_setting_or_argument_is_one_line_and_exit_2(
    service_env: dict[str, str], args: list[str], overrides: dict[str, str], named: str
) -> None:
    result = run_cli(["cellar", "purge-trash", *args], {**service_env, **overrides})
    assert result.returncode == 2
    assert named in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
