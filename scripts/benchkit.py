"""Shared by the benchmark scripts: run one command as its own process and measure it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any


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
