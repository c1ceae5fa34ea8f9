"""Harvesters and snoopers hidden in the crowd: do the controls catch them under load?

A few accounts of the crowd (`--adversaries N`, chosen by the seed, half of each kind) log in like
the rest and then misbehave instead of taking enquiries:

- a **harvester** sweeps: one surname over many postcodes and dates of birth, one request a second
  as a script sends them, until the registry refuses it (`harvesting_blocked`, suspension or a dead
  token) or it has sent `HARVEST_REQUESTS`;
- a **snooper** browses at a human pace: canary records and children its service has nothing to
  do with, with a plausible reason.

At the end the master counts, with a national auditor's account from the personas file, which
accounts the registry raised alerts about: adversaries caught (recall) and ordinary accounts
alerted (false positives), beside what each adversary saw (stopped after how many requests).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent
import requests

from loadtests.engine import NODE, Node
from loadtests.scenarios import error_code
from loadtests.workload import API

if TYPE_CHECKING:
    from loadtests.scenarios.practitioners import Practitioner

HARVEST_REQUESTS = 120
SNOOP_VIEWS = 12
STOPPED_CODES = {"harvesting_blocked", "account_suspended", "invalid_token", "unauthenticated"}


def run_adversary(user: Practitioner) -> None:
    """Play this account's part until stopped or done, and report what it saw."""
    kind = user.account.adversary
    started = time.time()
    # Filed at once and updated as it goes: a run that ends first still shows how far it got.
    seen: dict[str, Any] = {
        "username": user.account.username,
        "kind": kind,
        "requests": 0,
        "stopped_after": None,
        "stopped_by": None,
        "seconds": 0.0,
    }
    NODE.detection.setdefault("adversary_runs", []).append(seen)
    children = list(NODE.plan.workload.children(user.account.local_authority))  # type: ignore[union-attr]
    canaries = list(NODE.plan.workload.canaries)  # type: ignore[union-attr]
    for i in range(HARVEST_REQUESTS if kind == "harvester" else SNOOP_VIEWS):
        if NODE.scheduler is None or not NODE.scheduler.running:
            break
        if kind == "harvester":
            child = children[i % len(children)]
            response = user.client.post(
                f"{API}/children/search",
                json={
                    "family_name": children[0].family_name,
                    "postcode": child.postcode or "QQ1 1QQ",
                }
                if i % 2 == 0
                else {"family_name": children[0].family_name, "date_of_birth": child.date_of_birth},
                headers=user.session.headers(),
                name=f"POST {API}/children/search (harvester)",
            )
            pause = 1.0  # evenly spaced: a script, not a person
        else:
            pool = canaries if canaries and i % 3 == 0 else children
            child = pool[(i * 7) % len(pool)]
            response = user.client.get(
                f"{API}/children/{child.child_id}",
                headers=user.session.headers(**{"X-Access-Reason": "safeguarding"}),
                name=f"GET {API}/children/{{id}} (snooper)",
            )
            pause = user.rng.uniform(4.0, 12.0)
        seen["requests"] += 1
        seen["seconds"] = round(time.time() - started, 1)
        code = error_code(response)
        if response.status_code in (401, 403, 429) and code in STOPPED_CODES:
            seen["stopped_after"], seen["stopped_by"] = seen["requests"], code
            break
        gevent.sleep(pause)


def alerts_finisher(node: Node) -> dict[str, Any]:
    """Recall and false positives from the alerts the registry raised during the run."""
    plan, env = node.plan, node.env
    if plan is None or env is None or not plan.adversaries:
        return {}
    seen: list[dict[str, Any]] = list(node.detection.get("adversary_runs", []))
    out: dict[str, Any] = {"adversary_runs": seen}
    subjects: set[str] | None = None
    if plan.workload.auditors and env.host:
        subjects = _alert_subjects(env.host, plan, node.start or 0.0)
    stopped = {a["username"] for a in seen if a.get("stopped_after")}
    alerted = subjects or set()
    adversaries = set(plan.adversaries)
    caught = {u for u in adversaries if u in stopped or u in alerted}
    ordinary = {a.username for a in plan.workload.accounts} - adversaries
    false_alerts = ordinary & alerted
    out.update(
        {
            "adversaries": len(adversaries),
            "caught": len(caught),
            "recall": len(caught) / len(adversaries),
            "missed": sorted(adversaries - caught),
            "alerts_checked": subjects is not None,
            "ordinary_accounts": len(ordinary),
            "ordinary_alerted": len(false_alerts),
            "false_positive_rate": len(false_alerts) / len(ordinary) if ordinary else 0.0,
        }
    )
    return out


def _alert_subjects(host: str, plan: Any, since: float) -> set[str] | None:
    """Usernames the registry raised an alert about since the run began (auditor's view)."""
    import pyotp

    auditor = plan.workload.auditors[0]
    http = requests.Session()
    step = int(time.time()) // 30
    for attempt in range(2):
        otp = pyotp.TOTP(auditor.totp_secret, interval=30).at((step + attempt) * 30)
        if attempt:
            gevent.sleep(max(0.0, (step + 1) * 30 - time.time() + 0.2))
        r = http.post(
            host.rstrip("/") + f"{API}/auth/login",
            json={"username": auditor.username, "password": auditor.password, "otp": otp},
            timeout=30,
        )
        if r.status_code == 200:
            break
    else:
        return None
    token = r.json()["access_token"]
    gevent.sleep(3.0)  # the detector runs every second over sealed events: let it catch up
    r = http.get(
        host.rstrip("/") + f"{API}/alerts",
        params={"limit": 500},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if r.status_code != 200:
        return None
    names = set()
    for alert in r.json():
        created = alert.get("created_at", "")
        if created and _epoch(created) + 1 < since:
            continue
        name = (alert.get("subject") or {}).get("username")
        if name:
            names.add(str(name))
    return names


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
