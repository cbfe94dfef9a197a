"""The app factory: the one place where routes, services and middleware are wired.

Everything is built once here, at start-up (token verifier, services, the
admin dashboard); requests only look things up.  ``create_app`` takes its
settings as an argument so tests and several instances can build apps with
different settings; ``app_from_env`` is the uvicorn factory for real runs.
"""

from __future__ import annotations

import gc
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, cast

from litestar import Litestar, Request
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.handlers import asgi

from app import __version__
from app.admin import ADMIN_PATH, build_admin
from app.auth.controllers import auth_router
from app.auth.guards import AuthUser, bearer_auth
from app.auth.services import AuthService
from app.auth.tokens import TokenService
from app.checkpoints.controllers import CheckpointController
from app.checkpoints.services import CheckpointService
from app.cursors import Cursors
from app.database import get_engine, pool_options, prepare_environment
from app.errors import EXCEPTION_HANDLERS
from app.history.controllers import HistoryController
from app.history.retention import prune_history
from app.history.services import HistoryService
from app.ipynb.controllers import IpynbController
from app.ipynb.services import IpynbService
from app.notebooks.connections import ConnectionStringCipher
from app.notebooks.controllers import NotebookController
from app.notebooks.services import NotebookService, purge_trash
from app.observability.plugin import Observability
from app.realtime.controllers import EventsStreamController, EventsTicketController, events_socket
from app.realtime.services import RealtimeService
from app.replicas.lifespan import ConsistencyMiddleware, build_replicas, replica_lifespan
from app.replicas.tokens import HEADER as CONSISTENCY_HEADER
from app.search.controllers import SearchController
from app.search.services import SearchService
from app.settings import Settings
from app.system.controllers import SystemController
from app.system.daily import DailyJobs
from app.system.headers import security_headers
from app.system.openapi import StructSchemas, openapi_config
from app.system.outage import quiet_pool_logs
from app.system.services import HealthService
from app.users.controllers import MeController
from app.users.services import UserService

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from litestar.types import ASGIApp, Receive, Scope, Send


def _freeze_startup_heap() -> None:
    """Leave what start-up made (the app, its routes, Piccolo, nbformat's schemas:
    hundreds of thousands of objects that live as long as the process) out of every
    later garbage collection.  Each full collection walked them all: 50 to 130 ms
    with the loop stopped, every few seconds under load, which was GET's p99
    (bench/RESULTS.md; docs/decisions.md)."""
    gc.collect()
    gc.freeze()


def _current_user(request: Request[AuthUser, object, State]) -> AuthUser:
    return request.user


def create_app(settings: Settings) -> Litestar:
    engine = get_engine()
    tokens = TokenService(
        secret_key=_required(settings.app_secret_key, "APP_SECRET_KEY"),
        lifetime_seconds=settings.token_lifetime_seconds,
        external_issuer=settings.auth_issuer,
        external_audience=settings.auth_audience,
        external_public_key=settings.auth_public_key,
        external_jwks_url=settings.auth_jwks_url,
    )
    auth = AuthService()
    users = UserService()
    cursors = Cursors(_required(settings.app_secret_key, "APP_SECRET_KEY"))
    notebooks = NotebookService(
        settings,
        ConnectionStringCipher(_required(settings.encryption_key, "ENCRYPTION_KEY")),
        cursors,
    )
    ipynb = IpynbService(settings)
    replicas = build_replicas(settings)
    health = HealthService(engine, timeout=settings.health_timeout_seconds, replicas=replicas)
    search = SearchService(cursors)
    history = HistoryService()
    realtime = RealtimeService(settings, tokens, auth)
    # Each wake-up lets the read cache forget what it can no longer use (memory only).
    realtime.hub.observers.append(notebooks.changed)
    quiet_pool_logs()  # asyncpg's reconnect warnings count toward one outage log line
    # Built once here, never per request: the admin holds its login rate limiter.
    admin = cast("ASGIApp", build_admin(settings))
    observability = Observability(settings, __version__)
    # Once a day, one instance at a time (app.system.daily); each also a `cellar` command.
    daily = DailyJobs(
        {
            "purge-trash": lambda: purge_trash(settings.trash_retention_days),
            "prune-history": lambda: prune_history(
                settings.history_retention_days, settings.history_keep_last
            ),
        }
    )

    # The scope is not copied: the admin puts the full path back for the access log.
    @asgi(path=ADMIN_PATH, is_mount=True, copy_scope=False)
    async def admin_dashboard(scope: Scope, receive: Receive, send: Send) -> None:
        """Piccolo admin (SPEC §7): its own session login, our engine and pool."""
        await admin(scope, receive, send)

    @asynccontextmanager
    async def database_pool(_: Litestar) -> AsyncIterator[None]:
        """Own the engine's pool for the app's lifetime; fail start-up loudly without a database."""
        await engine.start_connection_pool(**pool_options(settings))
        try:
            yield
        finally:
            await engine.close_connection_pool()

    @asynccontextmanager
    async def realtime_listener(_: Litestar) -> AsyncIterator[None]:
        """The process's one LISTEN connection and its hub (after the pool, before its end)."""
        realtime.start()
        try:
            yield
        finally:
            await realtime.stop()

    def singleton(value: object) -> Provide:
        return Provide(lambda: value, use_cache=True, sync_to_thread=False)

    app = Litestar(
        route_handlers=[
            SystemController,
            auth_router(settings.auth_token_rate_limit_per_minute),
            MeController,
            NotebookController,
            CheckpointController,
            IpynbController,
            HistoryController,
            SearchController,
            EventsTicketController,
            EventsStreamController,
            events_socket,
            admin_dashboard,
        ],
        dependencies={
            "settings": singleton(settings),
            "tokens": singleton(tokens),
            "auth": singleton(auth),
            "users": singleton(users),
            "notebooks": singleton(notebooks),
            "checkpoints": singleton(CheckpointService(settings, notebooks)),
            "ipynb": singleton(ipynb),
            "health": singleton(health),
            "search": singleton(search),
            "history": singleton(history),
            "realtime": singleton(realtime),
            "current_user": Provide(_current_user, sync_to_thread=False),
        },
        middleware=[
            bearer_auth(tokens, auth),
            # Read-your-writes across replicas (app.replicas): only when there are some.
            *([] if replicas is None else [ConsistencyMiddleware(replicas)]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[security_headers],
        request_max_body_size=settings.max_request_body_bytes,
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            expose_headers=["X-Request-ID", "ETag", CONSISTENCY_HEADER],
        )
        if settings.cors_origins
        else None,
        openapi_config=openapi_config(),
        # Logging is configured by `cellar serve` (app.observability.logs); errors are
        # logged once per request by the request observer: a 5xx with its traceback, a 4xx
        # not; an unreachable database once per outage (app.system.outage).
        logging_config=None,
        plugins=[StructSchemas(), *observability.plugins],
        on_startup=[_freeze_startup_heap],
        lifespan=[
            database_pool,
            *([] if replicas is None else [replica_lifespan(replicas)]),
            *([daily.lifespan] if settings.daily_jobs else []),
            realtime_listener,
        ],
        state=State({"settings": settings, "read_cache": notebooks.read_cache}),
    )
    return observability.instrument(app)


def app_from_env() -> Litestar:
    """uvicorn's factory (``cellar serve``): resolve the database, read settings, build."""
    prepare_environment(os.environ)
    return create_app(Settings.from_env(os.environ))


def _required(value: str | None, name: str) -> str:
    if value is None:
        from app.settings import SettingsError

        raise SettingsError(f"{name}: required")
    return value
