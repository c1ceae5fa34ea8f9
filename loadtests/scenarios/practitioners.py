"""A practitioner's session: log in once, then carry out the enquiries the scheduler hands over.

The user does not loop on its own: it waits for an enquiry (its persona's task, drawn by the
scheduler at a planned arrival time), sends each step at its intended start or at once when late,
records both latencies, and offers itself for the next one. Request names are bounded
(`GET /api/v1/children/{id}`), so Locust's statistics stay one row per endpoint.

Requests go through Locust's `FastHttpUser` (geventhttpclient, keep-alive): about four times
cheaper per request than the requests-based `HttpUser`, so a generator core drives thousands of
requests a second with the open model and histograms (see `scripts/bench_generator.py`).
"""

from __future__ import annotations

import random
import time
import zlib
from typing import Any

import gevent
import pyotp
from gevent.queue import Queue
from locust import FastHttpUser, constant, task

from loadtests.engine import NODE, Job
from loadtests.scenarios import answered, body, error_code
from loadtests.workload import (
    ALERTS,
    API,
    AUDIT_EVENTS,
    LOGIN,
    SEARCH,
    VIEW,
    Account,
    Child,
    pick_child,
    reason,
    search_body,
)
from observability.load import new_traceparent, sample_ratio

TOTP_STEP = 30
# Refresh the token this long before it expires, between enquiries.
TOKEN_MARGIN_S = 60.0
# How long a log-in keeps waiting while the registry answers that its hashing lanes are busy.
LOGIN_BUSY_WAIT_S = 60.0
# Refusals that mean the registry took an ordinary account for a snooper or a harvester.
FLAGGED_CODES = frozenset({"account_suspended", "harvesting_blocked"})
# The share of requests whose traceparent says "sampled" (OTEL_TRACES_SAMPLER / _ARG).
TRACE_RATIO = sample_ratio()


def _retry_after(value: str | None, default: float = 1.0, most: float = 10.0) -> float:
    try:
        return min(most, max(0.0, float(value))) if value is not None else default
    except ValueError:
        return default


class Session:
    """Log-in and token upkeep for one account over Locust's HTTP client."""

    def __init__(self, user: FastHttpUser, account: Account) -> None:
        self.user = user
        self.account = account
        self.token: str | None = None
        self.expires = 0.0
        self.last_step = -1
        self.traceparent: str | None = None  # the last request's, for the recorder

    def login(self) -> bool:
        """Password plus a one-time code; a code already used this step waits for the next."""
        refused, busy, busy_until = 0, 0, time.time() + LOGIN_BUSY_WAIT_S
        while refused < 3:
            step = int(time.time()) // TOTP_STEP
            if step <= self.last_step:
                gevent.sleep((self.last_step + 1) * TOTP_STEP - time.time() + 0.2)
                step = self.last_step + 1
            self.last_step = step
            otp = pyotp.TOTP(self.account.totp_secret, interval=TOTP_STEP).at(step * TOTP_STEP)
            with self.user.client.post(
                f"{API}/auth/login",
                json={
                    "username": self.account.username,
                    "password": self.account.password,
                    "otp": otp,
                },
                name=LOGIN,
                catch_response=True,
            ) as response:
                if response.status_code == 200:
                    data = body(response)
                    self.token = str(data["access_token"])
                    self.expires = time.time() + float(data.get("expires_in", 900))
                    return True
                # A replayed code (another run of this account within 30 s) looks like any other
                # refusal: try the next step once before giving up on the account.
                response.failure(f"login refused: {response.status_code}")
                if response.status_code == 503 and time.time() < busy_until:
                    # The registry's hashing lanes are full (login_busy): the code was never
                    # checked, so the same step may be sent again after the pause it asks for,
                    # and a busy answer is no refusal: a crowd logging in waits its turn.
                    # Backing off, with jitter: thousands of sessions told "1 s" at once would
                    # otherwise come back together, a storm of refusals every second.
                    self.last_step = step - 1
                    busy += 1
                    pause = _retry_after(response.headers.get("Retry-After")) * 2 ** min(busy, 3)
                    gevent.sleep(min(10.0, pause) * random.uniform(0.5, 1.0))  # noqa: S311
                    continue
                if response.status_code != 401:
                    return False
                refused += 1
        return False

    def fresh(self) -> bool:
        if self.token is None or time.time() > self.expires - TOKEN_MARGIN_S:
            return self.login()
        return True

    def headers(self, **extra: str) -> dict[str, str]:
        # A fresh trace per request: a slow one can be found in the registry's traces (the
        # recorder keeps each endpoint's slowest with their trace ids).
        self.traceparent = new_traceparent(TRACE_RATIO)
        return {"Authorization": f"Bearer {self.token}", "traceparent": self.traceparent, **extra}


class Practitioner(FastHttpUser):
    """One logged-in practitioner account of the crowd."""

    wait_time = constant(0)
    # One request at a time per session: a connection each, kept alive between enquiries.
    concurrency = 1

    def on_start(self) -> None:
        # The registry authenticates by bearer token and sets no cookies: skip the cookie jar's
        # work on every request and answer.
        self.client.client.cookiejar = None
        while NODE.scheduler is None and NODE.refusal is None:
            gevent.sleep(0.05)
        self.idle_out = False
        if NODE.refusal is not None:
            # This worker refused the master's plan: it sends nothing (the master names it).
            self.idle_out = True
            return
        account = NODE.next_account()
        if account is None:
            # More sessions asked for than accounts to hold them: this one sits the run out.
            self.idle_out = True
            return
        self.account = account
        seed = zlib.crc32(account.username.encode()) + int(NODE.plan.options.cp_seed)  # type: ignore[union-attr]
        self.rng = random.Random(seed)  # noqa: S311 (a practitioner's choices, not secrets)
        self.session = Session(self, account)
        self.inbox: Queue[Job] = Queue()
        if not self.session.login():
            if NODE.recorder is not None:
                NODE.recorder.count("login_failed")
            self.idle_out = True
            return
        if account.adversary is not None:
            from loadtests.scenarios.adversaries import run_adversary

            # Never joins the scheduler: a stop in the middle must not take it out of the pool.
            self.idle_out = True
            run_adversary(self)
            return
        NODE.detection.setdefault("ordinary_used", []).append(account.username)
        if NODE.scheduler is not None:
            NODE.scheduler.join(self)

    def on_stop(self) -> None:
        if NODE.scheduler is not None and not self.idle_out:
            NODE.scheduler.leave(self)
        if hasattr(self, "account"):
            NODE.give_back(self.account)

    @task
    def work(self) -> None:
        if self.idle_out:
            gevent.sleep(60)
            return
        job = self.inbox.get()
        try:
            if not self.session.fresh():
                if NODE.scheduler is not None:
                    NODE.scheduler.drop(job)
                return
            self.carry_out(job)
        finally:
            if NODE.scheduler is not None:
                NODE.scheduler.release(self)

    def carry_out(self, job: Job) -> None:
        """Send each step at its intended start (at once if already late), record both times."""
        recorder = NODE.recorder
        assert recorder is not None
        child = pick_child(self.account, NODE.plan.workload, self.rng)  # type: ignore[union-attr]
        late_after = NODE.plan.options.cp_late_after  # type: ignore[union-attr]
        for step, intended in zip(job.steps, job.intended(), strict=True):
            wait = intended - time.time()
            if wait > 0:
                gevent.sleep(wait)
            started = time.time()
            scheduler = NODE.scheduler
            if scheduler is not None:
                scheduler.sent(job.kind, 1)
            try:
                name, ok = self.send(step.action, child)
            finally:
                if scheduler is not None:
                    scheduler.sent(job.kind, -1)
            ended = time.time()
            recorder.request(
                name,
                job.kind,
                intended=intended,
                started=started,
                ended=ended,
                ok=ok,
                late=started - intended > late_after,
                traceparent=self.session.traceparent,
            )

    def send(self, action: str, child: Child) -> tuple[str, bool]:
        """One request of a task; returns its bounded name and whether it succeeded."""
        session, kind = self.session, self.account.kind
        if action == "search":
            name = SEARCH
            response = self.client.post(
                f"{API}/children/search",
                json=search_body(child, self.rng),
                headers=session.headers(),
                name=name,
            )
        elif action == "view":
            name = VIEW
            response = self.client.get(
                f"{API}/children/{child.child_id}",
                headers=session.headers(**{"X-Access-Reason": reason(kind, self.rng)}),
                name=name,
            )
        elif action == "audit":
            name = AUDIT_EVENTS
            response = self.client.get(
                f"{API}/audit/events",
                params={"child_id": child.child_id, "limit": 20},
                headers=session.headers(),
                name=name,
            )
        elif action == "alerts":
            name = ALERTS
            response = self.client.get(
                f"{API}/alerts", params={"limit": 20}, headers=session.headers(), name=name
            )
        else:
            raise ValueError(f"unknown action {action!r}")
        if response.status_code in (401, 403, 429):
            self.note_refusal(response)
        return name, answered(response)

    def note_refusal(self, response: Any) -> None:
        """Count refusals of ordinary sessions: a suspension or harvesting block of one is a false
        positive of the controls, a quota refusal a sign the crowd is too small for the rate."""
        code = error_code(response)
        if NODE.recorder is not None and code:
            NODE.recorder.count(f"refused:{code}")
        flagged = NODE.detection.setdefault("ordinary_flagged", [])
        if code in FLAGGED_CODES and self.account.username not in flagged:
            flagged.append(self.account.username)
        if response.status_code == 401:
            self.session.token = None
