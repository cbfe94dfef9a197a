"""Observability (SPEC §14): Prometheus metrics, JSON logs with request ids, optional tracing.

- ``metrics``: every metric, the pool collectors and ``GET /metrics``;
- ``logs``: the logging configuration (JSON or plain) shared by uvicorn and us;
- ``middleware``: request ids, the access line and request metrics;
- ``tracing`` / ``otel``: OpenTelemetry, loaded only with OTEL_EXPORTER_OTLP_ENDPOINT;
- ``multiprocess``: the metrics directory of ``cellar serve --workers N``;
- ``plugin``: ``Observability``, which wires them into the app.

docs/operations.md describes what an operator sees.
"""
