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

from observability.registry import instrument_app
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


@pytest.fixture
def instrumented(world: World) -> Iterator[Instrumented]:
    metrics, spans = InMemoryMetricReader(), InMemorySpanExporter()
    telemetry = build(
        "test-registry", env={}, metric_readers=[metrics], span_exporters=[spans], simple_spans=True
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


def test_request_duration_by_route_template(instrumented: Instrumented) -> None:
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
    db = instrumented.points("db.client.operation.duration")
    assert {p.attributes["db.operation.name"] for p in db} >= {"SELECT", "INSERT"}


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
