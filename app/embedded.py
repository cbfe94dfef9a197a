"""The embedded PostgreSQL's lifetime: attach, recover after a crash, release.

pgserver keeps one server per data directory and counts who uses it in
``PGDATA/.handle_pids.json``: every process that attaches adds its pid, and
the process that removes the last pid stops the server (at exit, through
``atexit``).  That bookkeeping has two blind spots this module covers:

- A process that dies without running ``atexit`` (SIGKILL, a power cut, or
  any signal whose default action kills) leaves its pid in the file for
  ever, so no later process is ever the last one and PostgreSQL is never
  stopped again.  ``attach`` drops the pids of processes that no longer
  exist (or whose pid now belongs to a process started after the file was
  last written) before pgserver reads the file.
- A ``postmaster.pid`` whose pid is gone, or now belongs to something that
  is not a postmaster, makes pgserver believe a server runs when none does.
  ``attach`` removes it (and the socket lock file next to the socket) so the
  server starts afresh; PostgreSQL then recovers its data from the WAL.

Both repairs happen under pgserver's own inter-process lock, the one it
holds while it reads and writes the same files, and are reported in one line.
``release`` gives this process's handle back at once, so ``cellar serve`` can
stop PostgreSQL in a ``finally`` instead of relying on ``atexit``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from pathlib import Path

    from pgserver.postgres_server import PostgresServer

HANDLES_FILE = ".handle_pids.json"
POSTMASTER_FILE = "postmaster.pid"
# psutil derives a start time from the boot time, which /proc gives in whole seconds.
START_TIME_SLACK_SECONDS = 1.0

_attached: dict[Path, PostgresServer] = {}

# pgserver narrates every pg_ctl call at INFO; its warnings and errors still show.
logging.getLogger("pgserver").setLevel(logging.WARNING)
log = logging.getLogger("cellar")


def attach(pgdata: Path) -> PostgresServer:
    """Start the server on ``pgdata`` or join the one running there, repairing a crash first."""
    if pgdata in _attached:
        return _attached[pgdata]
    from pgserver.postgres_server import PostgresServer, get_server

    if pgdata.exists():
        with PostgresServer._lock:
            repairs = _drop_dead_handles(pgdata) + _drop_stale_postmaster(pgdata)
        if repairs:
            log.warning("recovered from an unclean stop: %s", "; ".join(repairs))
    server = get_server(pgdata, cleanup_mode="stop")
    _attached[pgdata] = server
    return server


def release() -> bool:
    """Give back this process's handles; True when that stopped a server (we were the last)."""
    stopped = False
    while _attached:
        pgdata, server = _attached.popitem()
        server.cleanup()
        stopped = stopped or not _postmaster_running(pgdata)
    return stopped


def _drop_dead_handles(pgdata: Path) -> list[str]:
    path = pgdata / HANDLES_FILE
    try:
        pids: list[int] = json.loads(path.read_text())
        written_at = path.stat().st_mtime
    except (FileNotFoundError, ValueError):
        return []
    dead = [pid for pid in pids if not _holds_handle(pid, written_at)]
    if not dead:
        return []
    path.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    listed = ", ".join(str(pid) for pid in dead)
    return [f"process {listed} exited without giving back its handle on the embedded PostgreSQL"]


def _holds_handle(pid: int, written_at: float) -> bool:
    """Whether ``pid`` can still be the process that registered it.

    Our own pid cannot: this process has not attached yet, so the entry is a
    leftover of an earlier process that had the same pid (containers reuse
    small pids on every start).  A process started after the file was last
    written cannot have written itself into it either.
    """
    if pid == os.getpid():
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return bool(process.create_time() <= written_at + START_TIME_SLACK_SECONDS)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # someone else's process: assume it is what the file says


def _drop_stale_postmaster(pgdata: Path) -> list[str]:
    path = pgdata / POSTMASTER_FILE
    try:
        lines = path.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return []
    if _is_postmaster(pid, pgdata):
        return []
    path.unlink(missing_ok=True)
    if len(lines) > 4 and lines[3].strip() and lines[4].strip():  # port, socket directory
        lock = f"{lines[4].strip()}/.s.PGSQL.{lines[3].strip()}.lock"
        try:
            with open(lock) as handle:
                if handle.readline().strip() == str(pid):
                    os.unlink(lock)
        except OSError:
            pass
    return [f"PostgreSQL process {pid} is gone too (its postmaster.pid was removed)"]


def _is_postmaster(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return process.name() == "postgres" and str(pgdata) in " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _postmaster_running(pgdata: Path) -> bool:
    try:
        pid = int((pgdata / POSTMASTER_FILE).read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    return _is_postmaster(pid, pgdata)
