"""The generation benchmark: the vectorised generator against a plain Faker loop, same run.

The baseline is the obvious way to do it: one Faker call per field, a child and two carers per
record (names, sex, date of birth, address, phones, emails). The generator is timed on one core
making the same fields and more (households, every service involvement, ids), as plain values in
Arrow tables. Optional full runs time a whole population into Parquet and/or a database with
all workers, with the peak resident memory of any worker.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from faker import Faker

from synthetic_data import figures
from synthetic_data.plan import Options, build_plan
from synthetic_data.population import generate_chunk
from synthetic_data.tables import chunk_tables


def faker_loop(records: int, seed: int = 2009) -> list[dict[str, Any]]:
    """The baseline: a child and two carers per record, one Faker call per field."""
    fake = Faker("en_GB")
    Faker.seed(seed)
    out = []
    for _ in range(records):
        female = fake.pybool()
        family = fake.last_name()
        address = {"line1": fake.street_address(), "town": fake.city(), "postcode": fake.postcode()}
        child = {
            "given_name": fake.first_name_female() if female else fake.first_name_male(),
            "family_name": family,
            "gender": "female" if female else "male",
            "date_of_birth": fake.date_of_birth(minimum_age=0, maximum_age=17).isoformat(),
            **address,
        }
        carers = [
            {
                "given_name": fake.first_name_female(),
                "family_name": family,
                "date_of_birth": fake.date_of_birth(minimum_age=18, maximum_age=60).isoformat(),
                "phone": fake.phone_number(),
                "email": fake.email(),
            },
            {
                "given_name": fake.first_name_male(),
                "family_name": family,
                "date_of_birth": fake.date_of_birth(minimum_age=18, maximum_age=60).isoformat(),
                "phone": fake.phone_number(),
                "email": fake.email(),
            },
        ]
        out.append({"child": child, "carers": carers})
    return out


def vectorised(children: int, seed: int = 2009) -> tuple[int, int, float]:
    """Generate whole chunks of a national plan on this core; return children, carers, seconds."""
    plan = build_plan(Options(seed=seed, children=figures.NATIONAL_CHILDREN))
    chunks = sorted(plan.chunks, key=lambda c: -c.count)
    made = carers = 0
    started = time.perf_counter()
    for chunk in chunks:
        if made >= children:
            break
        tables = chunk_tables(plan, generate_chunk(plan, chunk))
        made += tables.children.num_rows
        carers += tables.carers.num_rows
    return made, carers, time.perf_counter() - started


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pyarrow": pa.__version__,
        "platform": platform.platform(),
    }


def _full_run(
    children: int, workers: int, out_dir: Path | None, database_url: str | None, keys: Any
) -> dict[str, Any]:
    from synthetic_data.runner import RunConfig, run

    data_dir = Path(tempfile.mkdtemp(prefix="contactpoint-bench-"))
    try:
        config = RunConfig(
            options=Options(children=children),
            data_dir=data_dir,
            database_url=database_url,
            out_dir=out_dir,
            keyring=keys,
            workers=workers,
            progress=True,
        )
        report = run(config)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    peak_kib = max(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    )
    return {
        "children": report.children,
        "rows": report.rows,
        "seconds": round(report.seconds, 1),
        "generate_seconds": round(report.generate_seconds, 1),
        "index_seconds": round(report.index_seconds, 1),
        "children_per_second": round(report.children / report.seconds),
        "peak_rss_mib": round(peak_kib / 1024),
        "workers": workers,
        "index_steps": report.index_steps,
    }


def run_bench(
    *,
    children: int,
    faker_records: int,
    full: int,
    out_dir: Path | None,
    database_url: str | None,
    keys_file: Path | None,
    workers: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    faker_loop(faker_records)
    faker_seconds = time.perf_counter() - started
    made, carers, seconds = vectorised(children)
    faker_rate = faker_records / faker_seconds
    rate = made / seconds
    result: dict[str, Any] = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "faker": {
            "records": faker_records,
            "seconds": round(faker_seconds, 2),
            "per_second": round(faker_rate),
        },
        "generator": {
            "children": made,
            "carers": carers,
            "seconds": round(seconds, 2),
            "per_second": round(rate),
        },
        "ratio": round(rate / faker_rate, 1),
    }
    if full and out_dir is not None:
        result["parquet"] = _full_run(full, workers, out_dir, None, None)
    if full and database_url is not None:
        from reference_app.config import Settings
        from reference_app.kit.keys import generate_document, load_keyring, parse_document

        keys = (
            load_keyring(Settings(keys_file=keys_file))
            if keys_file
            else parse_document(generate_document())
        )
        result["database"] = _full_run(full, workers, None, database_url, keys)
    return result


def describe(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}",
        f"plain Faker loop:     {result['faker']['per_second']:>10,} children+2 carers/s "
        f"({result['faker']['records']:,} in {result['faker']['seconds']} s)",
        f"vectorised, 1 core:   {result['generator']['per_second']:>10,} children/s with carers "
        f"and services ({result['generator']['children']:,} in {result['generator']['seconds']} s)",
        f"ratio:                {result['ratio']:>10}x",
    ]
    for target in ("parquet", "database"):
        if target in result:
            r = result[target]
            lines.append(
                f"full run to {target}: {r['children']:,} children in {r['seconds']} s "
                f"({r['children_per_second']:,}/s; indexes {r['index_seconds']} s; "
                f"{r['workers']} workers; peak RSS {r['peak_rss_mib']} MiB)"
            )
    return "\n".join(lines)
