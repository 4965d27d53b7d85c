"""deploy/: the compose file, Prometheus config and rules and the Grafana dashboard parse, and every
query names a metric a real `telemetry api` exports on /metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

# The rehearsal script's own reading of /metrics, so this test and deploy/try_central.py cannot drift apart.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
from try_central import DEPLOY, METRIC, exported_metrics

from vibekit_telemetry import Telemetry

yaml = pytest.importorskip("yaml", reason="PyYAML reads the compose and Prometheus files (pip install pyyaml)")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name a real server exports (counters with _total, histograms with _bucket ...)."""
    telemetry = Telemetry(db_path=str(tmp_path_factory.mktemp("deploy") / "t.db"))
    server = telemetry.start_api_server(port=0)
    try:
        text = httpx.get(server.url + "/metrics", timeout=10).text
    finally:
        server.stop()
        telemetry.shutdown()
    return exported_metrics(text)


def _yaml(path: str) -> dict[str, object]:
    document = yaml.safe_load((DEPLOY / path).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_compose_runs_two_replicas_on_postgres_with_redis_prometheus_and_grafana() -> None:
    services = _yaml("docker-compose.yml")["services"]
    assert isinstance(services, dict)
    assert {"postgres", "redis", "telemetry-1", "telemetry-2", "prometheus", "grafana"} <= set(services)
    for name in ("telemetry-1", "telemetry-2"):
        env = services[name]["environment"]
        assert env["TELEMETRY_DATABASE_URL"].startswith("postgresql://")
        assert env["TELEMETRY_REDIS_URL"].startswith("redis://")
    for volume in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = volume.split(":", 1)[0]
        assert (DEPLOY / source).exists(), f"compose mounts {source}, which deploy/ lacks"


def test_prometheus_scrapes_every_replica() -> None:
    config = _yaml("prometheus/prometheus.yml")
    [job] = config["scrape_configs"]  # type: ignore[index]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["telemetry-1:8000", "telemetry-2:8000"]


def test_every_dashboard_and_alert_query_names_an_exported_metric(exported: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/telemetry.json").read_text(encoding="utf-8"))
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    rules = _yaml("prometheus/alerts.yml")["groups"][0]["rules"]  # type: ignore[index]
    queries += [rule["expr"] for rule in rules]
    assert len(queries) >= 15
    for query in queries:
        for name in METRIC.findall(query):
            assert name in exported, f"{name} (in {query!r}) is not on /metrics"


# The analytics families on /metrics (server/analytics_metrics.py) a user looks for on the dashboard.
ANALYTICS: frozenset[str] = frozenset({
    "telemetry_analytics_events_per_minute", "telemetry_analytics_error_rate_percent",
    "telemetry_analytics_latency_ms", "telemetry_analytics_active_sessions",
    "telemetry_analytics_anomalies_detected_total", "telemetry_analytics_alerts_fired_total",
    "telemetry_analytics_cost_usd_total", "telemetry_analytics_tokens_total"})


def test_dashboard_has_a_panel_for_each_analytics_metric(exported: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/telemetry.json").read_text(encoding="utf-8"))
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert exported >= ANALYTICS, f"not on /metrics: {sorted(ANALYTICS - exported)}"
    shown = {name for panel in panels for t in panel["targets"] for name in METRIC.findall(t["expr"])}
    assert shown >= ANALYTICS, f"no panel shows {sorted(ANALYTICS - shown)}"
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"]), "panel ids repeat"
    # Panels may not overlap on Grafana's 24-column grid (an overlapping panel is pushed down silently).
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
