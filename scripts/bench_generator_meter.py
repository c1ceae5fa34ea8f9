"""Locust plugin for the generator benchmark: meter this process's requests and CPU in a window.

Loaded beside a locustfile (`-f locustfile.py,bench_generator_meter.py`). From the test's start it
waits CONTACTPOINT_BENCH_WARMUP seconds, then counts Locust's requests and this process's CPU
seconds (user + system) over CONTACTPOINT_BENCH_SECONDS, and writes them as JSON to
CONTACTPOINT_BENCH_METER.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gevent
import psutil
from locust import events
from locust.env import Environment


def _meter(environment: Environment) -> None:
    warmup = float(os.environ.get("CONTACTPOINT_BENCH_WARMUP", "3"))
    seconds = float(os.environ.get("CONTACTPOINT_BENCH_SECONDS", "20"))
    process = psutil.Process()
    gevent.sleep(warmup)
    stats = environment.stats.total
    requests0, failures0 = stats.num_requests, stats.num_failures
    cpu0, wall0 = process.cpu_times(), gevent.get_hub().loop.now()
    gevent.sleep(seconds)
    cpu1, wall1 = process.cpu_times(), gevent.get_hub().loop.now()
    sent = stats.num_requests - requests0
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    wall = wall1 - wall0
    result = {
        "window_s": wall,
        "requests": sent,
        "failures": stats.num_failures - failures0,
        "cpu_s": busy,
        "cpu_percent": 100.0 * busy / wall if wall else 0.0,
        "requests_per_s": sent / wall if wall else 0.0,
        "requests_per_core_s": sent / busy if busy else 0.0,
    }
    Path(os.environ["CONTACTPOINT_BENCH_METER"]).write_text(json.dumps(result))


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    if "CONTACTPOINT_BENCH_METER" in os.environ:
        gevent.spawn(_meter, environment)
