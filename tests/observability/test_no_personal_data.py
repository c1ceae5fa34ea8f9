"""No personal data in telemetry: the allow-list, the log filter and the file scan.

The long tests serve a generated registry with every exporter writing to its log file (console
exporters: spans and metrics on stdout, JSON logs on stderr), run the security scenarios and a
practitioner's search and view of sampled children against it, and scan the file for every
sampled child's values. The same scan fails when a deployment lets a name through (a user agent
carrying a child's name, with the user agent on the allow-list).
"""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from contactpoint.cli import main
from observability.logs import JsonFormatter
from observability.privacy import PersonalDataFilter, RedactingSpanProcessor
from observability.scan import personal_values, scan
from security_tests import local
from tests.fixtures.population import persona_headers, read_jsonl

TELEMETRY_TO_FILES = {
    "OTEL_METRICS_EXPORTER": "console",
    "OTEL_TRACES_EXPORTER": "console",
    "OTEL_LOGS_EXPORTER": "console",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}


def test_span_processor_drops_attributes_off_the_list() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(exporter)))
    with provider.get_tracer("t").start_as_current_span("GET /api/v1/children/{child_id}") as s:
        s.set_attribute("http.route", "/api/v1/children/{child_id}")
        s.set_attribute("url.query", "family_name=Edwards")
        s.set_attribute("client.address", "203.0.113.9")
        s.set_attribute("child.name", "James Edwards")
        s.add_event("exception", {"exception.type": "ValueError", "exception.message": "Edwards"})
    (span,) = exporter.get_finished_spans()
    assert dict(span.attributes or {}) == {"http.route": "/api/v1/children/{child_id}"}
    assert "Edwards" not in span.to_json()
    assert dict(span.events[0].attributes or {}) == {"exception.type": "ValueError"}


def test_log_lines_are_json_with_ids_and_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(PersonalDataFilter())
    logger = logging.getLogger("test.observability")
    logger.addHandler(handler)
    try:
        logger.warning("child %s born %s at %s", "JDPF68Q1VRMWR", "2012-12-08", "PR1 4ZZ")
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "WARNING"
    assert entry["message"] == "child [redacted] born [redacted] at [redacted]"


def test_the_scan_finds_a_value_and_names_only_its_kind(tmp_path: Path) -> None:
    (tmp_path / "children_sample.jsonl").write_text(
        json.dumps(
            {
                "child_id": "JDPF68Q1VRMWR",
                "family_name": "Edwards",
                "given_name": "James",
                "date_of_birth": "2012-12-08",
                "postcode": "PR1 4ZZ",
            }
        )
        + "\n"
    )
    values = personal_values(tmp_path)
    log = tmp_path / "server.log"
    log.write_text('{"name": "GET /x"}\n{"user_agent.original": "Edwardson"}\n{"pc": "PR14ZZ"}\n')
    (finding,) = scan([log], values)
    assert (finding.line, finding.field) == (3, "postcode")
    assert "PR1" not in repr(finding)


def _persona_session(reg: local.LocalRegistry, user_agent: str | None = None) -> int:
    """A data manager searches for and views every sampled child of their LA; views made."""
    personas = json.loads(reg.personas.read_text())
    sample = read_jsonl(reg.data_dir / "children_sample.jsonl")
    viewed = 0
    headers = {"User-Agent": user_agent} if user_agent else {}
    with httpx.Client(base_url=reg.url, headers=headers, timeout=30) as client:
        for persona in personas:
            if persona.get("role") != "la_data_manager":
                continue
            la = persona.get("local_authority")
            mine = [c for c in sample if c.get("local_authority") == la and not c.get("shielded")]
            if not mine:
                continue
            auth = persona_headers(client, persona)
            for child in mine[:5]:
                found = client.post(
                    "/api/v1/children/search",
                    headers=auth,
                    json={
                        "family_name": child["family_name"],
                        "given_name": child["given_name"],
                        "date_of_birth": child["date_of_birth"],
                    },
                )
                assert found.status_code == 200, found.text
                view = client.get(
                    f"/api/v1/children/{child['child_id']}",
                    headers=auth | {"X-Access-Reason": "safeguarding"},
                )
                assert view.status_code == 200, view.text
                viewed += 1
            client.get(f"/api/v1/children/{mine[0]['child_id']}?q={mine[0]['family_name']}")
            if viewed >= 10:
                break
    return viewed


def _telemetry_lines(log: Path) -> dict[str, int]:
    kinds = {"spans": 0, "metrics": 0, "logs": 0}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry: Any = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "context" in entry and "trace_id" in entry.get("context", {}):
            kinds["spans"] += 1
        elif "resource_metrics" in entry:
            kinds["metrics"] += 1
        elif "level" in entry and "message" in entry:
            kinds["logs"] += 1
    return kinds


@pytest.mark.long
def test_security_scenarios_leave_no_personal_data_in_telemetry(
    attack_template: Path, tmp_path: Path
) -> None:
    with local.serve(attack_template, tmp_path / "run", settings=TELEMETRY_TO_FILES) as reg:
        assert _persona_session(reg) >= 5
        time.sleep(30.5 - time.time() % 30)  # a one-time code works once: the next step's
        result = CliRunner().invoke(
            main, ["attack", "--target", reg.url, "--personas", str(reg.personas)]
        )
        assert result.exit_code in (0, 1), result.output
        time.sleep(2)  # one more metric export interval
    log = reg.data_dir / "server.log"
    kinds = _telemetry_lines(log)
    assert kinds["spans"] > 100, kinds
    assert kinds["metrics"] > 0, kinds
    assert kinds["logs"] > 0, kinds
    findings = scan([log], personal_values(reg.data_dir))
    assert findings == [], findings[:20]


@pytest.mark.long
def test_the_scan_fails_when_a_planted_attribute_carries_a_name(
    attack_template: Path, tmp_path: Path
) -> None:
    sample = json.loads((attack_template / "children_sample.jsonl").read_text().splitlines()[0])
    planted = {**TELEMETRY_TO_FILES, "OTEL_CONTACTPOINT_SPAN_ALLOW": "user_agent.original"}
    with local.serve(attack_template, tmp_path / "run", settings=planted) as reg:
        _persona_session(reg, user_agent=f"probe {sample['family_name']}")
    findings = scan([reg.data_dir / "server.log"], personal_values(reg.data_dir))
    assert any(f.field == "family_name" for f in findings), findings[:5]
