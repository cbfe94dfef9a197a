"""SPEC §14 on real ``cellar serve`` processes: JSON logs, secrets, workers' metrics, tracing.

Tried as an operator would: start with ``LOG_FORMAT=json`` and parse every
line; follow one request id from the client to its log line; grep the logs of
a session that used a password, a token and a connection string; scrape a
group of two workers and check that their counts add up; point the OTLP
exporter at a collector (a small OTLP/HTTP receiver here) and read the spans.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import cellar_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

PASSWORD = "pw-Obs3rvability-Secret"
CONNECTION_PASSWORD = "conn-Pa55-do-not-log"
CONNECTION_STRING = f"postgresql://analyst:{CONNECTION_PASSWORD}@warehouse.example:5432/sales"
ACCESS_FIELDS = {"time", "level", "message", "request_id", "method", "route", "status"}
ACCESS_FIELDS |= {"duration_ms", "path", "logger"}


def register_and_login(http: httpx.Client) -> tuple[str, str]:
    email = f"obs-{uuid.uuid4().hex[:12]}@example.com"
    response = http.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    response = http.post("/auth/token", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return email, response.json()["access_token"]


# -- logs ----------------------------------------------------------------------------------------


def test_json_logs_follow_a_request_and_never_show_a_secret(service_env: dict[str, str]) -> None:
    env = {**service_env, "LOG_FORMAT": "json"}
    follow = f"follow-{uuid.uuid4().hex[:10]}"
    options = ["--access-log", "--log-level", "info"]
    with (
        cellar_server(env, options=options) as server,
        httpx.Client(base_url=server.url, timeout=10.0) as http,
    ):
        email, token = register_and_login(http)
        auth = {"Authorization": f"Bearer {token}"}
        wrong = http.post("/auth/token", json={"email": email, "password": PASSWORD + "x"})
        assert wrong.status_code == 401
        created = http.post("/notebooks", json={"name": "secrets"}, headers=auth)
        notebook_id = created.json()["notebook_id"]
        stored = http.put(
            f"/notebooks/{notebook_id}/db",
            json={"connection_string": CONNECTION_STRING, "expected_revision": 0},
            headers=auth,
        )
        assert stored.status_code == 200, stored.text
        conflict = http.put(
            f"/notebooks/{notebook_id}/db",
            json={"connection_string": CONNECTION_STRING, "expected_revision": 0},
            headers=auth,
        )
        assert conflict.status_code == 409
        # A token where it does not belong: in the query string and a malformed header.
        assert http.get(f"/notebooks?access_token={token}").status_code == 401
        assert http.get("/notebooks", headers={"Authorization": token}).status_code == 401
        headers = {**auth, "X-Request-ID": follow}
        followed = http.get(f"/notebooks/{notebook_id}", headers=headers)
        assert followed.status_code == 200
        assert followed.headers["x-request-id"] == follow
        user_id = http.get("/me", headers=auth).json()["id"]
    output = server.output()

    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) >= 10, output
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}\n{output[-3000:]}")
    assert all({"time", "level", "message"} <= set(event) for event in events)
    assert any(e.get("logger") == "uvicorn.error" for e in events)  # uvicorn's lines too

    access = [e for e in events if e.get("logger") == "cellar.access"]
    assert all(set(e) >= ACCESS_FIELDS for e in access), access
    assert [e["status"] for e in access if e["route"] == "/notebooks/{notebook_id}/db"] == [
        200,
        409,
    ]
    assert all(e["level"] == "info" for e in access)  # 401, 409: client errors, no ERROR
    assert not any("exception" in e for e in events)
    [line] = [e for e in events if e.get("request_id") == follow]
    assert line["route"] == "/notebooks/{notebook_id}"
    assert line["path"] == f"/notebooks/{notebook_id}"
    assert line["status"] == 200
    assert line["user_id"] == user_id
    assert line["notebook_id"] == notebook_id
    assert line["message"] == f"GET /notebooks/{notebook_id} 200"

    secrets = {
        "password": PASSWORD,
        "token": token,
        "token signature": token.rsplit(".", 1)[-1],
        "connection string": CONNECTION_STRING,
        "connection password": CONNECTION_PASSWORD,
        "DATABASE_URL": env["DATABASE_URL"],
        "APP_SECRET_KEY": env["APP_SECRET_KEY"],
        "ENCRYPTION_KEY": env["ENCRYPTION_KEY"],
    }
    for what, secret in secrets.items():
        assert secret not in output, f"the {what} reached the logs"


# -- metrics of a group of workers --------------------------------------------------------------

SEED_STALE = textwrap.dedent(
    """
    from app.observability.metrics import HTTP_REQUESTS
    HTTP_REQUESTS.labels("GET", "/notebooks", "401").inc(1000)
    """
)


def route_count(samples: list[Any]) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == "cellar_http_requests_total"
        and s.labels == {"method": "GET", "route": "/notebooks", "status": "401"}
    )


def per_worker(directory: Path) -> dict[int, float]:
    """Each worker's own count, read from its file (``counter_<pid>.db``)."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        samples = [s for m in MultiProcessCollector.merge([str(path)]) for s in m.samples]
        counts[int(path.stem.split("_")[1])] = route_count(samples)
    return counts


def test_two_workers_add_up_in_one_scrape(service_env: dict[str, str], tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**service_env, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    # What a previous run left behind: `cellar serve` must empty the directory first.
    seeded = subprocess.run(
        [sys.executable, "-c", SEED_STALE], env=env, capture_output=True, text=True, timeout=60
    )
    assert seeded.returncode == 0, seeded.stderr
    assert sum(per_worker(directory).values()) == 1000

    sent = 0
    with cellar_server(env, workers=2) as server:

        def one(_: int) -> int:
            # A fresh connection each time, so the kernel spreads them over both workers.
            with httpx.Client(base_url=server.url, timeout=10.0) as http:
                return http.get("/notebooks").status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            deadline = time.monotonic() + 60
            while True:
                codes = list(pool.map(one, range(40)))
                assert codes == [401] * 40
                sent += 40
                counts = per_worker(directory)
                if len([c for c in counts.values() if c > 0]) >= 2:
                    break
                assert time.monotonic() < deadline and sent < 2000, (sent, counts)

        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            time.sleep(1.5)  # the pool sampler writes once a second
            scrapes = []
            for _ in range(6):  # answered by either worker: every one sees the group
                text = http.get("/metrics").text
                scrapes.append([s for f in text_string_to_metric_families(text) for s in f.samples])
        counts = per_worker(directory)

    workers = [pid for pid, count in counts.items() if count > 0]
    assert len(workers) == 2, counts
    assert sum(counts.values()) == sent
    for samples in scrapes:
        assert route_count(samples) == sent
        pids = {s.labels["pid"] for s in samples if s.name == "process_resident_memory_bytes"}
        assert pids == {str(pid) for pid in workers}
        pool_max = [s.value for s in samples if s.name == "cellar_db_pool_max_connections"]
        # Each of the two workers has its own pool of DATABASE_POOL_MAX_SIZE connections.
        assert pool_max == [2 * int(env.get("DATABASE_POOL_MAX_SIZE", "10"))]


# -- tracing ------------------------------------------------------------------------------------


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: what a collector would get, decoded."""

    spans: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        found = []
        for resource in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    found.append(
                        {
                            "name": span.name,
                            "scope": scope.scope.name,
                            "trace_id": span.trace_id.hex(),
                            "service": service.get("service.name"),
                            "attributes": {a.key: a.value for a in span.attributes},
                        }
                    )
        with self.lock:
            self.spans.extend(found)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Collector.spans.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_requests_and_queries_become_spans(service_env: dict[str, str], collector: str) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    env = {
        **service_env,
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    with cellar_server(env) as server, httpx.Client(base_url=server.url, timeout=10.0) as http:
        _, token = register_and_login(http)
        auth = {"Authorization": f"Bearer {token}"}
        notebook_id = http.post("/notebooks", json={}, headers=auth).json()["notebook_id"]
        assert http.get(f"/notebooks/{notebook_id}", headers=auth).status_code == 200
        deadline = time.monotonic() + 20
        while not any(s["name"] == "GET /notebooks/{notebook_id}" for s in Collector.spans):
            assert time.monotonic() < deadline, [s["name"] for s in Collector.spans]
            time.sleep(0.2)

    spans = list(Collector.spans)
    [request] = [s for s in spans if s["name"] == "GET /notebooks/{notebook_id}"]
    assert request["service"] == "cellar"
    assert request["attributes"]["http.route"].string_value == "/notebooks/{notebook_id}"
    queries = [s for s in spans if s["scope"].endswith("asyncpg")]
    assert queries, [(s["name"], s["scope"]) for s in spans]
    assert any(q["trace_id"] == request["trace_id"] for q in queries)
    assert not any(notebook_id in s["name"] for s in spans)
    # Statement parameters are not recorded: the token's user id or stored values stay out.
    recorded = {key for s in queries for key in s["attributes"]}
    assert not any(key.startswith("db.statement.parameters") for key in recorded), recorded
