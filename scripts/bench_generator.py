"""Generator benchmark: requests a second per busy generator core, side by side with Locust's own.

One run, one instant HTTP/1.1 keep-alive target in a process of its own (answering the registry's
login, search and view shapes at once), and three generators against it in turn, each a Locust
process of its own whose CPU alone is counted (psutil, over a window after warm-up):

- `HttpUser`: Locust's requests-based user in a plain closed loop (the baseline);
- `FastHttpUser`: Locust's geventhttpclient user in a plain closed loop;
- the project's generator: open-model arrivals, intended-start stamping, corrected and service
  latency into HDR histograms (`loadtests/locustfile.py`, steady profile, no reading time).

Each reports requests a second per busy core (requests in the window / CPU seconds of the
generator process in the window) and the ratios to the baselines, into benchmarks/generator.json.

    python scripts/bench_generator.py --seconds 20 --rate 1700
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from synthetic_data.bench import machine  # noqa: E402
from tests.fixtures.instant_target import instant_target  # noqa: E402

METER = Path(__file__).with_name("bench_generator_meter.py")
PLAIN = Path(__file__).with_name("bench_generator_plain.py")
LOCUSTFILE = ROOT / "loadtests/locustfile.py"


def _locust(files: list[Path], url: str, meter: Path, args: list[str], env: dict[str, str]) -> int:
    command = [
        sys.executable, "-m", "locust", "-f", ",".join(str(f) for f in files),
        "--headless", "--host", url, "--only-summary", "--loglevel", "WARNING", *args,
    ]  # fmt: skip
    full = {**os.environ, **env, "CONTACTPOINT_BENCH_METER": str(meter)}
    return subprocess.run(command, env=full, check=False, timeout=600).returncode  # noqa: S603


def plain_users(url: str, user: str, users: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Locust's own user class in a closed loop (no waiting), metered after warm-up."""
    with tempfile.TemporaryDirectory() as work:
        meter = Path(work) / "meter.json"
        code = _locust(
            [PLAIN, METER], url, meter,
            ["-u", str(users), "-r", str(users), "-t", f"{int(seconds + warmup + 2)}s", user],
            {"CONTACTPOINT_BENCH_WARMUP": str(warmup), "CONTACTPOINT_BENCH_SECONDS": str(seconds)},
        )  # fmt: skip
        result: dict[str, Any] = json.loads(meter.read_text())
    return {"exit_code": code, "users": users, **result}


def project_generator(url: str, rate: float, seconds: float, warmup: float) -> dict[str, Any]:
    """The project's generator: steady open-model arrivals, HDR recording, one process."""
    from tests.fixtures.slow_registry import write_personas

    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        personas = json.loads(write_personas(folder).read_text())
        # Enough sessions that none waits: copies of the stand-in's accounts (it checks nothing).
        many = [{**p, "username": f"{p['username']}-{i}"} for i in range(40) for p in personas]
        (folder / "personas.json").write_text(json.dumps(many))
        meter, out = folder / "meter.json", folder / "out"
        # The run's own schedule starts after the generator's warm-up; meter its middle part.
        generator_warmup = 3.0
        code = _locust(
            [LOCUSTFILE, METER], url, meter,
            [
                "--personas", str(folder / "personas.json"), "--load-profile", "steady",
                "--rate", str(rate), "--duration", str(seconds + 2 * warmup),
                "--think-scale", "0", "--warmup", str(generator_warmup), "--out", str(out),
                "--slo", str(ROOT / "loadtests/slo/benchmark.yaml"), "--stop-timeout", "2",
            ],
            {
                "CONTACTPOINT_BENCH_WARMUP": str(generator_warmup + warmup),
                "CONTACTPOINT_BENCH_SECONDS": str(seconds),
            },
        )  # fmt: skip
        result: dict[str, Any] = json.loads(meter.read_text())
        summary = json.loads((out / "summary.json").read_text())
    generator = summary["generator"]
    return {
        "exit_code": code,
        "enquiries_per_s_planned": rate,
        **result,
        "run_valid": summary["run"]["valid"],
        "run_invalid_reasons": summary["run"]["invalid_reasons"],
        "planned_requests_per_s": summary["rate"]["planned_per_s"],
        "achieved_requests_per_s": summary["rate"]["achieved_per_s"],
        "dropped": summary["rate"]["dropped"],
        "late": summary["rate"]["late"],
        "lag_ms_p99": generator["lag_ms_p99"],
        "cpu_percent_mean_whole_run": generator["cpu_percent_mean"],
        "requests_per_core_s_whole_run": generator["requests_per_core_s"],
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@click.command()
@click.option("--seconds", type=float, default=20.0, show_default=True, help="Metered window.")
@click.option("--warmup", type=float, default=3.0, show_default=True)
@click.option("--users", type=int, default=20, show_default=True, help="Closed-loop users.")
@click.option("--rate", type=float, default=1700.0, show_default=True, help="Enquiries a second.")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "benchmarks/generator.json")
def main(seconds: float, warmup: float, users: int, rate: float, out: Path) -> None:
    """Measure the three generators against one instant keep-alive target."""
    load_before = load_average()
    with instant_target() as url:
        http_user = plain_users(url, "HttpUser", users, seconds, warmup)
        click.echo(json.dumps({"HttpUser": http_user}), err=True)
        fast_user = plain_users(url, "FastHttpUser", users, seconds, warmup)
        click.echo(json.dumps({"FastHttpUser": fast_user}), err=True)
        project = project_generator(url, rate, seconds, warmup)
        click.echo(json.dumps({"project": project}), err=True)
    base, fast = http_user["requests_per_core_s"], fast_user["requests_per_core_s"]
    mine = project["requests_per_core_s"]
    result = {
        "machine": machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "shared_machine": (
            "measured while other work ran on this 2-core machine; to be rerun on a quiet one"
        ),
        "target": "asyncio HTTP/1.1 keep-alive stand-in in its own process, instant answers",
        "method": (
            "requests in a metered window after warm-up divided by the generator process's own "
            "CPU seconds (user + system, psutil) in the same window"
        ),
        "locust_http_user": http_user,
        "locust_fast_http_user": fast_user,
        "project_generator": project,
        "ratios": {
            "project_to_http_user": mine / base if base else None,
            "project_to_fast_http_user": mine / fast if fast else None,
            "fast_http_user_to_http_user": fast / base if base else None,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(f"wrote {out}", err=True)


if __name__ == "__main__":
    main()
