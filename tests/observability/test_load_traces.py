"""A slow request in a load report can be found in the registry's traces: the report keeps each
endpoint's slowest requests with the trace ids they were sent with, and a registry with a
parent-based sampler keeps exactly the traces the harness marked sampled (long: a served
registry and a real Locust run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from security_tests import local

pytestmark = pytest.mark.long
# The harness marks half its requests sampled, as a trace-id ratio sampler would.
HARNESS_SAMPLER = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}


def _server_trace_ids(log: Path) -> set[str]:
    """Trace ids of the spans the registry wrote (console exporter: a JSON object a line)."""
    found = set()
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        context = record.get("context") if isinstance(record, dict) else None
        if isinstance(context, dict) and "trace_id" in context:
            found.add(str(context["trace_id"]).removeprefix("0x"))
    return found


def test_the_slowest_requests_of_a_load_run_are_in_the_registrys_traces(
    load_template: Path, tmp_path: Path
) -> None:
    from loadtests.cli import reference_settings

    settings = {
        **reference_settings(time.time()),
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        # The registry samples nothing of its own accord: only what a caller marked sampled.
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }
    out = tmp_path / "out"
    with local.serve(load_template, tmp_path / "registry", settings=settings) as registry:
        load = subprocess.run(
            [
                sys.executable, "-m", "contactpoint.cli", "load",
                "--target", registry.url,
                "--personas", str(load_template / "load-personas.json"),
                "--profile", "steady", "--rate", "1", "--think-scale", "0.2",
                "--duration", "15", "--out", str(out),
            ],
            env={**os.environ, **HARNESS_SAMPLER},
            capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert load.returncode in (0, 1, 3), load.stdout[-3000:] + load.stderr[-3000:]
        time.sleep(6)  # the batch span processor's export delay (5 s)
    summary = json.loads((out / "summary.json").read_text())
    slowest = summary["slowest"]
    assert slowest, "the report kept no slowest requests"
    rows = [row for rows in slowest.values() for row in rows]
    assert all(row["trace_id"] and len(row["trace_id"]) == 32 for row in rows)
    traced = _server_trace_ids(tmp_path / "registry" / "server.log")
    assert traced, "the registry wrote no spans"
    sampled = [row["trace_id"] for row in rows if row["trace_sampled"]]
    unsampled = [row["trace_id"] for row in rows if not row["trace_sampled"]]
    assert sampled, rows
    assert set(sampled) <= traced
    assert not set(unsampled) & traced
    # The HTML report and the console name them too.
    assert all(row["trace_id"] in (out / "report.html").read_text() for row in rows)
    assert any(t in load.stdout for t in sampled + unsampled)
