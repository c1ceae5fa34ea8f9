"""Telemetry for one registry app: HTTP, SQL and Redis instrumentation, security metrics and
the ``/metrics`` page.

``/metrics`` is served by the app itself, outside ``/api/v1`` and without a login (Prometheus
scrapes it). It shows operational counts, never personal data, but a deployment restricts it to
its monitoring network at the proxy (see the README's Observability section).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from observability.setup import Telemetry

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.metrics import Histogram
    from sqlalchemy import Engine

    from observability.security import SecurityMetrics

METRICS_PATH = "/metrics"
# Not traced and not in the HTTP histogram: probes and scrapes would drown the traffic.
EXCLUDED_URLS = "/metrics,/healthz,/readyz"
SCOPE = "contactpoint.registry"
# Buckets for request and query durations, seconds (the stable conventions' advice).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


def _db_duration(engine: Engine, histogram: Histogram) -> None:
    """``db.client.operation.duration`` from SQLAlchemy's cursor events (statement type only).

    Per statement this costs a clock read on each side and one histogram record, with the
    attribute set built once per statement type (the hot paths run a dozen statements)."""
    from sqlalchemy import event

    system = engine.dialect.name
    labels: dict[str, dict[str, str]] = {}

    def attributes(statement: str) -> dict[str, str]:
        head = statement[:12]
        found = labels.get(head)
        if found is None:
            words = statement.split(None, 1)
            verb = words[0].upper() if words else "OTHER"
            found = labels[head] = {"db.system": system, "db.operation.name": verb}
        return found

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_: Any) -> None:
        if context is not None:
            context._cp_started = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, *_: Any) -> None:
        started = getattr(context, "_cp_started", None)
        if started is not None:
            histogram.record(time.perf_counter() - started, attributes(statement))


def instrument_engine(telemetry: Telemetry, engine: Engine) -> SecurityMetrics | None:
    """Spans for SQL, the query-duration histogram and the security metrics on one engine."""
    security = None
    if telemetry.tracer_provider is not None:
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeter

        # The instrumentation's engine tracer, per engine (its instrumentor is once a process
        # and also patches create_engine everywhere). No SQL commenter: statements stay as
        # written, parameterised.
        tracer = telemetry.tracer_provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
        meter = (
            telemetry.meter_provider.get_meter(SCOPE)
            if telemetry.meter_provider is not None
            else NoOpMeter(SCOPE)
        )
        usage = meter.create_up_down_counter("db.client.connections.usage", unit="{connection}")
        EngineTracer(tracer, engine, usage, False)  # type: ignore[no-untyped-call]
    if telemetry.meter_provider is not None:
        from observability.security import SecurityMetrics

        meter = telemetry.meter_provider.get_meter(SCOPE)
        histogram = meter.create_histogram(
            "db.client.operation.duration",
            unit="s",
            description="Duration of database client operations",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        _db_duration(engine, histogram)
        security = SecurityMetrics(engine)
        security.register(meter)
    return security


def instrument_redis(telemetry: Telemetry) -> None:
    """Spans for Redis commands (the limits store), once per process."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    instrumentor = RedisInstrumentor()  # one a process: it patches the client class
    if telemetry.tracer_provider is None or instrumentor.is_instrumented_by_opentelemetry:
        return
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)


_CONVERTER = re.compile(r"\{(\w+):\w+\}")


def _documented_routes() -> None:
    """Label requests by the documented template (`/children/{child_id}`), not the matching
    form with its path converter (`{child_id:child_segment}`).

    The FastAPI instrumentation reads the route's text through a module function; it is wrapped
    here, once, to drop converters. `tests/observability` fails if the label comes out wrong.
    """
    import opentelemetry.instrumentation.fastapi as instrumentation

    found = instrumentation._get_route_details
    if getattr(found, "documented", False):
        return

    def documented(scope: Any) -> str | None:
        route = found(scope)
        return _CONVERTER.sub(r"{\1}", route) if route else route

    documented.documented = True  # type: ignore[attr-defined]
    instrumentation._get_route_details = documented


# The methods a route label may carry; anything else is `_OTHER` (the stable conventions).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestDuration:
    """``http.server.request.duration`` by route template, method and status, and nothing else:
    the metrics-only path.

    The OpenTelemetry ASGI middleware does far more per request (request and response attribute
    sets, header parsing, a span through the no-op tracer, size histograms that the views then
    drop); with traces off it cost about 0.23 ms of CPU a request, half the telemetry budget.
    This records one histogram point with the same name, unit, buckets and labels, so the
    rules and dashboards read either. With traces on, the OpenTelemetry middleware is used
    instead, and records the same histogram itself.
    """

    def __init__(self, app: Any, histogram: Histogram) -> None:
        from reference_app.api import route_template

        self.route_template = route_template
        self.app = app
        self.histogram = histogram
        self.excluded = frozenset(EXCLUDED_URLS.split(","))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before the response starts is answered 500 further out
        started = time.perf_counter()

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"]
            attributes: dict[str, Any] = {
                "http.request.method": method if method in KNOWN_METHODS else "_OTHER",
                "http.response.status_code": status,
            }
            route = self.route_template(scope)  # None for a path no route matched
            if route is not None:
                attributes["http.route"] = route
            self.histogram.record(time.perf_counter() - started, attributes)


def instrument_http(app: FastAPI, telemetry: Telemetry) -> None:
    """The HTTP server metrics, and spans when traces are on."""
    if telemetry.tracer_provider is None and telemetry.meter_provider is not None:
        histogram = telemetry.meter_provider.get_meter(SCOPE).create_histogram(
            "http.server.request.duration",
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        app.add_middleware(RequestDuration, histogram=histogram)
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    _documented_routes()
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        http_capture_headers_server_request=[],
        http_capture_headers_server_response=[],
    )


def instrument_app(app: FastAPI, telemetry: Telemetry, engine: Engine) -> None:
    """Wire one registry app to this process's telemetry (nothing when it is off)."""
    if telemetry.config.logs:
        from observability.logs import install_json_logging

        install_json_logging()  # again: the server configured its own loggers meanwhile
    if telemetry.meter_provider is None and telemetry.tracer_provider is None:
        return
    instrument_http(app, telemetry)
    app.state.security_metrics = instrument_engine(telemetry, engine)
    instrument_redis(telemetry)
    if telemetry.prometheus:
        add_metrics_route(app)


def add_metrics_route(app: FastAPI) -> None:
    """``GET /metrics``: the Prometheus exporter's text (no login; restrict at the proxy), with
    the sibling workers' request and SQL histograms added in under ``serve --workers N``."""
    from functools import partial

    from fastapi import Response
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
    from starlette.concurrency import run_in_threadpool

    from observability.siblings import from_environment

    siblings = from_environment()
    collect = siblings.page if siblings is not None else partial(generate_latest, REGISTRY)

    async def metrics() -> Response:
        # Collection runs the security callbacks (database reads): off the event loop.
        body = await run_in_threadpool(collect)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(METRICS_PATH, metrics, methods=["GET"], include_in_schema=False)
