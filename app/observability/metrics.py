"""Every Prometheus metric Cellar exposes, defined once, and ``GET /metrics`` (SPEC §14).

All metric objects live here so that the list in docs/operations.md has one
source.  Label values are bounded by construction: an HTTP method from a
fixed set, a Litestar route *template* (``/notebooks/{notebook_id}``, never
the id; ``<unmatched>`` when no route matched), a status code, a fixed
outcome word.  No label ever carries user data.

Two modes, chosen by prometheus-client itself from the environment at import:

- **one process** (the default): metrics live in this process's registry;
  the pool figures are read from the asyncpg pool at scrape time by
  ``PoolCollector``, and process metrics come from prometheus-client's
  ``ProcessCollector``.
- **multiprocess** (``PROMETHEUS_MULTIPROC_DIR`` set; ``cellar serve
  --workers N`` sets and cleans it, see ``multiprocess.py``): every worker
  writes its values to files in that directory and any worker answering a
  scrape sums them for the whole group.  A collector in one worker can only
  see its own pool, so each worker writes its pool figures to "livesum"
  gauges once a second (``sample_pool``), and process metrics are read from
  ``/proc`` for every live worker, labelled by ``pid``.

Nothing here runs per request except ``REQUEST_METRICS.observe`` and, per
statement, its ``observe_query``: plain additions in one process
(``LocalMetrics``), prometheus-client's objects in multiprocess mode
(``SharedMetrics``).
"""

from __future__ import annotations

import asyncio
import os
import re
from bisect import bisect_left
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

from litestar import Response, get
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from app.database import QueryCounter, get_engine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterable

    from asyncpg.connection import LoggedQuery
    from litestar import Litestar
    from prometheus_client.metrics_core import Metric

    from app.legacy.report import Counts

# prometheus-client's multiprocess helpers are not annotated; these names give them types.
_disable_created_metrics: Callable[[], None] = disable_created_metrics
_mark_process_dead: Callable[[int, str | None], None] = mark_process_dead
_multiprocess_collector: Callable[[CollectorRegistry, str], object] = MultiProcessCollector

# One series per counter, not two: the `_created` timestamps double the output for no use.
_disable_created_metrics()

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
UNMATCHED_ROUTE = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# 1 ms to 500 ms resolved in 1-2.5-5 steps, then a few slow buckets for outliers.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUERY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# -- HTTP and statements -------------------------------------------------------------------
# Counted per request and per statement: by ``LocalMetrics`` in one process, by these
# prometheus-client objects (registered only then) in multiprocess mode.

_SHARED = REGISTRY if MULTIPROCESS_DIR is not None else None

HTTP_REQUESTS_NAME = "cellar_http_requests"
HTTP_REQUESTS_HELP = "HTTP requests answered, by method, route template and status code."
HTTP_DURATION_NAME = "cellar_http_request_duration_seconds"
HTTP_DURATION_HELP = (
    "Time from the request's arrival to the end of its answer, by method and route template."
)
DB_QUERY_DURATION_NAME = "cellar_db_query_duration_seconds"
DB_QUERY_DURATION_HELP = (
    "Statements sent through the connection pool and their time (_count is the query count)."
)
DB_QUERY_ERRORS_NAME = "cellar_db_query_errors"
DB_QUERY_ERRORS_HELP = (
    "Statements that raised (constraint violations, conflicts, lost connections)."
)

HTTP_REQUESTS = Counter(
    HTTP_REQUESTS_NAME, HTTP_REQUESTS_HELP, ["method", "route", "status"], registry=_SHARED
)
HTTP_DURATION = Histogram(
    HTTP_DURATION_NAME,
    HTTP_DURATION_HELP,
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=_SHARED,
)
DB_QUERY_DURATION = Histogram(
    DB_QUERY_DURATION_NAME, DB_QUERY_DURATION_HELP, buckets=QUERY_BUCKETS, registry=_SHARED
)
DB_QUERY_ERRORS = Counter(DB_QUERY_ERRORS_NAME, DB_QUERY_ERRORS_HELP, registry=_SHARED)

# -- the pool's figures (read at scrape time, see below) ---------------------------------

POOL_OPEN = "cellar_db_pool_connections"
POOL_IN_USE = "cellar_db_pool_connections_in_use"
POOL_MAX = "cellar_db_pool_max_connections"
POOL_HELP = {
    POOL_OPEN: "Connections the asyncpg pool holds open (idle and in use).",
    POOL_IN_USE: "Connections checked out of the pool right now.",
    POOL_MAX: "The pool's maximum size (DATABASE_POOL_MAX_SIZE); in use / max is saturation.",
}

# -- replicas (app.replicas, docs/scaling.md) ----------------------------------------------

DB_READS = Counter(
    "cellar_db_reads",
    "Reads that could go to a replica, by the server that answered (primary or a replica's "
    "host:port/database): each replica's share of reads.",
    ["server"],
)
REPLICA_UP = Gauge(
    "cellar_replica_healthy",
    "1 while the replica is chosen for reads, 0 while it is down or lags too far.",
    ["replica"],
    multiprocess_mode="livemin",
)
REPLICA_LAG = Gauge(
    "cellar_replica_lag_seconds",
    "How old the replica's view is: time since the primary was where it has replayed to.",
    ["replica"],
    multiprocess_mode="livemax",
)


def replica_reads(server: str) -> Counter:
    """The read counter of one server (``primary`` or a replica's name), for its holder."""
    return DB_READS.labels(server)


def replica_gauges(replica: str) -> tuple[Gauge, Gauge]:
    """(healthy, lag) of one replica, for the monitor to set."""
    return REPLICA_UP.labels(replica), REPLICA_LAG.labels(replica)


# -- realtime (SPEC §11; fed by app.realtime, see docs/realtime.md) ---------------------------

REALTIME_CLIENTS = Gauge(
    "cellar_realtime_clients",
    "Realtime clients (WebSocket and SSE) subscribed to a notebook's events.",
    multiprocess_mode="livesum",
)
REALTIME_EVENTS = Counter(
    "cellar_realtime_events_delivered",
    "Notebook events sent to realtime clients (catch-up included).",
)
REALTIME_LAG = Histogram(
    "cellar_realtime_fanout_lag_seconds",
    "Time from an event's commit (its notification's arrival) to its send (fan-out lag).",
    buckets=LAG_BUCKETS,
)

# -- read cache (app.notebooks.read_cache) ----------------------------------------------

READ_CACHE_READS = Counter(
    "cellar_read_cache_reads",
    "Reads of GET /notebooks/{id} (kind notebook) and …/graph (kind graph) by what the read "
    "cache did: hit (kept bytes sent), stale (kept at an older seq: read in full), miss (none "
    "kept: read in full).",
    ["kind", "result"],
)
# Children made once: ``labels()`` costs more than the increment, and a hit is cheap.
_READ_CACHE_COUNTS = {
    (kind, result): READ_CACHE_READS.labels(kind, result)
    for kind in ("notebook", "graph")
    for result in ("hit", "stale", "miss")
}


def count_cached_read(kind: str, result: str) -> None:
    """One read of ``kind`` (notebook, graph) that the read cache answered as ``result``."""
    _READ_CACHE_COUNTS[(kind, result)].inc()


READ_CACHE_SIZE = Gauge(
    "cellar_read_cache_bytes",
    "Bytes the read cache holds (answers plus per-entry overhead), against READ_CACHE_BYTES.",
    multiprocess_mode="livesum",
)

# -- imports ----------------------------------------------------------------------------

IMPORTS = Counter(
    "cellar_imports",
    "Notebooks processed by an import, by source (legacy, ipynb) and outcome.",
    ["source", "outcome"],
)
IMPORT_OUTCOMES = ("imported", "updated", "unchanged", "skipped", "failed")


def count_legacy_import(counts: Counts, mode: str) -> None:
    """Add a finished legacy import's totals (dry runs and verifications write nothing)."""
    if mode != "import":
        return
    for outcome in IMPORT_OUTCOMES:
        IMPORTS.labels("legacy", outcome).inc(getattr(counts, outcome))


def count_ipynb_import(outcome: str, notebooks: int = 1) -> None:
    """Add .ipynb files processed (the route, one by one; ``cellar import-ipynb``, its totals)."""
    if notebooks:
        IMPORTS.labels("ipynb", outcome).inc(notebooks)


# -- per request and per query ------------------------------------------------------------


_float_to_go_string: Callable[[float], str] = floatToGoString


def _le(bounds: tuple[float, ...]) -> tuple[str, ...]:
    """A histogram's ``le`` labels, written as prometheus-client writes them, +Inf last."""
    return tuple(_float_to_go_string(bound) for bound in (*bounds, float("inf")))


LATENCY_LE = _le(LATENCY_BUCKETS)
QUERY_LE = _le(QUERY_BUCKETS)


class _Buckets:
    """One histogram's observations per bucket (the last is +Inf) and their sum."""

    __slots__ = ("counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def cumulative(self, le: tuple[str, ...]) -> list[tuple[str, float]]:
        """(le, count) pairs as the exposition wants them: cumulative, ending with +Inf."""
        total = 0
        pairs: list[tuple[str, float]] = []
        for label, count in zip(le, self.counts, strict=True):
            total += count
            pairs.append((label, total))
        return pairs


class LocalMetrics(Collector):
    """Request and statement figures of one process, counted in plain Python, read at scrape.

    prometheus-client's Counter and Histogram take a lock and pass through a few
    layers per observation: about 2.9 µs a request and 1.5 µs a statement here,
    with the access line 4.5 % of a cached GET's instructions (callgrind,
    bench/observability_cost.py).  Here an observation is a dict lookup, a
    bisection and two additions.  No lock: requests, asyncpg's query logger
    (``call_soon``) and the scrape (``GET /metrics``, on the event loop) all run
    on the event loop's thread.  The exposition is the one prometheus-client
    gives for the same observations (tests/unit/test_local_metrics.py).
    """

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.durations: dict[tuple[str, str], _Buckets] = {}
        self.queries = _Buckets(QUERY_BUCKETS)
        self.query_errors = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        requests = self.requests
        key = (method, route, status)
        requests[key] = requests.get(key, 0) + 1
        duration = self.durations.get((method, route))
        if duration is None:
            duration = self.durations[(method, route)] = _Buckets(LATENCY_BUCKETS)
        duration.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        duration.sum += seconds

    def observe_query(self, query: LoggedQuery) -> None:
        """asyncpg's query logger hands every statement's elapsed time here (via QueryCounter)."""
        queries = self.queries
        queries.counts[bisect_left(QUERY_BUCKETS, query.elapsed)] += 1
        queries.sum += query.elapsed
        if query.exception is not None:
            self.query_errors += 1

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterable[Metric]:
        requests, durations, queries, errors = families = self._families()
        for (method, route, status), count in self.requests.items():
            requests.add_metric([method, route, str(status)], count)
        for (method, route), buckets in self.durations.items():
            durations.add_metric([method, route], buckets.cumulative(LATENCY_LE), buckets.sum)
        queries.add_metric([], self.queries.cumulative(QUERY_LE), self.queries.sum)
        errors.add_metric([], self.query_errors)
        return families

    @staticmethod
    def _families() -> tuple[
        CounterMetricFamily, HistogramMetricFamily, HistogramMetricFamily, CounterMetricFamily
    ]:
        return (
            CounterMetricFamily(
                HTTP_REQUESTS_NAME, HTTP_REQUESTS_HELP, labels=["method", "route", "status"]
            ),
            HistogramMetricFamily(
                HTTP_DURATION_NAME, HTTP_DURATION_HELP, labels=["method", "route"]
            ),
            HistogramMetricFamily(DB_QUERY_DURATION_NAME, DB_QUERY_DURATION_HELP, labels=[]),
            CounterMetricFamily(DB_QUERY_ERRORS_NAME, DB_QUERY_ERRORS_HELP, labels=[]),
        )


class SharedMetrics:
    """The same figures in multiprocess mode: prometheus-client's files, summed over workers."""

    __slots__ = ("_counts", "_durations")

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], Counter] = {}
        self._durations: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        count = self._counts.get((method, route, status))
        if count is None:
            count = HTTP_REQUESTS.labels(method, route, str(status))
            self._counts[(method, route, status)] = count
        count.inc()
        duration = self._durations.get((method, route))
        if duration is None:
            duration = self._durations[(method, route)] = HTTP_DURATION.labels(method, route)
        duration.observe(seconds)

    def observe_query(self, query: LoggedQuery) -> None:
        DB_QUERY_DURATION.observe(query.elapsed)
        if query.exception is not None:
            DB_QUERY_ERRORS.inc()


# This process's request and statement figures, as its mode wants them kept.
REQUEST_METRICS: LocalMetrics | SharedMetrics = (
    LocalMetrics() if MULTIPROCESS_DIR is None else SharedMetrics()
)


def enable_query_metrics() -> None:
    """Feed every statement's time to the metrics (process-wide, as the pool is)."""
    QueryCounter.observe = REQUEST_METRICS.observe_query


# -- the pool -------------------------------------------------------------------------------


def _pool_figures() -> tuple[int, int, int] | None:
    """(open, in use, max) of the process's pool, or None while it is not running."""
    pool = get_engine().pool
    if pool is None:
        return None
    size = pool.get_size()
    return size, size - pool.get_idle_size(), pool.get_max_size()


class PoolCollector(Collector):
    """The pool's figures read at scrape time (one process): exact, and free per request."""

    def describe(self) -> Iterable[Metric]:
        """Names for the registry, without reading the pool (none may exist yet at import)."""
        return [GaugeMetricFamily(name, text) for name, text in POOL_HELP.items()]

    def collect(self) -> Iterable[Metric]:
        figures = _pool_figures()
        for name, value in zip((POOL_OPEN, POOL_IN_USE, POOL_MAX), figures or (), strict=False):
            yield GaugeMetricFamily(name, POOL_HELP[name], value=value)


_POOL_GAUGES = {
    # Not registered: they only exist as files, summed over live workers (multiprocess mode).
    name: Gauge(name, text, multiprocess_mode="livesum", registry=None)
    for name, text in POOL_HELP.items()
}
POOL_SAMPLE_SECONDS = 1.0


@asynccontextmanager
async def sample_pool(_: Litestar) -> AsyncIterator[None]:
    """Multiprocess mode: write this worker's pool figures to its files once a second."""

    async def sample() -> None:
        while True:
            figures = _pool_figures()
            if figures is not None:
                for name, value in zip((POOL_OPEN, POOL_IN_USE, POOL_MAX), figures, strict=True):
                    _POOL_GAUGES[name].set(value)
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        _mark_process_dead(os.getpid(), MULTIPROCESS_DIR)


# -- process metrics of every worker ------------------------------------------------------------

_PID_IN_FILE = re.compile(r"_(\d+)\.db$")


def worker_pids(directory: str) -> set[int]:
    """Pids that wrote into the multiprocess directory (each file is ``<kind>_<pid>.db``)."""
    return {
        int(match.group(1))
        for path in Path(directory).glob("*.db")
        if (match := _PID_IN_FILE.search(path.name)) is not None
    }


class WorkerProcesses(Collector):
    """Process metrics (memory, CPU, files) of every live worker, labelled by pid.

    prometheus-client's process collector only knows its own process; reading
    ``/proc/<pid>`` for each worker found in the directory gives the group.  A
    pid that is gone has its live gauges removed, so a crashed worker's pool
    figures stop counting.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for pid in sorted(worker_pids(self.directory)):
            if not Path(f"/proc/{pid}").exists():
                _mark_process_dead(pid, self.directory)
                continue
            for metric in ProcessCollector(pid=_constant(pid), registry=None).collect():
                family = families.get(metric.name)
                if family is None:
                    kind = CounterMetricFamily if metric.type == "counter" else GaugeMetricFamily
                    family = kind(metric.name, metric.documentation, labels=["pid"])
                    families[metric.name] = family
                for sample in metric.samples:
                    family.add_metric([str(pid)], sample.value)
        yield from families.values()


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


# -- exposition -------------------------------------------------------------------------


def _registry() -> CollectorRegistry:
    """The registry a scrape reads, built once per process."""
    if MULTIPROCESS_DIR is None:
        REGISTRY.register(PoolCollector())
        if isinstance(REQUEST_METRICS, LocalMetrics):  # always, in one process
            REGISTRY.register(REQUEST_METRICS)
        return REGISTRY
    registry = CollectorRegistry()
    _multiprocess_collector(registry, MULTIPROCESS_DIR)
    registry.register(WorkerProcesses(MULTIPROCESS_DIR))
    return registry


SCRAPED = _registry()


@get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    tags=["system"],
    media_type=CONTENT_TYPE_PLAIN_0_0_4,
    sync_to_thread=False,
    cache=False,
)
def metrics_endpoint() -> Response[bytes]:
    """Prometheus metrics of this instance (of every worker with ``--workers N``)."""
    return Response(generate_latest(SCRAPED), media_type=CONTENT_TYPE_PLAIN_0_0_4)
