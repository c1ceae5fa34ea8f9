"""Alertmanager: amtool accepts the configuration, and each alert of the rules reaches the
receiver of its audience (LA management team or ops) and urgency, by `amtool config routes test`."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.observability.prom_tools import ALERTMANAGER_CONFIG, RULES, run, tool

# Which receiver each alert must reach: security signals go to the LA's management team,
# service health to ops; critical ones page.
EXPECTED = {
    "ContactPointCanaryAccessed": "la-management-urgent",
    "ContactPointHarvestingDetected": "la-management-urgent",
    "ContactPointCriticalAlertUnacknowledged": "la-management-urgent",
    "ContactPointSnoopingDetected": "la-management",
    "ContactPointSecurityAlertRaised": "la-management",
    "ContactPointAlertBacklog": "la-management",
    "ContactPointSuspensionsSpike": "la-management",
    "ContactPointHighErrorRate": "ops-page",
    "ContactPointLatencyBudgetBurnFast": "ops-page",
    "ContactPointAuditCheckpointStale": "ops-page",
    "ContactPointRegistryDown": "ops-page",
    "ContactPointDataStoreDown": "ops-page",
    "ContactPointLatencyBudgetBurnSlow": "ops-ticket",
    "ContactPointDependencyRefusals": "ops-ticket",
    "ContactPointAuditUnsealedGrowing": "ops-ticket",
    "ContactPointExporterDown": "ops-ticket",
}


def _alert_labels() -> dict[str, dict[str, Any]]:
    labels = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels[rule["alert"]] = {"alertname": rule["alert"], **rule["labels"]}
    return labels


def _route(labels: dict[str, Any], expected: str) -> tuple[int, str]:
    result = run(
        [
            tool("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={ALERTMANAGER_CONFIG}",
            f"--verify.receivers={expected}",
            *(f"{key}={value}" for key, value in sorted(labels.items())),
        ]
    )
    return result.returncode, result.stdout.strip()


def test_config_is_valid() -> None:
    result = run([tool("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout


def test_every_alert_has_an_expected_receiver() -> None:
    assert set(_alert_labels()) == set(EXPECTED)


@pytest.mark.parametrize("alertname", sorted(EXPECTED))
def test_alert_reaches_its_receiver(alertname: str) -> None:
    code, receiver = _route(_alert_labels()[alertname], EXPECTED[alertname])
    assert (code, receiver) == (0, EXPECTED[alertname])


def test_a_wrong_receiver_is_reported() -> None:
    """The route test can fail: a canary alert does not go to ops."""
    code, receiver = _route(_alert_labels()["ContactPointCanaryAccessed"], "ops-page")
    assert code != 0
    assert receiver.splitlines()[0] == "la-management-urgent"
