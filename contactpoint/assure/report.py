"""The assessment's reports: `report.json` (versioned, with a JSON Schema), `junit.xml` and a
self-contained `report.html` (inline CSS and SVG, a print stylesheet, readable on a phone).

The HTML and the JSON come from the same document; the charts are the load harness's own SVG
writer (`loadtests.report`), drawn from the load run's summary.
"""

from __future__ import annotations

import json
import platform
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contactpoint.assure.criteria import WaveVerdict
from reference_app.kit.identifiers import ALPHABET, LENGTH, check_character

SCHEMA = "contactpoint-assure/1"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "assure-report-1.schema.json"
TEMPLATE = "report.html.j2"

# The five fears critics raised, and the evidence that answers each: scenario groups or ids,
# stages, and the adversary kinds hidden in the load run.
FEARS: tuple[dict[str, Any], ...] = (
    {
        "id": "insider-browsing",
        "title": "Insider browsing is caught",
        "scenarios": ("insider.",),
        "stages": (),
        "adversaries": "snooper",
    },
    {
        "id": "harvesting",
        "title": "Harvesting is stopped",
        "scenarios": ("harvesting.",),
        "stages": (),
        "adversaries": "harvester",
    },
    {
        "id": "bulk-loss",
        "title": "Bulk loss is impossible",
        "scenarios": ("exfiltration.", "audit.dump-holds-no-clear-text"),
        "stages": ("backup",),
        "adversaries": None,
    },
    {
        "id": "shielded-children",
        "title": "Shielded children are never confirmed",
        "scenarios": ("shielding.",),
        "stages": (),
        "adversaries": None,
    },
    {
        "id": "tampering",
        "title": "Tampering is detected",
        "scenarios": ("audit.log-verifies", "audit.tampering-detected"),
        "stages": ("audit",),
        "adversaries": None,
    },
)


# A child's reference anywhere in a string: 13 characters of Crockford base 32, not part of a
# longer run (TOTP secrets and tokens are longer).
_CHILD_REFERENCE = re.compile(rf"(?<![0-9A-Z])[{ALPHABET}]{{{LENGTH}}}(?![0-9A-Z])")
CHILD_REDACTED = "<child>"


def redact_child_references(value: Any) -> Any:
    """``value`` with every child reference that checks out replaced by ``<child>``.

    The attack report keeps the registry's pseudonymous references in its evidence so a
    developer can follow a request; this report goes before critics and keeps none.
    """
    if isinstance(value, str):
        return _CHILD_REFERENCE.sub(
            lambda m: CHILD_REDACTED if _is_reference(m.group(0)) else m.group(0), value
        )
    if isinstance(value, Mapping):
        return {k: redact_child_references(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_child_references(v) for v in value]
    return value


def _is_reference(text: str) -> bool:
    return check_character(text[:-1]) == text[-1]


def anchor(kind: str, ident: str) -> str:
    """The HTML id of a piece of evidence (a scenario, a stage, a strategy)."""
    return f"{kind}-" + "".join(c if c.isalnum() else "-" for c in ident)


def _matches(scenario_id: str, patterns: Sequence[str]) -> bool:
    return any(
        scenario_id == p or (p.endswith(".") and scenario_id.startswith(p)) for p in patterns
    )


def fears(
    scenarios: Sequence[Mapping[str, Any]],
    stages: Sequence[Mapping[str, Any]],
    load: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """Each fear with what was shown: passed, failed and untested evidence, linked."""
    out = []
    for fear in FEARS:
        evidence, bad, untested = [], [], []
        ran = 0
        for sc in scenarios:
            if not _matches(sc["id"], fear["scenarios"]):
                continue
            evidence.append({"label": sc["id"], "href": "#" + anchor("sc", sc["id"])})
            if sc["status"] in ("fail", "error"):
                bad.append(sc["id"])
            elif sc["status"] != "pass":
                untested.append(sc["id"])
                continue
            ran += 1
        for st in stages:
            if st["id"] in fear["stages"]:
                evidence.append(
                    {"label": f"{st['id']} stage", "href": "#" + anchor("stage", st["id"])}
                )
                if st["status"] in ("failed", "error"):
                    bad.append(f"{st['id']} stage")
                elif st["status"] != "passed":
                    untested.append(f"{st['id']} stage")
                    continue
                ran += 1
        kind = fear["adversaries"]
        caught_line = ""
        if kind is not None:
            rows = [r for r in (load or {}).get("strategies", []) if r.get("kind") == kind]
            if rows:
                actors = sum(int(r["actors"]) for r in rows)
                caught = sum(int(r["caught"]) for r in rows)
                caught_line = f"; under load {caught} of {actors} hidden {kind}s caught"
                evidence.append({"label": "detection under load", "href": "#detection"})
                ran += 1
                if caught < actors:
                    bad.append(f"{actors - caught} {kind}(s) missed under load")
            else:
                untested.append(f"{kind}s under load")
        if bad:
            status, text = "not shown", f"failed: {', '.join(bad)}"
        elif not ran:
            status, text = "not tested", "no evidence was gathered"
        elif untested:
            status = "partly shown"
            text = f"{ran} checks held; not run: {', '.join(untested)}"
        else:
            status, text = "shown", f"{ran} checks held"
        out.append(
            {
                "id": fear["id"],
                "title": fear["title"],
                "status": status,
                "summary": text + caught_line,
                "evidence": evidence,
            }
        )
    return out


def coverage(scenarios: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per OWASP API item: how many scenarios ran and passed in this run."""
    from security_tests.engine import NOT_APPLICABLE, OWASP_API_2023

    rows = []
    for item, title in OWASP_API_2023.items():
        mine = [s for s in scenarios if item in s["owasp_api_2023"]]
        rows.append(
            {
                "owasp": item,
                "title": title,
                "scenarios": len(mine),
                "passed": sum(1 for s in mine if s["status"] == "pass"),
                "failed": sum(1 for s in mine if s["status"] in ("fail", "error")),
                "not_applicable": NOT_APPLICABLE.get(item),
            }
        )
    return rows


def document(
    *,
    target: str,
    mode: str,
    quick: bool,
    seconds: float,
    criteria_source: str,
    verdicts: Sequence[WaveVerdict],
    exit_code: int,
    stages: Sequence[Mapping[str, Any]],
    scenarios: Sequence[Mapping[str, Any]],
    load: Mapping[str, Any] | None,
    not_tested: Sequence[Mapping[str, str]],
) -> dict[str, Any]:
    """The report: verdict per wave, the five fears, every stage and scenario, the gaps."""
    return {
        "schema": SCHEMA,
        "tool": "contactpoint assure",
        "target": target,
        "mode": mode,
        "quick": quick,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "machine": {"host": platform.node(), "python": platform.python_version()},
        "criteria": criteria_source,
        "waves": [v.as_dict() for v in verdicts],
        "exit_code": exit_code,
        "fears": fears(scenarios, stages, load),
        "stages": list(stages),
        "scenarios": redact_child_references(list(scenarios)),
        "load": dict(load) if load is not None else None,
        "coverage": coverage(scenarios),
        "not_tested": list(not_tested),
    }


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")


def write_junit(path: Path, doc: Mapping[str, Any]) -> None:
    """JUnit XML: a suite per wave (one case: its verdict), a suite per stage, and the security
    scenarios as cases of the security suite."""
    stages = doc["stages"]
    by_group: dict[str, list[Mapping[str, Any]]] = {}
    for sc in doc["scenarios"]:
        by_group.setdefault("static" if sc["group"] == "static" else "security", []).append(sc)
    suites = []
    waves = ET.Element("testsuite", name="rollout waves")
    for wave in doc["waves"]:
        case = ET.SubElement(waves, "testcase", classname="assure.wave", name=wave["wave"])
        case.set("time", "0.000")
        if wave["verdict"] == "no-go":
            ET.SubElement(case, "failure", message="; ".join(wave["reasons"]), type="no-go")
        elif wave["verdict"] == "could not judge":
            ET.SubElement(case, "error", message="; ".join(wave["reasons"]))
        out = ET.SubElement(case, "system-out")
        out.text = f"{wave['title']}: {wave['verdict']}\n" + "\n".join(wave["reasons"])
    suites.append(waves)
    for st in stages:
        suite = ET.Element("testsuite", name=f"{st['id']}: {st['title']}")
        members = by_group.get(st["id"], [])
        if members:
            for sc in members:
                case = ET.SubElement(
                    suite, "testcase", classname=f"assure.{st['id']}", name=sc["id"]
                )
                case.set("time", f"{sc['seconds']:.3f}")
                if sc["status"] == "fail":
                    ET.SubElement(case, "failure", message=sc["message"], type=sc["severity"])
                elif sc["status"] == "error":
                    ET.SubElement(case, "error", message=sc["message"])
                elif sc["status"] == "skipped":
                    ET.SubElement(case, "skipped", message=sc["message"])
        else:
            case = ET.SubElement(suite, "testcase", classname="assure.stage", name=st["id"])
            case.set("time", f"{st['seconds']:.3f}")
            if st["status"] == "failed":
                ET.SubElement(case, "failure", message=st["summary"], type="stage")
            elif st["status"] == "error":
                ET.SubElement(case, "error", message=st["summary"])
            elif st["status"] == "not_tested":
                ET.SubElement(case, "skipped", message=st["summary"])
        suites.append(suite)
    root = ET.Element("testsuites", name="contactpoint assure")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        counts = {
            "tests": len(suite.findall("testcase")),
            "failures": len(suite.findall("testcase/failure")),
            "errors": len(suite.findall("testcase/error")),
            "skipped": len(suite.findall("testcase/skipped")),
        }
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
        seconds = sum(float(c.get("time", "0")) for c in suite.findall("testcase"))
        suite.set("time", f"{seconds:.3f}")
        root.append(suite)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{doc['seconds']:.3f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def render_html(doc: Mapping[str, Any], summary: Mapping[str, Any] | None) -> str:
    """The self-contained page; ``summary`` is the load run's (for its charts), if any."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from markupsafe import Markup

    charts: list[tuple[str, Markup]] = []
    if summary is not None:
        from loadtests.report import latency_chart_svg, rate_chart_svg

        charts = [
            ("Planned against achieved rate", Markup(rate_chart_svg(summary))),  # noqa: S704
            ("Latency percentiles over time (corrected)", Markup(latency_chart_svg(summary))),  # noqa: S704
        ]
    env = Environment(
        loader=FileSystemLoader(Path(__file__).with_name("templates")),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["anchor"] = anchor
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    return env.get_template(TEMPLATE).render(doc=doc, charts=charts)


def write_html(path: Path, doc: Mapping[str, Any], summary: Mapping[str, Any] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(doc, summary), encoding="utf-8")
