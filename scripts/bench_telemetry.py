"""Telemetry overhead: CPU per request of the registry with telemetry off, metrics only, and
metrics plus traces at a parent-based ratio sampler, in one session, side by side.

Each mode serves its own fresh copy of one generated registry (``security_tests.local``:
SQLite, 3,000 children, one worker) with only the ``OTEL_*`` variables changed; the three run
side by side. An LA data manager logs in to each, and blocks of audited record views (the hot
path) go to off, metrics, traces, off, metrics, traces ... from a keep-alive client in another
process, each block's server CPU read from /proc (utime + stime) before and after, so drift on
a shared machine falls on every mode alike; the order within each round is shuffled (seeded),
so no mode always follows another. Totals over the blocks are reported, each block beside them,
and the overhead also as the median of each round's ratio to the same round's "off" block, with
a bootstrap 95 % interval: on a busy machine a single block varies by 10 % and more.

- off: no ``OTEL_*`` at all.
- metrics: ``OTEL_METRICS_EXPORTER=prometheus`` (HTTP and SQL histograms recorded; the
  security metrics cost nothing until a scrape, and one scrape runs after the window).
- traces: metrics plus ``OTEL_TRACES_EXPORTER=console`` (spans as JSON lines into the server's
  log file) with ``parentbased_traceidratio`` at ``--ratio``.

Time on a shared machine moves with everything else running on it, so each mode is also
measured in **instructions** (`--instructions`, the default; needs Debian's valgrind): the server
runs under callgrind with instrumentation off until it has started and served a warm-up, then
counts exactly the instructions of a fixed number of views (``callgrind_control -i on``, ``-z``,
the views, ``-d``). The same build, data and requests give the same count within a fraction of a
percent whatever else the machine is doing; this is the figure the target is judged on, with CPU
time beside it.

    .venv/bin/python scripts/bench_telemetry.py --out benchmarks/telemetry-overhead.json
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
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


def paired(off: list[float], mode: list[float], draws: int = 2000) -> dict[str, float]:
    """The median of round-by-round ratios (as a percentage overhead) and a bootstrap 95 %
    interval for it (seeded: the same blocks give the same interval)."""
    ratios = [b / a for a, b in zip(off, mode, strict=True)]
    pick = random.Random(29).choices  # noqa: S311 - resampling, not secrets
    medians = sorted(statistics.median(pick(ratios, k=len(ratios))) for _ in range(draws))
    return {
        "median_percent": round(100 * (statistics.median(ratios) - 1), 1),
        "ci95_low_percent": round(100 * (medians[int(0.025 * draws)] - 1), 1),
        "ci95_high_percent": round(100 * (medians[int(0.975 * draws) - 1] - 1), 1),
    }


def measure(
    template: Path, work: Path, envs: dict[str, dict[str, str]], blocks: int, block: int
) -> dict[str, Any]:
    """Serve every mode at once and send them blocks of views in turn, so drift on a shared
    machine falls on each mode alike; CPU and time are summed over the blocks."""
    with contextlib.ExitStack() as stack:
        regs = {
            mode: stack.enter_context(local.serve(template, work / mode, settings=QUIET | env))
            for mode, env in envs.items()
        }
        targets = {
            mode: (_server_pid(reg), int(reg.url.rsplit(":", 1)[1]), _jobs(reg, block))
            for mode, reg in regs.items()
        }
        for _pid, port, jobs in targets.values():  # warm-up
            send(port, jobs, 4, 300)
        cpu = dict.fromkeys(envs, 0.0)
        wall = dict.fromkeys(envs, 0.0)
        per_block: dict[str, list[float]] = {mode: [] for mode in envs}
        order, shuffle = list(targets), random.Random(17).shuffle  # noqa: S311
        for _ in range(blocks):
            shuffle(order)
            for mode in order:
                pid, port, jobs = targets[mode]
                before, started = cpu_ticks(pid), time.monotonic()
                statuses = send(port, jobs, 4, 600)
                spent = (cpu_ticks(pid) - before) * 1000 / CLOCK_TICKS
                wall[mode] += time.monotonic() - started
                cpu[mode] += spent
                per_block[mode].append(round(spent / block, 3))
                if statuses.get(200, 0) != block:
                    raise RuntimeError(f"not every view was answered ({mode}): {statuses}")
        for mode, reg in regs.items():
            if "OTEL_METRICS_EXPORTER" in envs[mode]:
                page = httpx.get(f"{reg.url}/metrics", timeout=30)
                assert "http_server_request_duration_seconds" in page.text
    count = blocks * block
    return {
        mode: {
            "cpu_ms_per_request": round(cpu[mode] / count, 3),
            "cpu_ms_per_request_median_block": statistics.median(per_block[mode]),
            "requests_per_s": round(count / wall[mode]),
            "blocks": per_block[mode],
        }
        for mode in envs
    }


def count_instructions(template: Path, work: Path, env: dict[str, str], views: int) -> int:
    """Instructions the server executes for ``views`` record views, counted by callgrind."""
    dumps = work / "callgrind.out"
    launcher = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={dumps}.%p",
    ]
    control = shutil.which("callgrind_control") or "callgrind_control"
    # Tens of times slower under valgrind: the registry's own bounds on waiting are widened.
    patient = {
        "CONTACTPOINT_ADMISSION_WAIT_SECONDS": "120",
        "CONTACTPOINT_REQUEST_DEADLINE_SECONDS": "600",
        "CONTACTPOINT_DATABASE_POOL_TIMEOUT_SECONDS": "120",
        "CONTACTPOINT_DATABASE_STATEMENT_TIMEOUT_SECONDS": "600",
        "CONTACTPOINT_LIMITS_REDIS_TIMEOUT_SECONDS": "30",
        "CONTACTPOINT_KEEP_ALIVE_SECONDS": "120",
    }
    with local.serve(
        template, work, settings=QUIET | patient | env, launcher=launcher, ready_timeout=600
    ) as reg:
        pid, port = _server_pid(reg), int(reg.url.rsplit(":", 1)[1])
        jobs = _jobs(reg, views)
        send(port, jobs[: max(20, views // 10)], 4, 900)  # warm-up, not counted
        for step in (["-i", "on"], ["-z"]):
            subprocess.run([control, *step, str(pid)], check=True, capture_output=True)  # noqa: S603
        statuses = send(port, jobs, 4, 900)
        subprocess.run([control, "-d", str(pid)], check=True, capture_output=True)  # noqa: S603
        if statuses.get(200, 0) != views:
            raise RuntimeError(f"not every view was answered: {statuses}")
        window = Path(f"{dumps}.{pid}.1")  # the first dump: exactly the counted window
        for _ in range(100):
            if window.exists() and re.search(r"^totals: \d+", window.read_text(), re.M):
                break
            time.sleep(0.1)
        found = re.search(r"^totals: (\d+)", window.read_text(), re.M)
        if found is None:
            raise RuntimeError(f"callgrind wrote no totals in {window}")
        return int(found.group(1))


@click.command()
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--blocks", default=24, show_default=True, help="blocks per mode, in turn")
@click.option("--block", default=300, show_default=True, help="views per block")
@click.option("--ratio", default=0.1, show_default=True, help="the trace sampler's ratio")
@click.option(
    "--instructions/--no-instructions",
    default=True,
    show_default=True,
    help="also count each mode's instructions under callgrind (valgrind)",
)
@click.option("--views", default=300, show_default=True, help="views counted under callgrind")
def main(out: Path, blocks: int, block: int, ratio: float, instructions: bool, views: int) -> None:
    envs = dict(MODES)
    envs["traces"] = envs["traces"] | {"OTEL_TRACES_SAMPLER_ARG": str(ratio)}
    counted: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-otel-") as tmp:
        template = local.prepare(Path(tmp) / "template")
        if instructions:
            for mode, env in envs.items():
                counted[mode] = count_instructions(template, Path(tmp) / f"cg-{mode}", env, views)
                click.echo(f"{mode}: {counted[mode] / views:,.0f} instructions/view", err=True)
        results = measure(template, Path(tmp), envs, blocks, block)
    for mode, result in results.items():
        click.echo(f"{mode}: {result['cpu_ms_per_request']} ms CPU/request", err=True)
    off = results["off"]["cpu_ms_per_request"]
    report = {
        "what": "registry CPU per audited record view (SQLite, 3,000 children, one worker each, "
        "keep-alive client, concurrency 4): telemetry off / metrics only (Prometheus) / metrics "
        "+ traces (console exporter to the log file, parent-based ratio sampler); the three "
        "servers run side by side and take blocks of views in turn",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "trace_ratio": ratio,
        "requests_per_mode": blocks * block,
        "cpu_ms_per_request": {mode: r["cpu_ms_per_request"] for mode, r in results.items()},
        "overhead_percent": {
            mode: round(100 * (r["cpu_ms_per_request"] / off - 1), 1)
            for mode, r in results.items()
            if mode != "off"
        },
        "overhead_paired": {
            mode: paired(results["off"]["blocks"], r["blocks"])
            for mode, r in results.items()
            if mode != "off"
        },
        "target": "metrics only under 10 %",
        "modes": results,
    }
    if counted:
        report["instructions_per_request"] = {m: round(n / views) for m, n in counted.items()}
        report["instructions_views"] = views
        report["overhead_instructions_percent"] = {
            mode: round(100 * (n / counted["off"] - 1), 1)
            for mode, n in counted.items()
            if mode != "off"
        }
    out.write_text(json.dumps(report, indent=2) + "\n")
    click.echo(json.dumps(report["overhead_percent"]), err=True)
    click.echo(json.dumps(report["overhead_paired"]), err=True)
    if counted:
        click.echo(json.dumps(report["overhead_instructions_percent"]), err=True)


if __name__ == "__main__":
    main()
