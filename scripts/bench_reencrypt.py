"""Time `contactpoint-registry keys reencrypt` after a field-key rotation, on SQLite and PostgreSQL.

    python scripts/bench_reencrypt.py --admin postgresql://postgres@127.0.0.1:5432/postgres \
        --children 100000 --out benchmarks/reencrypt.json

For each backend: a throwaway registry (a SQLite file; a PostgreSQL database of its own),
`contactpoint generate --seed 1` into it, the field key rotated by the playbook's own helper
(`deploy/ansible/files/rotate_keys.py field`), then `keys status`, `keys reencrypt` and a second
`keys reencrypt` (nothing left to do) each run as its own process. The baseline, measured in the
same run over the same stored values, is a bare loop of AES-256-GCM decrypt and encrypt (the
work a pass cannot avoid); the ratio is the pass's own time over it. Everything is removed after.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchkit import CONTACTPOINT, scratch, timed  # scripts/ is on the path when a script runs
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from reference_app.kit.db import make_engine
from reference_app.rotation.repository import TABLES
from synthetic_data.bench import machine

REGISTRY = str(Path(sys.executable).with_name("contactpoint-registry"))
ROTATE = Path(__file__).parents[1] / "deploy/ansible/files/rotate_keys.py"


def stored_values(url: str) -> list[tuple[bytes, str]]:
    """Every rewritable ciphertext as stored, with its context."""
    engine = make_engine(url)
    values: list[tuple[bytes, str]] = []
    try:
        with engine.connect() as conn:
            for sealed in TABLES:
                t = sealed.stored()
                for c in sealed.columns:
                    rows = conn.execute(select(t.c[c.column]).where(t.c[c.column].is_not(None)))
                    values += [(bytes(v), c.context) for (v,) in rows]
    finally:
        engine.dispose()
    return values


def baseline(values: list[tuple[bytes, str]], keys: dict[str, Any]) -> dict[str, Any]:
    """A bare loop: AES-GCM decrypt each value under its key, encrypt it under another."""
    aeads = {kid: AESGCM(base64.b64decode(k)) for kid, k in keys["field_keys"].items()}
    target = aeads[keys["field_key_current"]]
    started = time.perf_counter()
    for blob, context in values:
        kid_len = blob[1]
        kid = blob[2 : 2 + kid_len].decode("ascii")
        start = 2 + kid_len
        aad = context.encode("ascii")
        plain = aeads[kid].decrypt(blob[start : start + 12], blob[start + 12 :], aad)
        target.encrypt(os.urandom(12), plain, aad)
    seconds = time.perf_counter() - started
    return {
        "values": len(values),
        "seconds": round(seconds, 3),
        "values_per_second": round(len(values) / seconds),
    }


def one_backend(
    url: str, name: str, children: int, batch: int, env: dict[str, str]
) -> dict[str, Any]:
    keys = Path(env["CONTACTPOINT_KEYS_FILE"])
    keys.unlink(missing_ok=True)
    for args in (["keys", "generate", "--out", str(keys)], ["db", "upgrade", "--database", url]):
        subprocess.run([REGISTRY, *args], check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    generate = [CONTACTPOINT, "generate", "--children", str(children), "--seed", "1"]
    generate += ["--database", url, "--keys", str(keys), "--no-progress"]
    generate += ["--data-dir", str(keys.parent / f"data-{name}")]
    began = time.perf_counter()
    subprocess.run(generate, check=True, env=env, stdout=subprocess.DEVNULL)  # noqa: S603
    generate_seconds = time.perf_counter() - began
    rotated = subprocess.run(  # noqa: S603
        [sys.executable, str(ROTATE), "field"],
        input=keys.read_text(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    keys.write_text(rotated)
    load = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews figures
    status = timed([REGISTRY, "keys", "status", "--database", url, "--json", "-"], env)
    first = timed(
        [REGISTRY, "keys", "reencrypt", "--database", url, "--batch", str(batch), "--json", "-"],
        env,
    )
    second = timed([REGISTRY, "keys", "reencrypt", "--database", url, "--json", "-"], env)
    done, again = first.pop("report"), second.pop("report")
    base = baseline(stored_values(url), json.loads(rotated))
    return {
        "generate_seconds": round(generate_seconds, 1),
        "load_average_before": load,
        "status": {
            "seconds": status["seconds"],
            "not_under_current_before": status["report"]["not_under_current"],
        },
        "reencrypt": {
            "process_seconds": first["seconds"],
            "peak_rss_mib": first["peak_rss_mib"],
            **{
                k: done[k]
                for k in (
                    "batches",
                    "rows_to_do",
                    "rows_rewritten",
                    "values_rewritten",
                    "rows_left_changed_meanwhile",
                    "seconds",
                    "rows_per_second",
                )
            },
            "values_per_second": round(done["values_rewritten"] / done["seconds"]),
            "not_under_current_after": done["after"]["not_under_current"],
            "retirable_after": done["after"]["retirable"],
        },
        "second_pass": {
            "process_seconds": second["seconds"],
            "seconds": again["seconds"],
            "rows_rewritten": again["rows_rewritten"],
        },
        "baseline_aesgcm_loop": base,
        "ratio_pass_to_baseline": round(done["seconds"] / base["seconds"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--admin", required=True, help="PostgreSQL URL allowed to create DBs")
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/reencrypt.json"))
    options = parser.parse_args()
    backends: dict[str, Any] = {}
    with scratch(options.admin, "reencrypt", ("reencrypt",)) as box:
        (postgres,), work = box.urls, box.work
        sqlite = f"sqlite:///{work / 'registry.db'}"
        for name, url in (("sqlite", sqlite), ("postgresql", postgres)):
            backends[name] = one_backend(url, name, options.children, options.batch, box.env)
            print(name, json.dumps(backends[name]), file=sys.stderr, flush=True)
    result = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "children": options.children,
        "batch": options.batch,
        "command": "contactpoint-registry keys reencrypt --database URL --batch N --json -",
        "baseline": "a bare loop of AES-256-GCM decrypt (old key) and encrypt (new key) over "
        "the same stored values, in one process, no database",
        "backends": backends,
    }
    options.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
