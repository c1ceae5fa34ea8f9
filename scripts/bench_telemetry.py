"""Telemetry overhead: CPU per request of the registry with telemetry off, metrics only, and
metrics plus traces at a parent-based ratio sampler, in one session, rounds interleaved.

Each mode serves a fresh copy of one generated registry (``security_tests.local``: SQLite,
3,000 children, one worker) with only the ``OTEL_*`` variables changed, logs in an LA data
manager, warms up, then sends a fixed number of audited record views (the hot path) from a
keep-alive client in another process and reads the server's CPU (utime + stime, /proc) before
and after. Rounds go off, metrics, traces, off, metrics, traces ... so drift on a shared machine
falls on every mode alike; the median of the rounds is reported, each round beside it.

- off: no ``OTEL_*`` at all.
- metrics: ``OTEL_METRICS_EXPORTER=prometheus`` (HTTP and SQL histograms recorded; the
  security metrics cost nothing until a scrape, and one scrape runs after the window).
- traces: metrics plus ``OTEL_TRACES_EXPORTER=console`` (spans as JSON lines into the server's
  log file) with ``parentbased_traceidratio`` at ``--ratio``.

    .venv/bin/python scripts/bench_telemetry.py --out benchmarks/telemetry-overhead.json
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import httpx
import pyotp
from bench_request_cost import Job, cpu_ticks, send  # scripts/ is on the path

from security_tests import local

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "metrics": {"OTEL_METRICS_EXPORTER": "prometheus"},
    "traces": {
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    },
}
# One client address sends everything; the background workers are paced out of the window.
QUIET = {
    "CONTACTPOINT_LIMITS_SCALE": "1000",
    "CONTACTPOINT_LIMIT_SOURCE_PER_MINUTE": "1000000",
    "CONTACTPOINT_AUDIT_SEAL_INTERVAL_SECONDS": "3600",
    "CONTACTPOINT_DETECTOR_INTERVAL_SECONDS": "3600",
}


def _server_pid(reg: local.LocalRegistry) -> int:
    """The serving process: the one whose command line is `... serve --port P`."""
    port = reg.url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and port.encode() in cmd:
            return int(proc.name)
    raise RuntimeError("the server process was not found")


def _jobs(reg: local.LocalRegistry, n: int) -> list[Job]:
    personas = json.loads(reg.personas.read_text())
    sample = [
        json.loads(line)
        for line in (reg.data_dir / "children_sample.jsonl").read_text().splitlines()
        if line.strip()
    ]
    persona = next(p for p in personas if p["role"] == "la_data_manager")
    mine = [
        c["child_id"]
        for c in sample
        if c["local_authority"] == persona["local_authority"]
        and not (c.get("shielded") or c.get("household_shielded"))
    ]
    login = httpx.post(
        f"{reg.url}/api/v1/auth/login",
        json={
            "username": persona["username"],
            "password": persona["password"],
            "otp": pyotp.TOTP(persona["totp_secret"]).now(),
        },
        timeout=30,
    )
    login.raise_for_status()
    headers = {
        "Authorization": f"Bearer {login.json()['access_token']}",
        "X-Access-Reason": "safeguarding",
    }
    return [Job("GET", f"/api/v1/children/{mine[i % len(mine)]}", headers) for i in range(n)]


def measure(template: Path, work: Path, env: dict[str, str], count: int, warmup: int) -> Any:
    with local.serve(template, work, settings=QUIET | env) as reg:
        pid = _server_pid(reg)
        port = int(reg.url.rsplit(":", 1)[1])
        jobs = _jobs(reg, count + warmup)
        send(port, jobs[:warmup], 4, 300)
        before, started = cpu_ticks(pid), time.monotonic()
        statuses = send(port, jobs[warmup:], 4, 600)
        cpu_ms = (cpu_ticks(pid) - before) * 1000 / CLOCK_TICKS
        wall = time.monotonic() - started
        if "OTEL_METRICS_EXPORTER" in env:
            page = httpx.get(f"{reg.url}/metrics", timeout=30)
            assert "http_server_request_duration_seconds" in page.text
    answered = sum(n for code, n in statuses.items() if code == 200)
    if answered != count:
        raise RuntimeError(f"not every view was answered: {statuses}")
    return {"cpu_ms_per_request": round(cpu_ms / count, 3), "requests_per_s": round(count / wall)}


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--rounds", default=3, show_default=True)
@click.option("--count", default=2000, show_default=True, help="measured views per mode")
@click.option("--warmup", default=300, show_default=True)
@click.option("--ratio", default=0.1, show_default=True, help="the trace sampler's ratio")
def main(out: Path, rounds: int, count: int, warmup: int, ratio: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-otel-") as tmp:
        template = local.prepare(Path(tmp) / "template")
        runs: dict[str, list[Any]] = {mode: [] for mode in MODES}
        for r in range(rounds):
            for mode, env in MODES.items():
                env = env | ({"OTEL_TRACES_SAMPLER_ARG": str(ratio)} if mode == "traces" else {})
                result = measure(template, Path(tmp) / f"{mode}-{r}", env, count, warmup)
                runs[mode].append(result)
                click.echo(f"round {r + 1} {mode}: {result}", err=True)
    median = {
        mode: statistics.median(x["cpu_ms_per_request"] for x in results)
        for mode, results in runs.items()
    }
    report = {
        "what": "registry CPU per audited record view (SQLite, 3,000 children, one worker, "
        "keep-alive client, concurrency 4), telemetry off / metrics only / metrics + traces",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "trace_ratio": ratio,
        "requests_per_mode_and_round": count,
        "cpu_ms_per_request_median": median,
        "overhead_percent": {
            mode: round(100 * (median[mode] / median["off"] - 1), 1)
            for mode in MODES
            if mode != "off"
        },
        "target": "metrics only under 10 %",
        "rounds": runs,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report["overhead_percent"]), err=True)


if __name__ == "__main__":
    main()
