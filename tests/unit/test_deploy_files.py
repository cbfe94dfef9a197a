"""deploy/: the Prometheus alert rules and scrape configuration, the Grafana dashboard.

No promtool or Grafana here: the files are parsed, their structure checked, and every
metric they name is checked against the metrics the app really exposes, so renaming a
metric without updating an alert or a panel fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from app.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
METRIC_NAME = re.compile(r"\b((?:cellar|process)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}


def exposed_names() -> set[str]:
    """Every sample name GET /metrics can contain (one process or several)."""
    names: set[str] = set(metrics.POOL_HELP)
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    names.update(
        "process_" + name
        for name in (
            "resident_memory_bytes",
            "virtual_memory_bytes",
            "cpu_seconds_total",
            "open_fds",
            "max_fds",
            "start_time_seconds",
        )
    )
    return names


def referenced(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def test_exposed_names_are_what_the_code_defines() -> None:
    names = exposed_names()
    assert "cellar_http_requests_total" in names
    assert "cellar_http_request_duration_seconds_bucket" in names
    assert "cellar_db_pool_connections_in_use" in names
    assert "cellar_imports_total" in names
    assert "cellar_http_requests" not in names  # the bare counter name is never a sample


# -- alerts ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    data = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    [group] = data["groups"]
    assert group["name"] == "cellar"
    return {rule["alert"]: rule for rule in group["rules"]}


def test_three_alerts_error_rate_latency_and_pool(rules: dict[str, dict[str, Any]]) -> None:
    assert set(rules) == {
        "CellarHighErrorRate",
        "CellarHighLatencyP99",
        "CellarDatabasePoolSaturated",
    }
    assert 'status=~"5.."' in rules["CellarHighErrorRate"]["expr"]
    assert re.search(r"histogram_quantile\(\s*0\.99,", rules["CellarHighLatencyP99"]["expr"])
    pool = rules["CellarDatabasePoolSaturated"]["expr"]
    assert "cellar_db_pool_connections_in_use" in pool
    assert "cellar_db_pool_max_connections" in pool


@pytest.mark.parametrize(
    "name", ["CellarHighErrorRate", "CellarHighLatencyP99", "CellarDatabasePoolSaturated"]
)
def test_each_alert_is_complete_and_names_real_metrics(
    rules: dict[str, dict[str, Any]], name: str
) -> None:
    rule = rules[name]
    assert re.fullmatch(r"\d+m", rule["for"])
    assert rule["labels"]["severity"] in {"page", "warn"}
    assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    expr = rule["expr"]
    assert expr.count("(") == expr.count(")")
    used = referenced(expr)
    assert used, expr
    assert used <= exposed_names(), used - exposed_names()


def test_prometheus_scrapes_the_app_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["app:8000"]}]


# -- Grafana --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / "grafana" / "cellar.json").read_text())
    return data


def test_dashboard_has_the_main_panels(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "cellar"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    titles = {p["title"] for p in panels}
    for title in (
        "Requests per second by route",
        "Server errors (5xx) ratio",
        "Latency p50 / p95 / p99",
        "Connection pool",
        "Queries per second",
        "Realtime clients",
        "Imported notebooks",
        "Resident memory",
    ):
        assert title in titles, title
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource",
        "datasource",
        "prometheus",
    )


def test_every_panel_queries_real_metrics_through_the_chosen_source(
    dashboard: dict[str, Any],
) -> None:
    exposed = exposed_names()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = referenced(target["expr"])
            assert used and used <= exposed, (panel["title"], used - exposed)
            assert target["expr"].count("(") == target["expr"].count(")")


def test_grid_positions_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_grafana_provisioning_points_at_prometheus_and_the_dashboard() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    [source] = sources["datasources"]
    assert (source["type"], source["url"]) == ("prometheus", "http://prometheus:9090")
    boards = yaml.safe_load((provisioning / "dashboards" / "cellar.yml").read_text())
    [provider] = boards["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
