"""Debian's Prometheus tools for the observability tests: found on PATH, or a skip with the
reason, turned into a failure by CONTACTPOINT_REQUIRE_PROMETHEUS=1 (set by .ci/run, which
installs `prometheus` and `prometheus-alertmanager`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from security_tests.local import free_port, stop

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


@dataclass(frozen=True)
class Prometheus:
    url: str
    dir: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (an error fails the test with Prometheus's reason)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns a non-empty vector (fail with the targets' state if not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(expr)
            if result:
                return result
            time.sleep(0.5)
        targets = httpx.get(f"{self.url}/api/v1/targets", timeout=10).json()
        pytest.fail(f"no result for {expr} within {timeout} s; targets: {targets}")


@contextmanager
def prometheus(
    work: Path, jobs: dict[str, list[str]], *, rules: bool = False
) -> Iterator[Prometheus]:
    """Debian's prometheus as a plain process in ``work`` scraping each job's targets (at
    /metrics) every second, with this project's rules (evaluated every second) if ``rules``."""
    binary = tool("prometheus")
    work.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {"job_name": job, "metrics_path": "/metrics", "static_configs": [{"targets": targets}]}
            for job, targets in jobs.items()
        ],
    }
    if rules:
        config["rule_files"] = [str(path) for path in RULES]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = [
        binary,
        f"--config.file={work / 'prometheus.yml'}",
        f"--storage.tsdb.path={work / 'data'}",
        "--web.enable-lifecycle",
    ]
    with served(args, work / "prometheus.log") as url:
        yield Prometheus(url=url, dir=work)


@contextmanager
def served(args: list[str], log_path: Path) -> Iterator[str]:
    """Run a Prometheus-family server (``args`` plus a free loopback --web.listen-address) until
    its /-/ready answers; yield its URL; stop it afterwards."""
    port = free_port()
    log = log_path.open("wb")
    process = subprocess.Popen(
        [*args, f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                log.flush()
                pytest.fail(f"{args[0]} exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{args[0]} did not become ready within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        stop(process)
        log.close()
