"""The ``cellar`` command line as an operator meets it (SPEC §10).

Every command has ``--help``; user errors end with one line on stderr, a
non-zero exit code and no traceback; ``create-admin`` writes a Piccolo admin;
without ``DATABASE_URL`` ``cellar serve`` runs an embedded PostgreSQL whose
data and generated secrets survive a restart.
"""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from app.settings import is_fernet_key
from tests.e2e.conftest import (
    cellar_server,
    embedded_postgres,
    env_without_database,
    free_port,
    run_cli,
    wait_until_gone,
)

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

pytestmark = pytest.mark.e2e

EMBEDDED_STARTUP_TIMEOUT = 60.0  # initdb and every migration on the first start
EMBEDDED_STOP_TIMEOUT = 20.0
PASSWORD = "correct horse battery"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's reason: a non-zero exit, exactly one line on stderr, no traceback."""
    assert result.returncode != 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["serve", "create-admin"]),
        (["serve", "--help"], ["--host", "--port", "--workers"]),
        (["create-admin", "--help"], ["--username", "--email", "--password"]),
    ],
)
def test_help(args: list[str], expected: list[str], workdir: Path) -> None:
    # No database at all: help must not start one (nor create ./.cellar).
    result = run_cli(["cellar", *args], env_without_database(), cwd=workdir, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cellar"), result.stdout
    for word in expected:
        assert word in result.stdout
    assert list(workdir.iterdir()) == []


def test_no_command_is_a_usage_error(workdir: Path) -> None:
    result = run_cli(["cellar"], env_without_database(), cwd=workdir, timeout=30)
    assert result.returncode == 2
    assert "usage: cellar" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"DATABASE_POOL_MAX_SIZE": "abc"}, "DATABASE_POOL_MAX_SIZE"),
        ({"DATABASE_POOLER": "pgpool"}, "DATABASE_POOLER"),
        ({"ENCRYPTION_KEY": "not-fernet"}, "ENCRYPTION_KEY"),
        ({"APP_SECRET_KEY": ""}, "APP_SECRET_KEY"),
    ],
)
def test_serve_with_a_bad_setting_names_it_in_one_line(
    service_env: dict[str, str], overrides: dict[str, str], variable: str
) -> None:
    result = run_cli(["cellar", "serve", "--port", "1"], {**service_env, **overrides}, timeout=30)
    line = one_line_error(result)
    assert variable in line, line
    assert "serving on" not in result.stdout


def test_serve_with_an_unreachable_database_says_so_in_one_line(
    service_env: dict[str, str],
) -> None:
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    result = run_cli(
        ["cellar", "serve", "--port", "1"], {**service_env, "DATABASE_URL": closed}, timeout=30
    )
    line = one_line_error(result)
    assert "cannot reach the database" in line, line
    assert "serving on" not in result.stdout


# --------------------------------------------------------------------------- create-admin


async def _admin_row(database_url: str, username: str) -> dict[str, Any] | None:
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        row = await connection.fetchrow(
            "SELECT username, email, password, active, admin, superuser "
            "FROM piccolo_user WHERE username = $1",
            username,
        )
    finally:
        await connection.close()
    return None if row is None else dict(row)


def admin_row(database_url: str, username: str) -> dict[str, Any] | None:
    return asyncio.run(_admin_row(database_url, username))


def test_create_admin_without_password_and_terminal_fails_clearly(
    service_env: dict[str, str],
) -> None:
    env = {name: value for name, value in service_env.items() if name != "CELLAR_ADMIN_PASSWORD"}
    username = f"admin_{uuid.uuid4().hex[:8]}"
    result = run_cli(
        ["cellar", "create-admin", "--username", username, "--email", "e@x.io"], env, timeout=30
    )
    line = one_line_error(result)
    assert "CELLAR_ADMIN_PASSWORD" in line, line
    assert admin_row(service_env["DATABASE_URL"], username) is None


def test_create_admin_from_environment_then_duplicate(service_env: dict[str, str]) -> None:
    username = f"admin_{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    env = {**service_env, "CELLAR_ADMIN_PASSWORD": PASSWORD}
    command = ["cellar", "create-admin", "--username", username, "--email", email]

    result = run_cli(command, env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert username in result.stdout
    row = admin_row(service_env["DATABASE_URL"], username)
    assert row is not None
    assert row["email"] == email
    assert (row["active"], row["admin"], row["superuser"]) == (True, True, True)
    assert row["password"] and PASSWORD not in row["password"], "stored hashed"

    again = run_cli(command, env, timeout=60)
    line = one_line_error(again)
    assert "already exists" in line, line
    assert username in line


def test_create_admin_with_password_option(service_env: dict[str, str]) -> None:
    username = f"admin_{uuid.uuid4().hex[:8]}"
    env = {name: value for name, value in service_env.items() if name != "CELLAR_ADMIN_PASSWORD"}
    result = run_cli(
        [
            "cellar",
            "create-admin",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            "--password",
            PASSWORD,
        ],
        env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    row = admin_row(service_env["DATABASE_URL"], username)
    assert row is not None
    assert (row["admin"], row["superuser"]) == (True, True)


# --------------------------------------------------------------------------- embedded default


def test_embedded_default_keeps_data_and_secrets_across_restarts(
    workdir: Path, data_dir: Path
) -> None:
    env = env_without_database(CELLAR_DATA_DIR=str(data_dir))
    email = f"embedded-{uuid.uuid4().hex[:8]}@example.com"
    secrets_file = data_dir / "secrets.json"

    with cellar_server(env, cwd=workdir, startup_timeout=EMBEDDED_STARTUP_TIMEOUT) as first:
        assert "embedded PostgreSQL" in first.output(), first.tail()
        with httpx.Client(base_url=first.url, timeout=10.0) as http:
            assert http.get("/health").json() == {"status": "healthy", "database": "connected"}
            registered = http.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201, registered.text
            token = http.post("/auth/token", json={"email": email, "password": PASSWORD})
            assert token.status_code == 200, token.text
            first_token = token.json()["access_token"]
        assert embedded_postgres(data_dir), "the embedded server runs on the data directory"
        stored = secrets_file.read_bytes()
        first.stop(timeout=EMBEDDED_STOP_TIMEOUT)

    assert first.stopped_by == signal.SIGINT, first.describe("did not exit on SIGINT")
    assert first.returncode == 0, first.describe(f"exit code {first.returncode} on SIGINT")
    left = wait_until_gone(data_dir, timeout=10.0)
    assert left == [], f"embedded postgres still running after exit: {left}"
    assert not (workdir / ".cellar").exists(), "CELLAR_DATA_DIR must replace ./.cellar"

    generated = json.loads(stored)
    assert set(generated) == {"APP_SECRET_KEY", "ENCRYPTION_KEY"}
    assert len(generated["APP_SECRET_KEY"]) >= 32
    assert is_fernet_key(generated["ENCRYPTION_KEY"])
    assert secrets_file.stat().st_mode & 0o077 == 0, "secrets readable by others"

    with cellar_server(env, cwd=workdir, startup_timeout=EMBEDDED_STARTUP_TIMEOUT) as second:
        with httpx.Client(base_url=second.url, timeout=10.0) as http:
            token = http.post("/auth/token", json={"email": email, "password": PASSWORD})
            assert token.status_code == 200, token.text  # the user survived
            me = http.get("/me", headers={"Authorization": f"Bearer {first_token}"})
            assert me.status_code == 200, me.text  # same APP_SECRET_KEY: old tokens still valid
            assert me.json()["email"] == email
        second.stop(timeout=EMBEDDED_STOP_TIMEOUT)

    assert secrets_file.read_bytes() == stored
    assert second.returncode == 0, second.describe(f"exit code {second.returncode}")
    assert wait_until_gone(data_dir, timeout=10.0) == []
