"""A PgBouncer in transaction pooling mode in front of the tests' PostgreSQL (SPEC §10).

Debian's ``pgbouncer`` (``.ci/run`` installs it as root).  ``running_pgbouncer``
writes a configuration into a temporary directory (any database name passed
through to the server, clients trusted, the server's own user and password
used towards it), starts the binary in the foreground on a free loopback
port, waits until it accepts connections, yields its address and stops it.
PgBouncer refuses to run as root: as root it is started with ``-u nobody``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from tests.e2e.conftest import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

START_TIMEOUT = 15.0


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (path for path in ("/usr/sbin/pgbouncer",) if os.access(path, os.X_OK)), None
    )


def why_unavailable() -> str | None:
    """None when PgBouncer can run here, else the reason (for a skip)."""
    if pgbouncer_binary() is None:
        return (
            "Debian's pgbouncer is not installed (.ci/run installs it with apt-get when it "
            "runs as root; otherwise: apt-get install pgbouncer)"
        )
    return None


@dataclass(frozen=True)
class PgBouncer:
    port: int
    server_url: str  # the maintenance URL of the server behind it
    log_path: Path

    def url(self, database: str) -> str:
        """``server_url``'s user and password, through PgBouncer, to ``database``."""
        parts = urlsplit(self.server_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(("postgresql", netloc, f"/{database}", "", ""))

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _configuration(server_url: str, directory: Path, port: int) -> str:
    parts = urlsplit(server_url)
    user = unquote(parts.username or "postgres")
    password = unquote(parts.password or "")
    host = parts.hostname or parse_qs(parts.query).get("host", ["/tmp"])[0]
    server_port = parts.port or 5432
    (directory / "users.txt").write_text(f"{_quote(user)} {_quote(password)}\n")
    target = f"host={host} port={server_port} user={user}"
    if password:
        target += f" password={password}"
    return "\n".join(
        [
            "[databases]",
            f"* = {target}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {directory / 'users.txt'}",
            "pool_mode = transaction",
            "max_client_conn = 1000",
            "default_pool_size = 20",
            f"logfile = {directory / 'pgbouncer.log'}",
            f"pidfile = {directory / 'pgbouncer.pid'}",
            "",
        ]
    )


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@contextmanager
def running_pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError(why_unavailable())
    directory = Path(tempfile.mkdtemp(prefix="cellar-pgbouncer-"))
    port = free_port()
    config = directory / "pgbouncer.ini"
    config.write_text(_configuration(server_url, directory, port))
    command = [binary, str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "nobody"]
        shutil.chown(directory, user="nobody")
        for path in directory.iterdir():
            shutil.chown(path, user="nobody")
    bouncer = PgBouncer(port, server_url, directory / "pgbouncer.log")
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer did not start:\n{bouncer.log()[-3000:]}")
            time.sleep(0.1)
        yield bouncer
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # immediate shutdown (SIGINT waits for clients)
            try:
                process.wait(timeout=10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10.0)
        shutil.rmtree(directory, ignore_errors=True)
