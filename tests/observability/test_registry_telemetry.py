"""The registry's telemetry with in-memory readers: HTTP by route template, SQL, trace context,
the allow-list, and /metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from observability.registry import DURATION_BUCKETS, instrument_app
from observability.setup import Telemetry, TelemetryConfig, TelemetryConfigError, build
from reference_app.access.permissions import Role
from reference_app.app import create_app
from tests.fixtures.database import make_context
from tests.fixtures.world import World

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@dataclass
class Instrumented:
    world: World
    telemetry: Telemetry
    metrics: InMemoryMetricReader
    spans: InMemorySpanExporter

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        found = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


def _instrumented(world: World, *, traces: bool) -> Iterator[Instrumented]:
    metrics, spans = InMemoryMetricReader(), InMemorySpanExporter()
    telemetry = build(
        "test-registry",
        env={},
        metric_readers=[metrics],
        span_exporters=[spans] if traces else [],
        simple_spans=True,
    )
    ctx = make_context(world.database, world.ctx.keyring)
    app = create_app(ctx)
    instrument_app(app, telemetry, ctx.engine)
    try:
        with TestClient(app) as client:
            yield Instrumented(
                replace(world, ctx=ctx, client=client, _tokens={}), telemetry, metrics, spans
            )
    finally:
        telemetry.shutdown()
        ctx.engine.dispose()


@pytest.fixture
def instrumented(world: World) -> Iterator[Instrumented]:
    """Metrics and traces: the OpenTelemetry ASGI middleware."""
    yield from _instrumented(world, traces=True)


@pytest.fixture(params=["metrics-only", "metrics-and-traces"])
def either(request: pytest.FixtureRequest, world: World) -> Iterator[Instrumented]:
    """Each way the HTTP histogram is recorded: the registry's own middleware (metrics only)
    and the OpenTelemetry one (traces on)."""
    yield from _instrumented(world, traces=request.param == "metrics-and-traces")


def test_off_by_default() -> None:
    config = TelemetryConfig.from_env({})
    assert not config.enabled
    telemetry = build(env={})
    assert telemetry.meter_provider is None
    assert telemetry.tracer_provider is None


def test_exporters_from_env() -> None:
    config = TelemetryConfig.from_env(
        {"OTEL_METRICS_EXPORTER": "prometheus,otlp", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert config.metrics == ("prometheus", "otlp")
    assert config.traces == ()
    assert config.logs == ("console",)
    with pytest.raises(TelemetryConfigError, match="zipkin"):
        TelemetryConfig.from_env({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_request_duration_by_route_template(either: Instrumented) -> None:
    instrumented = either
    w = instrumented.world
    child = w.child()
    headers = w.login(w.new_account(Role.LA_DATA_MANAGER))
    for _ in range(2):
        r = w.client.get(
            f"/api/v1/children/{child.id}",
            headers=headers | {"X-Access-Reason": "safeguarding"},
        )
        assert r.status_code == 200, r.text
    points = instrumented.points("http.server.request.duration")
    routes = {p.attributes.get("http.route") for p in points}
    assert "/api/v1/children/{child_id}" in routes
    for p in points:
        assert set(p.attributes) <= {
            "http.route",
            "http.request.method",
            "http.response.status_code",
        }
        assert child.id not in json.dumps(dict(p.attributes))
    view = [p for p in points if p.attributes.get("http.route") == "/api/v1/children/{child_id}"]
    assert view[0].count == 2
    assert view[0].attributes["http.response.status_code"] == 200
    assert view[0].attributes["http.request.method"] == "GET"
    assert list(view[0].explicit_bounds) == list(DURATION_BUCKETS)
    db = instrumented.points("db.client.operation.duration")
    assert {p.attributes["db.operation.name"] for p in db} >= {"SELECT", "INSERT"}


def test_metrics_only_labels(either: Instrumented) -> None:
    """HEAD keeps its route; a refusal keeps its status; an unmatched path has no route label
    and an unknown method none of its own; probes and scrapes are not counted."""
    w = either.world
    child = w.child()
    headers = w.login(w.new_account(Role.LA_DATA_MANAGER)) | {"X-Access-Reason": "safeguarding"}
    assert w.client.head(f"/api/v1/children/{child.id}", headers=headers).status_code == 200
    assert w.client.get(f"/api/v1/children/{child.id}").status_code == 401
    assert w.client.get(f"/api/v1/nowhere/{child.family_name}").status_code == 404
    assert w.client.request("BREW", "/api/v1/children/search").status_code == 405
    assert w.client.get("/healthz").status_code == 200
    seen = {
        (
            p.attributes.get("http.route"),
            p.attributes["http.request.method"],
            p.attributes["http.response.status_code"],
        )
        for p in either.points("http.server.request.duration")
    }
    route = "/api/v1/children/{child_id}"
    assert {(route, "HEAD", 200), (route, "GET", 401), (None, "GET", 404)} <= seen
    assert ("/api/v1/children/search", "_OTHER", 405) in seen
    assert not [s for s in seen if s[0] and "health" in s[0]]
    assert child.family_name not in json.dumps(sorted(map(str, seen)))


def test_trace_context_accepted_and_sql_in_the_trace(instrumented: Instrumented) -> None:
    w = instrumented.world
    child = w.child()
    headers = w.login(w.new_account(Role.LA_DATA_MANAGER))
    instrumented.spans.clear()
    r = w.client.get(
        f"/api/v1/children/{child.id}?note={child.family_name}",
        headers=headers
        | {"X-Access-Reason": "safeguarding", "traceparent": TRACEPARENT, "User-Agent": "probe"},
    )
    assert r.status_code == 200, r.text
    spans = instrumented.spans.get_finished_spans()
    trace_ids = {format(s.context.trace_id, "032x") for s in spans}
    assert trace_ids == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    server = [s for s in spans if s.attributes and "http.route" in s.attributes]
    assert server
    assert server[0].attributes["http.route"] == "/api/v1/children/{child_id}"
    assert "contactpoint.request_id" in server[0].attributes
    sql = [s for s in spans if s.attributes and "db.query.text" in s.attributes]
    assert sql, [s.name for s in spans]
    dumped = "\n".join(s.to_json() for s in spans)
    for personal in (child.id, child.family_name, child.postcode, "probe", "testclient"):
        assert personal not in dumped


def test_metrics_page(world: World) -> None:
    telemetry = build("test-registry", env={"OTEL_METRICS_EXPORTER": "prometheus"})
    ctx = make_context(world.database, world.ctx.keyring)
    app = create_app(ctx)
    instrument_app(app, telemetry, ctx.engine)
    try:
        with TestClient(app) as client:
            assert client.get("/healthz").status_code == 200
            page = client.get("/metrics")
            assert page.status_code == 200
            assert "contactpoint_audit_events_total" in page.text
            assert "contactpoint_audit_unsealed" in page.text
            assert client.get("/api/v1/metrics").status_code in (401, 404)
    finally:
        telemetry.shutdown()
        ctx.engine.dispose()
