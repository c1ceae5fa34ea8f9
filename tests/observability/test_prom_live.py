"""A real Prometheus (Debian's, as a plain process) scraping what the registry exposes.

- With a stand-in: a tiny exposition server written here (``StandInExposition``), shaped like the
  registry's ``/metrics`` (the agreed names, ``le="1.0"`` as the OpenTelemetry exporter writes
  it), not the registry. It proves the scrape configuration shape, that this project's rules load
  into a real Prometheus and fire (a canary counter that moves), and that every dashboard query
  runs against real data. Fast: part of the default run.
- With the registry (long): a served reference registry with telemetry on, scraped every second
  during a short load run with a harvester and a snooper, then queried for the metrics the rules
  and dashboards use; `promtool check metrics` on its live ``/metrics``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from security_tests import local
from tests.observability.prom_tools import DASHBOARDS, Prometheus, prometheus, tool

REGISTRY = "contactpoint-registry"
LOAD = "contactpoint-load"
ROUTES = (("/api/v1/children/search", "POST"), ("/api/v1/children/{child_id}", "GET"))
BOUNDS = ("0.25", "1.0", "+Inf")


class StandInExposition:
    """A stand-in for the registry's /metrics: the agreed series in the text format, with the
    canary counter moving from 0 after ``canary_after`` scrapes. Not the registry."""

    def __init__(self, canary_after: int = 3) -> None:
        self.scrapes = 0
        self.canary_after = canary_after

    def text(self) -> str:
        self.scrapes += 1
        n = self.scrapes
        lines = [
            "# HELP http_server_request_duration_seconds Duration of HTTP server requests.",
            "# TYPE http_server_request_duration_seconds histogram",
        ]
        for route, method in ROUTES:
            labels = (
                f'http_route="{route}",http_request_method="{method}",'
                'http_response_status_code="200"'
            )
            for bound, share in zip(BOUNDS, (0.9, 0.995, 1.0), strict=True):
                count = int(100 * n * share)
                lines.append(
                    f'http_server_request_duration_seconds_bucket{{{labels},le="{bound}"}} {count}'
                )
            lines.append(f"http_server_request_duration_seconds_count{{{labels}}} {100 * n}")
            lines.append(f"http_server_request_duration_seconds_sum{{{labels}}} {12.5 * n}")
        canary = 0 if n <= self.canary_after else n - self.canary_after
        lines += [
            "# HELP contactpoint_alerts_raised_total Alerts raised.",
            "# TYPE contactpoint_alerts_raised_total counter",
            'contactpoint_alerts_raised_total{kind="canary_access",severity="critical"} '
            f"{canary}",
            'contactpoint_alerts_raised_total{kind="snooping",severity="medium"} 4',
            "# HELP contactpoint_alerts_open Alerts open.",
            "# TYPE contactpoint_alerts_open gauge",
            'contactpoint_alerts_open{kind="snooping",severity="medium"} 2',
            "# HELP contactpoint_audit_events_total Audit events.",
            "# TYPE contactpoint_audit_events_total counter",
            f'contactpoint_audit_events_total{{tag="record.view"}} {100 * n}',
            "# HELP contactpoint_denials_total Denials.",
            "# TYPE contactpoint_denials_total counter",
            f'contactpoint_denials_total{{code="not_found"}} {n}',
            "# HELP contactpoint_suspensions_total Suspensions.",
            "# TYPE contactpoint_suspensions_total counter",
            "contactpoint_suspensions_total 1",
            "# HELP contactpoint_limit_refusals_total Limit refusals.",
            "# TYPE contactpoint_limit_refusals_total counter",
            'contactpoint_limit_refusals_total{rule="harvesting"} 3',
            "# HELP contactpoint_exports Exports by state.",
            "# TYPE contactpoint_exports gauge",
            'contactpoint_exports{state="ready"} 1',
            "# HELP contactpoint_audit_unsealed Unsealed audit events.",
            "# TYPE contactpoint_audit_unsealed gauge",
            "contactpoint_audit_unsealed 0",
            "# HELP contactpoint_audit_checkpoint_age_seconds Age of the newest checkpoint.",
            "# TYPE contactpoint_audit_checkpoint_age_seconds gauge",
            "contactpoint_audit_checkpoint_age_seconds 0.5",
            "# HELP contactpoint_dependency_refusals_total Dependency refusals.",
            "# TYPE contactpoint_dependency_refusals_total counter",
            'contactpoint_dependency_refusals_total{dependency="database"} 0',
        ]
        return "\n".join(lines) + "\n"


@pytest.fixture
def stand_in() -> Iterator[tuple[str, StandInExposition]]:
    exposition = StandInExposition()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition.text().encode() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", exposition
    finally:
        server.shutdown()
        server.server_close()


def _dashboard_queries() -> list[str]:
    return [
        target["expr"]
        for path in DASHBOARDS
        for panel in json.loads(path.read_text())["panels"]
        for target in panel["targets"]
    ]


def test_promtool_accepts_the_stand_in_exposition(
    stand_in: tuple[str, StandInExposition],
) -> None:
    _, exposition = stand_in
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition.text(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_stand_in_and_fires_the_canary_rule(
    stand_in: tuple[str, StandInExposition], tmp_path: Path
) -> None:
    target, exposition = stand_in
    with prometheus(tmp_path / "prometheus", {REGISTRY: [target]}, rules=True) as prom:
        prom.wait_for('up{job="contactpoint-registry"} == 1')
        # The canary counter moves after three scrapes: the rule fires in a real Prometheus.
        firing = prom.wait_for('ALERTS{alertname="ContactPointCanaryAccessed",alertstate="firing"}')
        assert firing[0]["metric"]["team"] == "la-management"
        assert exposition.scrapes > exposition.canary_after
        # The SLO's recording rules see the 1 s bucket as the exporter writes it (le="1.0").
        slow = prom.wait_for("contactpoint:http_slo_slow_ratio:rate5m")
        assert {s["metric"]["http_route"] for s in slow} == {r for r, _ in ROUTES}
        assert all(float(s["value"][1]) == pytest.approx(0.005, abs=0.002) for s in slow)
        # No other alert fires from the stand-in's healthy figures (those with `for` need time).
        alerts = prom.query('ALERTS{alertstate="firing"}')
        assert {a["metric"]["alertname"] for a in alerts} == {"ContactPointCanaryAccessed"}
        # Every dashboard query runs against real data without error, and the registry panels
        # show something.
        empty = [expr for expr in _dashboard_queries() if not prom.query(expr)]
        assert [e for e in empty if "http_server" in e and "5.." not in e] == []


def _login_one_request(url: str) -> None:
    """A request the registry refuses (no session), so at least one 4xx route is recorded."""
    httpx.get(f"{url}/api/v1/children/some-id", timeout=10)


@pytest.mark.long
def test_prometheus_scrapes_a_served_registry_during_a_load_run(
    load_template: Path, tmp_path: Path
) -> None:
    from loadtests.cli import reference_settings

    settings = {
        **reference_settings(time.time()),
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "contactpoint-registry",
    }
    with local.serve(load_template, tmp_path / "registry", settings=settings) as registry:
        page = httpx.get(f"{registry.url}/metrics", timeout=10)
        assert page.status_code == 200, "the registry serves no /metrics (telemetry on)"
        target = registry.url.removeprefix("http://")
        generator = local.free_port()
        jobs = {REGISTRY: [target], LOAD: [f"127.0.0.1:{generator}"]}
        with prometheus(tmp_path / "prometheus", jobs, rules=True) as prom:
            prom.wait_for('up{job="contactpoint-registry"} == 1')
            _login_one_request(registry.url)
            load = subprocess.run(
                [
                    sys.executable, "-m", "contactpoint.cli", "load",
                    "--target", registry.url,
                    "--personas", str(load_template / "load-personas.json"),
                    "--profile", "steady", "--rate", "1", "--think-scale", "0.2",
                    "--duration", "20", "--adversaries", "2", "--out", str(tmp_path / "out"),
                ],
                env={
                    **os.environ,
                    "OTEL_METRICS_EXPORTER": "prometheus",
                    "OTEL_EXPORTER_PROMETHEUS_PORT": str(generator),
                    "OTEL_TRACES_EXPORTER": "none",
                },
                capture_output=True, text=True, timeout=240, check=False,
            )  # fmt: skip
            assert load.returncode in (0, 1, 3), load.stdout[-3000:] + load.stderr[-3000:]
            _check_registry_series(prom)
            _check_load_series(prom)
        live = httpx.get(f"{registry.url}/metrics", timeout=10).text
    check = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=live,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def _check_registry_series(prom: Prometheus) -> None:
    views = prom.wait_for(
        "sum by (http_route) (http_server_request_duration_seconds_count{"
        'job="contactpoint-registry", http_route=~"/api/v1/children/(search|\\\\{child_id\\\\})"})'
    )
    assert {v["metric"]["http_route"] for v in views} == {r for r, _ in ROUTES}
    # The 1 s bucket the latency SLO counts exists, and the recording rules compute from it.
    assert prom.wait_for('http_server_request_duration_seconds_bucket{le=~"1(\\\\.0)?"}')
    assert prom.wait_for("contactpoint:http_slo_slow_ratio:rate5m")
    assert prom.wait_for("db_client_operation_duration_seconds_count")
    # Security figures: audit events by tag, alerts the adversaries raised, state gauges
    # (`contactpoint_exports` has no series while the registry holds no export).
    assert prom.wait_for("sum by (tag) (contactpoint_audit_events_total) > 0")
    kinds = prom.wait_for("sum by (kind) (contactpoint_alerts_raised_total) > 0")
    assert {k["metric"]["kind"] for k in kinds} & {"harvesting", "snooping"}
    for name in (
        "contactpoint_alerts_open",
        "contactpoint_suspensions_total",
        "contactpoint_audit_unsealed",
        "contactpoint_audit_checkpoint_age_seconds",
        "contactpoint_denials_total",
    ):
        assert prom.wait_for(name), name
    # Every dashboard query runs against the registry's real series without error.
    for expr in _dashboard_queries():
        prom.query(expr)


def _check_load_series(prom: Prometheus) -> None:
    """The generator's own metrics, scraped from it while it ran (job contactpoint-load; the run
    is over, so its series are stale now and are read over the last minutes)."""
    for name in (
        "contactpoint_load_requests_planned_total",
        "contactpoint_load_requests_achieved_total",
    ):
        last = f'max_over_time({name}{{job="{LOAD}"}}[10m])'
        series = prom.wait_for(f"sum by (endpoint) ({last}) > 0")
        assert {s["metric"]["endpoint"] for s in series}, name
    last = f'max_over_time(contactpoint_load_latency_seconds_count{{job="{LOAD}"}}[10m])'
    kinds = prom.wait_for(f"sum by (kind) ({last})")
    assert {k["metric"]["kind"] for k in kinds} == {"corrected", "service"}
