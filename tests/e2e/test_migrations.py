"""Piccolo's real migration CLI on a brand-new database (SPEC §10).

``piccolo migrations forwards all`` builds the schema from zero (tables, GIN
indexes, constraints), ``piccolo migrations check`` reports every migration
as run, and ``backwards all`` undoes it all, after which ``forwards`` builds
it again.  Each test gets its own ``cellar_mig_<hex>`` database on the
session's server, dropped WITH (FORCE) afterwards.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import pytest

from tests.conftest import with_database
from tests.e2e.conftest import run_cli

if TYPE_CHECKING:
    import subprocess
    from collections.abc import Awaitable, Callable, Iterator

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "piccolo_migrations"
OUR_TABLES = {
    "users",
    "notebooks",
    "cell_runs",
    "cell_search",
    "piccolo_user",
    "sessions",
    "notebook_events",
}
CHECKS = {
    "users_email_lower",
    "notebooks_kind_valid",
    "notebooks_revision_nonnegative",
    "notebooks_cells_array",
    "cell_runs_status_valid",
    "notebooks_ipynb_sha256_hex",
    "notebooks_seq_nonnegative",
    "notebook_events_op_valid",
}
# What an .ipynb carries beyond §3's shape (SPEC §12): json, not jsonb (it may hold \u0000).
IPYNB_COLUMNS = {
    ("notebooks", "ipynb"): "json",
    ("notebooks", "ipynb_sha256"): "character varying",
    ("cell_runs", "ipynb"): "json",
}
CLI_TIMEOUT = 120.0

T = TypeVar("T")


def run(work: Callable[[asyncpg.Connection], Awaitable[T]], url: str) -> T:
    async def main() -> T:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(main())


@pytest.fixture
def fresh_database(service_env: dict[str, str]) -> Iterator[tuple[str, dict[str, str]]]:
    """(URL, environment) of a new, empty database on the session's server."""
    session_url = service_env["DATABASE_URL"]
    name = f"cellar_mig_{secrets.token_hex(4)}"

    async def create(connection: asyncpg.Connection) -> None:
        await connection.execute(f'CREATE DATABASE "{name}"')

    async def drop(connection: asyncpg.Connection) -> None:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    run(create, session_url)
    url = with_database(session_url, name)
    try:
        yield url, {**service_env, "DATABASE_URL": url}
    finally:
        run(drop, session_url)


def piccolo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["piccolo", "migrations", *args], env, cwd=ROOT, timeout=CLI_TIMEOUT)


def succeeded(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and "Traceback" not in result.stderr + result.stdout


def migration_table(env: dict[str, str]) -> list[dict[str, str]]:
    """``piccolo migrations check`` parsed: one dict per row of its table."""
    result = piccolo(env, "check")
    assert succeeded(result), result.stdout + result.stderr
    rows = [
        [cell.strip() for cell in line.split("|")]
        for line in result.stdout.splitlines()
        if line.count("|") >= 3
    ]
    assert rows, result.stdout
    header, *body = rows
    assert header[-1] == "RAN", result.stdout
    return [dict(zip(header, row, strict=True)) for row in body]


def our_migration_ids() -> set[str]:
    found = set()
    for path in MIGRATIONS.glob("*.py"):
        match = re.search(r'^ID = "([^"]+)"', path.read_text(), re.MULTILINE)
        if match:
            found.add(match.group(1))
    assert found, "no migration in piccolo_migrations/"
    return found


# --------------------------------------------------------------------------- catalog


async def _catalog(connection: asyncpg.Connection) -> dict[str, Any]:
    tables = {
        row["tablename"]
        for row in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
    }
    indexes = {
        row["indexname"]: row["indexdef"]
        for row in await connection.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        )
    }
    checks = {
        row["conname"]: row["definition"]
        for row in await connection.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE contype = 'c' AND connamespace = 'public'::regnamespace"
        )
    }
    functions = {
        row["proname"]
        for row in await connection.fetch(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        )
    }
    columns = {
        (row["table_name"], row["column_name"]): row["data_type"]
        for row in await connection.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public'"
        )
    }
    trgm_available = bool(
        await connection.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    )
    btree_gin_available = bool(
        await connection.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin'")
    )
    return {
        "tables": tables,
        "indexes": indexes,
        "checks": checks,
        "functions": functions,
        "columns": columns,
        "trgm_available": trgm_available,
        "btree_gin_available": btree_gin_available,
    }


def catalog(url: str) -> dict[str, Any]:
    return run(_catalog, url)


def assert_full_schema(url: str) -> None:
    found = catalog(url)
    missing_tables = OUR_TABLES - found["tables"]
    assert not missing_tables, f"tables not created: {missing_tables}"

    indexes: dict[str, str] = found["indexes"]
    path_ops = indexes.get("notebooks_cells_path_ops", "")
    assert "USING gin" in path_ops and "jsonb_path_ops" in path_ops, path_ops
    assert "(cells" in path_ops, path_ops

    for name, column in (("notebooks_name_tsv", "name_tsv"), ("cell_search_code_tsv", "code_tsv")):
        search = indexes.get(name, "")
        assert "USING gin" in search and column in search, (name, search)
    assert "notebooks_search_tsv" not in indexes  # per notebook: replaced by per-cell rows
    # Where btree_gin exists, the per-cell GIN indexes lead with the owner.
    leads = "(user_id, code_tsv)" in indexes["cell_search_code_tsv"]
    assert leads == found["btree_gin_available"], indexes["cell_search_code_tsv"]

    special = indexes.get("notebooks_one_special_kind_per_user", "")
    assert special.startswith("CREATE UNIQUE INDEX"), special
    assert " WHERE " in special and "blank" in special and "demo" in special, special

    runs = indexes.get("cell_runs_notebook_cell", "")
    assert runs.startswith("CREATE UNIQUE INDEX"), runs

    # The trash (SPEC §13): the column, its index, and search indexes of live notebooks only.
    assert found["columns"].get(("notebooks", "deleted_at")) == "timestamp with time zone"
    assert "WHERE (deleted_at IS NOT NULL)" in indexes.get("notebooks_trash", "")
    for name in ("notebooks_name_tsv", "notebooks_cells_path_ops"):
        assert "WHERE (deleted_at IS NULL)" in indexes[name], indexes[name]
    if "notebooks_name_trgm" in indexes:
        assert "WHERE (deleted_at IS NULL)" in indexes["notebooks_name_trgm"]

    for column, data_type in IPYNB_COLUMNS.items():
        assert found["columns"].get(column) == data_type, (column, found["columns"].get(column))
    imported = indexes.get("notebooks_ipynb_sha256", "")
    assert imported.startswith("CREATE UNIQUE INDEX"), imported
    assert "(user_id, ipynb_sha256)" in imported and "IS NOT NULL" in imported, imported

    if found["trgm_available"]:
        for name in ("cell_search_code_trgm", "notebooks_name_trgm"):
            trigram = indexes.get(name, "")
            assert "USING gin" in trigram and "gin_trgm_ops" in trigram, (name, trigram)

    missing_checks = CHECKS - set(found["checks"])
    assert not missing_checks, f"CHECK constraints not created: {missing_checks}"
    assert {"cellar_cell_search_insert", "cellar_cell_search_update"} <= found["functions"]


# --------------------------------------------------------------------------- behaviour


async def _constraints_hold(connection: asyncpg.Connection) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        "INSERT INTO users (id, email) VALUES ($1, $2), ($3, $4)",
        owner,
        f"{owner.hex}@example.com",
        other,
        f"{other.hex}@example.com",
    )

    async def notebook(user: uuid.UUID, kind: str, **columns: Any) -> None:
        names = ["id", "user_id", "kind", *columns]
        values = [str(uuid.uuid4()), user, kind, *columns.values()]
        placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        await connection.execute(
            f"INSERT INTO notebooks ({', '.join(names)}) VALUES ({placeholders})", *values
        )

    # Any number of user notebooks; one blank and one demo per user.
    await notebook(owner, "user")
    await notebook(owner, "user")
    await notebook(owner, "blank")
    await notebook(owner, "demo")
    await notebook(other, "blank")  # per user, not global
    with pytest.raises(asyncpg.UniqueViolationError):
        await notebook(owner, "blank")
    with pytest.raises(asyncpg.UniqueViolationError):
        await notebook(owner, "demo")

    with pytest.raises(asyncpg.CheckViolationError):
        await notebook(owner, "shared")
    with pytest.raises(asyncpg.CheckViolationError):
        await notebook(owner, "user", revision=-1)
    # A cells document that is no array: the generated search columns fail on it even
    # before notebooks_cells_array is checked; either way it is refused.
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.InvalidParameterValueError)):
        await notebook(owner, "user", cells='{"not": "a list"}')
    with pytest.raises(asyncpg.CheckViolationError):
        await connection.execute(
            "INSERT INTO users (id, email) VALUES ($1, 'Upper@Example.com')", uuid.uuid4()
        )

    counts = await connection.fetch(
        "SELECT kind, count(*) AS n FROM notebooks WHERE user_id = $1 GROUP BY kind", owner
    )
    assert {row["kind"]: row["n"] for row in counts} == {"user": 2, "blank": 1, "demo": 1}


def assert_constraints_hold(url: str) -> None:
    run(_constraints_hold, url)


# --------------------------------------------------------------------------- tests


def test_forwards_builds_the_schema_from_zero(fresh_database: tuple[str, dict[str, str]]) -> None:
    url, env = fresh_database
    assert not OUR_TABLES & catalog(url)["tables"], "the database must start empty"

    result = piccolo(env, "forwards", "all")
    assert succeeded(result), result.stdout + result.stderr

    assert_full_schema(url)
    assert_constraints_hold(url)

    table = migration_table(env)
    not_run = [row for row in table if row["RAN"] != "True"]
    assert not_run == [], not_run
    ours = {row["MIGRATION_ID"] for row in table if row["APP NAME"] == "cellar"}
    assert ours == our_migration_ids()

    again = piccolo(env, "forwards", "all")  # idempotent: nothing left to run
    assert succeeded(again), again.stdout + again.stderr
    assert_full_schema(url)


def test_backwards_undoes_everything_and_forwards_rebuilds(
    fresh_database: tuple[str, dict[str, str]],
) -> None:
    url, env = fresh_database
    forwards = piccolo(env, "forwards", "all")
    assert succeeded(forwards), forwards.stdout + forwards.stderr

    backwards = piccolo(env, "backwards", "all", "--migration_id=all", "--auto_agree")
    assert succeeded(backwards), backwards.stdout + backwards.stderr

    emptied = catalog(url)
    assert not OUR_TABLES & emptied["tables"], emptied["tables"]
    assert not {"cellar_cells_code", "cellar_cell_search_insert"} & emptied["functions"]
    assert not any(name.startswith("notebooks_") for name in emptied["indexes"])
    assert not set(IPYNB_COLUMNS) & set(emptied["columns"])
    still_run = [row for row in migration_table(env) if row["RAN"] != "False"]
    assert still_run == [], still_run

    rebuilt = piccolo(env, "forwards", "all")
    assert succeeded(rebuilt), rebuilt.stdout + rebuilt.stderr
    assert_full_schema(url)
    assert_constraints_hold(url)
