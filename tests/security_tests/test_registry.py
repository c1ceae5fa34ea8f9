"""The scenario registry: enough scenarios, every group, real ids, honest guards, coverage."""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_app.kit.controls import Control
from security_tests import engine
from security_tests.coverage import table

DOCS = Path(__file__).parents[2] / "docs" / "security-coverage.md"


def test_at_least_forty_scenarios_cover_every_group() -> None:
    scenarios = engine.select()
    assert len(scenarios) >= 40
    assert {sc.group for sc in scenarios} == set(engine.GROUPS)


def test_every_guard_is_a_switch_of_the_registry() -> None:
    switches = {c.value for c in Control}
    unknown = {(sc.id, g) for sc in engine.select() for g in sc.guards if g not in switches}
    assert not unknown


def test_every_applicable_owasp_item_is_covered() -> None:
    covered = {item for sc in engine.select() for item in sc.owasp}
    applicable = set(engine.OWASP_API_2023) - set(engine.NOT_APPLICABLE)
    assert applicable <= covered, sorted(applicable - covered)


def test_asvs_ids_are_requirement_numbers() -> None:
    for sc in engine.select():
        for req in sc.asvs:
            chapter, section, item = (int(p) for p in req.split("."))
            assert 1 <= chapter <= 17, (sc.id, req)
            assert min(section, item) >= 1, (sc.id, req)


def test_registration_refuses_a_scenario_without_guards_or_gap() -> None:
    with pytest.raises(ValueError, match="either guards or the gap"):
        engine.scenario(
            "auth.unguarded", owasp=["API2:2023"], asvs=["6.3.2"], severity=engine.Severity.LOW
        )(lambda ctx: None)
    with pytest.raises(ValueError, match="unknown group"):
        engine.scenario(
            "nogroup.x", owasp=["API2:2023"], asvs=["6.3.2"], severity=engine.Severity.LOW, gap="-"
        )(lambda ctx: None)


def test_the_coverage_document_is_up_to_date() -> None:
    assert DOCS.read_text(encoding="utf-8") == table(), (
        "regenerate: contactpoint attack --coverage > docs/security-coverage.md"
    )


def test_the_fail_on_threshold_counts_failures_and_errors_at_or_above_it() -> None:
    by_severity = {sc.severity: sc for sc in engine.select()}
    results = [
        engine.Result(by_severity[engine.Severity.MEDIUM], engine.Status.FAILED, "x", 0.0, []),
        engine.Result(by_severity[engine.Severity.HIGH], engine.Status.ERROR, "y", 0.0, []),
        engine.Result(by_severity[engine.Severity.CRITICAL], engine.Status.SKIPPED, "z", 0.0, []),
    ]
    assert len(engine.failing(results, engine.Severity.LOW)) == 2
    assert [r.message for r in engine.failing(results, engine.Severity.HIGH)] == ["y"]
    assert engine.failing(results, engine.Severity.CRITICAL) == []
