"""The load harness's own telemetry: its metrics, and a ``traceparent`` on every request.

Each generator process records what it planned and achieved, both latencies (corrected from
the intended start, and service time from the send) and its dropped and late arrivals. Sent by
OTLP, or served for Prometheus on ``OTEL_EXPORTER_PROMETHEUS_PORT`` (default 9464; one
process per port, so a distributed run should use OTLP).

Every request carries a W3C ``traceparent``; its sampled flag follows the harness's own
``OTEL_TRACES_SAMPLER`` / ``_ARG`` (a trace-id ratio, as the registry's parent-based sampler
would decide it), so the registry keeps the traces of the requests the harness says to.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping

from observability.setup import Telemetry

log = logging.getLogger(__name__)
SCOPE = "contactpoint.load"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_MAX = 1 << 64


def sample_ratio(env: Mapping[str, str] | None = None) -> float:
    """The share of requests to mark sampled, from the standard sampler variables."""
    env = os.environ if env is None else env
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on").strip().lower()
    if sampler in ("always_off", "parentbased_always_off"):
        return 0.0
    if sampler in ("traceidratio", "parentbased_traceidratio"):
        try:
            return min(1.0, max(0.0, float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))))
        except ValueError:
            return 1.0
    return 1.0


def new_traceparent(ratio: float) -> str:
    """A fresh trace context; sampled as a trace-id ratio sampler would sample its id."""
    trace_id = secrets.randbits(128) or 1
    sampled = (trace_id & (_MAX - 1)) < round(ratio * _MAX)
    return f"00-{trace_id:032x}-{secrets.randbits(64) or 1:016x}-{'01' if sampled else '00'}"


class LoadMetrics:
    """The agreed ``contactpoint.load.*`` instruments of one generator process."""

    def __init__(self, telemetry: Telemetry) -> None:
        assert telemetry.meter_provider is not None
        meter = telemetry.meter_provider.get_meter(SCOPE)
        self.planned = meter.create_counter(
            "contactpoint.load.requests.planned", unit="{request}", description="Requests planned"
        )
        self.achieved = meter.create_counter(
            "contactpoint.load.requests.achieved",
            unit="{request}",
            description="Requests answered successfully",
        )
        self.latency = meter.create_histogram(
            "contactpoint.load.latency",
            unit="s",
            description="Latency from the intended start (corrected) and from the send (service)",
            explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS),
        )
        self.dropped = meter.create_counter(
            "contactpoint.load.arrivals.dropped", unit="{arrival}", description="Requests dropped"
        )
        self.late = meter.create_counter(
            "contactpoint.load.arrivals.late", unit="{arrival}", description="Requests sent late"
        )

    def request(
        self, endpoint: str, *, corrected: float, service: float, ok: bool, late: bool
    ) -> None:
        labels = {"endpoint": endpoint}
        self.latency.record(corrected, labels | {"kind": "corrected"})
        self.latency.record(service, labels | {"kind": "service"})
        if ok:
            self.achieved.add(1, labels)
        if late:
            self.late.add(1)


def load_metrics(telemetry: Telemetry | None) -> LoadMetrics | None:
    """The instruments, or None when the harness's metrics are off."""
    if telemetry is None or telemetry.meter_provider is None:
        return None
    return LoadMetrics(telemetry)


def serve_prometheus(telemetry: Telemetry) -> None:
    """Expose this process's metrics for Prometheus when ``OTEL_METRICS_EXPORTER`` says so."""
    if not telemetry.prometheus:
        return
    from prometheus_client import start_http_server

    host = os.environ.get("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
    port = int(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
    try:
        start_http_server(port, addr=host)
    except OSError as exc:  # another generator on this host holds the port
        log.warning("load metrics not served on %s:%s (%s); use OTLP", host, port, exc)
