"""Wiring of the replicas into the app: their set, its lifespan, its middleware."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from app.database import get_engine, pool_options
from app.replicas import routing
from app.replicas.http import ConsistencyMiddleware
from app.replicas.replicaset import ReplicaSet

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from litestar import Litestar

    from app.settings import Settings


def build_replicas(settings: Settings) -> ReplicaSet | None:
    """The configured replicas (not connected yet), or None without DATABASE_REPLICA_URLS."""
    if not settings.database_replica_urls:
        return None
    engine = get_engine()
    return ReplicaSet(
        settings.database_replica_urls,
        max_lag_seconds=settings.replica_max_lag_seconds,
        pool_options=pool_options(settings),
        primary=lambda: engine.pool,
        primary_url=_required_url(settings),
        check_timeout=settings.health_timeout_seconds,
    )


def replica_lifespan(
    replicas: ReplicaSet,
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """A lifespan (after the primary's pool) that checks the replicas, then routes reads."""

    @asynccontextmanager
    async def run(_: Litestar) -> AsyncIterator[None]:
        await replicas.start()
        routing.install(replicas)
        try:
            yield
        finally:
            routing.install(None)
            await replicas.stop()

    return run


__all__ = ["ConsistencyMiddleware", "build_replicas", "replica_lifespan"]


def _required_url(settings: Settings) -> str:
    if settings.database_url is None:  # prepare_environment always sets one
        raise RuntimeError("DATABASE_URL is not set")
    return settings.database_url
