"""One telemetry set-up for the registry and every CLI command, configured only by ``OTEL_*``.

Off by default: with no ``OTEL_METRICS_EXPORTER`` / ``OTEL_TRACES_EXPORTER`` (or ``none``) no
provider is built, nothing is instrumented and the cost is one dictionary lookup at start-up.

Variables read (the OpenTelemetry SDK reads the exporters' own ``OTEL_EXPORTER_OTLP_*``):

- ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``: the resource.
- ``OTEL_METRICS_EXPORTER``: ``prometheus`` (served at ``/metrics``), ``otlp``, ``console``,
  ``none``; a comma list is allowed.
- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console``, ``none``.
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: e.g. ``parentbased_traceidratio`` and
  ``0.05`` (read by the SDK).
- ``OTEL_LOGS_EXPORTER``: ``console`` (JSON lines on stderr, the default once telemetry is on)
  or ``none``.
- ``OTEL_SEMCONV_STABILITY_OPT_IN``: defaults to ``http,database`` here, so the stable names
  (``http.server.request.duration``) are emitted; the agreed dashboards use them.
- ``OTEL_METRIC_EXPORT_INTERVAL``: the OTLP/console push interval (read by the SDK).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

METRICS_EXPORTERS = frozenset({"prometheus", "otlp", "console", "none"})
TRACES_EXPORTERS = frozenset({"otlp", "console", "none"})
LOGS_EXPORTERS = frozenset({"console", "none"})
STABILITY = "OTEL_SEMCONV_STABILITY_OPT_IN"
# The labels each HTTP server metric may carry: the route template, never the raw path.
HTTP_ATTRIBUTES = frozenset({"http.route", "http.request.method", "http.response.status_code"})


class TelemetryConfigError(ValueError):
    """An ``OTEL_*`` variable names something this build cannot do."""


def _choices(env: Mapping[str, str], name: str, allowed: frozenset[str]) -> tuple[str, ...]:
    raw = env.get(name, "").strip().lower()
    chosen = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(set(chosen) - allowed)
    if unknown:
        raise TelemetryConfigError(
            f"{name}={raw!r}: {', '.join(unknown)} is not one of {', '.join(sorted(allowed))}"
        )
    return tuple(c for c in chosen if c != "none")


@dataclass(frozen=True)
class TelemetryConfig:
    """What the ``OTEL_*`` variables ask for."""

    metrics: tuple[str, ...] = ()
    traces: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        env = os.environ if env is None else env
        metrics = _choices(env, "OTEL_METRICS_EXPORTER", METRICS_EXPORTERS)
        traces = _choices(env, "OTEL_TRACES_EXPORTER", TRACES_EXPORTERS)
        if "OTEL_LOGS_EXPORTER" in env:
            logs = _choices(env, "OTEL_LOGS_EXPORTER", LOGS_EXPORTERS)
        else:  # structured logs come with the rest of the telemetry
            logs = ("console",) if metrics or traces else ()
        return cls(metrics=metrics, traces=traces, logs=logs)

    @property
    def enabled(self) -> bool:
        return bool(self.metrics or self.traces or self.logs)


@dataclass
class Telemetry:
    """The providers one process built (None when that signal is off)."""

    config: TelemetryConfig
    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None

    @property
    def prometheus(self) -> bool:
        return "prometheus" in self.config.metrics

    def shutdown(self) -> None:
        """Flush and stop exporters (end of a CLI command or a test)."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()


_lock = threading.Lock()
_current: Telemetry | None = None


def current() -> Telemetry | None:
    """This process's telemetry, if `configure` has run."""
    return _current


def _resource(default_service: str) -> Any:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create()
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service}))
    return resource


def _metric_readers(config: TelemetryConfig) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    readers: list[MetricReader] = []
    for name in config.metrics:
        if name == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader

            readers.append(PrometheusMetricReader())
        elif name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        elif name == "console":
            exporter = ConsoleMetricExporter(
                out=sys.stdout, formatter=lambda m: m.to_json(indent=None) + "\n"
            )
            readers.append(PeriodicExportingMetricReader(exporter))
    return readers


def _span_exporters(config: TelemetryConfig) -> list[SpanExporter]:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    exporters: list[SpanExporter] = []
    for name in config.traces:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(
                ConsoleSpanExporter(
                    out=sys.stdout, formatter=lambda s: s.to_json(indent=None) + "\n"
                )
            )
    return exporters


def _views() -> list[Any]:
    from opentelemetry.sdk.metrics.view import DropAggregation, View

    return [
        # Only the agreed labels: no server address, scheme or (for unmatched routes) path.
        View(instrument_name="http.server.request.duration", attribute_keys=set(HTTP_ATTRIBUTES)),
        View(instrument_name="http.server.active_requests", attribute_keys={"http.request.method"}),
        # Body sizes by route add series without a question anyone asked: left out.
        View(instrument_name="http.server.request.body.size", aggregation=DropAggregation()),
        View(instrument_name="http.server.response.body.size", aggregation=DropAggregation()),
    ]


def build(
    default_service: str = "contactpoint",
    *,
    env: Mapping[str, str] | None = None,
    metric_readers: Sequence[MetricReader] = (),
    span_exporters: Sequence[SpanExporter] = (),
    simple_spans: bool = False,
) -> Telemetry:
    """Providers from ``OTEL_*``, touching no global state (tests build several).

    Tests pass in-memory readers and exporters; those switch the signal on by themselves.
    """
    config = TelemetryConfig.from_env(env)
    if metric_readers and not config.metrics:
        config = TelemetryConfig(("in-memory",), config.traces, config.logs)
    if span_exporters and not config.traces:
        config = TelemetryConfig(config.metrics, ("in-memory",), config.logs)
    telemetry = Telemetry(config)
    if not (config.metrics or config.traces):
        return telemetry
    os.environ.setdefault(STABILITY, "http,database")
    resource = _resource(default_service)
    if config.metrics:
        from opentelemetry.sdk.metrics import MeterProvider

        readers = [*_metric_readers(config), *metric_readers]
        extra: dict[str, Any] = {}
        if not config.traces and "OTEL_METRICS_EXEMPLAR_FILTER" not in (env or os.environ):
            # Exemplars point a histogram bucket at a trace: with no traces there are none to
            # point at, and the SDK's trace-based filter would still be asked at every record.
            from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

            extra["exemplar_filter"] = AlwaysOffExemplarFilter()
        telemetry.meter_provider = MeterProvider(
            metric_readers=readers, resource=resource, views=_views(), **extra
        )
    if config.traces:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        from observability.privacy import RedactingSpanProcessor

        provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
        for exporter in [*_span_exporters(config), *span_exporters]:
            inner = SimpleSpanProcessor(exporter) if simple_spans else BatchSpanProcessor(exporter)
            provider.add_span_processor(RedactingSpanProcessor(inner))
        telemetry.tracer_provider = provider
    return telemetry


def configure(default_service: str = "contactpoint") -> Telemetry:
    """This process's telemetry from ``OTEL_*``, built once (later calls return the first):
    the global tracer and meter providers, and JSON logs."""
    global _current
    with _lock:
        if _current is not None:
            return _current
        telemetry = build(default_service)
        if telemetry.tracer_provider is not None:
            from opentelemetry import trace

            trace.set_tracer_provider(telemetry.tracer_provider)
        if telemetry.meter_provider is not None:
            from opentelemetry import metrics

            metrics.set_meter_provider(telemetry.meter_provider)
        if telemetry.config.logs:
            from observability.logs import install_json_logging

            install_json_logging()
        _current = telemetry
        return telemetry


def reset_for_tests() -> None:
    """Forget this process's set-up (tests build several in one process)."""
    global _current
    with _lock:
        if _current is not None:
            _current.shutdown()
        _current = None
