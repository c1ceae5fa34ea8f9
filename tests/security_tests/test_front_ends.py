"""The two front ends over one engine: `contactpoint attack` and `pytest security_tests`.

Both run against a real registry served over HTTP; the weakened build (security headers off)
gives a medium-severity failure, so the exit codes and reports have something to say.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import xmlschema
from click.testing import CliRunner

from contactpoint.cli import main
from security_tests import local, report

ROOT = Path(__file__).parents[2]
JUNIT_SCHEMA = xmlschema.XMLSchema(str(ROOT / "tests" / "schemas" / "junit.xsd"))


def junit_cases(path: Path) -> list[ET.Element]:
    """The testcase elements of a JUnit file this project wrote."""
    return list(ET.parse(path).getroot().iter("testcase"))  # noqa: S314 (our own report)


def attack(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["attack", *args])
    return result.exit_code, result.output


def test_the_cli_gives_a_verdict_reports_and_exit_codes(
    attack_template: Path, tmp_path: Path
) -> None:
    with local.serve(attack_template, tmp_path / "weak", disabled=["security_headers"]) as reg:
        base = ["--target", reg.url, "--personas", str(reg.personas), "--only", "transport"]
        code, out = attack(
            *base,
            "--json",
            str(tmp_path / "r.json"),
            "--junit",
            str(tmp_path / "r.xml"),
            "--html",
            str(tmp_path / "r.html"),
        )
        assert code == 1, out
        assert "FAIL transport.security-headers [medium]" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(doc, json.loads(report.SCHEMA_FILE.read_text()))
    assert doc["schema"] == "contactpoint-attack/1"
    assert doc["verdict"] == "fail"
    JUNIT_SCHEMA.validate(str(tmp_path / "r.xml"))
    root = ET.parse(tmp_path / "r.xml").getroot()  # noqa: S314 (our own report)
    assert int(root.get("tests") or 0) == len(doc["scenarios"])
    assert int(root.get("failures") or 0) == doc["counts"]["fail"]
    for suite in root.iter("testsuite"):
        assert float(suite.get("time") or 0) <= float(root.get("time") or 0)
    page = (tmp_path / "r.html").read_text()
    assert "Verdict: <b>FAIL</b>" in page
    assert "href='#transport.security-headers'" in page
    assert "API8:2023" in page
    assert "<script" not in page
    assert "http://" not in page.replace(doc["target"], "")  # nothing fetched at view time
    by_id = {s["id"]: s for s in doc["scenarios"]}
    failed = by_id["transport.security-headers"]
    assert failed["status"] == "fail"
    assert failed["owasp_api_2023"] == ["API8:2023"]
    assert failed["asvs_5_0"]
    assert by_id["transport.tls-and-hsts"]["status"] == "skipped"
    # The evidence is the exchanges, with the bearer token redacted.
    requests = [e["request"] for e in failed["evidence"] if "request" in e]
    assert requests
    assert all(
        r["headers"].get("authorization", "Bearer <redacted>") == "Bearer <redacted>"
        for r in requests
    )
    cases = {case.get("name"): case for case in junit_cases(tmp_path / "r.xml")}
    assert cases["transport.security-headers"].find("failure") is not None
    assert cases["transport.tls-and-hsts"].find("skipped") is not None
    assert cases["transport.cors-closed"].find("failure") is None


def test_the_cli_refuses_bad_usage() -> None:
    assert attack()[0] == 2
    assert attack("--reference", "--only", "nosuchgroup")[0] == 2


def test_the_cli_stops_at_once_when_the_target_is_down(
    attack_template: Path, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    personas = attack_template / "personas.json"
    code, out = attack("--target", f"http://127.0.0.1:{port}", "--personas", str(personas))
    assert code == 4, out
    assert "does not answer" in out
    assert "attacking" not in out  # no scenario ran


def test_the_cli_refuses_personas_that_are_not_the_targets(
    attack_template: Path, tmp_path: Path
) -> None:
    rows = json.loads((attack_template / "personas.json").read_text())
    for row in rows:
        row["password"] = "not-" + row["password"]
    wrong = tmp_path / "personas.json"
    wrong.write_text(json.dumps(rows))
    with local.serve(attack_template, tmp_path / "run") as reg:
        code, out = attack("--target", reg.url, "--personas", str(wrong), "--only", "transport")
    assert code == 2, out
    assert "cannot log in" in out
    assert "attacking" not in out


def test_pytest_runs_the_same_scenarios(attack_template: Path, tmp_path: Path) -> None:
    with local.serve(attack_template, tmp_path / "weak", disabled=["security_headers"]) as reg:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "security_tests",
                "-p",
                "no:cacheprovider",
                "-q",
                "--target",
                reg.url,
                "--personas",
                str(reg.personas),
                "--only",
                "transport",
                "--fail-on",
                "high",
                "--junitxml",
                str(tmp_path / "p.xml"),
                "--security-json",
                str(tmp_path / "p.json"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    # The medium failures (security headers, the OpenAPI document served without a login) are
    # under --fail-on high: reported as expected failures, exit 0.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 xfailed" in proc.stdout
    assert "skipped" in proc.stdout
    doc = json.loads((tmp_path / "p.json").read_text())
    assert {s["id"]: s["status"] for s in doc["scenarios"]}["transport.security-headers"] == "fail"
    props = {
        p.get("name"): p.get("value")
        for case in junit_cases(tmp_path / "p.xml")
        if "security-headers" in (case.get("name") or "")
        for p in case.iter("property")
    }
    assert props["severity"] == "medium"
    assert props["owasp_api_2023"] == "API8:2023"
