"""Real runs: Locust processes against real HTTP servers, judged by the SLOs, exit codes checked.

These start `contactpoint load` as a user would (a subprocess; Locust patches its interpreter
for gevent, so it never runs inside the test process).
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from loadtests.cli import reference_settings
from loadtests.slo import evaluate, parse_slo
from loadtests.workload import Strategy
from security_tests import local
from tests.fixtures.slow_registry import slow_registry, write_personas

# The long stage (pytest -m long): real Locust runs against served registries: about three minutes.
pytestmark = pytest.mark.long


def load(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "contactpoint.cli", "load", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def _row(summary: dict[str, Any], endpoint: str = "*", persona: str = "*") -> dict[str, Any]:
    return next(
        r for r in summary["latency"] if r["endpoint"] == endpoint and r["persona"] == persona
    )


def _slo(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "slo.yaml"
    path.write_text(text)
    return path


LENIENT = """
min_samples: 20
objectives:
  - endpoint: "*"
    p99_ms: 20000
    error_rate: 0.05
rate:
  achieved_ratio_min: 0.5
"""


def test_a_slow_server_cannot_hide_behind_service_time(tmp_path: Path) -> None:
    # Two sessions against a server that answers one request at a time in 40 ms (25 a second),
    # offered about 38 requests a second: the enquiries queue for a free session.
    write_personas(tmp_path, accounts=1)
    personas = json.loads((tmp_path / "personas.json").read_text())
    personas.append({**personas[0], "username": "slow-x"})
    (tmp_path / "personas.json").write_text(json.dumps(personas))
    objective = 'min_samples: 50\nobjectives:\n  - endpoint: "*"\n    p99_ms: 1000\n'
    out = tmp_path / "out"
    with slow_registry(0.04) as url:
        result = load(
            "--target", url, "--personas", str(tmp_path / "personas.json"),
            "--profile", "steady", "--rate", "20", "--duration", "12", "--think-scale", "0",
            "--slo", str(_slo(tmp_path, "latency: corrected\n" + objective)), "--out", str(out),
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _summary(out)
    total = _row(summary)
    assert total["count"] >= 50
    # The requests themselves were quick; the waiting for them was not.
    assert total["corrected_ms"]["p99"] > 5 * total["service_ms"]["p99"]
    assert summary["rate"]["late"] > 0
    # Arrivals waited for a session, but behind the server's answers, not the crowd's reading:
    # the server's doing, so the run stays valid and fails on its corrected latency.
    sessions = summary["run"]["sessions"]
    assert sessions["waited"] > 0.5 * sessions["arrivals"]
    assert sessions["starved"] <= 0.01 * sessions["arrivals"]
    assert summary["run"]["valid"]
    # The same run judged on service time alone, as a closed-model tool would, passes.
    # (Latency only: a closed-model tool has no planned rate to fall short of.)
    only_latency = "latency: service\nrate: null\n" + objective
    service = evaluate(summary, parse_slo(yaml.safe_load(only_latency)))
    assert service.status == "pass"
    assert summary["verdict"]["status"] == "fail"


def test_a_crowd_too_small_for_its_reading_times_makes_the_run_invalid(tmp_path: Path) -> None:
    # Eight accounts for three enquiries a second, each session reading 2-15 s between a search
    # and its view: the sessions are busy reading while the quick server idles.
    write_personas(tmp_path)
    with slow_registry(0.001) as url:
        out = tmp_path / "out"
        result = load(
            "--target", url, "--personas", str(tmp_path / "personas.json"),
            "--profile", "steady", "--rate", "3", "--duration", "15",
            "--slo", str(_slo(tmp_path, LENIENT)), "--out", str(out),
            "--junit", str(tmp_path / "junit.xml"),
        )  # fmt: skip
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    summary = _summary(out)
    sessions = summary["run"]["sessions"]
    assert sessions["accounts"] == 8
    assert sessions["held_peak"] == 8
    assert sessions["starved_share"] > 0.01
    assert sessions["wait_ms"]["max"] > 100
    reason = next(r for r in summary["run"]["invalid_reasons"] if "starved" in r)
    assert "the account pool holds 8 accounts for a planned peak of" in reason
    assert f"invalid: {reason}" in result.stdout
    assert "Sessions: 8 accounts" in result.stdout
    assert "account pool holds 8 accounts" in (tmp_path / "junit.xml").read_text()
    assert "<h2>Sessions</h2>" in (out / "report.html").read_text()
    assert "starved by the harness" in (out / "sessions.svg").read_text()
    assert any(row["starved"] for row in summary["series"])


def test_a_crowd_logging_in_to_a_busy_registry_waits_its_turn(tmp_path: Path) -> None:
    # Forty log-ins answered "busy" (503) before any succeeds: five tries each for eight
    # accounts. A busy answer is no refusal, so every account still holds a session.
    write_personas(tmp_path)
    with slow_registry(0.001, busy_logins=40) as url:
        out = tmp_path / "out"
        result = load(
            "--target", url, "--personas", str(tmp_path / "personas.json"),
            "--profile", "steady", "--rate", "0.5", "--duration", "10", "--think-scale", "0",
            "--slo", str(_slo(tmp_path, LENIENT.replace("20\n", "5\n", 1))), "--out", str(out),
        )  # fmt: skip
    summary = _summary(out)
    assert "failed_logins" not in summary["detection"], summary["detection"]
    assert summary["run"]["sessions"]["held_peak"] == 8
    assert summary["detection"]["false_positives"]["accounts_used"] == 8
    assert result.returncode in (0, 3), result.stdout[-3000:]


def test_a_saturated_generator_makes_the_run_invalid(tmp_path: Path) -> None:
    write_personas(tmp_path)
    with slow_registry(0.001) as url:
        out = tmp_path / "out"
        result = load(
            "--target", url, "--personas", str(tmp_path / "personas.json"),
            "--profile", "steady", "--rate", "3", "--duration", "6",
            "--slo", str(_slo(tmp_path, LENIENT)), "--out", str(out),
            "--max-generator-cpu", "0.001",
        )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    summary = _summary(out)
    assert not summary["run"]["valid"]
    assert "saturated" in summary["run"]["invalid_reasons"][0]
    assert summary["verdict"]["status"] == "invalid"


def test_bad_usage_and_an_unreachable_target_have_their_own_exit_codes(tmp_path: Path) -> None:
    personas = write_personas(tmp_path)
    bad = _slo(tmp_path, "objectives:\n  - endpoint: '*'\n    p99: 5\n")
    result = load("--target", "http://127.0.0.1:9", "--personas", str(personas), "--slo", str(bad))
    assert result.returncode == 2
    assert "p99" in result.stderr
    result = load("--target", "http://127.0.0.1:9", "--personas", str(personas))
    assert result.returncode == 4
    assert "does not answer" in result.stderr
    result = load("--target", "http://127.0.0.1:9", "--personas", str(personas), "--rate", "5")
    assert result.returncode == 2  # a rate with the national-rollout profile


def _load_served(
    load_template: Path, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Load a served copy of the reference registry at 1 enquiry a second with a crowd sized
    for it, as `--reference` provisions one (out: tmp_path/out)."""
    with local.serve(
        load_template, tmp_path / "registry", settings=reference_settings(time.time())
    ) as registry:
        return load(
            "--target", registry.url, "--personas", str(load_template / "load-personas.json"),
            "--profile", "steady", "--rate", "1", "--think-scale", "0.2",
            "--slo", str(_slo(tmp_path, LENIENT)), "--out", str(tmp_path / "out"), *args,
        )  # fmt: skip


def test_a_master_and_two_workers_load_the_reference_registry(
    load_template: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _load_served(
        load_template, tmp_path,
        "--duration", "25", "--processes", "2", "--adversaries", "2",
        "--json", str(tmp_path / "copy.json"), "--junit", str(tmp_path / "copy.xml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    summary = _summary(out)
    assert summary["run"]["workers"] == 2
    assert summary["generator"]["processes"] == 2  # both workers' histograms were merged
    view = _row(summary, "GET /api/v1/children/{id}")
    assert view["count"] > 0
    assert view["errors"] == 0
    assert summary["rate"]["planned"] > 50
    assert any(point["achieved"] for point in summary["series"])
    detection = summary["detection"]
    assert detection["adversaries"] == 2
    assert {a["kind"] for a in detection["adversary_runs"]} == {"harvester", "snooper"}
    # A crowd sized for the plan: no arrival starved of a session, and the sessions reported.
    sessions = summary["run"]["sessions"]
    assert sessions["accounts"] >= sessions["planned_peak"] > 0
    assert sessions["arrivals"] > 0
    assert sessions["starved"] == 0, sessions
    # Ordinary accounts were checked against the registry's alerts; none were flagged, and no
    # ordinary account's name reaches the report (adversaries are named in their own runs).
    false_positives = detection["false_positives"]
    assert false_positives["alerts_checked"]
    assert false_positives["accounts_used"] > 0
    assert false_positives["accounts_flagged"] == 0, detection
    text = (out / "summary.json").read_text()
    named = {r["username"] for r in detection["adversary_runs"]}
    crowd = json.loads((load_template / "load-personas.json").read_text())
    assert {p["username"] for p in crowd if f'"{p["username"]}"' in text} <= named
    for name in ("report.html", "rate.svg", "sessions.svg", "latency.svg", "junit.xml"):
        assert (out / name).exists(), name
    assert (out / "locust.html").exists()
    assert (out / "locust_stats.csv").read_text().count("/api/v1/children/{id}") >= 1
    assert json.loads((tmp_path / "copy.json").read_text())["verdict"]["status"] == "pass"
    assert "<testsuite" in (tmp_path / "copy.xml").read_text()


def test_every_adversary_strategy_acts_and_is_reported_by_strategy(
    load_template: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = _load_served(
        load_template, tmp_path, "--duration", "20", "--adversaries", str(len(Strategy))
    )
    # The verdict is not the point here (on a busy machine the run may be invalid, exit 3):
    # every strategy must have acted and been reported.
    assert result.returncode in (0, 1, 3), result.stdout[-3000:] + result.stderr[-3000:]
    assert "Detection by strategy" in result.stdout
    detection = _summary(out)["detection"]
    rows = detection["strategies"]
    assert set(rows) == {s.value for s in Strategy}
    for name, row in rows.items():
        assert row["acted"] == row["actors"] == 1, (name, row)
        assert row["kind"] == Strategy(name).kind
    runs = {r["strategy"]: r for r in detection["adversary_runs"]}
    # What a harvester obtains is counted from what reached it: search results at least.
    assert runs["surname-sweep"]["from_results"] > 0, runs["surname-sweep"]
    assert runs["results-only"]["from_views"] == 0
    assert detection["alerts_checked"]
    assert "Detection by strategy" in (out / "report.html").read_text()


def test_abort_on_breach_stops_the_run_early(tmp_path: Path) -> None:
    write_personas(tmp_path)
    strict = _slo(tmp_path, 'min_samples: 10\nobjectives:\n  - endpoint: "*"\n    p50_ms: 1\n')
    with slow_registry(0.02) as url:
        out = tmp_path / "out"
        result = load(
            "--target", url, "--personas", str(tmp_path / "personas.json"),
            "--profile", "steady", "--rate", "4", "--duration", "60", "--think-scale", "0",
            "--slo", str(strict), "--out", str(out), "--abort-on-breach",
        )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    summary = _summary(out)
    assert summary["run"]["aborted"]
    assert summary["run"]["duration_s"] < 60


def test_the_reference_crowd_has_caseloads_for_its_plan_and_working_hours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    slo = _slo(tmp_path, LENIENT + "false_positives_max_ratio: 0.01\n")
    result = load(
        "--reference", "--reference-dir", str(tmp_path / "ref"),
        "--profile", "steady", "--rate", "1", "--duration", "20", "--think-scale", "0.2",
        "--slo", str(slo), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = _summary(out)
    sessions = summary["run"]["sessions"]
    # Provisioned for the plan (the old crowd was 3 accounts a role in 4 LAs, capped at 40).
    assert sessions["accounts"] >= sessions["planned_peak"] == 60
    assert sessions["starved"] == 0
    crowd = json.loads((tmp_path / "ref/template/load-personas.json").read_text())
    practitioners = [p for p in crowd if p["role"] not in ("la_data_manager", "national_auditor")]
    assert all(p["caseload"] for p in practitioners)
    # Its day is a working one whatever the hour: the registry's zone puts the start at 09:xx.
    note = next(n for n in summary["run"]["notes"] if "working hours" in n)
    zone = note.split("read in ", 1)[1].split(",", 1)[0]
    started = datetime.strptime(summary["run"]["started_at"], "%Y-%m-%dT%H:%M:%S%z")
    local = started.astimezone(ZoneInfo(zone))
    assert local.hour == 9 or (local.hour == 10 and local.minute == 0)
    assert html.escape(note) in (out / "report.html").read_text()
    assert f"note: {note}" in result.stdout
    # Ordinary accounts were checked against the registry's alerts: under 1 % flagged.
    false_positives = summary["detection"]["false_positives"]
    assert false_positives["alerts_checked"]
    assert false_positives["accounts_used"] > 0
    checks = {c["name"]: c for c in summary["verdict"]["checks"]}
    assert checks["false positives"]["outcome"] == "pass"
