"""The verdict per rollout wave, from declared criteria and a run's facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from contactpoint.assure.criteria import (
    STAGES,
    CriteriaError,
    Facts,
    Verdict,
    exit_code,
    judge,
    judge_wave,
    load_criteria,
    parse_criteria,
)

ALL_PASSED = dict.fromkeys(STAGES, "passed")


def _criteria(**wave: Any) -> Any:
    body = {
        "title": "Pilot",
        "require": ["security"],
        "no_go": {"severity": "high", "stages": ["audit"]},
        "conditions": {"severity": "low", "slo": True, "recall_below": 1.0},
    }
    body.update(wave)
    return parse_criteria({"schema": "contactpoint-assure-criteria/1", "waves": {"pilot": body}})


def _verdict(facts: Facts, **wave: Any) -> Any:
    return judge_wave(_criteria(**wave).waves[0], facts)


def test_bundled_criteria_declare_three_waves() -> None:
    crit = load_criteria()
    assert [w.id for w in crit.waves] == ["pilot", "early-adopters", "national"]


def test_everything_held_is_go() -> None:
    verdict = _verdict(Facts(stages=ALL_PASSED, slo_breached=False, recall=1.0))
    assert verdict.verdict is Verdict.GO
    assert verdict.reasons == ()


def test_failed_scenario_at_the_blocking_severity_is_no_go() -> None:
    facts = Facts(
        failed_scenarios=[("shielding.household-leak", "critical")],
        stages={**ALL_PASSED, "security": "failed"},
        slo_breached=False,
        recall=1.0,
    )
    verdict = _verdict(facts)
    assert verdict.verdict is Verdict.NO_GO
    assert "shielding.household-leak" in verdict.reasons[0]


def test_failed_scenario_below_the_blocking_severity_is_a_condition() -> None:
    facts = Facts(
        failed_scenarios=[("transport.security-headers", "medium")],
        stages=ALL_PASSED,
        slo_breached=False,
        recall=1.0,
    )
    verdict = _verdict(facts)
    assert verdict.verdict is Verdict.CONDITIONS
    assert "transport.security-headers" in verdict.reasons[0]


def test_failed_stage_named_by_no_go_blocks() -> None:
    verdict = _verdict(Facts(stages={**ALL_PASSED, "audit": "failed"}, recall=1.0))
    assert verdict.verdict is Verdict.NO_GO
    assert verdict.reasons == ("the audit stage failed",)


def test_slo_breach_and_recall_are_conditions_here() -> None:
    verdict = _verdict(Facts(stages=ALL_PASSED, slo_breached=True, recall=0.75))
    assert verdict.verdict is Verdict.CONDITIONS
    assert len(verdict.reasons) == 2
    assert "75%" in verdict.reasons[1]


def test_tightened_criteria_make_the_same_facts_no_go() -> None:
    facts = Facts(stages=ALL_PASSED, slo_breached=True, recall=0.75)
    verdict = _verdict(facts, no_go={"slo": True, "recall_below": 0.8})
    assert verdict.verdict is Verdict.NO_GO


def test_required_stage_not_run_is_could_not_judge() -> None:
    facts = Facts(stages={**ALL_PASSED, "security": "not_tested"}, recall=1.0)
    verdict = _verdict(facts)
    assert verdict.verdict is Verdict.UNJUDGED
    assert "security" in verdict.reasons[0]


def test_no_go_outranks_could_not_judge() -> None:
    facts = Facts(stages={"security": "error", "audit": "failed"})
    assert _verdict(facts).verdict is Verdict.NO_GO


def test_load_required_without_recall_cannot_be_judged() -> None:
    verdict = _verdict(Facts(stages=ALL_PASSED), require=["security", "load"])
    assert verdict.verdict is Verdict.UNJUDGED
    assert "recall" in verdict.reasons[0]


def test_fail_on_overrides_every_waves_blocking_severity() -> None:
    facts = Facts(
        failed_scenarios=[("transport.cors-closed", "low")],
        stages=ALL_PASSED,
        slo_breached=False,
        recall=1.0,
        false_positive_rate=0.0,
    )
    crit = load_criteria()
    assert Verdict.NO_GO not in {v.verdict for v in judge(crit, facts)}
    tightened = crit.with_fail_on("low")
    assert {v.verdict for v in judge(tightened, facts)} == {Verdict.NO_GO}


@pytest.mark.parametrize(
    ("verdicts", "code"),
    [
        ([Verdict.GO, Verdict.CONDITIONS], 0),
        ([Verdict.GO, Verdict.UNJUDGED], 3),
        ([Verdict.UNJUDGED, Verdict.NO_GO], 1),
    ],
)
def test_exit_code(verdicts: list[Verdict], code: int) -> None:
    wave = _criteria().waves[0]
    from contactpoint.assure.criteria import WaveVerdict

    assert exit_code([WaveVerdict(wave, v, ()) for v in verdicts]) == code


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"no_go": {"severity": "severe"}}, "severity"),
        ({"no_go": {"stages": ["dns"]}}, "stages"),
        ({"conditions": {"recall_below": 2}}, "recall_below"),
        ({"conditions": {"fast": True}}, "unknown rule"),
        ({"deadline": "soon"}, "unknown key"),
    ],
)
def test_bad_criteria_are_refused_saying_where(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CriteriaError, match=message):
        _criteria(**change)


def test_a_file_without_the_schema_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "criteria.yaml"
    path.write_text("waves: {}\n")
    with pytest.raises(CriteriaError, match="schema"):
        load_criteria(path)
