"""The OpenTelemetry pieces (the ``otel`` extra); imported only by ``tracing.build_tracing``.

The exporter is OTLP over HTTP and reads the standard variables itself
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``..._HEADERS``, ``OTEL_BSP_SCHEDULE_DELAY``,
``OTEL_SERVICE_NAME`` ...).  The tracer provider belongs to the app, not to
the process-global API, so building an app twice never fights over it; the
asyncpg instrumentation patches asyncpg for the app's lifetime and is undone
(and the last spans flushed) when the app stops.  Statement parameters are
not recorded (the instrumentation's default), so no value a user stored
reaches a span.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from app.observability.tracing import Tracing

# The instrumentation's constructor is not annotated; this name gives it a type.
_asyncpg_instrumentor: Callable[[], AsyncPGInstrumentor] = AsyncPGInstrumentor

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from litestar import Litestar
    from litestar.types import ASGIApp, Receive, Scope, Send
    from opentelemetry.util.types import AttributeValue


def name_span_after_route(app: ASGIApp) -> ASGIApp:
    """Name the request's span ``GET /notebooks/{notebook_id}``, not after the raw path.

    The plugin's span starts before routing, so it only knows the path; this
    middleware runs after routing, inside that span.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        template = scope.get("path_template")
        span = trace.get_current_span()
        if template and span.is_recording():
            span.update_name(f"{scope.get('method', '')} {template}".strip())
            span.set_attribute("http.route", template)
        await app(scope, receive, send)

    return middleware


def build(version: str) -> Tracing:
    attributes: dict[str, AttributeValue] = {SERVICE_VERSION: version}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = "cellar"
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    plugin = OpenTelemetryPlugin(
        OpenTelemetryConfig(tracer_provider=provider, exclude_spans=["receive", "send"])
    )

    @asynccontextmanager
    async def traced_queries(_: Litestar) -> AsyncIterator[None]:
        instrumentor = _asyncpg_instrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            yield
        finally:
            instrumentor.uninstrument()
            provider.shutdown()

    return Tracing(plugin=plugin, middleware=name_span_after_route, lifespan=traced_queries)
