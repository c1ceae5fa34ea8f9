"""The attack report as one self-contained HTML page: verdict, results by OWASP and ASVS, evidence.

No script, no network at view time, readable printed. The evidence is the redacted evidence of
the JSON report, folded per scenario.
"""

from __future__ import annotations

import json
from collections import defaultdict
from html import escape
from pathlib import Path
from typing import Any

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem;color:#1b1b1b}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f2f2f2}.pass{color:#0a6b2d}.fail,.error{color:#a4000f;font-weight:600}
.skipped{color:#6b5900}.verdict{font-size:1.3rem;padding:.6rem 1rem;border:2px solid}
.verdict.pass{border-color:#0a6b2d}.verdict.fail{border-color:#a4000f}
pre{white-space:pre-wrap;word-break:break-all;font-size:12px;background:#f7f7f7;padding:.5rem}
details{margin:.2rem 0}summary{cursor:pointer}
@media print{details{display:block}details>*{display:block}body{max-width:none}}
@media (max-width:40rem){td,th{font-size:13px}}
"""


def _status(value: str) -> str:
    return f'<span class="{escape(value)}">{escape(value)}</span>'


def _index(scenarios: list[dict[str, Any]], key: str) -> str:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sc in scenarios:
        for item in sc[key]:
            by_id[item].append(sc)
    rows = []
    for item in sorted(by_id, key=lambda v: [int(p) if p.isdigit() else p for p in v.split(".")]):
        members = by_id[item]
        worst = next(
            (
                s
                for s in ("fail", "error", "skipped", "pass")
                if any(m["status"] == s for m in members)
            ),
            "pass",
        )
        links = ", ".join(f'<a href="#{escape(m["id"])}">{escape(m["id"])}</a>' for m in members)
        rows.append(f"<tr><td>{escape(item)}</td><td>{_status(worst)}</td><td>{links}</td></tr>")
    return (
        "<table><tr><th>id</th><th>worst result</th><th>scenarios</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render(doc: dict[str, Any]) -> str:
    """The report page for a JSON report document (`security_tests.report.document`)."""
    scenarios = doc["scenarios"]
    counts = doc["counts"]
    verdict = doc["verdict"]
    failing = [s for s in scenarios if s["status"] in ("fail", "error")]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>contactpoint attack: {escape(verdict.upper())}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Security assessment: breach and access-abuse scenarios</h1>",
        f"<p class='verdict {escape(verdict)}' id='verdict'>Verdict: <b>{escape(verdict.upper())}"
        f"</b> (fail on {escape(doc['fail_on'])} and above)</p>",
        f"<p>Target {escape(doc['target'])}; finished {escape(doc['finished_at'])} after "
        f"{doc['seconds']:.0f} s; {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors, {counts['skipped']} skipped. Evidence is redacted: "
        "credentials, tokens and every personal field read &lt;redacted&gt;.</p>",
    ]
    if failing:
        parts.append("<h2>What failed</h2><ul>")
        for sc in failing:
            parts.append(
                f"<li><a href='#{escape(sc['id'])}'>{escape(sc['id'])}</a> "
                f"[{escape(sc['severity'])}]: {escape(sc['message'])}</li>"
            )
        parts.append("</ul>")
    parts += [
        "<h2>By OWASP API Security Top 10 (2023)</h2>",
        _index(scenarios, "owasp_api_2023"),
        "<h2>By ASVS 5.0 requirement</h2>",
        _index(scenarios, "asvs_5_0"),
        "<h2>Every scenario</h2>",
        "<table><tr><th>scenario</th><th>severity</th><th>result</th><th>OWASP</th>"
        "<th>ASVS</th><th>seconds</th></tr>",
    ]
    for sc in scenarios:
        parts.append(
            f"<tr><td><a href='#{escape(sc['id'])}'>{escape(sc['id'])}</a></td>"
            f"<td>{escape(sc['severity'])}</td><td>{_status(sc['status'])}</td>"
            f"<td>{escape(' '.join(sc['owasp_api_2023']))}</td>"
            f"<td>{escape(' '.join(sc['asvs_5_0']))}</td><td>{sc['seconds']:.1f}</td></tr>"
        )
    parts.append("</table><h2>Evidence</h2>")
    for sc in scenarios:
        parts.append(
            f"<section id='{escape(sc['id'])}'><h3>{escape(sc['id'])}: {escape(sc['title'])}</h3>"
            f"<p>{_status(sc['status'])} [{escape(sc['severity'])}] {escape(sc['message'])}</p>"
        )
        if sc["guards"]:
            parts.append(
                f"<p>Controls that make it fail when off: {escape(', '.join(sc['guards']))}</p>"
            )
        notes = [e["note"] for e in sc["evidence"] if "note" in e]
        exchanges = [e for e in sc["evidence"] if "request" in e]
        if notes:
            parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>")
        if exchanges:
            parts.append(
                f"<details><summary>{len(exchanges)} exchange(s)</summary>"
                f"<pre>{escape(json.dumps(exchanges, indent=1, default=str))}</pre></details>"
            )
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc), encoding="utf-8")
