"""Distributed runs: every generator process runs the master's plan, or the run is invalid.

A worker started on another host (`locust -f loadtests/locustfile.py --worker --master-host M
--personas personas.json`) has its own command line, and so its own default profile, seed and
adversaries. At the start the master sends each worker the options that shape the plan
(`PLAN_OPTIONS`) and a digest of its personas, sample and canary files (never their contents:
the personas hold passwords and one-time-code secrets). A worker whose files have the same digest
rebuilds its plan from the master's options and answers with the plan's fingerprint; one whose
files differ refuses, saying why. The master names every worker that refused, answered with
another fingerprint or never answered, and the run is then invalid.

Independently, the requests the generators planned are compared with what the master's own plan
expects over the run (the rate integrated over time, times the mean requests of an enquiry at the
mix of the moment): a generator that scheduled another plan cannot hide behind an achieved-rate
check against its own plan.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from loadtests.model import Profile
from loadtests.workload import TASKS

# The options that shape what a generator schedules and how it judges lateness and drops.
PLAN_OPTIONS = (
    "cp_profile",
    "cp_duration",
    "cp_rate",
    "cp_intensity",
    "cp_adversaries",
    "cp_seed",
    "cp_think_scale",
    "cp_max_queue",
    "cp_late_after",
    "cp_interval",
    "cp_max_sessions",
    "cp_warmup",
)
# Planned requests further than this from the master's expectation make the run invalid:
# SIGMAS standard deviations of the arrival process, plus a share and a few requests for the
# edges of the run (arrivals cut at the end, an abort).
SIGMAS, SHARE, SLACK = 6.0, 0.05, 10.0
STEP_S = 1.0


def workload_digest(personas: Path, sample: Path | None = None) -> str:
    """A digest of the personas file and the sample and canary files the run reads beside it."""
    digest = hashlib.sha256()
    for path in (
        personas,
        sample or personas.parent / "children_sample.jsonl",
        personas.parent / "canaries.jsonl",
    ):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes() if path.exists() else b"(absent)")
        digest.update(b"\0")
    return digest.hexdigest()


def plan_spec(options: Any, workload: str) -> dict[str, Any]:
    """What the master sends: the plan-shaping options and the workload digest."""
    spec = {name: getattr(options, name) for name in PLAN_OPTIONS}
    spec["workload"] = workload
    return spec


def fingerprint(spec: dict[str, Any], adversaries: dict[str, str]) -> str:
    """One short value for the plan: its options, its workload and which accounts misbehave."""
    text = json.dumps({"spec": spec, "adversaries": sorted(adversaries.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def adopt(options: Any, spec: dict[str, Any]) -> argparse.Namespace:
    """A copy of this process's options with the master's plan options in place."""
    mine = argparse.Namespace(**vars(options))
    for name in PLAN_OPTIONS:
        setattr(mine, name, spec[name])
    return mine


def refusal(spec: dict[str, Any], workload: str) -> str | None:
    """Why this worker cannot run the master's plan, or None when it can."""
    missing = [name for name in (*PLAN_OPTIONS, "workload") if name not in spec]
    if missing:
        return "the master's plan lacks " + ", ".join(missing)
    if spec["workload"] != workload:
        return (
            "its personas, sample or canary files differ from the master's "
            "(give every worker copies of the master's files)"
        )
    return None


def mean_requests(kind: str) -> tuple[float, float]:
    """Mean and mean square of the requests in one enquiry of this persona."""
    options = TASKS[kind]
    total = sum(w for w, _ in options)
    mean = sum(w * len(steps) for w, steps in options) / total
    square = sum(w * len(steps) ** 2 for w, steps in options) / total
    return mean, square


def expected_requests(profile: Profile, kinds: set[str], duration_s: float) -> tuple[float, float]:
    """Requests the plan expects over `duration_s`, and the standard deviation of that count."""
    mean = variance = 0.0
    t = 0.0
    while t < duration_s:
        width = min(STEP_S, duration_s - t)
        mix = profile.mix_at(t + width / 2)
        weights = {k: w for k, w in mix.items() if w > 0 and k in kinds}
        total = sum(weights.values())
        if total:
            arrivals = profile.rate_at(t + width / 2) * width
            for kind, weight in weights.items():
                first, second = mean_requests(kind)
                mean += arrivals * weight / total * first
                variance += arrivals * weight / total * second
        t += width
    return mean, math.sqrt(variance)


def rate_reason(planned: int, expected: float, sd: float) -> str | None:
    """Why the generators' planned requests do not match the master's plan, or None."""
    if abs(planned - expected) <= SIGMAS * sd + SHARE * expected + SLACK:
        return None
    return (
        f"the generators planned {planned} requests where the master's plan expects about "
        f"{expected:.0f}: a generator scheduled another plan"
    )


def plan_reasons(
    master: str, sent: set[str], answers: dict[str, dict[str, Any]], names: dict[str, str]
) -> list[str]:
    """Why workers did not run the master's plan (fingerprint `master`), one line per worker."""
    reasons = []
    for node in sorted(sent | set(names)):
        name = names.get(node, node)
        answer = answers.get(node)
        if node not in sent:
            reasons.append(f"worker {name} joined after the start and was given no plan")
        elif answer is None:
            reasons.append(
                f"worker {name} never confirmed the master's plan "
                "(another locustfile or version, or it failed to start)"
            )
        elif answer.get("refused"):
            reasons.append(f"worker {name} refused the master's plan: {answer['refused']}")
        elif answer.get("fingerprint") != master:
            reasons.append(f"worker {name} built another plan than the master's")
    return reasons
