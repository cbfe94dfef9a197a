"""SPEC §14 in the session's app: request ids, GET /metrics, and what a request logs.

Metrics are process-wide (one registry per process), so every check compares a
value before and after this test's own requests, on series no other test
touches, or checks a property that holds whatever ran before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.exceptions import HTTPException
from prometheus_client.parser import text_string_to_metric_families

from app.database import QueryCounter
from app.observability.plugin import Observability
from tests.helpers import new_user_headers

if TYPE_CHECKING:
    from prometheus_client.samples import Sample

    from app.settings import Settings

ACCESS = "cellar.access"


# -- helpers -------------------------------------------------------------------------------


async def scrape(client: httpx.AsyncClient) -> list[Sample]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sample's value, 0 when the series does not exist yet."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) <= 1, found
    return found[0] if found else 0.0


def requests_total(samples: list[Sample], method: str, route: str, status: int) -> float:
    return value(
        samples, "cellar_http_requests_total", method=method, route=route, status=str(status)
    )


async def create_notebook(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await client.post("/notebooks", json={"name": "observed"}, headers=headers)
    assert response.status_code == 201, response.text
    notebook_id: str = response.json()["notebook_id"]
    return notebook_id


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> None:
    """Access lines on (as ``--log-level info`` does); they are written to stdout."""
    caplog.set_level(logging.INFO, logger=ACCESS)


def access_lines(capsys: pytest.CaptureFixture[str], request_id: str) -> list[dict[str, Any]]:
    """The JSON access lines this test wrote for ``request_id``."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    return [e for e in lines if e["logger"] == ACCESS and e["request_id"] == request_id]


# -- request ids ---------------------------------------------------------------------------


async def test_a_request_id_is_always_returned(client: httpx.AsyncClient) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "client-chose-this-1"})
    assert given.headers["x-request-id"] == "client-chose-this-1"

    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    again = await client.get("/health")
    assert again.headers["x-request-id"] != generated.headers["x-request-id"]

    unmatched = await client.get(f"/no/such/{uuid.uuid4().hex}")
    assert unmatched.status_code == 404
    assert len(unmatched.headers["x-request-id"]) == 32


@pytest.mark.parametrize("bad", ["x" * 10_240, "evil\x01id", "a b"])
async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad})
    returned = response.headers["x-request-id"]
    assert returned != bad
    assert len(returned) == 32 and int(returned, 16) >= 0


@pytest.mark.usefixtures("access")
async def test_the_request_id_is_on_the_access_line(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = await new_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    request_id = f"follow-{uuid.uuid4().hex[:8]}"
    response = await client.get(
        f"/notebooks/{notebook_id}", headers={**headers, "X-Request-ID": request_id}
    )
    assert response.status_code == 200
    [line] = access_lines(capsys, request_id)
    assert line["level"] == "info"
    assert line["time"].endswith("Z")
    assert line["message"] == f"GET /notebooks/{notebook_id} 200"
    assert line["method"] == "GET"
    assert line["route"] == "/notebooks/{notebook_id}"
    assert line["path"] == f"/notebooks/{notebook_id}"
    assert line["status"] == 200
    assert line["notebook_id"] == notebook_id
    assert uuid.UUID(line["user_id"])
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


@pytest.mark.usefixtures("access")
async def test_the_admin_access_line_has_the_full_path(
    client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    request_id = f"admin-{uuid.uuid4().hex[:8]}"
    await client.get("/admin/api/tables/", headers={"X-Request-ID": request_id})
    [line] = access_lines(capsys, request_id)
    assert line["path"] == "/admin/api/tables/"
    assert line["route"] == "/admin"


async def test_no_access_lines_below_the_log_level(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.WARNING, logger=ACCESS)
    request_id = f"quiet-{uuid.uuid4().hex[:8]}"
    await client.get("/health", headers={"X-Request-ID": request_id})
    assert access_lines(capsys, request_id) == []


# -- logs: client errors are not server errors ---------------------------------------------------


async def test_a_conflict_is_one_info_line_without_a_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = await new_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    request_id = f"conflict-{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    capsys.readouterr()
    response = await client.put(
        f"/notebooks/{notebook_id}/name",
        json={"name": "stale", "expected_revision": 41},
        headers={**headers, "X-Request-ID": request_id},
    )
    assert response.status_code == 409, response.text
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line]
    assert [line["request_id"] for line in lines] == [request_id]  # one line, this one
    [line] = lines
    assert line["level"] == "info"
    assert line["status"] == 409
    assert line["error"] == "RevisionConflict"
    assert "exception" not in line
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in output + caplog.text


@get("/boom", sync_to_thread=False)
def boom() -> None:
    password = "local-secret-in-the-failing-frame"  # a traceback must not show locals
    raise RuntimeError(f"forced failure ({len(password)})")


@get("/teapot", sync_to_thread=False)
def teapot() -> None:
    raise HTTPException(status_code=418, detail="short and stout")


@pytest.fixture(scope="module")
def failing_app(settings: Settings) -> Litestar:
    """Cellar's observability wiring on an app whose route raises (no database needed)."""
    import msgspec

    observability = Observability(msgspec.structs.replace(settings, metrics_enabled=False), "t")
    app = Litestar(
        route_handlers=[boom, teapot], plugins=observability.plugins, logging_config=None
    )
    return observability.instrument(app)


async def test_a_server_error_is_one_error_line_with_its_traceback(
    failing_app: Litestar, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    capsys.readouterr()
    transport = httpx.ASGITransport(app=failing_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/boom", headers={"X-Request-ID": "forced-500"})
        client_error = await http.get("/teapot", headers={"X-Request-ID": "client-418"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "forced-500"
    assert "forced failure" not in response.text  # details stay in the log, not the answer
    output = capsys.readouterr().out
    lines = [json.loads(line) for line in output.splitlines() if line]
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1, lines
    [line] = errors
    assert line["request_id"] == "forced-500"
    assert line["status"] == 500
    assert line["error"] == "RuntimeError"
    assert "Traceback (most recent call last)" in line["exception"]
    assert "RuntimeError: forced failure" in line["exception"]
    assert "local-secret-in-the-failing-frame" not in output
    # Nothing else logged it again (Litestar's own exception logging is off).
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

    assert client_error.status_code == 418
    [teapot] = [line for line in lines if line["request_id"] == "client-418"]
    assert teapot["level"] == "info"
    assert "exception" not in teapot


# -- metrics ---------------------------------------------------------------------------------


async def test_routes_are_labelled_by_template_never_by_id(client: httpx.AsyncClient) -> None:
    headers = await new_user_headers(client)
    notebook_id = await create_notebook(client, headers)
    missing = f"missing-{uuid.uuid4().hex}"
    unrouted = f"nothing-here-{uuid.uuid4().hex}"
    before = await scrape(client)

    for _ in range(3):
        assert (await client.get(f"/notebooks/{notebook_id}", headers=headers)).status_code == 200
    assert (await client.get(f"/notebooks/{missing}", headers=headers)).status_code == 404
    assert (await client.get(f"/{unrouted}/x")).status_code == 404
    assert (await client.request("BREW", "/health")).status_code in (404, 405)

    after = await scrape(client)
    template = "/notebooks/{notebook_id}"
    assert (
        requests_total(after, "GET", template, 200) - requests_total(before, "GET", template, 200)
        == 3
    )
    assert (
        requests_total(after, "GET", template, 404) - requests_total(before, "GET", template, 404)
        == 1
    )
    assert (
        requests_total(after, "GET", "<unmatched>", 404)
        - requests_total(before, "GET", "<unmatched>", 404)
        >= 1
    )
    labels = {v for s in after for v in s.labels.values()}
    for user_data in (notebook_id, missing, unrouted, "BREW"):
        assert not any(user_data in label for label in labels), user_data
    routes = {s.labels["route"] for s in after if "route" in s.labels}
    assert all(r == "<unmatched>" or r.startswith("/") for r in routes), routes
    assert "OTHER" in {s.labels.get("method") for s in after}


async def test_latency_buckets_resolve_one_to_five_hundred_ms(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    samples = await scrape(client)
    bounds = {
        float(s.labels["le"])
        for s in samples
        if s.name == "cellar_http_request_duration_seconds_bucket"
        and s.labels["route"] == "/health"
    }
    assert {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5} <= bounds


async def test_query_count_and_time_match_the_statements_sent(client: httpx.AsyncClient) -> None:
    headers = await new_user_headers(client)
    before = await scrape(client)
    await asyncio.sleep(0)  # asyncpg hands query records over with call_soon
    counted = QueryCounter.total
    await client.get("/notebooks", headers=headers)
    await asyncio.sleep(0)
    sent = QueryCounter.total - counted
    after = await scrape(client)
    delta = value(after, "cellar_db_query_duration_seconds_count") - value(
        before, "cellar_db_query_duration_seconds_count"
    )
    assert sent >= 1
    assert delta == sent
    assert value(after, "cellar_db_query_duration_seconds_sum") > value(
        before, "cellar_db_query_duration_seconds_sum"
    )


async def test_pool_figures_are_read_from_the_pool(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    samples = await scrape(client)
    size = value(samples, "cellar_db_pool_connections")
    in_use = value(samples, "cellar_db_pool_connections_in_use")
    maximum = value(samples, "cellar_db_pool_max_connections")
    assert maximum == settings.database_pool_max_size
    assert 1 <= size <= maximum
    assert 0 <= in_use <= size


async def test_every_metric_family_is_exposed(client: httpx.AsyncClient) -> None:
    names = {s.name for s in await scrape(client)}
    for name in (
        "cellar_http_requests_total",
        "cellar_http_request_duration_seconds_bucket",
        "cellar_db_query_duration_seconds_count",
        "cellar_db_query_errors_total",
        "cellar_db_pool_connections",
        "cellar_db_pool_connections_in_use",
        "cellar_db_pool_max_connections",
        "cellar_realtime_clients",
        "cellar_realtime_events_delivered_total",
        "cellar_realtime_fanout_lag_seconds_count",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ):
        assert name in names, name
    assert not any(n.endswith("_created") for n in names)


async def test_sixteen_concurrent_scrapes_stay_correct(client: httpx.AsyncClient) -> None:
    async def one() -> dict[str, Any]:
        samples = await scrape(client)
        return {
            "health": requests_total(samples, "GET", "/health", 200),
            "families": {s.name for s in samples},
        }

    await client.get("/health")
    results = await asyncio.gather(*(one() for _ in range(16)))
    families = results[0]["families"]
    assert all(r["families"] == families for r in results)
    assert all(r["health"] >= 1 for r in results)
    after = await scrape(client)
    # Each of the 16 scrapes was itself counted, once.
    assert requests_total(after, "GET", "/metrics", 200) >= 17
