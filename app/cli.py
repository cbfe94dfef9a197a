"""``cellar``: one entry point for running and operating the service (SPEC §10).

User errors end with one line on stderr and a non-zero exit code, never a
traceback.  Commands resolve the database the same way the app does
(``app.database.prepare_environment``) and call the same services.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from typing import TYPE_CHECKING, NoReturn

from app.database import EmbeddedUnavailable, prepare_environment
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class CliError(Exception):
    """A failure to report in one line."""


def _load_settings() -> tuple[Settings, bool]:
    """Settings after database resolution; the flag says whether the embedded server is used."""
    embedded = not os.environ.get("DATABASE_URL", "").strip()
    prepare_environment(os.environ)
    return Settings.from_env(os.environ), embedded


def _apply_migrations() -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    result = asyncio.run(run_forwards(app_name="all"))
    if not result.success:
        raise CliError(f"migrations failed: {result.message}")


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    settings, embedded = _load_settings()
    if embedded:
        print(f"cellar: embedded PostgreSQL at {settings.database_url}", flush=True)
        _apply_migrations()
    print(f"cellar: serving on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(
        "app.main:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=args.access_log,
    )


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cellar", description="Cellar notebook store.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description="Run the service. Without DATABASE_URL, start an embedded PostgreSQL "
        "in CELLAR_DATA_DIR (default ./.cellar) and apply migrations first.",
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--log-level", default="info")
    run.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
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
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = _parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except (CliError, SettingsError, EmbeddedUnavailable) as exc:
        print(f"cellar: error: {exc}", file=sys.stderr)
        sys.exit(2 if isinstance(exc, SettingsError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
