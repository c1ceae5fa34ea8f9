"""Time `contactpoint backup`, `restore` and `restore --drill` on a generated PostgreSQL registry.

    python scripts/bench_backup.py --admin postgresql://postgres@127.0.0.1:5432/postgres \
        --children 100000 --out benchmarks/backup.json

Creates two throwaway databases on the server (the source and the restore target), generates
the population into the source with `contactpoint generate --seed 1`, then runs each command
as its own process and records its wall time and peak memory. The databases are dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from benchkit import CONTACTPOINT, scratch, timed  # scripts/ is on the path when a script runs
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from synthetic_data.bench import machine


def key_args(identity: str, file: str) -> list[str]:
    return ["--identity", identity, file, "--json"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="PostgreSQL URL allowed to create DBs")
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/backup.json"))
    options = parser.parse_args()
    with scratch(options.admin, "backup", ("source", "target")) as box:
        urls, work, env = box.urls, box.work, box.env
        keys = Path(env["CONTACTPOINT_KEYS_FILE"])
        subprocess.run(  # noqa: S603
            [CONTACTPOINT, "keys", "backup-keypair", "--out-dir", work / "backup-keys"],
            check=True,
            env=env,
        )
        identity = str(work / "backup-keys" / "backup-identity.txt")
        recipient = str(work / "backup-keys" / "backup-recipient.txt")
        generate = [CONTACTPOINT, "generate", "--children", str(options.children), "--seed", "1"]
        generate += ["--database", urls[0], "--keys", str(keys), "--data-dir", str(work / "data")]
        subprocess.run(generate, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
        with create_engine(urls[0]).connect() as conn:
            database_bytes = conn.execute(text("SELECT pg_database_size(current_database())"))
            size = int(database_bytes.scalar_one())
            server = str(conn.execute(text("SHOW server_version")).scalar_one())
        file = str(work / "registry.cpb")
        backup_args = ["--database", urls[0], "--recipient", recipient, "--out", file, "--json"]
        load = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews figures
        backup = timed([CONTACTPOINT, "backup", *backup_args], env)
        restore = timed(
            [CONTACTPOINT, "restore", "--database", urls[1], *key_args(identity, file)], env
        )
        drill = timed(
            [CONTACTPOINT, "restore", "--drill", "--source", urls[0], *key_args(identity, file)],
            env,
        )
        # The baseline, in the same run: PostgreSQL's own dump of the same database (custom
        # format, compressed, not encrypted and not checksummed per table).
        pg_dump = shutil.which("pg_dump")
        libpq_url = make_url(urls[0]).set(drivername="postgresql")
        dump = [pg_dump, "--format=custom", f"--file={work / 'pg.dump'}"]
        baseline = (
            timed([*dump, libpq_url.render_as_string(hide_password=False)], env, json_out=False)
            if pg_dump
            else None
        )
        rows = backup["report"]["rows"]
        result = {
            "date": datetime.now(UTC).date().isoformat(),
            "machine": machine(),
            "load_average_before_backup": load,
            "postgresql": f"{server}, same machine, default settings",
            "children": options.children,
            "rows": rows,
            "tables": {
                name: table["rows"]
                for name, table in backup["report"]["manifest"]["tables"].items()
            },
            "database_bytes": size,
            "backup_file_bytes": backup["report"]["bytes"],
            "backup": {k: v for k, v in backup.items() if k != "report"},
            "restore": {k: v for k, v in restore.items() if k != "report"},
            "drill_into_temporary_sqlite": {k: v for k, v in drill.items() if k != "report"},
            "drill_ok": drill["report"]["ok"],
            "backup_rows_per_second": round(rows / backup["seconds"]),
            "baseline_pg_dump_custom": baseline,
            "backup_vs_pg_dump": round(backup["seconds"] / baseline["seconds"], 2)
            if baseline
            else None,
            "restore_rows_per_second": round(rows / restore["seconds"]),
        }
    options.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
