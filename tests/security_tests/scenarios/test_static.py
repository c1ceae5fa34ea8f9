"""Static checks: bandit's findings against the reviewed baseline, and schemathesis's report."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from security_tests.scenarios import static

REPOSITORY = Path(__file__).resolve().parents[3]


def _result(
    *,
    test_id: str = "B608",
    severity: str = "MEDIUM",
    filename: str = "pkg/mod.py",
    line: int = 3,
    code: str = 'query = f"SELECT * FROM {name}"',
) -> dict[str, Any]:
    return {
        "test_id": test_id,
        "issue_severity": severity,
        "filename": filename,
        "line_number": line,
        "issue_text": "Possible SQL injection vector.",
        "code": f"{line - 1} def load(name):\n{line}     {code}\n{line + 1}     return query\n",
    }


def _findings(*results: dict[str, Any]) -> list[static.BanditFinding]:
    return static.findings({"results": list(results)})


def test_the_flagged_line_is_read_from_the_numbered_excerpt() -> None:
    assert static.flagged_line(_result(line=12, code="run(cmd)")) == "run(cmd)"


def test_only_medium_and_high_findings_count() -> None:
    found = _findings(_result(severity="LOW"), _result(severity="MEDIUM"), _result(severity="HIGH"))
    assert [f.severity for f in found] == ["MEDIUM", "HIGH"]


def test_a_moved_finding_still_matches_its_baseline() -> None:
    baseline = _findings(_result(line=3))
    assert static.new_findings(_findings(_result(line=40)), baseline) == []


def test_a_changed_line_or_a_second_copy_is_new() -> None:
    baseline = _findings(_result())
    changed = _findings(_result(code='query = f"DELETE FROM {name}"'))
    twice = _findings(_result(line=3), _result(line=9))
    assert len(static.new_findings(changed, baseline)) == 1
    assert len(static.new_findings(twice, baseline)) == 1


def test_a_baselined_finding_needs_a_reason() -> None:
    baseline = _findings(_result(), _result(test_id="B602", filename="pkg/run.py"))
    reasons = static.reviewed_reasons(
        '[[finding]]\ntest_id = "B608"\nfile = "pkg/mod.py"\nreason = "names are checked"\n'
        '[[finding]]\ntest_id = "B602"\nfile = "pkg/run.py"\nreason = "  "\n'
    )
    missing = static.unreviewed(baseline, reasons)
    assert len(missing) == 1
    assert missing[0].startswith("B602")


def test_the_committed_baseline_is_reviewed() -> None:
    baseline = static.findings(json.loads(static.BANDIT_BASELINE.read_text(encoding="utf-8")))
    reasons = static.reviewed_reasons(static.BANDIT_REVIEWED.read_text(encoding="utf-8"))
    assert static.unreviewed(baseline, reasons) == []


def test_bandit_reports_a_finding_in_a_scanned_tree(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "run.py").write_text(
        "import subprocess\n\n\ndef run(cmd: str) -> None:\n"
        "    subprocess.call(cmd, shell=True)  # nosec\n"
    )
    found = static.findings(static.run_bandit(package))
    # The inline marker is ignored: only the reviewed baseline accepts a finding.
    assert [(f.test_id, f.file, f.code) for f in found] == [
        ("B602", "pkg/run.py", "subprocess.call(cmd, shell=True)  # nosec")
    ]
    assert static.new_findings(found, []) != []


def test_the_registry_has_no_bandit_finding_outside_the_baseline() -> None:
    report = static.run_bandit(REPOSITORY / "reference_app")
    baseline = static.findings(json.loads(static.BANDIT_BASELINE.read_text(encoding="utf-8")))
    assert report["errors"] == []
    assert static.new_findings(static.findings(report), baseline) == []


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="schemathesis" tests="3">
  <testcase name="GET /api/v1/auth/me" time="0.1" />
  <testcase name="GET /api/v1/exports/{export_id}" time="0.2">
    <failure type="failure" message="ST101">1. Test Case ID: abc

- ST101 Server error

[500] Internal Server Error:

Reproduce with:

    curl -X GET -H 'Authorization: [Filtered]' http://127.0.0.1:1/api/v1/exports/18446744073709551616</failure>
  </testcase>
  <testcase name="GET /api/v1/alerts" time="0.1">
    <error type="error" message="error">Request timed out</error>
  </testcase>
</testsuite></testsuites>
"""


def test_the_junit_report_gives_failures_with_their_reproduction() -> None:
    tested, bad = static.junit_cases(JUNIT)
    assert tested == 3
    failure, error = bad
    assert (failure.kind, failure.operation, failure.code) == (
        "failure",
        "GET /api/v1/exports/{export_id}",
        "ST101",
    )
    assert "ST101 Server error" in str(failure)
    assert "curl -X GET" in str(failure)
    assert (error.kind, error.operation, str(error)) == (
        "error",
        "GET /api/v1/alerts",
        "GET /api/v1/alerts: Request timed out",
    )


def test_the_fuzzing_configuration_calls_each_route_as_its_role_and_pins_account_changes() -> None:
    config = tomllib.loads(static.fuzz_config({"practitioner_id": 41, "alert_id": 7}))
    assert config["headers"]["Authorization"] == "Bearer ${CONTACTPOINT_FUZZ_TOKEN}"
    by_path = {op["include-path-regex"]: op for op in config["operations"]}
    users = by_path["^/api/v1/users"]
    assert users["headers"]["Authorization"] == "Bearer ${CONTACTPOINT_FUZZ_ADMIN_TOKEN}"
    assert users["parameters"] == {"path.practitioner_id": 41}
    assert by_path["/(suspend|reinstate)-subject$"]["parameters"] == {"path.alert_id": 7}
    own = by_path["^/api/v1/auth/(logout|password|totp)$"]["headers"]["Authorization"]
    assert own == "Bearer ${CONTACTPOINT_FUZZ_OWN_TOKEN}"
    accepted = config["checks"]["positive_data_acceptance"]["expected-statuses"]
    assert not {"500", "5xx"} & set(accepted)
    assert static.FUZZ_CHECKS == "all"
    assert "stateful" in static.FUZZ_PHASES.split(",")
