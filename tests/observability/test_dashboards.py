"""Dashboards: Grafana JSON whose every PromQL query parses (promtool, each query wrapped in a
recording rule) and names only metrics the registry, the harness, a standard exporter or our
recording rules provide."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.prom_tools import DASHBOARDS, RULES, RUNBOOK, run, tool

# The standard exporters' and Prometheus's own series the dashboards and rules use
# (node_exporter, postgres_exporter, redis_exporter; `up` and `ALERTS` come from Prometheus).
STANDARD = {
    "up",
    "ALERTS",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "pg_up",
    "pg_stat_database_numbackends",
    "pg_settings_max_connections",
    "redis_up",
    "redis_memory_used_bytes",
    "redis_connected_clients",
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "offset", "bool"}
KEYWORDS |= {"group_left", "group_right", "inf", "nan"}


def agreed_metrics() -> set[str]:
    """The series of docs/runbook.md's metrics table (histograms with their three series)."""
    names = set()
    for line in RUNBOOK.read_text().splitlines():
        match = re.match(r"\| `([a-z_]+)` \| (\w+) \|", line)
        if match:
            name, kind = match.groups()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
    return names


def recorded() -> set[str]:
    return {
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        follows = text[match.end() :].lstrip()
        if follows.startswith("(") or match.group() in KEYWORDS:
            continue
        if match.start() > 0 and (
            text[match.start() - 1].isdigit() or text[match.start() - 1] == "."
        ):
            continue  # exponent or unit of a number
        names.add(match.group())
    return names


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = []
    for panel in dashboard["panels"]:
        found.extend(target["expr"] for target in panel.get("targets", []))
        for inner in panel.get("panels", []):
            found.extend(target["expr"] for target in inner.get("targets", []))
    return found


def all_queries() -> list[tuple[str, str]]:
    return [
        (path.stem, expr) for path in DASHBOARDS for expr in queries(json.loads(path.read_text()))
    ]


def check_parses(exprs: list[str], tmp_path: Path) -> tuple[int, str]:
    rules = {
        "groups": [
            {
                "name": "dashboard-queries",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run([tool("promtool"), "check", "rules", str(path)])
    return result.returncode, result.stdout + result.stderr


def test_three_dashboards() -> None:
    assert {path.stem for path in DASHBOARDS} == {"registry-health", "security-signals", "load-run"}
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"]
        assert dashboard["title"]
        assert dashboard["panels"]
        uids = {
            target["datasource"]["uid"]
            for panel in dashboard["panels"]
            for target in panel["targets"]
        }
        assert uids == {"${datasource}"}
        assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]


def test_every_query_parses(tmp_path: Path) -> None:
    exprs = [expr for _, expr in all_queries()]
    assert len(exprs) > 30
    code, output = check_parses(exprs, tmp_path)
    assert code == 0, output
    assert f"SUCCESS: {len(exprs)} rules found" in output


def test_a_broken_query_is_caught(tmp_path: Path) -> None:
    code, output = check_parses(
        ["sum by (kind) (rate(contactpoint_alerts_raised_total[5m])"], tmp_path
    )
    assert code != 0
    assert "unclosed" in output or "parse error" in output


@pytest.mark.parametrize(("dashboard", "expr"), all_queries())
def test_query_names_known_metrics(dashboard: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"no metric in {expr}"
    assert names - agreed_metrics() - STANDARD - recorded() == set()


def test_metric_names_extraction() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (http_route, le) "
        "(rate(http_server_request_duration_seconds_bucket"
        '{job="a", le=~"1(\\\\.0)?"}[5m]))) '
        '/ on() group_left(x) ALERTS{alertstate="firing"} and 1e3'
    )
    assert metric_names(expr) == {"http_server_request_duration_seconds_bucket", "ALERTS"}
    assert "contactpoint_alerts_open" in agreed_metrics()
    assert "contactpoint_load_latency_seconds_bucket" in agreed_metrics()
    assert "contactpoint_denails_total" not in agreed_metrics()
