"""The alert rules: promtool accepts them, every alert fires in a unit test from synthetic
series, a healthy series fires none, and each alert has a severity, a team and a runbook link."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.prom_tools import (
    PROMETHEUS_DIR,
    ROOT,
    RULE_TESTS,
    RULES,
    anchors,
    run,
    tool,
)


def _alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def _rule_tests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, case)
        for path in RULE_TESTS
        for unit in yaml.safe_load(path.read_text())["tests"]
        for case in unit.get("alert_rule_test", [])
    ]


def test_prometheus_config_is_valid() -> None:
    result = run([tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    # The rules it loads are the rules checked here.
    assert f"SUCCESS: {len(RULES)} rule files found" in result.stdout


def test_rules_are_valid() -> None:
    result = run([tool("promtool"), "check", "rules", *map(str, RULES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = run([tool("promtool"), "test", "rules", *map(str, RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_a_broken_expectation_fails(tmp_path: Path) -> None:
    """The unit tests can fail: the canary test expecting the wrong team is caught."""
    copy = tmp_path / "tests"
    shutil.copytree(PROMETHEUS_DIR / "tests", copy)
    shutil.copytree(PROMETHEUS_DIR / "rules", tmp_path / "rules")
    security = copy / "security.test.yml"
    text = security.read_text()
    assert "team: la-management, component: security, kind: canary_access" in text
    security.write_text(
        text.replace(
            "team: la-management, component: security, kind: canary_access",
            "team: ops, component: security, kind: canary_access",
        )
    )
    result = run([tool("promtool"), "test", "rules", str(security)])
    assert result.returncode != 0
    assert "ContactPointCanaryAccessed" in result.stdout + result.stderr


def test_every_alert_fires_in_a_unit_test_and_none_in_the_quiet_one() -> None:
    names = {rule["alert"] for rule in _alert_rules()}
    assert len(names) == len(_alert_rules()), "alert names are unique"
    fired = {case["alertname"] for _, case in _rule_tests() if case.get("exp_alerts")}
    assert names - fired == set(), "alerts no unit test fires"
    quiet = [
        case for path, case in _rule_tests() if path.name == "quiet.test.yml" and case["alertname"]
    ]
    assert {case["alertname"] for case in quiet} == names
    assert all(not case.get("exp_alerts") for case in quiet)


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_severity_team_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["labels"]["team"] in {"ops", "la-management"}
    assert rule["annotations"]["summary"]
    page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert anchor == rule["alert"].lower()
    assert anchor in anchors(ROOT / page), f"{page} has no section {rule['alert']}"


def test_alert_kinds_are_the_registrys() -> None:
    """The security rules name only kinds the registry raises, and leave none unwatched."""
    from reference_app.alerts.models import AlertKind

    watched: set[str] = set()
    for rule in _alert_rules():
        expr = rule["expr"]
        if "alerts_raised" in expr:
            selector = expr.split('kind=~"', 1)[-1] if 'kind=~"' in expr else None
            if selector is not None:
                watched.update(selector.split('"', 1)[0].split("|"))
            else:
                watched.add(expr.split('kind="', 1)[1].split('"', 1)[0])
    assert watched == {kind.value for kind in AlertKind}
