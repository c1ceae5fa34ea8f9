"""The open arrival model under Locust: schedule by rate, stamp intended starts, merge histograms.

Locust's own users loop: each waits for its answer, then thinks, then asks again, so a slow server
slows the load and hides itself (a closed model). Here arrivals are scheduled by the profile's rate,
whatever the server does:

- one scheduler per generator process draws enquiry arrivals (a Poisson process at its share of
  the planned rate) and hands each to an idle session of the persona the mix asks for;
- every request of the enquiry carries its **intended start** (arrival plus reading times); a
  session that is late sends at once, and the latency is measured from the intended start too
  (corrected for coordinated omission) as well as from the send (service time);
- an enquiry that waits longer than `--max-queue` for a free session is **dropped** and counted;
  requests sent more than `--late-after` after their intended start are **late**;
- the scheduler's own wake-up lag and the process's CPU are sampled: a saturated generator makes
  the run **invalid** instead of flattering the server;
- an arrival that finds every session of its persona busy waits for one. When most of those
  sessions were reading (the workload's think time) rather than waiting for an answer, the
  harness, not the server, held it up: if it waited longer than `--late-after`, or found no
  session of its persona at all, it is **starved**. More than `--max-starved` (1 %) of arrivals
  starved makes the run **invalid**, with the account pool, the session cap and the planned peak
  named (waits behind answers are the server's, and show in the corrected latency).

Processes: one (local), or a master and workers (`--processes N` on one host, `--worker
--master-host` on others). At the start the master sends every worker its plan (see
`loadtests/distributed.py`): a worker runs the master's profile, seed and adversaries, or the run is
invalid with the worker named. Workers send histogram deltas with Locust's periodic reports and a
final delta when the master ends the run; the master merges them, judges the SLOs and writes the
reports.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent
import psutil
from locust import LoadTestShape, events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import distributed
from loadtests import slo as slo_module
from loadtests.histograms import SUMMARY_SCHEMA, Aggregate, Recorder
from loadtests.model import Profile, peak_sessions_by_kind, profile_from_name
from loadtests.workload import (
    ACTION_ENDPOINTS,
    Account,
    Step,
    Strategy,
    Workload,
    draw_task,
    interleave,
    load_workload,
)
from observability import setup as telemetry
from observability.load import load_metrics, serve_prometheus

if TYPE_CHECKING:
    from loadtests.scenarios.practitioners import Practitioner

log = logging.getLogger("contactpoint.load")

# Generator health: beyond these the run is invalid (the generator, not the server, set the pace).
MAX_LAG_P99_MS = 50.0
MAX_CPU_PERCENT = 90.0
CPU_SAMPLE_S = 1.0
# A moment over the CPU limit (start-up, a burst of log-ins) is not saturation; a tenth of a run is.
SATURATED_SHARE = 0.1
# Usernames of the ordinary crowd gathered for the false-positive count: never in a report.
CROWD_NAMES = frozenset({"ordinary_used", "ordinary_flagged"})
# Arrivals the harness starved (see the module docstring) beyond this share invalidate the run.
MAX_STARVED_SHARE = 0.01
# How often the run prints its live line (and checks for a breach to abort on), in seconds.
ABORT_CHECK_S = 5.0
IN_FLIGHT_WAIT_S = 15.0
MAX_SPAWN_RATE = 100.0
FINAL_WAIT_S = 30.0


@dataclass
class Job:
    """One enquiry: its persona, its steps and when it should have arrived."""

    kind: str
    arrival: float
    steps: list[Step]
    # Set when it found no free session while most of its persona's busy sessions were reading.
    held_by_harness: bool = False

    def intended(self) -> list[float]:
        at, out = self.arrival, []
        for step in self.steps:
            at += step.think_s
            out.append(at)
        return out


@dataclass
class Plan:
    """The run as every process sees it: options, workload and profile."""

    options: Any
    workload: Workload
    profile: Profile
    adversaries: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.profile.duration_s)

    @property
    def kinds(self) -> set[str]:
        """Persona kinds the crowd has accounts for: the mix is drawn among these."""
        return {a.kind for a in self.workload.accounts if a.adversary is None}

    @functools.cached_property
    def peak_by_kind(self) -> dict[str, int]:
        """Each persona's most planned sessions in any second: the order sessions are held in."""
        return peak_sessions_by_kind(self.profile)

    @functools.cached_property
    def planned_peak_users(self) -> int:
        """The most concurrent sessions the profile plans in any second of the run."""
        seconds = range(math.ceil(self.duration_s))
        return max((self.profile.users_at(float(t)) for t in seconds), default=0)


class Scheduler:
    """This process's arrivals: the open model's clock and the pool of idle sessions."""

    def __init__(self, plan: Plan, recorder: Recorder, share: float, seed: int) -> None:
        self.plan = plan
        self.recorder = recorder
        self.share = share
        self.rng = random.Random(seed)  # noqa: S311 (load scheduling, not secrets)
        self.idle: dict[str, deque[Practitioner]] = {}
        self.waiting: dict[str, deque[Job]] = {}
        self.sessions = 0
        self.kinds: dict[str, int] = {}
        # Sessions of each persona waiting for an answer now, and the most in use since a sample.
        self.sending: dict[str, int] = {}
        self.peak_in_use = 0
        self.running = False
        self.greenlets: list[gevent.Greenlet] = []
        opts = plan.options
        self.max_queue_s = float(opts.cp_max_queue)
        self.late_after_s = float(opts.cp_late_after)

    # -- sessions --------------------------------------------------------------------------

    def join(self, user: Practitioner) -> None:
        """A session logged in and waiting for work."""
        self.sessions += 1
        self.kinds[user.account.kind] = self.kinds.get(user.account.kind, 0) + 1
        self.release(user)

    def leave(self, user: Practitioner) -> None:
        self.sessions -= 1
        self.kinds[user.account.kind] -= 1
        with contextlib.suppress(ValueError):
            self.idle.get(user.account.kind, deque()).remove(user)

    def release(self, user: Practitioner) -> None:
        """A session is free: give it the oldest waiting enquiry of its kind, or park it."""
        queue = self.waiting.get(user.account.kind)
        while queue:
            job = queue.popleft()
            if time.time() - job.arrival > self.max_queue_s:
                self.drop(job)
                continue
            self._waited(job)
            user.inbox.put(job)
            return
        self.idle.setdefault(user.account.kind, deque()).append(user)

    def drop(self, job: Job, queued: bool = True) -> None:
        """An enquiry never sent: each of its requests counts as dropped."""
        if queued:
            self._waited(job)
        self.recorder.dropped(job.arrival, len(job.steps))

    def _waited(self, job: Job) -> None:
        """File how long a queued arrival waited for a session, and whether the harness starved
        it (held up longer than a request may be late by)."""
        wait = time.time() - job.arrival
        starved = job.held_by_harness and wait > self.late_after_s
        self.recorder.waited(job.arrival, wait, starved=starved)
        if starved:
            self.recorder.count(f"starved:{job.kind}")

    def busy(self) -> int:
        """Sessions carrying out an enquiry now."""
        return self.sessions - sum(len(q) for q in self.idle.values())

    def sent(self, kind: str, change: int) -> None:
        """A session of this persona started (+1) or finished (-1) waiting for an answer."""
        self.sending[kind] = self.sending.get(kind, 0) + change

    def _queue(self, job: Job) -> None:
        """No session of the job's persona is free: queue it, noting who holds the sessions.

        Busy sessions either wait for an answer (the server's time) or read between the steps
        of an enquiry (the workload's think time, the harness's own). When most are reading,
        a larger crowd would have served the arrival at once: the harness held it up.
        """
        held = self.kinds.get(job.kind, 0)
        busy = held - len(self.idle.get(job.kind, ()))
        sending = self.sending.get(job.kind, 0)
        job.held_by_harness = busy - sending > sending
        self.waiting.setdefault(job.kind, deque()).append(job)

    # -- the clock -------------------------------------------------------------------------

    def start(self, start: float) -> None:
        self.running = True
        self.greenlets = [
            gevent.spawn(self._arrivals, start),
            gevent.spawn(self._expire),
            gevent.spawn(self._sample_cpu),
        ]

    def stop(self) -> None:
        self.running = False
        gevent.killall(self.greenlets, block=True, timeout=2)
        # Whatever still waits never ran: dropped, not silently forgotten.
        for queue in self.waiting.values():
            while queue:
                job = queue.popleft()
                self.drop(job)

    def _arrivals(self, start: float) -> None:
        profile = self.plan.profile
        end = start + self.plan.duration_s
        crowd = self.plan.kinds
        at = max(start, time.time())
        while self.running:
            rate = profile.rate_at(max(0.0, at - start)) * self.share
            if rate <= 0:
                at += 0.1
            else:
                at += self.rng.expovariate(rate)
            if at >= end:
                return
            wait = at - time.time()
            if wait > 0:
                gevent.sleep(wait)
            self.recorder.lag(time.time() - at)
            mix = profile.mix_at(at - start)
            kinds = [k for k in mix if mix[k] > 0 and k in crowd]
            if rate <= 0 or not kinds:
                continue
            kind = self.rng.choices(kinds, weights=[mix[k] for k in kinds])[0]
            job = Job(kind, at, draw_task(kind, self.rng, self.plan.options.cp_think_scale))
            for step, intended in zip(job.steps, job.intended(), strict=True):
                self.recorder.planned(intended, ACTION_ENDPOINTS.get(step.action, step.action))
            self.recorder.count("arrivals")
            idle = self.idle.get(kind)
            if idle:
                idle.popleft().inbox.put(job)
                self.peak_in_use = max(self.peak_in_use, self.busy())
            elif not self.kinds.get(kind):
                # No session of this persona in this process at all: the arrival cannot be served,
                # and the harness, which holds no account of it here, starved it.
                self.recorder.waited(at, 0.0, starved=True)
                self.recorder.count(f"starved:{kind}")
                self.drop(job, queued=False)
            else:
                self._queue(job)

    def _expire(self) -> None:
        while self.running:
            gevent.sleep(0.5)
            now = time.time()
            for queue in self.waiting.values():
                while queue and now - queue[0].arrival > self.max_queue_s:
                    job = queue.popleft()
                    self.drop(job)
            self.recorder.users(now, self.sessions, self.peak_in_use)
            self.peak_in_use = self.busy()

    def _sample_cpu(self) -> None:
        process = psutil.Process(os.getpid())
        last = process.cpu_times()
        while self.running:
            gevent.sleep(CPU_SAMPLE_S)
            now = process.cpu_times()
            busy = (now.user - last.user) + (now.system - last.system)
            last = now
            self.recorder.cpu(100.0 * busy / CPU_SAMPLE_S, busy)


class Node:
    """This process's part of the run: the scheduler on a generator, the aggregate on the master."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.recorder: Recorder | None = None
        self.scheduler: Scheduler | None = None
        self.aggregate: Aggregate | None = None
        self.start: float | None = None
        self.finals: set[str] = set()
        self.stop_sent_at: float | None = None
        self.env: Environment | None = None
        self.abort_reason: str | None = None
        self.detection: dict[str, Any] = {}
        self.finishers: list[Callable[[Node], dict[str, Any]]] = []
        self.accounts: deque[Account] = deque()
        self.ended: float | None = None
        self.index = 0
        # Distributed runs: this process's own personas files (Locust overwrites a worker's options
        # with the master's), their digest, the plan's fingerprint, and the workers' answers.
        self.files: tuple[str, str] = ("", "")
        self.workload = ""
        self.fingerprint = ""
        self.refusal: str | None = None
        self.plan_sent: set[str] = set()
        self.plan_answers: dict[str, dict[str, Any]] = {}

    def next_account(self) -> Account | None:
        """An account no other session of the run holds, or None when all are in use."""
        return self.accounts.popleft() if self.accounts else None

    def give_back(self, account: Account) -> None:
        self.accounts.append(account)

    @property
    def generator(self) -> bool:
        return self.env is not None and not isinstance(self.env.runner, MasterRunner)

    def begin(self, start: float, workers: int, index: int) -> None:
        """Start scheduling this process's share of the arrivals."""
        assert self.plan is not None
        interval = float(self.plan.options.cp_interval)
        self.start = start
        self.index = index
        self.recorder = Recorder(start, interval, load_metrics(telemetry.current()))
        self.scheduler = Scheduler(
            self.plan, self.recorder, 1.0 / max(workers, 1), int(self.plan.options.cp_seed) + index
        )
        self.accounts = deque(assigned_accounts(self.plan, workers, index))
        self.scheduler.start(start)

    def drain(self) -> dict[str, Any] | None:
        return self.recorder.drain() if self.recorder is not None else None

    def end(self) -> dict[str, Any] | None:
        """Stop arrivals, let enquiries in flight finish (a while), return the last delta."""
        if self.scheduler is not None:
            self.scheduler.stop()
            deadline = time.time() + IN_FLIGHT_WAIT_S
            while self.scheduler.busy() and time.time() < deadline:
                gevent.sleep(0.1)
        return self.drain()


NODE = Node()


def assigned_accounts(plan: Plan, workers: int, index: int) -> list[Account]:
    """This process's accounts: every `workers`-th adversary, then every `workers`-th account of
    each persona of the ordinary crowd, interleaved by each persona's peak of planned sessions:
    none is shared, and each process holds a session of every persona the crowd has `workers`
    accounts of from the start (adversaries take none of those)."""
    adversaries = [a for a in plan.workload.accounts if a.adversary is not None]
    by_kind: dict[str, list[Account]] = {}
    for account in plan.workload.accounts:
        if account.adversary is None:
            by_kind.setdefault(account.kind, []).append(account)
    # Split each persona's accounts between the processes first, then order this process's
    # share, so each begins with a session of every persona it holds.
    mine = [a for accounts in by_kind.values() for a in accounts[index::workers]]
    ordered = interleave(mine, {k: float(n) for k, n in plan.peak_by_kind.items()})
    return adversaries[index::workers] + ordered


# -- Locust wiring ------------------------------------------------------------------------------


def _options(parser: Any) -> None:
    group = parser.add_argument_group("ContactPoint load")
    group.add_argument(
        "--personas",
        dest="cp_personas",
        env_var="CONTACTPOINT_LOAD_PERSONAS",
        default="",
        help="personas file with the accounts to load with",
    )
    group.add_argument(
        "--sample",
        dest="cp_sample",
        env_var="CONTACTPOINT_LOAD_SAMPLE",
        default="",
        help="children sample JSONL (default: beside the personas)",
    )
    group.add_argument(
        "--load-profile",
        dest="cp_profile",
        env_var="CONTACTPOINT_LOAD_PROFILE",
        default="national-rollout",
        help="national-rollout, steady or ramp",
    )
    group.add_argument(
        "--duration",
        dest="cp_duration",
        env_var="CONTACTPOINT_LOAD_DURATION",
        type=float,
        default=0.0,
        help="run seconds (default: the profile's)",
    )
    group.add_argument(
        "--rate",
        dest="cp_rate",
        env_var="CONTACTPOINT_LOAD_RATE",
        type=float,
        default=0.0,
        help="enquiries a second for the steady and ramp profiles",
    )
    group.add_argument(
        "--intensity",
        dest="cp_intensity",
        env_var="CONTACTPOINT_LOAD_INTENSITY",
        type=float,
        default=1.0,
        help="multiple of the modelled load",
    )
    group.add_argument(
        "--slo",
        dest="cp_slo",
        env_var="CONTACTPOINT_LOAD_SLO",
        default="",
        help="SLO YAML (default: the bundled national-rollout objectives)",
    )
    group.add_argument(
        "--out",
        dest="cp_out",
        env_var="CONTACTPOINT_LOAD_OUT",
        default="load-report",
        help="directory for summary.json, charts, JUnit",
    )
    group.add_argument(
        "--interval",
        dest="cp_interval",
        env_var="CONTACTPOINT_LOAD_INTERVAL",
        type=float,
        default=5.0,
        help="seconds per point of the time series",
    )
    group.add_argument(
        "--max-queue",
        dest="cp_max_queue",
        type=float,
        default=10.0,
        env_var="CONTACTPOINT_LOAD_MAX_QUEUE",
        help="seconds an enquiry may wait for a free session before it is dropped",
    )
    group.add_argument(
        "--late-after",
        dest="cp_late_after",
        type=float,
        default=0.1,
        env_var="CONTACTPOINT_LOAD_LATE_AFTER",
        help="seconds after its intended start a request counts as late",
    )
    group.add_argument(
        "--think-scale",
        dest="cp_think_scale",
        type=float,
        default=1.0,
        env_var="CONTACTPOINT_LOAD_THINK_SCALE",
        help="multiply every reading time (0 for back-to-back requests)",
    )
    group.add_argument(
        "--adversaries",
        dest="cp_adversaries",
        type=int,
        default=0,
        env_var="CONTACTPOINT_LOAD_ADVERSARIES",
        help="accounts that harvest or snoop, hidden in the crowd",
    )
    group.add_argument(
        "--max-sessions",
        dest="cp_max_sessions",
        type=int,
        default=0,
        env_var="CONTACTPOINT_LOAD_MAX_SESSIONS",
        help="cap on concurrent sessions (default: the profile's, up to the accounts)",
    )
    group.add_argument(
        "--abort-on-breach",
        dest="cp_abort",
        action="store_true",
        default=False,
        help="stop the run as soon as a judged objective breaches",
    )
    group.add_argument(
        "--max-generator-cpu",
        dest="cp_max_cpu",
        type=float,
        default=MAX_CPU_PERCENT,
        env_var="CONTACTPOINT_LOAD_MAX_GENERATOR_CPU",
        help="a generator process busier than this (%% of a core) invalidates the run",
    )
    group.add_argument(
        "--max-lag-ms",
        dest="cp_max_lag",
        type=float,
        default=MAX_LAG_P99_MS,
        env_var="CONTACTPOINT_LOAD_MAX_LAG_MS",
        help="scheduler wake-up lag p99 beyond this invalidates the run",
    )
    group.add_argument(
        "--max-starved",
        dest="cp_max_starved",
        type=float,
        default=MAX_STARVED_SHARE,
        env_var="CONTACTPOINT_LOAD_MAX_STARVED",
        help="share of arrivals the harness may starve of a session before the run is invalid",
    )
    group.add_argument(
        "--note",
        dest="cp_notes",
        action="append",
        default=[],
        help="a note for the reports (repeatable), e.g. how the target was set up",
    )
    group.add_argument(
        "--warmup",
        dest="cp_warmup",
        type=float,
        default=5.0,
        env_var="CONTACTPOINT_LOAD_WARMUP",
        help="seconds for sessions to log in before the first arrival",
    )
    group.add_argument(
        "--seed", dest="cp_seed", type=int, default=2009, env_var="CONTACTPOINT_LOAD_SEED"
    )
    group.add_argument(
        "--target-label",
        dest="cp_target",
        default="",
        env_var="CONTACTPOINT_LOAD_TARGET",
        help="the target's name in reports",
    )


def plan_from(options: Any) -> Plan:
    """Read the personas and build the profile from Locust's parsed options."""
    if not options.cp_personas:
        raise SystemExit("--personas FILE is required (the accounts to load with)")
    workload = load_workload(
        Path(options.cp_personas), Path(options.cp_sample) if options.cp_sample else None
    )
    profile = profile_from_name(
        options.cp_profile,
        duration_s=options.cp_duration or None,
        rate=options.cp_rate or None,
        intensity=options.cp_intensity,
    )
    adversaries: dict[str, str] = {}
    if options.cp_adversaries:
        rng = random.Random(options.cp_seed)  # noqa: S311 (which accounts misbehave)
        chosen = rng.sample(workload.accounts, min(options.cp_adversaries, len(workload.accounts)))
        strategies = list(Strategy)
        for i, account in enumerate(chosen):
            account.adversary = strategies[i % len(strategies)].value
            adversaries[account.username] = account.adversary
    return Plan(options, workload, profile, adversaries)


def _init(environment: Environment, **_: Any) -> None:
    NODE.env = environment
    serve_prometheus(telemetry.configure("contactpoint-load"))  # OTEL_*; off by default
    options = environment.parsed_options
    if options is None:
        return
    NODE.plan = plan_from(options)
    NODE.files = (options.cp_personas, options.cp_sample)
    NODE.workload = distributed.workload_digest(
        Path(options.cp_personas), Path(options.cp_sample) if options.cp_sample else None
    )
    NODE.fingerprint = distributed.fingerprint(
        distributed.plan_spec(options, NODE.workload), NODE.plan.adversaries
    )
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("cp_start", _on_start)
        runner.register_message("cp_stop", _on_stop)
    elif isinstance(runner, MasterRunner):
        runner.register_message("cp_final", _on_final)
        runner.register_message("cp_plan", _on_plan)
    if not isinstance(runner, WorkerRunner):
        NODE.aggregate = Aggregate(float(options.cp_interval))


def _on_start(environment: Environment, msg: Any, **_: Any) -> None:
    """Take the master's plan (or refuse it, saying why) and start this worker's share."""
    runner = environment.runner
    assert isinstance(runner, WorkerRunner)
    assert NODE.plan is not None
    spec = msg.data.get("plan") or {}
    NODE.refusal = distributed.refusal(spec, NODE.workload)
    if NODE.refusal is not None:
        log.error("this worker cannot run the master's plan: %s", NODE.refusal)
        runner.send_message("cp_plan", {"refused": NODE.refusal})
        return
    options = distributed.adopt(NODE.plan.options, spec)
    options.cp_personas, options.cp_sample = NODE.files
    NODE.plan = plan_from(options)
    NODE.fingerprint = distributed.fingerprint(
        distributed.plan_spec(options, NODE.workload), NODE.plan.adversaries
    )
    runner.send_message("cp_plan", {"fingerprint": NODE.fingerprint})
    NODE.begin(float(msg.data["start"]), int(msg.data["workers"]), runner.worker_index)


def _on_plan(environment: Environment, msg: Any, **_: Any) -> None:
    NODE.plan_answers[msg.node_id] = dict(msg.data or {})


def _on_stop(environment: Environment, msg: Any, **_: Any) -> None:
    data = NODE.end()
    assert environment.runner is not None
    environment.runner.send_message("cp_final", {"delta": data, "detection": NODE.detection})


def _on_final(environment: Environment, msg: Any, **_: Any) -> None:
    assert NODE.aggregate is not None
    if msg.data["delta"] is not None:
        NODE.aggregate.merge(msg.data["delta"], source=msg.node_id)
    for key, value in (msg.data.get("detection") or {}).items():
        NODE.detection.setdefault(key, []).extend(value)
    NODE.finals.add(msg.node_id)


def _report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    delta = NODE.drain()
    if delta is not None:
        data["cp_load"] = delta


def _worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if NODE.aggregate is not None and "cp_load" in data:
        NODE.aggregate.merge(data["cp_load"], source=client_id)


events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_init)  # type: ignore[no-untyped-call]
events.report_to_master.add_listener(_report)  # type: ignore[no-untyped-call]
events.worker_report.add_listener(_worker_report)  # type: ignore[no-untyped-call]


class RolloutShape(LoadTestShape):
    """Sessions by Little's law over the profile; at the end, collect every process's last data.

    Sessions are never let go before the end: a compressed day swings between stages in seconds,
    and a session let go at a quiet hour would log in again at the next busy one, a storm of
    log-ins the model does not plan (it plans one a working session, not one a swing).
    """

    _checked = 0.0
    _held = 0

    def tick(self) -> tuple[int, float] | None:
        plan, env = NODE.plan, NODE.env
        assert plan is not None
        assert env is not None
        assert self.runner is not None
        runner = self.runner
        now = time.time()
        if NODE.start is None:
            start = now + float(plan.options.cp_warmup)  # sessions log in before arrivals
            workers = len(runner.clients) if isinstance(runner, MasterRunner) else 1
            if isinstance(runner, MasterRunner):
                NODE.start = start
                NODE.plan_sent = {c.id for c in runner.clients.all}
                spec = distributed.plan_spec(plan.options, NODE.workload)
                runner.send_message("cp_start", {"start": start, "workers": workers, "plan": spec})
            else:
                NODE.begin(start, 1, 0)
        assert NODE.start is not None
        t = now - NODE.start
        if t < plan.duration_s and NODE.abort_reason is None:
            self._check_abort()
            return self._sessions(max(t, 0.0))
        return self._finish(runner)

    def _sessions(self, t: float) -> tuple[int, float]:
        plan = NODE.plan
        assert plan is not None
        cap = plan.options.cp_max_sessions or len(plan.workload.accounts)
        wanted = max(1, int(plan.profile.users_at(t)), self._held)
        users = self._held = min(cap, len(plan.workload.accounts), wanted)
        # Log-ins are the dearest requests (a password hash each): spread them over the warm-up.
        warmup = max(float(plan.options.cp_warmup), 1.0)
        return users, min(MAX_SPAWN_RATE, max(5.0, users / (0.8 * warmup)))

    def _check_abort(self) -> None:
        """Every few seconds: a live progress line, and the run stopped on a breach if asked."""
        options = NODE.plan.options if NODE.plan else None
        if options is None or NODE.aggregate is None or NODE.start is None:
            return
        now = time.time()
        if now - self._checked < ABORT_CHECK_S:
            return
        self._checked = now
        if NODE.generator:
            delta = NODE.drain()
            if delta is not None:
                NODE.aggregate.merge(delta)
        slo = _slo(options)
        elapsed = now - NODE.start
        data = summary(elapsed)
        breaches = slo_module.breaches(data, slo) if slo is not None else []
        from loadtests import report

        assert NODE.plan is not None
        print(report.live_line(data, breaches, elapsed, NODE.plan.duration_s), flush=True)
        if breaches and slo is not None and (slo.abort_on_breach or options.cp_abort):
            NODE.abort_reason = "; ".join(f"{c.name}: {c.detail}" for c in breaches)
            log.warning("aborting the run on an SLO breach: %s", NODE.abort_reason)

    def _finish(self, runner: Any) -> tuple[int, float] | None:
        now = time.time()
        if NODE.ended is None:
            NODE.ended = now
        if isinstance(runner, MasterRunner):
            if NODE.stop_sent_at is None:
                NODE.stop_sent_at = now
                runner.send_message("cp_stop", {})
            expected = {c.id for c in runner.clients.all}
            if not expected <= NODE.finals and now - NODE.stop_sent_at < FINAL_WAIT_S:
                return runner.user_count, 100.0
        else:
            delta = NODE.end()
            if delta is not None and NODE.aggregate is not None:
                NODE.aggregate.merge(delta)
        for finisher in NODE.finishers:
            NODE.detection.update(finisher(NODE))
        write_reports()
        return None


def _slo(options: Any) -> slo_module.Slo | None:
    return _load_slo(options.cp_slo or str(slo_module.DEFAULT_SLO_PATH))


@functools.lru_cache(maxsize=4)
def _load_slo(path: str) -> slo_module.Slo:
    return slo_module.load_slo(Path(path))


def summary(elapsed: float | None = None) -> dict[str, Any]:
    """The run summary from the merged data (see `loadtests/histograms.py`)."""
    plan, aggregate, env = NODE.plan, NODE.aggregate, NODE.env
    assert plan is not None
    assert aggregate is not None
    if elapsed is None and NODE.ended is not None and NODE.start is not None:
        elapsed = NODE.ended - NODE.start  # an aborted run is judged on the time it ran
    duration = plan.duration_s if elapsed is None else max(min(elapsed, plan.duration_s), 1e-9)
    runner = env.runner if env is not None else None
    workers = len(runner.clients) if isinstance(runner, MasterRunner) else 1
    generator = aggregate.generator(duration, psutil.cpu_count() or 1)
    options = plan.options
    max_lag, max_cpu = float(options.cp_max_lag), float(options.cp_max_cpu)
    reasons = []
    if generator["lag_ms_p99"] > max_lag:
        reasons.append(
            f"the load generator fell behind its own schedule (wake-up lag p99 "
            f"{generator['lag_ms_p99']:.1f} ms > {max_lag:g} ms): add generator processes"
        )
    samples = [x for values in aggregate.cpu.values() for x in values]
    over = sum(1 for x in samples if x > max_cpu) / len(samples) if samples else 0.0
    generator["cpu_share_over_limit"] = over
    if over > SATURATED_SHARE:
        reasons.append(
            f"a load generator process was saturated: CPU above {max_cpu:g} % of a core in "
            f"{over:.0%} of the one-second samples (peak {generator['cpu_percent_max']:.0f} %): "
            "add generator processes"
        )
    rate = aggregate.rate(duration)
    if rate["planned"] == 0:
        reasons.append("nothing was scheduled")
    plan_check = _plan_check(runner, rate, duration)
    reasons.extend(plan_check.pop("reasons"))
    series = aggregate.series()
    sessions = _sessions(plan, aggregate, series)
    if sessions["starved_share"] > sessions["starved_max_share"]:
        reasons.append(starvation_reason(sessions))
    return {
        "schema": SUMMARY_SCHEMA,
        "run": {
            "target": options.cp_target or (env.host if env is not None else "") or "",
            "profile": plan.profile.name,
            "started_at": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(NODE.start or time.time())
            ),
            "duration_s": duration,
            "interval_s": aggregate.interval_s,
            "workers": workers,
            "valid": not reasons,
            "invalid_reasons": reasons,
            "aborted": NODE.abort_reason is not None,
            "abort_reason": NODE.abort_reason,
            "notes": list(options.cp_notes or []),
            "model": plan.profile.describe(),
            "accounts": len(plan.workload.accounts),
            "adversaries": len(plan.adversaries),
            "plan": plan_check,
            "sessions": sessions,
        },
        "rate": rate,
        "latency": aggregate.latency_rows(),
        # Each endpoint's slowest requests with their trace ids (find them in the registry's
        # traces: a sampled one is there when the registry's sampler is parent-based).
        "slowest": aggregate.slowest.rows(),
        "series": series,
        "generator": generator,
        "detection": {
            **{k: v for k, v in NODE.detection.items() if k not in CROWD_NAMES},
            **_refusals(aggregate),
        },
    }


def _plan_check(runner: Any, rate: dict[str, Any], duration: float) -> dict[str, Any]:
    """Whether every generator ran the master's plan: its answers, and the planned requests
    against what the master's plan expects (added to `rate`)."""
    plan = NODE.plan
    assert plan is not None
    expected, sd = distributed.expected_requests(plan.profile, plan.kinds, duration)
    rate["expected_by_plan"] = expected
    reasons = []
    if rate["planned"]:
        reason = distributed.rate_reason(rate["planned"], expected, sd)
        if reason is not None:
            reasons.append(reason)
    workers: dict[str, str] = {}
    if isinstance(runner, MasterRunner):
        names = {
            c.id: f"{runner.get_worker_index(c.id)} ({c.id})"  # type: ignore[no-untyped-call]
            for c in runner.clients.all
        }
        reasons.extend(
            distributed.plan_reasons(NODE.fingerprint, NODE.plan_sent, NODE.plan_answers, names)
        )
        for node, answer in NODE.plan_answers.items():
            taken = answer.get("fingerprint") == NODE.fingerprint
            workers[names.get(node, node)] = "taken" if taken else "not taken"
    return {"fingerprint": NODE.fingerprint, "workers": workers, "reasons": reasons}


def _sessions(plan: Plan, aggregate: Aggregate, series: list[dict[str, Any]]) -> dict[str, Any]:
    """The sessions the run held against its plan, and the arrivals that waited for one."""
    options = plan.options
    waits = aggregate.waits()
    arrivals = int(waits["arrivals"])
    by_kind = {
        key.split(":", 1)[1]: n
        for key, n in sorted(aggregate.counters.items())
        if key.startswith("starved:")
    }
    for row in series:
        row["planned_users"] = plan.profile.users_at(float(row["t"]))
    return {
        "accounts": len(plan.workload.accounts),
        "cap": int(options.cp_max_sessions) or None,
        "planned_peak": plan.planned_peak_users,
        "held_peak": max((int(r["users"]) for r in series), default=0),
        "in_use_peak": max((int(r["in_use"]) for r in series), default=0),
        **waits,
        "starved_share": waits["starved"] / arrivals if arrivals else 0.0,
        "starved_max_share": float(options.cp_max_starved),
        "wait_bound_ms": 1000.0 * float(options.cp_late_after),
        "starved_by_persona": by_kind,
    }


def starvation_reason(sessions: dict[str, Any]) -> str:
    """Why the run is invalid when the harness starved it, naming the account pool or the cap."""
    accounts, cap, peak = sessions["accounts"], sessions["cap"], sessions["planned_peak"]
    if cap is not None and cap < min(accounts, peak):
        cause = f"the session cap (--max-sessions {cap}) is below the planned peak of {peak}"
        advice = "raise --max-sessions"
    elif accounts < peak:
        cause = f"the account pool holds {accounts} accounts for a planned peak of {peak} sessions"
        advice = "provision more accounts (contactpoint load-accounts)"
    else:
        cause = f"the account pool ({accounts} accounts) holds too few of these personas"
        advice = "provision more accounts of them"
    kinds = ", ".join(f"{k} {n}" for k, n in sessions["starved_by_persona"].items())
    return (
        f"the harness starved the run of sessions: {sessions['starved']} of "
        f"{sessions['arrivals']} arrivals ({sessions['starved_share']:.1%}, limit "
        f"{sessions['starved_max_share']:.0%}) waited over {sessions['wait_bound_ms']:g} ms for "
        f"a session busy reading, or found none ({kinds}): {cause}; {advice}"
    )


def _refusals(aggregate: Aggregate) -> dict[str, Any]:
    """Refusals the crowd's ordinary sessions met, by the registry's error code."""
    refused = {
        key.split(":", 1)[1]: n
        for key, n in aggregate.counters.items()
        if key.startswith("refused:")
    }
    logins = aggregate.counters.get("login_failed", 0)
    return {"ordinary_refusals": refused, "failed_logins": logins} if refused or logins else {}


def write_reports() -> None:
    """Judge the run, write the reports, and make the verdict the process's exit code."""
    from loadtests import report

    plan, env = NODE.plan, NODE.env
    assert plan is not None
    assert env is not None
    data = summary()
    try:
        slo = _slo(plan.options)
        assert slo is not None
        verdict = slo_module.evaluate(data, slo)
    except slo_module.SloError as exc:
        log.error("%s", exc)
        env.process_exit_code = 2
        return
    out = Path(plan.options.cp_out)
    out.mkdir(parents=True, exist_ok=True)
    paths = report.write_reports(data, verdict, out)
    print(report.render_terminal(data, verdict), flush=True)
    print("Reports: " + ", ".join(str(p) for p in paths.values()), flush=True)
    env.process_exit_code = verdict.exit_code
