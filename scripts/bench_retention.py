"""Time `contactpoint retention` on a generated PostgreSQL registry, day after day.

    python scripts/bench_retention.py --admin postgresql://postgres@127.0.0.1:5432/postgres \
        --children 150000 --out benchmarks/retention.json

Creates a throwaway database, generates the population into it with `contactpoint generate
--seed 1 --as-of 2026-09-01`, then runs the command as its own process for a sequence of days:
a dry run, a real run and its rerun on the first day, a year later, and seven years later
(archives and purges). The baseline, measured in the same run, is each day's rerun, which has
nothing left to do: a real run's cost above it is the archiving and purging. The database is
dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import CONTACTPOINT, scratch, timed  # scripts/ is on the path when a script runs

from synthetic_data.bench import machine

DAYS = ["2026-11-21", "2027-11-21", "2033-11-21"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="PostgreSQL URL allowed to create DBs")
    parser.add_argument("--children", type=int, default=150_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/retention.json"))
    options = parser.parse_args()
    with scratch(options.admin, "retention", ("retention",)) as box:
        (url,), work, env = box.urls, box.work, box.env
        keys = Path(env["CONTACTPOINT_KEYS_FILE"])
        generate = [CONTACTPOINT, "generate", "--children", str(options.children), "--seed", "1"]
        generate += ["--as-of", "2026-09-01", "--database", url, "--keys", str(keys)]
        generate += ["--data-dir", str(work / "data")]
        subprocess.run(generate, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
        load = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews figures
        command = [CONTACTPOINT, "retention", "--database", url, "--json"]
        runs: list[dict[str, Any]] = []
        for day in DAYS:
            for kind, extra in (("dry_run", ["--dry-run"]), ("run", []), ("rerun", [])):
                if kind == "dry_run" and day == DAYS[1]:
                    continue
                measured = timed([*command, "--as-of", day, *extra], env)
                report = measured.pop("report")
                runs.append(
                    {
                        "as_of": day,
                        "kind": kind,
                        **measured,
                        **{
                            k: report[k]
                            for k in ("live_checked", "archived", "purged", "carers_purged")
                        },
                        "phase_seconds": report["seconds"],  # the command's own split
                    }
                )
        by = {(r["as_of"], r["kind"]): r for r in runs}
        result = {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": machine(),
            "load_average_before": load,
            "children": options.children,
            "command": "contactpoint retention --database URL --as-of DAY --json [--dry-run]",
            "runs": runs,
            "run_vs_rerun_baseline": {
                day: round(by[(day, "run")]["seconds"] / by[(day, "rerun")]["seconds"], 2)
                for day in DAYS
            },
        }
    options.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
