"""``Observability``: metrics, request logging and tracing, built once and wired into the app.

``create_app`` builds one from the settings, lists ``plugins`` among the
app's plugins (its ``on_app_init`` adds ``GET /metrics``, the after-exception
hook and the lifespans) and passes the finished app through ``instrument``,
which wraps Litestar's ASGI handler in the request observer.  Litestar has no
setting for a middleware outside routing, and only there are 404s and the
admin mount seen.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from litestar.plugins import InitPlugin

from app.observability.logs import AccessLog, resolve_format
from app.observability.metrics import (
    MULTIPROCESS_DIR,
    REQUEST_METRICS,
    enable_query_metrics,
    metrics_endpoint,
    sample_pool,
)
from app.observability.middleware import RequestObserver, remember_exception
from app.observability.tracing import build_tracing

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.config.app import AppConfig
    from litestar.plugins import PluginProtocol

    from app.settings import Settings


class Observability(InitPlugin):
    def __init__(self, settings: Settings, version: str) -> None:
        self.settings = settings
        self.http_metrics = REQUEST_METRICS if settings.metrics_enabled else None
        # The format `cellar serve` configured: the same setting, the same stdout.
        self.access_log = AccessLog(resolve_format(settings.log_format, sys.stdout))
        self.tracing = build_tracing(settings, version)
        if settings.metrics_enabled:
            enable_query_metrics()

    @property
    def plugins(self) -> list[PluginProtocol]:
        return [self] if self.tracing is None else [self, self.tracing.plugin]

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.after_exception.append(remember_exception)
        app_config.on_shutdown.append(self.flush_access_lines)
        if self.settings.metrics_enabled:
            app_config.route_handlers.append(metrics_endpoint)
            if MULTIPROCESS_DIR is not None:
                app_config.lifespan.append(sample_pool)
        if self.tracing is not None:
            app_config.middleware.insert(0, self.tracing.middleware)
            app_config.lifespan.append(self.tracing.lifespan)
        return app_config

    def flush_access_lines(self, _: Litestar) -> None:
        """Shutdown: the access lines still held back (see ``AccessLog``) are written."""
        self.access_log.flush()

    def instrument(self, app: Litestar) -> Litestar:
        app.asgi_handler = RequestObserver(
            app.asgi_handler,
            metrics=self.http_metrics,
            log=self.access_log,
            access_log=self.settings.access_log,
        )
        return app
