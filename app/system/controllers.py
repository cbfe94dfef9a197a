"""``GET /health`` (SPEC §10): open, for load balancers and compose health checks."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency

from app.system.outage import RETRY_AFTER_SECONDS
from app.system.services import HealthService


class Health(msgspec.Struct, frozen=True):
    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]


class SystemController(Controller):
    tags = ["system"]

    @get("/health", operation_id="health", cache=False)
    async def health(self, health: NamedDependency[HealthService]) -> Response[Health]:
        """Whether this instance can reach its database."""
        if await health.database_reachable():
            return Response(Health(status="healthy", database="connected"))
        return Response(
            Health(status="unhealthy", database="disconnected"),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
