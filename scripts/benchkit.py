"""Shared by the benchmark scripts: scratch databases, and one command timed as its own process."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from reference_app.kit.db import normalise_url

CONTACTPOINT = str(Path(sys.executable).with_name("contactpoint"))


@dataclass(frozen=True)
class Scratch:
    urls: list[str]  # one throwaway database per role asked for
    work: Path  # a throwaway folder holding keys.json
    env: dict[str, str]  # a test build's environment, with CONTACTPOINT_KEYS_FILE set


@contextmanager
def scratch(admin: str, prefix: str, roles: Sequence[str]) -> Iterator[Scratch]:
    """Throwaway PostgreSQL databases, a work folder and a fresh keys file; all removed after."""
    admin_url = normalise_url(admin)
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    names = [f"cp_bench_{role}_{secrets.token_hex(3)}" for role in roles]
    urls = [
        make_url(admin_url).set(database=n).render_as_string(hide_password=False) for n in names
    ]
    work = Path(tempfile.mkdtemp(prefix=f"cp-bench-{prefix}-"))
    # A test build: retention refuses a future --as-of in production.
    env = {**os.environ, "CONTACTPOINT_ENVIRONMENT": "test"}
    try:
        with engine.connect() as conn:
            for name in names:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        keys = work / "keys.json"
        subprocess.run([CONTACTPOINT, "keys", "generate", "--out", keys], check=True, env=env)  # noqa: S603
        env["CONTACTPOINT_KEYS_FILE"] = str(keys)
        yield Scratch(urls=urls, work=work, env=env)
    finally:
        with engine.connect() as conn:
            for name in names:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)


def timed(args: list[str], env: dict[str, str], *, json_out: bool = True) -> dict[str, Any]:
    """Run one command; its wall time, peak RSS and (for --json commands) its report."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert process.stdout is not None
    stdout = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)  # reaped here, for this process's own usage
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"{args[1]} failed ({process.returncode}): {stdout}")
    result: dict[str, Any] = {
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024),
    }
    if json_out:
        result["report"] = json.loads(stdout)
    return result
