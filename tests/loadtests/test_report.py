"""Reports of a load run: terminal text, SVG charts, the HTML page and the files on disk."""

from __future__ import annotations

import copy
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from loadtests.report import (
    latency_chart_svg,
    live_line,
    rate_chart_svg,
    render_terminal,
    render_verdict_block,
    sessions_chart_svg,
    write_reports,
)
from loadtests.slo import Slo, Verdict, evaluate, parse_slo

VIEW = "GET /api/v1/children/{id}"
SEARCH = "POST /api/v1/children/search"
SVG = "{http://www.w3.org/2000/svg}"


def _stats(p50: float, p99: float) -> dict[str, float]:
    return {
        "p50": p50,
        "p90": p50 * 2,
        "p95": p50 * 3,
        "p99": p99,
        "p999": p99 * 1.5,
        "max": p99 * 3,
        "mean": p50,
    }


def _row(endpoint: str, persona: str, count: int, p99: float) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "persona": persona,
        "count": count,
        "errors": count // 100,
        "error_rate": (count // 100) / count,
        "corrected_ms": _stats(p99 / 5, p99),
        "service_ms": _stats(p99 / 6, p99 / 2),
    }


def make_summary(
    *,
    intervals: int = 6,
    planned_per_interval: int = 500,
    target: str = "http://127.0.0.1:8000",
    detection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A small run: two endpoints, one persona, and ``intervals`` ten-second series points."""
    latency = [
        _row(VIEW, "gp", 2000, 120.0),
        _row(VIEW, "*", 2000, 120.0),
        _row(SEARCH, "gp", 1000, 310.0),
        _row(SEARCH, "*", 1000, 310.0),
        _row("*", "gp", 3000, 300.0),
        _row("*", "*", 3000, 300.0),
    ]
    series = [
        {
            "t": 10.0 * i,
            "planned": planned_per_interval,
            "achieved": planned_per_interval - 10 * i,
            "errors": i,
            "late": 0,
            "dropped": 0,
            "users": 20,
            "corrected_ms": {"p50": 20.0 + i, "p95": 90.0 + i, "p99": 150.0 + 10 * i},
            "service_ms": {"p50": 18.0, "p95": 70.0, "p99": 100.0},
        }
        for i in range(intervals)
    ]
    summary: dict[str, Any] = {
        "schema": "contactpoint-load/1",
        "run": {
            "target": target,
            "profile": "national-rollout",
            "started_at": "2025-01-01T00:00:00+00:00",
            "duration_s": 10.0 * intervals,
            "interval_s": 10.0,
            "workers": 2,
            "valid": True,
            "invalid_reasons": [],
            "aborted": False,
            "abort_reason": None,
            "model": {"peak_per_s": 50, "ramp": {"shape": "diurnal", "minutes": 5}},
        },
        "rate": {
            "planned": 3000,
            "started": 2990,
            "completed": 2950,
            "failed": 30,
            "late": 4,
            "dropped": 0,
            "planned_per_s": 50.0,
            "achieved_per_s": 49.2,
            "achieved_ratio": 0.983,
        },
        "latency": latency,
        "series": series,
        "generator": {
            "cores": 2,
            "cpu_percent_max": 61.0,
            "cpu_percent_mean": 40.0,
            "lag_ms_p99": 3.5,
            "lag_ms_max": 9.0,
            "requests_per_core_s": 24.6,
        },
    }
    if detection is not None:
        summary["detection"] = detection
    return summary


SLO: Slo = parse_slo(
    {
        "objectives": [
            {"name": "record view", "endpoint": VIEW, "p99_ms": 250},
            {"name": "search", "endpoint": SEARCH, "p99_ms": 250},
            {"endpoint": "GET /api/v1/alerts", "p99_ms": 250},
            {"endpoint": "*", "error_rate": 0.05},
        ],
    },
    "test",
)


def verdict_of(summary: dict[str, Any], slo: Slo = SLO) -> Verdict:
    return evaluate(summary, slo)


def parse_svg(text: str) -> ET.Element:
    return ET.fromstring(text)  # noqa: S314 (our own output)


def series_paths(root: ET.Element) -> dict[str, str]:
    return {
        p.get("data-label", ""): p.get("d", "")
        for p in root.iter(f"{SVG}path")
        if p.get("class") == "series"
    }


# --- terminal --------------------------------------------------------------------------------


def test_terminal_summary() -> None:
    summary = make_summary(detection={"harvester": {"caught_after_s": 42.0}, "snoopers": 2})
    text = render_terminal(summary, verdict_of(summary))
    lines = text.splitlines()
    assert lines[0].startswith("Run: national-rollout against http://127.0.0.1:8000, 60.0 s")
    assert "achieved 49.2/s" in text
    view_line = next(line for line in lines if line.strip().startswith(VIEW))
    assert view_line.split()[-5:] == ["20", "24.0", "72.0", "120.0", "60.0"]
    assert lines.index(next(line for line in lines if "all endpoints" in line)) > lines.index(
        view_line
    )
    assert "harvester.caught_after_s" in text
    assert "lag p99 3.5 ms" in text
    assert re.search(r"PASS\s+record view p99", text)
    assert re.search(r"FAIL\s+search p99", text)
    assert re.search(r"NOT JUDGED\s+GET /api/v1/alerts p99", text)
    # The search breach outranks the unjudged alerts objective.
    assert lines[-1] == "VERDICT: FAIL (exit 1)"


def test_terminal_summary_of_an_invalid_run() -> None:
    summary = make_summary()
    summary["run"]["valid"] = False
    summary["run"]["invalid_reasons"] = ["generator lag p99 80 ms"]
    text = render_terminal(summary, verdict_of(summary))
    assert "invalid: generator lag p99 80 ms" in text
    assert text.splitlines()[-1] == "VERDICT: INVALID (exit 3)"


def test_terminal_summary_survives_a_bare_summary() -> None:
    text = render_terminal({}, verdict_of({}))
    assert "no requests recorded" in text
    assert text.splitlines()[-1] == "VERDICT: INVALID (exit 3)"


# --- charts ----------------------------------------------------------------------------------


def test_rate_chart_has_a_line_per_series_in_requests_a_second() -> None:
    root = parse_svg(rate_chart_svg(make_summary()))
    assert root.tag == f"{SVG}svg"
    paths = series_paths(root)
    assert set(paths) == {"planned", "achieved", "errors"}
    # Six points each: one move and five line-tos.
    assert all(d.count("M") == 1 and d.count("L") == 5 for d in paths.values())
    # 500 planned an interval of 10 s is 50 a second: the axis stops short of 100, not at 500.
    ticks = [float(t.text or "nan") for t in root.iter(f"{SVG}text") if _is_number(t.text)]
    assert 50 <= max(ticks) < 100
    titles = [t.text for t in root.iter(f"{SVG}text")]
    assert "Requests a second" in titles
    assert "seconds since start" in titles


def test_planned_line_sits_above_the_achieved_line() -> None:
    paths = series_paths(parse_svg(rate_chart_svg(make_summary())))

    def last_y(d: str) -> float:
        return float(d.split()[-1].split(",")[1].lstrip("L"))

    # SVG y grows downwards: the larger rate is the smaller y.
    assert last_y(paths["planned"]) < last_y(paths["achieved"])


def test_latency_chart_has_a_line_per_series() -> None:
    root = parse_svg(latency_chart_svg(make_summary()))
    assert set(series_paths(root)) == {
        "corrected p50",
        "corrected p95",
        "corrected p99",
        "service p99",
    }
    legend = [t.text for t in root.iter(f"{SVG}text")]
    assert "service p99" in legend
    assert "milliseconds" in legend


def test_a_gap_in_the_series_breaks_the_line() -> None:
    summary = make_summary()
    summary["series"][2]["corrected_ms"]["p99"] = None
    summary["series"][3]["corrected_ms"]["p99"] = math.nan
    paths = series_paths(parse_svg(latency_chart_svg(summary)))
    assert paths["corrected p99"].count("M") == 2
    assert paths["corrected p50"].count("M") == 1


@pytest.mark.parametrize("chart", [rate_chart_svg, latency_chart_svg])
def test_empty_series_gives_a_no_data_chart(chart: Any) -> None:
    root = parse_svg(chart(make_summary(intervals=0)))
    assert series_paths(root) == {}
    assert "no data" in [t.text for t in root.iter(f"{SVG}text")]


def test_a_single_point_still_shows() -> None:
    root = parse_svg(rate_chart_svg(make_summary(intervals=1)))
    assert len(series_paths(root)) == 3
    assert len(list(root.iter(f"{SVG}circle"))) == 3


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


# --- files -----------------------------------------------------------------------------------


def test_write_reports(tmp_path: Path) -> None:
    summary = make_summary(target="http://x/?a=<b>&c", detection={"alerts raised": 3})
    summary["rate"]["late"] = math.inf
    original = copy.deepcopy(summary)
    verdict = verdict_of(summary)
    out = tmp_path / "run-1"
    paths = write_reports(summary, verdict, out)

    assert set(paths) == {
        "summary.json", "rate.svg", "sessions.svg", "latency.svg", "report.html", "junit.xml"
    }  # fmt: skip
    assert all(p.parent == out and p.is_file() for p in paths.values())
    assert not list(out.glob("*.partial"))
    assert summary == original

    document = json.loads(paths["summary.json"].read_text(encoding="utf-8"))
    assert document["verdict"]["status"] == "fail"
    assert document["verdict"]["exit_code"] == 1
    assert len(document["verdict"]["checks"]) == len(verdict.checks)
    assert document["rate"]["late"] is None
    assert document["latency"] == summary["latency"]

    for name in ("rate.svg", "sessions.svg", "latency.svg", "junit.xml"):
        ET.parse(paths[name])  # noqa: S314 (our own output)

    page = paths["report.html"].read_text(encoding="utf-8")
    assert "VERDICT: FAIL (exit 1)" in page
    assert page.count("<svg") == 2
    assert "http://x/?a=&lt;b&gt;&amp;c" in page
    assert "<b>" not in page
    assert "ramp.shape" in page
    assert "diurnal" in page
    assert "alerts raised" in page


def test_html_of_a_passing_run(tmp_path: Path) -> None:
    summary = make_summary()
    slo = parse_slo({"objectives": [{"endpoint": VIEW, "p99_ms": 500}]}, "test")
    verdict = evaluate(summary, slo)
    page = write_reports(summary, verdict, tmp_path)["report.html"].read_text(encoding="utf-8")
    assert "VERDICT: PASS (exit 0)" in page
    assert 'class="verdict pass"' in page


# --- a run the harness starved ---------------------------------------------------------------

STARVED = (
    "the harness starved the run of sessions: 178 of 651 arrivals (27.3%, limit 1%) waited over "
    "100 ms for a session busy reading, or found none (school 178): the account pool holds 41 "
    "accounts for a planned peak of 783 sessions; provision more accounts"
)


def starved_summary() -> dict[str, Any]:
    summary = make_summary()
    for i, row in enumerate(summary["series"]):
        row.update(planned_users=783, users=41, in_use=40 + i % 2, waited=30, starved=29)
    summary["run"].update(valid=False, invalid_reasons=[STARVED])
    summary["run"]["sessions"] = {
        "accounts": 41,
        "cap": None,
        "planned_peak": 783,
        "held_peak": 41,
        "in_use_peak": 41,
        "arrivals": 651,
        "waited": 180,
        "starved": 178,
        "wait_ms": {"p50": 900.0, "p99": 2500.0, "max": 9000.0},
        "starved_share": 178 / 651,
        "starved_max_share": 0.01,
        "wait_bound_ms": 100.0,
        "starved_by_persona": {"school": 178},
    }
    return summary


def test_a_starved_run_names_the_account_pool_in_every_report(tmp_path: Path) -> None:
    summary = starved_summary()
    verdict = evaluate(summary, SLO)
    assert verdict.status == "invalid"
    text = render_terminal(summary, verdict)
    assert f"invalid: {STARVED}" in text
    assert "Sessions: 41 accounts, cap -, planned peak 783, held peak 41, in use peak 41" in text
    assert "178 starved by the harness (27.34%, limit 1.00%)" in text
    paths = write_reports(summary, verdict, tmp_path)
    page = paths["report.html"].read_text(encoding="utf-8")
    assert "<h2>Sessions</h2>" in page
    assert "the account pool holds 41 accounts" in page
    assert page.count("<svg") == 3
    junit = ET.parse(paths["junit.xml"]).getroot()  # noqa: S314 (our own output)
    failures = {c.get("name"): c.find("failure") for c in junit.iter("testcase")}
    assert "41 accounts for a planned peak of 783" in (
        failures["sessions for the arrivals"].get("message") or ""  # type: ignore[union-attr]
    )
    assert json.loads(paths["summary.json"].read_text())["run"]["sessions"]["starved"] == 178


def test_the_sessions_chart_draws_plan_held_in_use_and_waits() -> None:
    root = parse_svg(sessions_chart_svg(starved_summary()))
    paths = series_paths(root)
    assert set(paths) == {
        "planned",
        "held",
        "in use (most at once)",
        "arrivals that waited",
        "starved by the harness",
    }
    assert all(d.count("M") == 1 and d.count("L") == 5 for d in paths.values())
    assert "Sessions" in [t.text for t in root.iter(f"{SVG}text")]


def test_notes_show_in_the_terminal_and_the_page(tmp_path: Path) -> None:
    summary = make_summary()
    summary["run"]["notes"] = ["reference registry: its working hours are read in Etc/GMT-3"]
    verdict = evaluate(summary, SLO)
    assert "  note: reference registry: its working hours" in render_terminal(summary, verdict)
    page = write_reports(summary, verdict, tmp_path)["report.html"].read_text(encoding="utf-8")
    assert "working hours are read in Etc/GMT-3" in page


def _judged(summary: dict[str, Any], slo: Slo = SLO) -> dict[str, Any]:
    return {**summary, "verdict": verdict_of(summary, slo).as_dict()}


def test_the_latency_chart_draws_the_slo_bounds_and_the_stages() -> None:
    summary = make_summary()
    summary["run"]["model"]["stages"] = [
        {"name": "pilot", "start_s": 0.0},
        {"name": "early adopters", "start_s": 20.0},
        {"name": "national", "start_s": 40.0},
    ]
    root = parse_svg(latency_chart_svg(_judged(summary)))
    slo_lines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "slo"]
    stage_lines = [e for e in root.iter(f"{SVG}line") if e.get("class") == "stage"]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert len(slo_lines) == 1  # the views' and searches' 250 ms bound, drawn once
    assert any(t.startswith("SLO ") and "250 ms" in t for t in texts)
    assert len(stage_lines) == 3
    assert {"pilot", "early adopters", "national"} <= set(texts)
    # Without a verdict (or a one-stage profile) there is nothing to draw.
    bare = parse_svg(latency_chart_svg(make_summary()))
    assert not [e for e in bare.iter(f"{SVG}line") if e.get("class") in ("slo", "stage")]


def test_a_bound_far_above_the_data_is_named_not_drawn() -> None:
    slo = parse_slo({"objectives": [{"name": "view", "endpoint": VIEW, "p99_ms": 60000}]}, "t")
    root = parse_svg(latency_chart_svg(_judged(make_summary(), slo)))
    assert not [e for e in root.iter(f"{SVG}line") if e.get("class") == "slo"]
    assert any("above the chart" in (t.text or "") for t in root.iter(f"{SVG}text"))


def test_the_rate_chart_draws_the_achieved_rate_bound() -> None:
    slo = parse_slo({"rate": {"achieved_ratio_min": 0.95}}, "t")
    paths = series_paths(parse_svg(rate_chart_svg(_judged(make_summary(), slo))))
    assert "SLO: 95% of planned" in paths


def test_the_live_line_says_rate_latency_errors_and_breaches() -> None:
    summary = make_summary()
    quiet = live_line(summary, [], 30.0, 600.0)
    assert quiet.startswith("[   30s/600s] planned 50")
    assert "p99 300" in quiet
    assert quiet.endswith("SLO ok")
    breached = [c for c in verdict_of(summary).checks if c.outcome == "fail"]
    assert "SLO BREACH search p99" in live_line(summary, breached, 30.0, 600.0)


def test_the_verdict_block_comes_last_with_likely_causes() -> None:
    summary = _judged(make_summary())
    block = render_verdict_block(summary).splitlines()
    assert block[-1] == "VERDICT: FAIL (exit 1)"
    failed = [line for line in block if line.startswith("FAIL")]
    assert failed
    assert any("likely cause: the registry is slow" in line for line in block)
    starved = make_summary()
    starved["run"]["valid"] = False
    starved["run"]["invalid_reasons"] = ["the harness starved the run of sessions: ..."]
    block = render_verdict_block(_judged(starved))
    assert "likely cause: sessions exhausted" in block
    assert block.splitlines()[-1] == "VERDICT: INVALID (exit 3)"


def test_the_junit_file_keeps_to_the_common_layout(tmp_path: Path) -> None:
    schema = xmlschema.XMLSchema(str(Path(__file__).parents[1] / "schemas" / "junit.xsd"))
    paths = write_reports(make_summary(), verdict_of(make_summary()), tmp_path)
    schema.validate(str(paths["junit.xml"]))
