"""Time the whole security suite against a local reference registry (target: at most 3 minutes).

Runs every scenario against a fresh copy of a generated registry, then, as the baseline in the
same session, the same suite with no scenario in the background (each one waits its turn), and
writes the figures, the ratio and the machine to a JSON report:

    python scripts/bench_attack.py --report benchmarks/security-suite.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from security_tests import engine, local
from security_tests.cli import default_source
from security_tests.target import Target
from synthetic_data.bench import machine

TARGET_SECONDS = 180


def timed_run(template: Path, work: Path, scenarios: list[engine.Scenario]) -> dict[str, Any]:
    with local.serve(template, work) as registry:
        target = Target.open(
            registry.url,
            registry.personas,
            database_url=registry.database_url,
            source_dir=default_source(),
        )
        began = time.perf_counter()
        results = engine.run(target, scenarios)
        seconds = time.perf_counter() - began
    slowest = sorted(results, key=lambda r: r.seconds, reverse=True)[:5]
    return {
        "seconds": round(seconds, 1),
        "scenarios": len(results),
        "counts": dict(Counter(r.status.value for r in results)),
        "slowest": {r.scenario.id: round(r.seconds, 1) for r in slowest},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", type=Path, default=Path("benchmarks/security-suite.json"))
    parser.add_argument("--data-dir", type=Path, help="Keep the generated registry here.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data_dir or Path(scratch)
        template = local.prepare(root / "template")
        suite = engine.select()
        run = timed_run(template, root / "run", suite)
        print(f"suite: {run['seconds']} s {run['counts']}")
        in_turn = [dataclasses.replace(sc, background=False) for sc in suite]
        baseline = timed_run(template, root / "baseline", in_turn)
        print(f"baseline (every scenario in turn): {baseline['seconds']} s")
    report = {
        "what": "every security scenario against a local reference registry (SQLite, 3,000 "
        "children), all controls on",
        "target_seconds": TARGET_SECONDS,
        "suite": run,
        "baseline_in_turn": baseline,
        "ratio_to_baseline": round(run["seconds"] / baseline["seconds"], 2),
        "ratio_to_target": round(run["seconds"] / TARGET_SECONDS, 2),
        "machine": machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("ratio_to_baseline", "ratio_to_target")}))


if __name__ == "__main__":
    main()
