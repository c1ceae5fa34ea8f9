"""Debian's Prometheus tools for the observability tests: found on PATH, or a skip with the
reason, turned into a failure by CONTACTPOINT_REQUIRE_PROMETHEUS=1 (set by .ci/run, which
installs `prometheus` and `prometheus-alertmanager`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OBS = ROOT / "observability"
PROMETHEUS_DIR = OBS / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))
ALERTMANAGER_CONFIG = OBS / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((OBS / "dashboards").glob("*.json"))
COLLECTOR_CONFIG = OBS / "collector" / "config.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
ENV_REQUIRE = "CONTACTPOINT_REQUIRE_PROMETHEUS"


def required() -> bool:
    return os.environ.get(ENV_REQUIRE, "") not in ("", "0", "false")


def tool(name: str) -> str:
    """The path of ``name`` (promtool, amtool, prometheus, prometheus-alertmanager)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install prometheus prometheus-alertmanager)"
        if required():
            pytest.fail(f"{message}; {ENV_REQUIRE} is set")
        pytest.skip(message)
    return path


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors for the headings of ``markdown``."""
    found = set()
    for line in markdown.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return found
