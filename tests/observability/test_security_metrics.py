"""Security metrics are read from the database: two workers give the same answer, counts
neither double nor vanish as the incremental count advances."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy import Engine

from observability.security import SecurityMetrics
from reference_app.kit.db import make_engine
from security_tests import local
from tests.fixtures.world import PrivateWorld


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engines(private_world: PrivateWorld) -> Iterator[tuple[Engine, Engine]]:
    """Two engines over the world's database: two worker processes' views of it."""
    url = private_world.database.app_url
    a, b = make_engine(url), make_engine(url)
    yield a, b
    a.dispose()
    b.dispose()


def _refuse(world: PrivateWorld, n: int) -> None:
    for _ in range(n):
        assert world.client.get("/api/v1/children/0000000000000").status_code == 401


def _readings(engine: Engine) -> dict[tuple[str, tuple[Any, ...]], float]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    SecurityMetrics(engine).register(provider.get_meter("test"))
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None
    found: dict[tuple[str, tuple[Any, ...]], float] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    found[(metric.name, tuple(sorted(p.attributes.items())))] = p.value
    return found


def test_two_workers_read_the_same(
    private_world: PrivateWorld, engines: tuple[Engine, Engine]
) -> None:
    _refuse(private_world, 3)
    first, second = (_readings(engine) for engine in engines)
    assert first == second
    assert first[("contactpoint.denials", (("code", "unauthenticated"),))] == 3
    assert first[("contactpoint.audit.events", (("tag", "access:denied"),))] == 3
    assert ("contactpoint.audit.unsealed", ()) in first
    _refuse(private_world, 2)
    assert _readings(engines[0])[("contactpoint.denials", (("code", "unauthenticated"),))] == 5


def test_incremental_count_neither_doubles_nor_loses(
    private_world: PrivateWorld, engines: tuple[Engine, Engine]
) -> None:
    ticks = Ticks()
    metrics = SecurityMetrics(engines[0], ttl=5, settle=60, clock=ticks)
    _refuse(private_world, 2)
    assert metrics.snapshot().denials["unauthenticated"] == 2
    ticks.now = 3  # inside the cache window: no new queries
    _refuse(private_world, 1)
    assert metrics.snapshot().denials["unauthenticated"] == 2
    assert metrics.refreshes == 1
    for step in range(1, 6):  # past the settle time, the watermark moves; keep adding
        ticks.now = 70.0 * step
        _refuse(private_world, 1)
        snap = metrics.snapshot()
        assert snap.denials["unauthenticated"] == 3 + step
        assert snap.audit_events["access:denied"] == 3 + step
    assert metrics._watermark > 0  # the settled part is really in use
    fresh = SecurityMetrics(engines[1]).snapshot()
    assert fresh.denials == metrics.snapshot().denials


def _security_lines(page: str) -> list[str]:
    """The counts (the checkpoint's age moves with the clock, so it is left out)."""
    return sorted(
        line
        for line in page.splitlines()
        if line.startswith("contactpoint_") and "checkpoint_age" not in line
    )


@pytest.mark.long
def test_every_worker_of_a_served_registry_answers_alike(
    attack_template: Path, tmp_path: Path
) -> None:
    settings = {"OTEL_METRICS_EXPORTER": "prometheus"}
    with local.serve(attack_template, tmp_path / "run", settings=settings, workers=2) as reg:
        for _ in range(5):  # refusals on the trail, to count
            httpx.get(f"{reg.url}/api/v1/children/0000000000000", timeout=10)
        time.sleep(6)  # past the cache, so every worker reads the same rows
        pages = [httpx.get(f"{reg.url}/metrics", timeout=10).text for _ in range(30)]
    instances = set()
    for page in pages:
        found = re.search(r'service_instance_id="([^"]+)"', page)
        assert found is not None
        instances.add(found.group(1))
    assert len(instances) == 2, "both workers should have answered some scrape"
    # The request histogram counts every worker's traffic whichever worker answers (each adds
    # its siblings' share): all five refusals, in every scrape, in one series. FastAPI's own
    # telemetry (it switches itself on once a global meter provider is set) would add a second.
    route = 'http_route="/api/v1/children/{child_id}"'
    counts = [
        [
            line
            for line in p.splitlines()
            if line.startswith("http_server_request_duration_seconds_count") and route in line
        ]
        for p in pages
    ]
    assert all(len(c) == 1 and c[0].endswith(" 5.0") for c in counts), counts
    assert not [p for p in pages if 'otel_scope_name="fastapi"' in p]
    readings = {tuple(_security_lines(p)) for p in pages}
    assert len(readings) == 1, readings
    denials = [line for line in readings.pop() if line.startswith("contactpoint_denials_total")]
    assert len(denials) == 1
    assert 'code="unauthenticated"' in denials[0]
    assert denials[0].endswith(" 5.0")
