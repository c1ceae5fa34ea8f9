"""Alertmanager's inhibitions, in Debian's real Alertmanager run as a plain process: alerts are
posted to its API as Prometheus would, and the API shows which are suppressed and by what.
(The receivers' URLs are placeholders; their failed deliveries do not matter here.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.observability.prom_tools import ALERTMANAGER_CONFIG, served, tool

OPS = {"team": "ops", "severity": "critical", "component": "registry"}
WARNING = {"severity": "warning"}
AUDIT = {"component": "audit"}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    args = [
        tool("prometheus-alertmanager"),
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--storage.path={tmp_path / 'data'}",
        "--cluster.listen-address=",
    ]
    with served(args, tmp_path / "alertmanager.log") as url:
        yield url


def _post(url: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    body = [
        {
            "labels": labels,
            "annotations": {"summary": labels["alertname"]},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat(),
        }
        for labels in alerts
    ]
    response = httpx.post(f"{url}/api/v2/alerts", json=body, timeout=10)
    assert response.status_code == 200, response.text


def _states(url: str, expected: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Each alert's status by (alertname, route or kind), once all ``expected`` are in."""
    deadline = time.monotonic() + 30
    while True:
        alerts = httpx.get(f"{url}/api/v2/alerts", timeout=10).json()
        if len(alerts) == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(alerts) == expected, alerts
    return {
        (
            a["labels"]["alertname"],
            a["labels"].get("http_route", a["labels"].get("kind", "")),
        ): a["status"]
        for a in alerts
    }


SEARCH = "/api/v1/children/search"
VIEW = "/api/v1/children/{child_id}"


def _alert(name: str, **labels: str) -> dict[str, str]:
    return {"alertname": name, **labels}


def test_inhibitions(alertmanager: str) -> None:
    _post(
        alertmanager,
        [
            _alert("ContactPointRegistryDown", job="contactpoint-registry", **OPS),
            _alert("ContactPointHighErrorRate", **OPS),
            _alert(
                "ContactPointCanaryAccessed",
                team="la-management",
                severity="critical",
                component="security",
                kind="canary_access",
            ),
            _alert("ContactPointLatencyBudgetBurnFast", http_route=SEARCH, **OPS),
            _alert("ContactPointLatencyBudgetBurnSlow", http_route=SEARCH, **OPS | WARNING),
            _alert("ContactPointAuditCheckpointStale", **OPS | AUDIT),
            _alert("ContactPointAuditUnsealedGrowing", **OPS | AUDIT | WARNING),
        ],
    )
    states = _states(alertmanager, 7)
    suppressed = {key for key, status in states.items() if status["state"] == "suppressed"}
    assert suppressed == {
        ("ContactPointHighErrorRate", ""),
        ("ContactPointLatencyBudgetBurnFast", SEARCH),
        ("ContactPointLatencyBudgetBurnSlow", SEARCH),
        ("ContactPointAuditUnsealedGrowing", ""),
    }
    assert all(states[key]["inhibitedBy"] for key in suppressed)
    # The registry down is not silenced by itself; a security alert is never silenced by ops.
    assert states[("ContactPointRegistryDown", "")]["state"] == "active"
    assert states[("ContactPointCanaryAccessed", "canary_access")]["state"] == "active"
    assert states[("ContactPointAuditCheckpointStale", "")]["state"] == "active"


def test_slow_burn_on_another_route_is_not_inhibited(alertmanager: str) -> None:
    _post(
        alertmanager,
        [
            _alert("ContactPointLatencyBudgetBurnFast", http_route=SEARCH, **OPS),
            _alert("ContactPointLatencyBudgetBurnSlow", http_route=VIEW, **OPS | WARNING),
        ],
    )
    states = _states(alertmanager, 2)
    assert {status["state"] for status in states.values()} == {"active"}


def test_a_data_store_down_silences_the_refusals_it_causes(alertmanager: str) -> None:
    _post(
        alertmanager,
        [
            _alert("ContactPointDataStoreDown", job="postgres", **OPS | {"component": "datastore"}),
            _alert("ContactPointDependencyRefusals", dependency="database", **OPS | WARNING),
            _alert("ContactPointSuspensionsSpike", team="la-management", severity="warning"),
        ],
    )
    states = _states(alertmanager, 3)
    assert {name for (name, _), s in states.items() if s["state"] == "suppressed"} == {
        "ContactPointDependencyRefusals"
    }
