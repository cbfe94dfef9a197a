"""OpenTelemetry, only when asked for: ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (SPEC §14).

Without it this module imports nothing from OpenTelemetry and the app has no
tracing middleware at all.  With it, ``app.observability.otel`` (which needs
the ``otel`` extra) builds the spans: one per request (Litestar's
OpenTelemetry plugin, named after the route template) and one per database
statement (``opentelemetry-instrumentation-asyncpg``), exported over OTLP/HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.settings import SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from litestar import Litestar
    from litestar.plugins import PluginProtocol
    from litestar.types import ASGIApp

    from app.settings import Settings


class Tracing:
    """What tracing adds to the app: a plugin, a middleware and a lifespan."""

    def __init__(
        self,
        plugin: PluginProtocol,
        middleware: Callable[[ASGIApp], ASGIApp],
        lifespan: Callable[[Litestar], AbstractAsyncContextManager[None]],
    ) -> None:
        self.plugin = plugin
        self.middleware = middleware
        self.lifespan = lifespan


def build_tracing(settings: Settings, version: str) -> Tracing | None:
    if settings.otel_exporter_otlp_endpoint is None:
        return None
    try:
        from app.observability import otel
    except ImportError:
        raise SettingsError(
            "OTEL_EXPORTER_OTLP_ENDPOINT: set, but the otel extra is not installed "
            "(pip install 'cellar[otel]')"
        ) from None
    return otel.build(version)
