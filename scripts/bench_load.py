"""Load benchmark: what a served registry sustains, one open-model run per rate step.

The load generator's own cost is measured by `scripts/bench_generator.py` (against Locust's own
users, on a keep-alive target in a process of its own; results in benchmarks/generator.json).

With --target and --personas: one open-model run per rate step; for each, record views a second
achieved, corrected and service p99 of views and searches, validity and the SLO verdict
(loadtests/slo/benchmark.yaml). Reported against the issue's target of 500 audited record views a
second and ContactPoint's specified peak of 50 transactions a second. With --baseline-target (the
same registry with its controls switched off, a development build), the lowest step runs there
too: the latency the controls cost.

    python scripts/bench_load.py --target http://127.0.0.1:8100 \
        --personas data/load-personas.json --rates 10,20,30,40 \
        --baseline-target http://127.0.0.1:8101 --baseline-rate 30
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import psutil

from loadtests.cli import run_locust
from synthetic_data.bench import machine

ROOT = Path(__file__).resolve().parent.parent

VIEW = "GET /api/v1/children/{id}"
SEARCH = "POST /api/v1/children/search"
TARGET_VIEWS_PER_S = 500.0
SPECIFIED_PEAK_PER_S = 50.0


def _row(summary: dict[str, Any], endpoint: str) -> dict[str, Any]:
    for row in summary["latency"]:
        if row["endpoint"] == endpoint and row["persona"] == "*":
            return dict(row)
    return {"count": 0, "errors": 0, "corrected_ms": {}, "service_ms": {}}


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the served registry's processes, by PostgreSQL's, and by the
    whole machine (every core). A process that ended between two readings drops out of its
    group (PostgreSQL ends a backend with its connection), so the groups can undercount; the
    machine's figure cannot."""
    machine_times = psutil.cpu_times()
    totals = {
        "registry": 0.0,
        "postgres": 0.0,
        "machine": machine_times.user + machine_times.system + machine_times.nice,
    }
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        try:
            line = " ".join(proc.info["cmdline"] or [])
            times = proc.info["cpu_times"]
        except (psutil.Error, TypeError):
            continue
        if times is None:
            continue
        used = times.user + times.system
        if proc.info["name"] == "postgres" or line.startswith("postgres:"):
            totals["postgres"] += used
        elif "contactpoint serve" in line or ("multiprocessing" in line and _served_by(proc)):
            totals["registry"] += used
    return totals


def _served_by(proc: psutil.Process) -> bool:
    try:
        parent = proc.parent()
        return parent is not None and "serve" in " ".join(parent.cmdline())
    except psutil.Error:
        return False


def registry_step(
    target: str,
    personas: Path,
    rate: float,
    seconds: float,
    sessions: int,
    out: Path,
    warmup: float = 20.0,
) -> dict[str, Any]:
    before, started = cpu_seconds(), time.time()
    code = run_locust(
        target, personas, out, profile="steady", duration=seconds, rate=rate, think_scale=0.1,
        max_sessions=sessions, slo=ROOT / "loadtests/slo/benchmark.yaml",
        extra=["--warmup", f"{warmup:g}"],
    )  # fmt: skip
    after, wall = cpu_seconds(), time.time() - started
    summary = json.loads((out / "summary.json").read_text())
    view, search = _row(summary, VIEW), _row(summary, SEARCH)
    duration = summary["run"]["duration_s"]
    generator_cpu = summary["generator"]["cpu_seconds"]
    return {
        "enquiries_per_s_planned": rate,
        "exit_code": code,
        "verdict": summary["verdict"]["status"],
        "valid": summary["run"]["valid"],
        "invalid_reasons": summary["run"]["invalid_reasons"],
        "requests_per_s_planned": summary["rate"]["planned_per_s"],
        "requests_per_s_achieved": summary["rate"]["achieved_per_s"],
        "views_per_s": (view["count"] - view["errors"]) / duration,
        "searches_per_s": (search["count"] - search["errors"]) / duration,
        "errors": summary["rate"]["failed"],
        "dropped": summary["rate"]["dropped"],
        "view_p99_ms_corrected": view["corrected_ms"].get("p99"),
        "view_p99_ms_service": view["service_ms"].get("p99"),
        "search_p99_ms_corrected": search["corrected_ms"].get("p99"),
        "search_p99_ms_service": search["service_ms"].get("p99"),
        "generator": summary["generator"],
        # Cores busy over the whole step (warm-up and log-ins included), by process group.
        "cores_busy": {
            "registry": (after["registry"] - before["registry"]) / wall,
            "postgres": (after["postgres"] - before["postgres"]) / wall,
            "generator": generator_cpu / wall,
            "machine": (after["machine"] - before["machine"]) / wall,
        },
        "report": str(out),
    }


@click.command()
@click.option("--target", help="A served registry to measure (needs --personas).")
@click.option("--personas", type=click.Path(exists=True, path_type=Path))
@click.option("--baseline-target", help="The same registry with its controls switched off.")
@click.option("--rates", default="10,20,30,40", show_default=True, help="Enquiries a second.")
@click.option("--baseline-rate", type=float, help="The step run on --baseline-target [first].")
@click.option("--seconds", type=float, default=60.0, show_default=True)
@click.option("--sessions", type=int, default=300, show_default=True)
@click.option(
    "--warmup",
    type=float,
    default=20.0,
    show_default=True,
    help="Seconds for the sessions to log in before each step's first arrival.",
)
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks/load.json")
@click.option("--reports", type=click.Path(path_type=Path), default=Path("load-bench"))
def main(
    target: str | None,
    personas: Path | None,
    baseline_target: str | None,
    rates: str,
    baseline_rate: float | None,
    seconds: float,
    sessions: int,
    warmup: float,
    out: Path,
    reports: Path,
) -> None:
    """Measure the registry's capacity (the generator's cost: scripts/bench_generator.py)."""
    result: dict[str, Any] = json.loads(out.read_text()) if out.exists() and not target else {}
    result.update(machine=machine(), when=time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result.pop("generator", None)  # measured apart now, see benchmarks/generator.json
    if target and personas:
        steps = []
        for rate in [float(r) for r in rates.split(",")]:
            step = registry_step(
                target, personas, rate, seconds, sessions, reports / f"r{rate:g}", warmup
            )
            click.echo(json.dumps({k: v for k, v in step.items() if k != "generator"}), err=True)
            steps.append(step)
        passing = [s for s in steps if s["verdict"] == "pass"]
        best = max(passing, key=lambda s: s["views_per_s"]) if passing else None
        result["registry"] = {
            "target": target,
            "steps": steps,
            "best_passing_views_per_s": best["views_per_s"] if best else 0.0,
            "ratio_to_target_500": (best["views_per_s"] / TARGET_VIEWS_PER_S) if best else 0.0,
            "ratio_to_specified_peak_50": (
                best["requests_per_s_achieved"] / SPECIFIED_PEAK_PER_S if best else 0.0
            ),
        }
        if baseline_target:
            low = baseline_rate or steps[0]["enquiries_per_s_planned"]
            base = registry_step(
                baseline_target, personas, low, seconds, sessions, reports / "controls-off", warmup
            )
            on = next(s for s in steps if s["enquiries_per_s_planned"] == low)
            result["controls_cost"] = {
                "rate": low,
                "controls_on": {k: v for k, v in on.items() if k != "generator"},
                "controls_off": base,
                "search_p99_ratio_on_to_off": (
                    on["search_p99_ms_corrected"] / base["search_p99_ms_corrected"]
                    if base["search_p99_ms_corrected"]
                    else None
                ),
                "view_p99_ratio_on_to_off": (
                    on["view_p99_ms_corrected"] / base["view_p99_ms_corrected"]
                    if base["view_p99_ms_corrected"]
                    else None
                ),
            }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    main()
