"""The assessment's reports from a made-up run: schema, JUnit layout, fears and their links."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import xmlschema

from contactpoint.assure import report
from contactpoint.assure.criteria import Facts, judge, load_criteria

JUNIT_XSD = Path(__file__).parents[2] / "schemas" / "junit.xsd"


def _scenario(sid: str, status: str = "pass", severity: str = "high") -> dict[str, Any]:
    return {
        "id": sid,
        "group": sid.split(".")[0],
        "title": f"the {sid} check",
        "severity": severity,
        "owasp_api_2023": ["API1:2023"],
        "asvs_5_0": ["8.2.2"],
        "guards": [],
        "status": status,
        "message": "the control held" if status == "pass" else "it did not",
        "seconds": 0.5,
        "evidence": [{"note": "GET /api/v1/children/<redacted>"}],
    }


def _stage(sid: str, status: str = "passed") -> dict[str, Any]:
    return {"id": sid, "title": sid, "status": status, "summary": "", "seconds": 1.0, "details": {}}


def _doc(scenarios: list[dict[str, Any]], stages: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [(s["id"], s["severity"]) for s in scenarios if s["status"] in ("fail", "error")]
    verdicts = judge(
        load_criteria(),
        Facts(failed_scenarios=failed, stages={s["id"]: s["status"] for s in stages}),
    )
    return report.document(
        target="http://127.0.0.1:8000",
        mode="remote",
        quick=True,
        seconds=12.0,
        criteria_source="criteria.yaml",
        verdicts=verdicts,
        exit_code=1,
        stages=stages,
        scenarios=scenarios,
        load=None,
        not_tested=[{"what": "backup", "why": "a remote assessment cannot make one"}],
    )


SCENARIOS = [
    _scenario("insider.relative-browsing"),
    _scenario("harvesting.postcode-sweep"),
    _scenario("exfiltration.export-encrypted"),
    _scenario("shielding.household-leak", "fail", "critical"),
    _scenario("audit.tampering-detected"),
    _scenario("audit.log-verifies"),
]
STAGES = [_stage("security", "failed"), _stage("audit"), _stage("backup", "not_tested")]


def test_the_document_keeps_to_its_schema() -> None:
    jsonschema.validate(_doc(SCENARIOS, STAGES), json.loads(report.SCHEMA_FILE.read_text()))


def test_each_fear_says_what_was_shown() -> None:
    fears = {f["id"]: f for f in _doc(SCENARIOS, STAGES)["fears"]}
    assert fears["shielded-children"]["status"] == "not shown"
    assert "shielding.household-leak" in fears["shielded-children"]["summary"]
    assert fears["tampering"]["status"] == "shown"
    # The backup was not made and no load ran: shown in part, never in full.
    assert fears["bulk-loss"]["status"] == "partly shown"
    assert fears["harvesting"]["status"] == "partly shown"
    assert "harvesters under load" in fears["harvesting"]["summary"]


def test_every_evidence_link_has_its_target_in_the_page(tmp_path: Path) -> None:
    doc = _doc(SCENARIOS, STAGES)
    html = report.render_html(doc, None)
    ids = set(re.findall(r'id="([^"]+)"', html))
    links = re.findall(r'class="evidence-link" href="#([^"]+)"', html)
    assert links
    assert set(links) <= ids
    # Self-contained: nothing to fetch when it is viewed.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@media print" in html


def test_the_junit_file_keeps_to_the_common_layout(tmp_path: Path) -> None:
    doc = _doc(SCENARIOS, STAGES)
    path = tmp_path / "junit.xml"
    report.write_junit(path, doc)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(str(path))
    text = path.read_text()
    assert 'name="national"' in text
    assert "no-go" in text


def test_child_references_are_redacted_wherever_they_appear() -> None:
    from reference_app.kit.identifiers import new_child_id

    child = new_child_id()
    scenario = _scenario("authz.involvement-bola")
    scenario["message"] = f"{child} was shown"
    scenario["evidence"] = [{"path": f"/api/v1/children/{child}", "body": {"child_id": child}}]
    doc = _doc([scenario], STAGES)
    text = json.dumps(doc)
    assert child not in text
    assert "/api/v1/children/<child>" in text
    # A run of 13 characters whose check character does not match is not a reference.
    mistyped = child[:-1] + next(c for c in "0123456789" if c != child[-1])
    assert report.redact_child_references(mistyped) == mistyped
    assert report.redact_child_references("x" * 13) == "x" * 13
