"""``contactpoint.dependency.refusals``: a request answered 503 for a dropped database counts."""

from __future__ import annotations

import pytest
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from reference_app.access.permissions import Role
from tests.fixtures.world import PrivateWorld
from tests.reference_app.kit.test_dropped_connections import _drop_connections


def _refusals(reader: InMemoryMetricReader) -> dict[str, float]:
    data = reader.get_metrics_data()
    found: dict[str, float] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "contactpoint.dependency.refusals":
                    for p in m.data.data_points:
                        found[str(p.attributes["dependency"])] = p.value
    return found


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_dropped_database_is_counted(private_world: PrivateWorld) -> None:
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))  # the process's global
    world = private_world
    headers = {
        **world.login(world.new_account(Role.SOCIAL_CARE_PRACTITIONER)),
        "X-Access-Reason": "safeguarding",
    }
    url = f"/api/v1/children/{world.child().id}"
    assert world.client.get(url, headers=headers).status_code == 200
    assert _refusals(reader).get("database", 0) == 0
    assert _drop_connections(world.database) >= 1
    assert world.client.get(url, headers=headers).status_code == 503
    assert _refusals(reader)["database"] == 1
