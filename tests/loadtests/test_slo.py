"""SLO files, verdicts and their JUnit form."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtests.model import PERSONA_KINDS
from loadtests.slo import (
    BENCHMARK_SLO_PATH,
    DEFAULT_RATE,
    DEFAULT_SLO_PATH,
    Check,
    Slo,
    SloError,
    breaches,
    check_workload,
    evaluate,
    load_slo,
    parse_slo,
    write_junit,
)
from loadtests.workload import ENDPOINTS

VIEW = "GET /api/v1/children/{id}"
SEARCH = "POST /api/v1/children/search"
PERSONAS = ("school", "gp")


def _stats(p50: float, p99: float) -> dict[str, float]:
    return {
        "p50": p50,
        "p90": (p50 + p99) / 2,
        "p95": (p50 + 3 * p99) / 4,
        "p99": p99,
        "p999": p99 * 1.2,
        "max": p99 * 2,
        "mean": p50 * 1.1,
    }


def _row(endpoint: str, persona: str, count: int, errors: int, p50: float, p99: float) -> Any:
    return {
        "endpoint": endpoint,
        "persona": persona,
        "count": count,
        "errors": errors,
        "error_rate": errors / count if count else 0.0,
        "corrected_ms": _stats(p50, p99),
        # Service time leaves out the wait for a late start, so it is never above corrected.
        "service_ms": _stats(p50 * 0.8, p99 * 0.5),
    }


def make_summary(
    *,
    p99: dict[str, float] | None = None,
    count: int = 500,
    errors: int = 0,
    valid: bool = True,
    invalid_reasons: list[str] | None = None,
    aborted: bool = False,
    abort_reason: str | None = None,
    planned: int = 10_000,
    completed: int = 9_900,
    dropped: int = 0,
) -> dict[str, Any]:
    """A summary with every row the contract requires; ``count`` is per endpoint and persona."""
    p99 = {VIEW: 180.0, SEARCH: 220.0} | (p99 or {})
    latency = []
    for endpoint, value in p99.items():
        for persona in PERSONAS:
            latency.append(_row(endpoint, persona, count, errors, value / 4, value))
        latency.append(
            _row(endpoint, "*", count * len(PERSONAS), errors * len(PERSONAS), value / 4, value)
        )
    worst = max(p99.values())
    for persona in PERSONAS:
        latency.append(_row("*", persona, count * len(p99), errors * len(p99), worst / 4, worst))
    total = count * len(p99) * len(PERSONAS)
    latency.append(_row("*", "*", total, errors * len(p99) * len(PERSONAS), worst / 4, worst))
    return {
        "schema": "contactpoint-load/1",
        "run": {
            "target": "http://127.0.0.1:8000",
            "profile": "national-rollout",
            "started_at": "2025-01-01T00:00:00+00:00",
            "duration_s": 200.0,
            "interval_s": 10.0,
            "workers": 2,
            "valid": valid,
            "invalid_reasons": invalid_reasons or [],
            "aborted": aborted,
            "abort_reason": abort_reason,
            "model": {"peak_per_s": 50},
        },
        "rate": {
            "planned": planned,
            "started": completed,
            "completed": completed,
            "failed": 0,
            "late": 0,
            "dropped": dropped,
            "planned_per_s": planned / 200.0,
            "achieved_per_s": completed / 200.0,
            "achieved_ratio": completed / planned if planned else 0.0,
        },
        "latency": latency,
        "series": [],
        "generator": {
            "cores": 2,
            "cpu_percent_max": 40.0,
            "cpu_percent_mean": 30.0,
            "lag_ms_p99": 2.0,
            "lag_ms_max": 5.0,
            "requests_per_core_s": 25.0,
        },
    }


def slo(text: str) -> Slo:
    return parse_slo(yaml.safe_load(text), "test.yaml")


LENIENT = """
objectives:
  - name: record view
    endpoint: "GET /api/v1/children/{id}"
    p50_ms: 100
    p99_ms: 1000
  - name: search
    endpoint: "POST /api/v1/children/search"
    p99_ms: 1000
  - endpoint: "*"
    error_rate: 0.01
rate:
  achieved_ratio_min: 0.95
  dropped_max_ratio: 0.001
"""

STRICT = LENIENT.replace("p99_ms: 1000\n  - name: search", "p99_ms: 150\n  - name: search")


def by_name(checks: tuple[Check, ...] | list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# --- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [DEFAULT_SLO_PATH, BENCHMARK_SLO_PATH])
def test_bundled_files_load(path: Path) -> None:
    loaded = load_slo(path)
    endpoints = {o.endpoint for o in loaded.objectives}
    assert {VIEW, SEARCH} <= endpoints
    assert loaded.rate is not None
    assert loaded.rate.achieved_ratio_min == 0.95
    assert loaded.latency == "corrected"


def test_default_is_the_national_rollout_with_a_one_second_p99() -> None:
    loaded = load_slo(DEFAULT_SLO_PATH)
    assert DEFAULT_SLO_PATH.name == "national-rollout.yaml"
    assert all(o.p99_ms == 1000 for o in loaded.objectives if o.p99_ms is not None)
    assert any(o.error_rate == 0.01 for o in loaded.objectives)


def test_benchmark_bounds_views_and_searches_at_250_ms() -> None:
    loaded = load_slo(BENCHMARK_SLO_PATH)
    bounds = {o.endpoint: o.p99_ms for o in loaded.objectives}
    assert bounds[VIEW] == 250
    assert bounds[SEARCH] == 250
    assert any(o.error_rate == 0.005 for o in loaded.objectives)


def test_defaults_and_derived_names() -> None:
    parsed = slo(
        """
objectives:
  - endpoint: "GET /api/v1/alerts"
    persona: gp
    p95_ms: 300
  - error_rate: 0.02
"""
    )
    first, second = parsed.objectives
    assert (first.name, first.persona, first.p95_ms) == ("GET /api/v1/alerts as gp", "gp", 300)
    assert (second.name, second.endpoint, second.persona) == ("all endpoints", "*", "*")
    assert (parsed.latency, parsed.min_samples, parsed.abort_on_breach) == ("corrected", 200, False)
    # No `rate:` block: the default rate checks stay in force.
    assert parsed.rate == DEFAULT_RATE


def test_rate_null_switches_the_rate_checks_off() -> None:
    assert slo("objectives:\n  - p99_ms: 9\nrate: null").rate is None


def test_an_slo_naming_what_the_workload_never_sends_is_refused_before_the_run() -> None:
    parsed = slo("objectives:\n  - endpoint: 'GET /api/v1/childern/{id}'\n    p99_ms: 250")
    with pytest.raises(SloError, match=r"objectives\[0\]\.endpoint: the workload sends no"):
        check_workload(parsed, endpoints=ENDPOINTS, personas=PERSONA_KINDS)
    parsed = slo("objectives:\n  - persona: teacher\n    p99_ms: 250")
    with pytest.raises(SloError, match=r"objectives\[0\]\.persona: no persona 'teacher'"):
        check_workload(parsed, endpoints=ENDPOINTS, personas=PERSONA_KINDS)


@pytest.mark.parametrize("path", [DEFAULT_SLO_PATH, BENCHMARK_SLO_PATH])
def test_the_bundled_files_name_only_what_the_workload_sends(path: Path) -> None:
    check_workload(load_slo(path), endpoints=ENDPOINTS, personas=PERSONA_KINDS)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("latency: corrected\nobjective: []\nrate: {achieved_ratio_min: 0.9}", "objective"),
        ("objectives:\n  - endpoint: '*'\n    p98_ms: 100", "objectives[0].p98_ms"),
        ("objectives:\n  - p99_ms: -5", "objectives[0].p99_ms"),
        ("objectives:\n  - p99_ms: 0", "objectives[0].p99_ms"),
        ("objectives:\n  - p99_ms: fast", "objectives[0].p99_ms"),
        ("objectives:\n  - p99_ms: true", "objectives[0].p99_ms"),
        ("objectives:\n  - error_rate: 1.5", "objectives[0].error_rate"),
        ("objectives:\n  - error_rate: -0.1", "objectives[0].error_rate"),
        ("objectives:\n  - endpoint: /api/v1/alerts\n    p99_ms: 9", "objectives[0].endpoint"),
        ("objectives:\n  - endpoint: '*'", "objectives[0]"),
        ("latency: wall\nobjectives:\n  - p99_ms: 9", "latency"),
        ("min_samples: 0\nobjectives:\n  - p99_ms: 9", "min_samples"),
        ("abort_on_breach: 'yes'\nobjectives:\n  - p99_ms: 9", "abort_on_breach"),
        ("rate:\n  achieved_ratio: 0.9", "rate.achieved_ratio"),
        ("rate:\n  achieved_ratio_min: 2", "rate.achieved_ratio_min"),
        ("objectives:\n  - p99_ms: 9\n  - p50_ms: 1", "objectives[1].name"),
    ],
)
def test_bad_values_name_the_key(text: str, named: str) -> None:
    with pytest.raises(SloError) as caught:
        slo(text)
    assert str(caught.value).startswith(f"test.yaml: {named}:")


def test_an_slo_needs_an_objective_or_a_rate() -> None:
    with pytest.raises(SloError, match="at least one objective"):
        slo("latency: corrected\nobjectives: []\nrate: null")


def test_not_a_mapping() -> None:
    with pytest.raises(SloError, match="must be a mapping"):
        parse_slo(["p99_ms"], "list.yaml")


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("objectives:\n  - p99_ms: [1, 2\n", encoding="utf-8")
    with pytest.raises(SloError, match=r"broken\.yaml: not valid YAML"):
        load_slo(path)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text("objectives:\n  - p99_ms: 100\n    p99_ms: 900\n", encoding="utf-8")
    with pytest.raises(SloError, match=r"twice\.yaml: duplicate key 'p99_ms'"):
        load_slo(path)


def test_a_missing_file_is_an_slo_error(tmp_path: Path) -> None:
    with pytest.raises(SloError, match=r"absent\.yaml: cannot read"):
        load_slo(tmp_path / "absent.yaml")


def test_a_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(STRICT, encoding="utf-8")
    loaded = load_slo(path)
    assert loaded.source == str(path)
    assert loaded.objectives[0].p99_ms == 150


# --- verdicts --------------------------------------------------------------------------------


def test_a_lenient_slo_passes() -> None:
    verdict = evaluate(make_summary(), slo(LENIENT))
    assert (verdict.status, verdict.exit_code, verdict.reasons) == ("pass", 0, ())
    assert verdict.failed == ()
    checks = by_name(verdict.checks)
    # Validity, completion, three latency, one error rate, two rate checks.
    assert len(checks) == 8
    assert checks["record view p99"].measured == 180.0
    assert checks["all endpoints error rate"].measured == 0.0


def test_a_strict_slo_fails_on_the_right_check() -> None:
    verdict = evaluate(make_summary(), slo(STRICT))
    assert (verdict.status, verdict.exit_code) == ("fail", 1)
    assert [c.name for c in verdict.failed] == ["record view p99"]
    failed = verdict.failed[0]
    assert (failed.measured, failed.threshold, failed.unit) == (180.0, 150.0, "ms")
    assert by_name(verdict.checks)["record view p50"].outcome == "pass"
    assert any("record view p99" in r for r in verdict.reasons)


def test_the_same_slo_passes_a_faster_run() -> None:
    verdict = evaluate(make_summary(p99={VIEW: 140.0}), slo(STRICT))
    assert verdict.status == "pass"


def test_error_rate_breach() -> None:
    verdict = evaluate(make_summary(errors=10), slo(LENIENT))
    assert [c.name for c in verdict.failed] == ["all endpoints error rate"]
    assert verdict.failed[0].measured == pytest.approx(0.02)
    assert verdict.exit_code == 1


def test_rate_breaches() -> None:
    verdict = evaluate(make_summary(completed=9_000, dropped=50), slo(LENIENT))
    failed = by_name(verdict.failed)
    assert set(failed) == {"achieved rate", "dropped arrivals"}
    assert failed["achieved rate"].measured == pytest.approx(0.9)
    assert failed["achieved rate"].comparison == ">="
    assert failed["dropped arrivals"].measured == pytest.approx(0.005)


def test_service_latency_is_judged_when_asked() -> None:
    text = "latency: service\n" + STRICT
    verdict = evaluate(make_summary(), slo(text))
    # The fixture's service p99 is half the corrected one: 90 ms against 150 ms.
    assert verdict.status == "pass"
    assert by_name(verdict.checks)["record view p99"].measured == 90.0


def test_a_missing_row_is_not_judged_and_the_run_invalid() -> None:
    text = """
objectives:
  - name: record view
    endpoint: "GET /api/v1/children/{id}"
    p99_ms: 1000
  - endpoint: "GET /api/v1/alerts"
    p99_ms: 500
"""
    verdict = evaluate(make_summary(), slo(text))
    assert (verdict.status, verdict.exit_code) == ("invalid", 3)
    unjudged = verdict.not_judged
    assert [c.name for c in unjudged] == ["GET /api/v1/alerts p99"]
    assert "GET /api/v1/alerts" in unjudged[0].detail
    assert unjudged[0].measured is None
    assert any(r.startswith("not judged: GET /api/v1/alerts p99") for r in verdict.reasons)


def test_an_unknown_persona_is_not_judged() -> None:
    parsed = slo("objectives:\n  - persona: police\n    error_rate: 0.1\n")
    verdict = evaluate(make_summary(), parsed)
    assert verdict.status == "invalid"
    assert "'police'" in verdict.not_judged[0].detail


def test_too_few_samples_for_a_percentile_is_not_judged() -> None:
    verdict = evaluate(make_summary(count=50), slo(LENIENT))
    assert verdict.status == "invalid"
    names = {c.name for c in verdict.not_judged}
    # 100 samples per endpoint (two personas of 50) against the default 200; the error rate
    # and the all-endpoints rows are still judged.
    assert names == {"record view p50", "record view p99", "search p99"}
    assert by_name(verdict.checks)["all endpoints error rate"].outcome == "pass"


def test_min_samples_can_be_lowered_per_objective() -> None:
    parsed = slo(
        "objectives:\n  - endpoint: 'GET /api/v1/children/{id}'\n    p99_ms: 900\n"
        "    min_samples: 100\n"
    )
    assert evaluate(make_summary(count=50), parsed).status == "pass"
    assert evaluate(make_summary(count=49), parsed).status == "invalid"


def test_a_breach_outranks_an_unjudged_objective() -> None:
    text = STRICT.replace("rate:\n", "  - endpoint: 'GET /api/v1/alerts'\n    p99_ms: 9\nrate:\n")
    verdict = evaluate(make_summary(), slo(text))
    assert (verdict.status, verdict.exit_code) == ("fail", 1)
    assert len(verdict.not_judged) == 1


def test_an_invalid_run_exits_3_with_its_reasons() -> None:
    summary = make_summary(valid=False, invalid_reasons=["load generator saturated: cpu 98 %"])
    verdict = evaluate(summary, slo(LENIENT))
    assert (verdict.status, verdict.exit_code) == ("invalid", 3)
    assert "load generator saturated: cpu 98 %" in verdict.reasons
    validity = by_name(verdict.checks)["run valid"]
    assert (validity.kind, validity.outcome) == ("validity", "fail")


def test_an_invalid_run_stays_invalid_even_with_a_breach() -> None:
    verdict = evaluate(make_summary(valid=False), slo(STRICT))
    assert verdict.exit_code == 3


def test_an_aborted_run_fails_with_the_abort_reason() -> None:
    summary = make_summary(aborted=True, abort_reason="record view p99 breached at 40 s")
    verdict = evaluate(summary, slo(LENIENT))
    assert (verdict.status, verdict.exit_code) == ("fail", 1)
    assert any("record view p99 breached at 40 s" in r for r in verdict.reasons)
    assert by_name(verdict.checks)["run completed"].outcome == "fail"


def test_an_aborted_run_with_too_few_samples_still_fails() -> None:
    verdict = evaluate(make_summary(count=10, aborted=True, abort_reason="x"), slo(LENIENT))
    assert verdict.exit_code == 1


def test_the_verdict_serialises() -> None:
    verdict = evaluate(make_summary(), slo(STRICT))
    data = json.loads(json.dumps(verdict.as_dict()))
    assert data["status"] == "fail"
    assert data["exit_code"] == 1
    assert {c["outcome"] for c in data["checks"]} == {"pass", "fail"}


# --- live breaches ---------------------------------------------------------------------------


def test_breaches_lists_only_judged_latency_and_error_failures() -> None:
    summary = make_summary(completed=5_000, errors=10)
    found = breaches(summary, slo(STRICT))
    assert {c.name for c in found} == {"record view p99", "all endpoints error rate"}
    assert all(c.outcome == "fail" for c in found)


def test_breaches_ignore_an_early_error_burst() -> None:
    # 40 requests an endpoint and persona, a quarter failed: too few to stop the run on.
    assert breaches(make_summary(count=40, errors=10), slo(LENIENT)) == []
    assert len(breaches(make_summary(count=400, errors=100), slo(LENIENT))) == 1


def test_breaches_on_a_partial_summary() -> None:
    partial = {"latency": make_summary()["latency"]}
    assert [c.name for c in breaches(partial, slo(STRICT))] == ["record view p99"]
    assert breaches({}, slo(STRICT)) == []


# --- JUnit -----------------------------------------------------------------------------------


def test_junit_has_one_testcase_per_check(tmp_path: Path) -> None:
    text = STRICT.replace("rate:\n", "  - endpoint: 'GET /api/v1/alerts'\n    p99_ms: 9\nrate:\n")
    summary = make_summary()
    verdict = evaluate(summary, slo(text))
    path = tmp_path / "out" / "junit.xml"
    write_junit(verdict, summary, path)

    suite = ET.parse(path).getroot()  # noqa: S314 (our own report)
    assert suite.tag == "testsuite"
    assert suite.get("name") == "contactpoint-load"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in verdict.checks]
    assert {c.get("classname") for c in cases} == {
        "slo.validity",
        "slo.latency",
        "slo.error_rate",
        "slo.rate",
    }
    outcomes = {c.get("name"): c for c in cases}
    failure = outcomes["record view p99"].find("failure")
    assert failure is not None
    assert "180.0 ms > 150 ms" in (failure.get("message") or "")
    error = outcomes["GET /api/v1/alerts p99"].find("error")
    assert error is not None
    assert (error.get("message") or "").startswith("not judged: ")
    assert suite.findall(".//skipped") == []
    passed = outcomes["search p99"]
    assert list(passed) == []
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        str(len(cases)),
        "1",
        "1",
    )
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["target"] == "http://127.0.0.1:8000"
    assert props["profile"] == "national-rollout"
    assert props["status"] == "fail"
    assert not list(tmp_path.glob("out/*.partial"))


# --- sessions and false positives ------------------------------------------------------------


def _starved(starved: int, arrivals: int = 1000) -> dict[str, Any]:
    return {
        "accounts": 41,
        "cap": None,
        "planned_peak": 783,
        "arrivals": arrivals,
        "waited": starved,
        "starved": starved,
        "starved_share": starved / arrivals,
        "starved_max_share": 0.01,
    }


def test_a_starved_run_has_its_own_check_naming_the_account_pool(tmp_path: Path) -> None:
    reason = "the harness starved the run of sessions: ..."
    summary = make_summary(valid=False, invalid_reasons=[reason])
    summary["run"]["sessions"] = _starved(178)
    verdict = evaluate(summary, slo(LENIENT))
    assert (verdict.status, verdict.exit_code) == ("invalid", 3)
    check = by_name(verdict.checks)["sessions for the arrivals"]
    assert (check.kind, check.outcome, check.measured) == ("validity", "fail", 0.178)
    assert "41 accounts for a planned peak of 783" in check.detail
    write_junit(verdict, summary, tmp_path / "junit.xml")
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("testcase")  # noqa: S314
    failure = next(c for c in cases if c.get("name") == "sessions for the arrivals").find("failure")
    assert failure is not None
    assert "178 of 1000 arrivals starved" in (failure.get("message") or "")


def test_a_run_within_the_starvation_bound_passes_its_sessions_check() -> None:
    summary = make_summary()
    summary["run"]["sessions"] = _starved(10)  # 1 %: at the bound, not over it
    verdict = evaluate(summary, slo(LENIENT))
    assert by_name(verdict.checks)["sessions for the arrivals"].outcome == "pass"
    assert verdict.status == "pass"


def _false_positives(flagged: int, used: int = 300) -> dict[str, Any]:
    return {"accounts_used": used, "accounts_flagged": flagged, "alerts_checked": True}


@pytest.mark.parametrize(("flagged", "status"), [(0, "pass"), (2, "pass"), (3, "fail")])
def test_false_positives_must_stay_under_one_percent_of_the_accounts(
    flagged: int, status: str
) -> None:
    summary = make_summary()
    summary["detection"] = {"false_positives": _false_positives(flagged)}
    verdict = evaluate(summary, slo(LENIENT + "false_positives_max_ratio: 0.01\n"))
    check = by_name(verdict.checks)["false positives"]
    assert (check.kind, check.outcome, check.comparison) == ("false_positives", status, "<")
    assert verdict.status == status
    assert f"{flagged} of 300 ordinary accounts" in check.detail


def test_false_positives_not_measured_are_not_judged_and_the_run_invalid() -> None:
    verdict = evaluate(make_summary(), slo(LENIENT + "false_positives_max_ratio: 0.01\n"))
    assert by_name(verdict.checks)["false positives"].outcome == "not_judged"
    assert verdict.status == "invalid"


def test_the_bundled_objectives_judge_false_positives_at_one_percent() -> None:
    for path in (DEFAULT_SLO_PATH, BENCHMARK_SLO_PATH):
        assert load_slo(path).false_positives_max_ratio == 0.01
    with pytest.raises(SloError, match="false_positives_max_ratio"):
        slo(LENIENT + "false_positives_max_ratio: 2\n")
