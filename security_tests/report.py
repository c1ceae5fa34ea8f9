"""Reports of a run: a terminal summary, a versioned JSON document, JUnit XML and HTML.

The JSON document's fields are described in `docs/attack-report.md` and checked by the JSON
Schema shipped beside this module (`schemas/attack-report-1.schema.json`); ``schema`` names the
version. The JUnit file keeps to the common JUnit layout (no properties inside test cases; the
scenarios' ids and severities are properties of their suite), with totals on the root and each
suite's time the span of its scenarios, which run partly side by side.
"""

from __future__ import annotations

import json
import platform
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from security_tests.engine import GROUPS, Result, Severity, Status, failing

SCHEMA = "contactpoint-attack/1"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "attack-report-1.schema.json"

MARKS = {
    Status.PASSED: "PASS",
    Status.FAILED: "FAIL",
    Status.ERROR: "ERROR",
    Status.SKIPPED: "SKIP",
}


def line(index: int, total: int, result: Result) -> str:
    """One progress line for a finished scenario."""
    sc = result.scenario
    width = len(str(total))
    text = (
        f"[{index:>{width}}/{total}] {MARKS[result.status]:<5} {sc.id:<42} "
        f"{sc.severity.label:<8} {result.seconds:6.1f}s"
    )
    if result.status is not Status.PASSED:
        text += f"\n{'':>{2 * width + 9}}{result.message}"
    return text


def summary(results: list[Result], threshold: Severity, seconds: float) -> str:
    """The closing table: counts per group and status, then the failures."""
    counts = Counter(r.status for r in results)
    by_group: dict[str, Counter[Status]] = {g: Counter() for g in GROUPS}
    for r in results:
        by_group[r.scenario.group][r.status] += 1
    rows = [f"{'group':<14} {'pass':>5} {'fail':>5} {'error':>6} {'skip':>5}"]
    for group, c in by_group.items():
        if sum(c.values()):
            rows.append(
                f"{group:<14} {c[Status.PASSED]:>5} {c[Status.FAILED]:>5} "
                f"{c[Status.ERROR]:>6} {c[Status.SKIPPED]:>5}"
            )
    rows.append(
        f"{len(results)} scenarios in {seconds:.1f}s: {counts[Status.PASSED]} passed, "
        f"{counts[Status.FAILED]} failed, {counts[Status.ERROR]} errors, "
        f"{counts[Status.SKIPPED]} skipped (fail-on {threshold.label})"
    )
    for r in results:
        if r.status in (Status.FAILED, Status.ERROR):
            rows.append(
                f"  {MARKS[r.status]} {r.scenario.id} [{r.scenario.severity.label}]: {r.message}"
            )
    return "\n".join(rows)


def verdict(results: list[Result], threshold: Severity) -> str:
    """ "fail" when a scenario at or above ``threshold`` failed or errored, else "pass"."""
    return "fail" if failing(results, threshold) else "pass"


def document(
    results: list[Result], *, target: str, threshold: Severity, seconds: float
) -> dict[str, Any]:
    """The JSON report: the run, then every scenario with its controls and evidence."""
    counts = Counter(r.status.value for r in results)
    return {
        "schema": SCHEMA,
        "tool": "contactpoint attack",
        "target": target,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "machine": {"host": platform.node(), "python": platform.python_version()},
        "fail_on": threshold.label,
        "verdict": verdict(results, threshold),
        "counts": {s.value: counts.get(s.value, 0) for s in Status},
        "scenarios": [r.to_dict() for r in results],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def _span(results: list[Result]) -> float:
    """Seconds from the first scenario's start to the last one's end."""
    if not results:
        return 0.0
    return max(r.started + r.seconds for r in results) - min(r.started for r in results)


def write_junit(path: Path, results: list[Result], *, target: str, seconds: float) -> None:
    """JUnit XML: one testsuite per group, one testcase per scenario, evidence as system-out."""
    totals = Counter(r.status for r in results)
    root = ET.Element(
        "testsuites",
        name="contactpoint attack",
        tests=str(len(results)),
        failures=str(totals[Status.FAILED]),
        errors=str(totals[Status.ERROR]),
        skipped=str(totals[Status.SKIPPED]),
        time=f"{seconds:.3f}",
    )
    for group, title in GROUPS.items():
        members = [r for r in results if r.scenario.group == group]
        if not members:
            continue
        counts = Counter(r.status for r in members)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{group}: {title}",
            tests=str(len(members)),
            failures=str(counts[Status.FAILED]),
            errors=str(counts[Status.ERROR]),
            skipped=str(counts[Status.SKIPPED]),
            time=f"{min(seconds, _span(members)):.3f}",
        )
        props = ET.SubElement(suite, "properties")
        ET.SubElement(props, "property", name="target", value=target)
        for r in members:
            sc = r.scenario
            for name, value in (
                ("severity", sc.severity.label),
                ("owasp_api_2023", " ".join(sc.owasp)),
                ("asvs_5_0", " ".join(sc.asvs)),
            ):
                ET.SubElement(props, "property", name=f"{sc.id}.{name}", value=value)
        for r in members:
            sc = r.scenario
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"security.{group}",
                name=sc.id,
                time=f"{r.seconds:.3f}",
            )
            if r.status is Status.FAILED:
                ET.SubElement(case, "failure", message=r.message, type=sc.severity.label)
            elif r.status is Status.ERROR:
                ET.SubElement(case, "error", message=r.message)
            elif r.status is Status.SKIPPED:
                ET.SubElement(case, "skipped", message=r.message)
            out = ET.SubElement(case, "system-out")
            head = f"{sc.title}\nseverity {sc.severity.label}; OWASP {' '.join(sc.owasp)}; "
            head += f"ASVS {' '.join(sc.asvs)}\n"
            out.text = head + json.dumps(r.evidence, separators=(",", ":"), default=str)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
