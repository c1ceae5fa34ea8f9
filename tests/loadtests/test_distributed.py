"""The master's plan for every worker: what is sent, what a worker checks, what is invalid."""

from __future__ import annotations

import argparse
import json
import random
import shutil
from pathlib import Path

from loadtests import distributed
from loadtests.model import profile_from_name
from loadtests.workload import TASKS, draw_task
from tests.fixtures.slow_registry import write_personas


def _options(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "cp_profile": "steady",
        "cp_duration": 60.0,
        "cp_rate": 5.0,
        "cp_intensity": 1.0,
        "cp_adversaries": 2,
        "cp_seed": 2009,
        "cp_think_scale": 0.0,
        "cp_max_queue": 10.0,
        "cp_late_after": 0.1,
        "cp_interval": 5.0,
        "cp_max_sessions": 0,
        "cp_warmup": 5.0,
        "cp_personas": "/master/personas.json",
        "cp_out": "load-report",
    }
    values.update(overrides)
    return argparse.Namespace(**values)


def test_the_workload_digest_follows_the_files_not_where_they_lie(tmp_path: Path) -> None:
    master, worker = tmp_path / "master", tmp_path / "worker"
    master.mkdir()
    personas = write_personas(master)
    shutil.copytree(master, worker)
    digest = distributed.workload_digest(personas)
    assert distributed.workload_digest(worker / "personas.json") == digest
    rows = json.loads((worker / "personas.json").read_text())
    (worker / "personas.json").write_text(json.dumps(rows[:-1]))
    assert distributed.workload_digest(worker / "personas.json") != digest
    shutil.copyfile(personas, worker / "personas.json")
    (worker / "canaries.jsonl").write_text("{}\n")
    assert distributed.workload_digest(worker / "personas.json") != digest


def test_a_worker_adopts_the_masters_plan_and_keeps_its_own_files() -> None:
    master = _options(cp_profile="ramp", cp_rate=9.0, cp_adversaries=9, cp_seed=7)
    worker = _options(cp_profile="national-rollout", cp_rate=0.0, cp_personas="/w/p.json")
    spec = distributed.plan_spec(master, "digest")
    assert distributed.refusal(spec, "digest") is None
    adopted = distributed.adopt(worker, spec)
    for name in distributed.PLAN_OPTIONS:
        assert getattr(adopted, name) == getattr(master, name), name
    assert adopted.cp_personas == "/w/p.json"
    assert worker.cp_profile == "national-rollout"  # the worker's own options are left alone
    assert distributed.plan_spec(adopted, "digest") == spec


def test_a_worker_refuses_a_plan_over_other_files_or_an_incomplete_plan() -> None:
    spec = distributed.plan_spec(_options(), "master-digest")
    reason = distributed.refusal(spec, "worker-digest")
    assert reason is not None
    assert "personas" in reason
    del spec["cp_seed"]
    assert "cp_seed" in (distributed.refusal(spec, "master-digest") or "")


def test_the_fingerprint_covers_options_workload_and_adversaries() -> None:
    spec = distributed.plan_spec(_options(), "digest")
    base = distributed.fingerprint(spec, {"a": "naive-harvest"})
    assert distributed.fingerprint(dict(spec), {"a": "naive-harvest"}) == base
    assert distributed.fingerprint(spec, {"b": "naive-harvest"}) != base
    assert distributed.fingerprint({**spec, "cp_seed": 1}, {"a": "naive-harvest"}) != base
    assert distributed.fingerprint({**spec, "workload": "x"}, {"a": "naive-harvest"}) != base


def _simulate(rate: float, duration: float, seed: int) -> int:
    """Requests a scheduler plans at a steady rate: Poisson arrivals, each a drawn task."""
    profile = profile_from_name("steady", duration_s=duration, rate=rate)
    rng = random.Random(seed)
    mix = profile.mix_at(0.0)
    kinds = list(mix)
    at, requests = 0.0, 0
    while True:
        at += rng.expovariate(rate)
        if at >= duration:
            return requests
        kind = rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
        requests += len(draw_task(kind, rng))


def test_planned_requests_of_the_masters_plan_match_its_expectation() -> None:
    profile = profile_from_name("steady", duration_s=60.0, rate=5.0)
    expected, sd = distributed.expected_requests(profile, set(TASKS), 60.0)
    assert 0 < sd < expected
    for seed in range(20):
        assert distributed.rate_reason(_simulate(5.0, 60.0, seed), expected, sd) is None


def test_a_worker_on_its_own_default_plan_is_caught_by_the_planned_count() -> None:
    # The worker scheduled the default national rollout for the master's 60 s steady run.
    master = profile_from_name("steady", duration_s=60.0, rate=5.0)
    own = profile_from_name("national-rollout", duration_s=None)
    expected, sd = distributed.expected_requests(master, set(TASKS), 60.0)
    planned, _ = distributed.expected_requests(own, set(TASKS), 60.0)
    reason = distributed.rate_reason(round(planned), expected, sd)
    assert reason is not None
    assert "master's plan" in reason


def test_every_worker_that_did_not_run_the_plan_is_named() -> None:
    sent = {"ok", "refused", "silent", "other"}
    answers = {
        "ok": {"fingerprint": "f"},
        "refused": {"refused": "its personas differ"},
        "other": {"fingerprint": "g"},
    }
    names = {n: f"w-{n}" for n in (*sent, "late")}
    reasons = distributed.plan_reasons("f", sent, answers, names)
    text = "\n".join(reasons)
    assert len(reasons) == 4
    assert "w-ok" not in text
    assert "w-refused refused the master's plan: its personas differ" in text
    assert "w-silent never confirmed" in text
    assert "w-other built another plan" in text
    assert "w-late joined after the start" in text
    assert distributed.plan_reasons("f", {"ok"}, {"ok": {"fingerprint": "f"}}, {}) == []
