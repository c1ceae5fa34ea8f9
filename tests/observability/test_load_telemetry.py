"""The load harness's metrics (through its recorder) and the traceparent its requests carry."""

from __future__ import annotations

import re

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from loadtests.histograms import Recorder
from observability.load import load_metrics, new_traceparent, sample_ratio
from observability.setup import build

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")


def test_recorder_events_become_the_agreed_metrics() -> None:
    reader = InMemoryMetricReader()
    telemetry = build("test-load", env={}, metric_readers=[reader])
    recorder = Recorder(1000.0, 5.0, load_metrics(telemetry))
    view = "GET /api/v1/children/{id}"
    recorder.planned(1000.0, view)
    recorder.planned(1000.5, view)
    recorder.request(view, "social_care", intended=1000.0, started=1000.2, ended=1000.3, ok=True)
    recorder.request(
        view, "social_care", intended=1000.5, started=1002.0, ended=1002.1, ok=False, late=True
    )
    recorder.dropped(1001.0, 3)
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: m.data.data_points
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    (planned,) = found["contactpoint.load.requests.planned"]
    assert (planned.value, dict(planned.attributes)) == (2, {"endpoint": view})
    (achieved,) = found["contactpoint.load.requests.achieved"]
    assert achieved.value == 1
    assert found["contactpoint.load.arrivals.dropped"][0].value == 3
    assert found["contactpoint.load.arrivals.late"][0].value == 1
    latency = {p.attributes["kind"]: p for p in found["contactpoint.load.latency"]}
    assert latency["corrected"].count == 2
    assert abs(latency["corrected"].sum - (0.3 + 1.6)) < 1e-6
    assert abs(latency["service"].sum - (0.1 + 0.1)) < 1e-6
    telemetry.shutdown()


def test_recorder_without_telemetry_is_unchanged() -> None:
    recorder = Recorder(0.0, 5.0, load_metrics(build(env={})))
    assert recorder.telemetry is None
    recorder.planned(0.0, "x")


def test_traceparent_and_its_sampled_share() -> None:
    assert sample_ratio({}) == 1.0
    ratio = sample_ratio(
        {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    )
    assert ratio == 0.25
    headers = [new_traceparent(ratio) for _ in range(4000)]
    assert all(TRACEPARENT.match(h) for h in headers)
    assert len({h[3:35] for h in headers}) == 4000
    sampled = sum(h.endswith("-01") for h in headers) / len(headers)
    assert 0.2 < sampled < 0.3
    assert all(new_traceparent(0.0).endswith("-00") for _ in range(100))
