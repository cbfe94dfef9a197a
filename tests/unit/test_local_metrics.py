"""``LocalMetrics`` counts in plain Python what prometheus-client's objects would count."""

from __future__ import annotations

from asyncpg.connection import LoggedQuery
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from app.observability.metrics import (
    DB_QUERY_DURATION_HELP,
    DB_QUERY_DURATION_NAME,
    DB_QUERY_ERRORS_HELP,
    DB_QUERY_ERRORS_NAME,
    HTTP_DURATION_HELP,
    HTTP_DURATION_NAME,
    HTTP_REQUESTS_HELP,
    HTTP_REQUESTS_NAME,
    LATENCY_BUCKETS,
    QUERY_BUCKETS,
    LocalMetrics,
)

# Bounds exactly, just above them, zero, beyond the last bound; routes and statuses mixed.
REQUESTS = [
    ("GET", "/notebooks/{notebook_id}", 200, 0.001),
    ("GET", "/notebooks/{notebook_id}", 200, 0.0010001),
    ("GET", "/notebooks/{notebook_id}", 304, 0.0),
    ("PUT", "/notebooks/{notebook_id}/cells/{cell_id}", 200, 0.0123),
    ("GET", "/notebooks/{notebook_id}", 200, 0.5),
    ("GET", "<unmatched>", 404, 42.0),
    ("PUT", "/notebooks/{notebook_id}/cells/{cell_id}", 409, 10.0),
    ("GET", "/notebooks/{notebook_id}", 200, 0.25),
]
STATEMENTS = [(0.0004, False), (0.0005, False), (0.002, True), (3.0, False), (0.0, True)]


def query(elapsed: float, failed: bool) -> LoggedQuery:
    return LoggedQuery(
        "SELECT 1", (), None, elapsed, RuntimeError("x") if failed else None, None, None
    )


def test_the_exposition_is_prometheus_clients_own_for_the_same_observations() -> None:
    expected = CollectorRegistry()
    requests = Counter(
        HTTP_REQUESTS_NAME, HTTP_REQUESTS_HELP, ["method", "route", "status"], registry=expected
    )
    durations = Histogram(
        HTTP_DURATION_NAME,
        HTTP_DURATION_HELP,
        ["method", "route"],
        buckets=LATENCY_BUCKETS,
        registry=expected,
    )
    statements = Histogram(
        DB_QUERY_DURATION_NAME, DB_QUERY_DURATION_HELP, buckets=QUERY_BUCKETS, registry=expected
    )
    errors = Counter(DB_QUERY_ERRORS_NAME, DB_QUERY_ERRORS_HELP, registry=expected)
    local = LocalMetrics()
    ours = CollectorRegistry()
    ours.register(local)
    empty = generate_latest(ours).decode()
    assert empty == generate_latest(expected).decode()

    for method, route, status, seconds in REQUESTS:
        local.observe(method, route, status, seconds)
        requests.labels(method, route, str(status)).inc()
        durations.labels(method, route).observe(seconds)
    for elapsed, failed in STATEMENTS:
        local.observe_query(query(elapsed, failed))
        statements.observe(elapsed)
        if failed:
            errors.inc()

    text = generate_latest(ours).decode()
    assert text == generate_latest(expected).decode()
    assert text != empty
    assert 'cellar_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert "cellar_db_query_errors_total 2.0" in text
