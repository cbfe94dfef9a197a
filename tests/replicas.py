"""A primary and a hot standby made by hand, as an operator would (issue 18).

Debian's PostgreSQL server binaries (``/usr/lib/postgresql/<major>/bin``;
``.ci/run`` installs the ``postgresql`` package as root when they are
missing): ``initdb`` a primary, start it, ``pg_basebackup -R`` a standby
from it (which writes ``standby.signal`` and ``primary_conninfo``), start
the standby.  Both listen on free loopback ports, trust local connections
and run from one temporary directory, deleted at the end.  PostgreSQL
refuses to run as root: as root the binaries run as the ``postgres`` system
user (the Debian package creates it), who owns the directory.

``Pair.pause``/``resume`` stop and restart WAL replay on the standby
(``pg_wal_replay_pause()``: the standby stays up and answers, with old data);
``stop_standby``/``start_standby`` kill and restart it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg

from tests.e2e.conftest import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT = 60
CATCH_UP_SECONDS = 30.0
SETTINGS = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
wal_keep_size = '128MB'
fsync = off
synchronous_commit = on
shared_buffers = '32MB'
max_connections = 60
"""


def binaries() -> Path | None:
    """The newest Debian PostgreSQL server's bin directory, if one has the tools needed."""
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        path = Path(directory)
        if all((path / tool).exists() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return path
    return None


def why_unavailable() -> str | None:
    """None when a pair can be made here, else the reason (for a skip)."""
    if binaries() is None:
        return (
            "Debian's PostgreSQL server binaries are not installed (.ci/run installs them "
            "with apt-get when it runs as root; otherwise: apt-get install postgresql)"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a postgres system user to run PostgreSQL as"
    return None


@dataclass
class Pair:
    bin: Path
    directory: Path
    primary_port: int
    standby_port: int
    user: str | None  # the system user the servers run as (None: this one)

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    @property
    def primary_url(self) -> str:
        return self.url(self.primary_port)

    @property
    def standby_url(self) -> str:
        return self.url(self.standby_port)

    def run(self, tool: str, *args: str, timeout: float = START_TIMEOUT) -> None:
        result = subprocess.run(
            [str(self.bin / tool), *args],
            user=self.user,
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}{self.logs()}")

    def logs(self) -> str:
        texts = []
        for name in ("primary.log", "standby.log"):
            path = self.directory / name
            if path.exists():
                texts.append(f"\n--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "".join(texts)

    def start(self, name: str, port: int) -> None:
        self.run(
            "pg_ctl",
            "-D",
            str(self.directory / name),
            "-l",
            str(self.directory / f"{name}.log"),
            "-o",
            f"-p {port}",
            "-w",
            "-t",
            str(START_TIMEOUT),
            "start",
        )

    def stop(self, name: str, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.directory / name), "-m", mode, "-w", "stop")

    def stop_standby(self) -> None:
        """Kill the standby as a crash would (immediate mode: no shutdown checkpoint)."""
        self.stop("standby", mode="immediate")

    def start_standby(self) -> None:
        self.start("standby", self.standby_port)

    async def standby_sql(self, statement: str) -> Any:
        connection = await asyncpg.connect(self.standby_url)
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()

    async def pause(self) -> None:
        """Stop WAL replay on the standby: it keeps answering, with the data it has."""
        await self.standby_sql("SELECT pg_wal_replay_pause()")

    async def resume(self) -> None:
        await self.standby_sql("SELECT pg_wal_replay_resume()")

    async def caught_up(self) -> None:
        """Wait (up to CATCH_UP_SECONDS) until the standby replayed what the primary wrote."""
        primary = await asyncpg.connect(self.primary_url)
        try:
            target = await primary.fetchval("SELECT pg_current_wal_lsn()")
        finally:
            await primary.close()
        deadline = time.monotonic() + CATCH_UP_SECONDS
        while await self.standby_sql("SELECT pg_last_wal_replay_lsn()") < target:
            if time.monotonic() > deadline:
                raise TimeoutError("the standby did not catch up")
            await asyncio.sleep(0.05)


@contextmanager
def running_pair() -> Iterator[Pair]:
    """A primary and its hot standby, stopped and deleted afterwards whatever happened."""
    bin_dir = binaries()
    assert bin_dir is not None, why_unavailable()
    user = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="cellar-replica-pair-"))
    if user is not None:
        account = pwd.getpwnam(user)
        os.chown(directory, account.pw_uid, account.pw_gid)
    pair = Pair(bin_dir, directory, free_port(), free_port(), user)
    started: list[str] = []
    try:
        primary = directory / "primary"
        pair.run(
            "initdb",
            "-D",
            str(primary),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            # As Debian's own clusters: under plain C, PostgreSQL's regular expressions
            # (search snippets) do not take emoji for letters.
            "--locale=C.UTF-8",
            "--no-sync",
        )
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(sockets=directory))
        pair.start("primary", pair.primary_port)
        started.append("primary")
        pair.run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
            "-D",
            str(directory / "standby"),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        pair.start_standby()
        started.append("standby")
        yield pair
    finally:
        for name in reversed(started):
            with suppress(RuntimeError, subprocess.TimeoutExpired):
                pair.stop(name, mode="immediate")  # fails when a test stopped it already
        shutil.rmtree(directory, ignore_errors=True)
