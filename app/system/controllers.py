"""``GET /`` and ``GET /health`` (SPEC §10): open, for people, load balancers and health checks."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec

from app import __version__
from app.replicas.tokens import format_lsn
from app.system.openapi import DOCS_PATH, DOCUMENT_PATH
from app.system.outage import RETRY_AFTER_SECONDS
from app.system.services import HealthService


class ReplicaHealth(msgspec.Struct, frozen=True):
    """One replica (``DATABASE_REPLICA_URLS``) as the monitor last saw it."""

    name: Annotated[str, msgspec.Meta(description="`host:port/database` (no credentials).")]
    status: Annotated[
        Literal["healthy", "lagging", "down"],
        msgspec.Meta(
            description="`healthy`: serves reads; `lagging`: more than "
            "`REPLICA_MAX_LAG_SECONDS` behind; `down`: does not answer."
        ),
    ]
    lag_seconds: Annotated[
        float | None, msgspec.Meta(description="How old its data is; null while down.")
    ]
    replayed: Annotated[
        str | None, msgspec.Meta(description="The WAL position it has replayed, e.g. `0/3000148`.")
    ]


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]
    # Present when replicas are configured; a replica's state never makes this 503.
    replicas: list[ReplicaHealth] | msgspec.UnsetType = msgspec.UNSET


class ServiceIndex(msgspec.Struct, frozen=True):
    """Where to go from here."""

    service: Literal["cellar"]
    version: Annotated[str, msgspec.Meta(description="The running release.")]
    docs: Annotated[str, msgspec.Meta(description="This API's documentation, in a browser.")]
    openapi: Annotated[str, msgspec.Meta(description="The OpenAPI document (JSON).")]
    health: Annotated[str, msgspec.Meta(description="The health check.")]


INDEX = ServiceIndex(
    service="cellar",
    version=__version__,
    docs=DOCS_PATH,
    openapi=DOCUMENT_PATH,
    health="/health",
)


class SystemController(Controller):
    tags = ["system"]

    @get(
        "/",
        operation_id="index",
        summary="Service index",
        opt={"exclude_from_auth": True},
    )
    async def index(self) -> ServiceIndex:
        """The version and where the docs, the OpenAPI document and the health check are."""
        return INDEX

    @get(
        "/health",
        operation_id="health",
        summary="Health check",
        cache=False,
        responses={
            503: ResponseSpec(
                Health,
                description="The database does not answer within `HEALTH_TIMEOUT_SECONDS`.",
                generate_examples=False,
            )
        },
    )
    async def health(self, health: NamedDependency[HealthService]) -> Response[Health]:
        """Whether this instance can reach its database (200), or not (503); its replicas."""
        replicas = _replicas(health)
        if await health.database_reachable():
            return Response(Health(status="healthy", database="connected", replicas=replicas))
        return Response(
            Health(status="unhealthy", database="disconnected", replicas=replicas),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _replicas(health: HealthService) -> list[ReplicaHealth] | msgspec.UnsetType:
    replicas = health.replicas()
    if replicas is None:
        return msgspec.UNSET
    return [
        ReplicaHealth(
            name=replica.name,
            status=replica.status,
            lag_seconds=None if replica.lag is None else round(replica.lag, 3),
            replayed=format_lsn(replica.replayed) if replica.replayed else None,
        )
        for replica in replicas
    ]
