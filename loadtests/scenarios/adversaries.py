"""Harvesters and snoopers hidden in the crowd: do the controls catch them under load?

A few accounts of the crowd (`--adversaries N`, chosen by the seed) log in like the rest and then
misbehave instead of taking enquiries, each by one strategy (`loadtests.workload.Strategy`, in its
order: the naive harvester and snooper first, then the evasive ones):

- **harvesters** search until the registry refuses them (`harvesting_blocked`, suspension or a dead
  token) or they have sent `HARVEST_REQUESTS`: the naive one sweeps one surname over postcodes and
  dates of birth at a script's even pace; the evasive ones sweep surnames, given names, dates of
  birth or postcodes at a person's pace, open a few of the children found, or (results-only) none;
- **snoopers** browse at a person's pace: canaries and uninvolved children (naive), a few views far
  apart (low-and-slow), or a claimed involvement before each view (claim-then-snoop).

Each records the distinct children that reached it (from search results and from full or limited
views). At the end the master counts, with a national auditor's account from the personas file,
which accounts the registry raised alerts about: recall and reach per strategy, and **false
positives**: ordinary accounts of the crowd that were alerted on, or refused as suspended or
blocked as harvesters (`detection.false_positives`, judged by the SLO's
`false_positives_max_ratio`). Counts only: no username of the crowd reaches the reports.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent
import requests

from loadtests.engine import NODE, Node
from loadtests.scenarios import body, error_code
from loadtests.workload import API, Child, Strategy

if TYPE_CHECKING:
    from loadtests.scenarios.practitioners import Practitioner

HARVEST_REQUESTS = 120
SNOOP_VIEWS = 12
SLOW_VIEWS = 5
# Evasive harvesters open one child in this many searches, up to OPENED children.
OPEN_EVERY, OPENED = 4, 5
STOPPED_CODES = {"harvesting_blocked", "account_suspended", "invalid_token", "unauthenticated"}


def _common_surname(children: list[Child]) -> str:
    counts: dict[str, int] = {}
    for child in children:
        counts[child.family_name] = counts.get(child.family_name, 0) + 1
    return max(sorted(counts), key=lambda name: counts[name])


def _criteria(strategy: Strategy, i: int, children: list[Child], surname: str) -> dict[str, str]:
    """The search the harvester sends as its ``i``-th request."""
    child = children[i % len(children)]
    if strategy is Strategy.NAIVE_HARVEST:
        first = children[0].family_name
        if i % 2 == 0:
            return {"family_name": first, "postcode": child.postcode or "QQ1 1QQ"}
        return {"family_name": first, "date_of_birth": child.date_of_birth}
    if strategy is Strategy.GIVEN_NAME_SWEEP:
        given = sorted({c.given_name for c in children})
        return {"family_name": surname, "given_name": given[i % len(given)]}
    if strategy is Strategy.DOB_SWEEP:
        dates = sorted({c.date_of_birth for c in children})
        return {"family_name": surname, "date_of_birth": dates[i % len(dates)]}
    if strategy is Strategy.POSTCODE_SWEEP:
        codes = sorted({c.postcode for c in children if c.postcode}) or ["QQ1 1QQ"]
        return {"family_name": surname, "postcode": codes[i % len(codes)]}
    # Surname sweep and results-only: each search a different child's surname and birth date.
    return {"family_name": child.family_name, "date_of_birth": child.date_of_birth}


def run_adversary(user: Practitioner) -> None:
    """Play this account's part until stopped or done, and report what it saw."""
    assert user.account.adversary is not None
    strategy = Strategy(user.account.adversary)
    started = time.time()
    # Filed at once and updated as it goes: a run that ends first still shows how far it got.
    seen: dict[str, Any] = {
        "username": user.account.username,
        "generator": NODE.index,
        "kind": strategy.kind,
        "strategy": strategy.value,
        "requests": 0,
        "stopped_after": None,
        "stopped_by": None,
        "seconds": 0.0,
        "from_results": 0,
        "from_views": 0,
        "full_records": 0,
        "reach": 0,
    }
    NODE.detection.setdefault("adversary_runs", []).append(seen)
    from_results: set[str] = set()
    from_views: set[str] = set()
    full: set[str] = set()
    children = list(NODE.plan.workload.children(user.account.local_authority))  # type: ignore[union-attr]
    canaries = list(NODE.plan.workload.canaries)  # type: ignore[union-attr]
    surname = _common_surname(children)
    pending: list[str] = []  # children found by a search, to open

    def search(criteria: dict[str, str]) -> Any:
        response = user.client.post(
            f"{API}/children/search",
            json=criteria,
            headers=user.session.headers(),
            name=f"POST {API}/children/search (harvester)",
        )
        if response.status_code == 200:
            found = [str(r["child_id"]) for r in (body(response) or {}).get("results", [])]
            from_results.update(found)
            pending.extend(found[:1])
        return response

    def view(child_id: str, claim: bool = False) -> Any:
        if claim:
            user.client.post(
                f"{API}/children/{child_id}/involvements",
                json={},
                headers=user.session.headers(),
                name=f"POST {API}/children/{{id}}/involvements (snooper)",
            )
        response = user.client.get(
            f"{API}/children/{child_id}",
            headers=user.session.headers(**{"X-Access-Reason": "safeguarding"}),
            name=f"GET {API}/children/{{id}} ({strategy.kind})",
        )
        if response.status_code == 200:
            from_views.add(child_id)
            if (body(response) or {}).get("access", {}).get("level") == "full":
                full.add(child_id)
        return response

    if strategy.kind == "harvester":
        budget = HARVEST_REQUESTS
    else:
        budget = SLOW_VIEWS if strategy is Strategy.LOW_AND_SLOW else SNOOP_VIEWS
    for i in range(budget):
        if NODE.scheduler is None or not NODE.scheduler.running:
            break
        if strategy.kind == "harvester":
            opening = (
                strategy not in (Strategy.NAIVE_HARVEST, Strategy.RESULTS_ONLY)
                and pending
                and i % OPEN_EVERY == OPEN_EVERY - 1
                and len(from_views) < OPENED
            )
            if opening:
                response = view(pending.pop(0))
            else:
                response = search(_criteria(strategy, i, children, surname))
            # Evenly spaced is a script; the evasive ones type like a person.
            pause = 1.0 if strategy is Strategy.NAIVE_HARVEST else user.rng.uniform(1.5, 4.0)
        else:
            naive = strategy is Strategy.NAIVE_SNOOP
            pool = canaries if naive and canaries and i % 3 == 0 else children
            child = pool[(i * 7) % len(pool)]
            response = view(child.child_id, claim=strategy is Strategy.CLAIM_THEN_SNOOP)
            slow = strategy is Strategy.LOW_AND_SLOW
            pause = user.rng.uniform(15.0, 30.0) if slow else user.rng.uniform(4.0, 12.0)
        seen["requests"] += 1
        seen["seconds"] = round(time.time() - started, 1)
        seen["from_results"], seen["from_views"] = len(from_results), len(from_views)
        seen["full_records"] = len(full)
        seen["reach"] = len(from_results | from_views)
        code = error_code(response)
        if response.status_code in (401, 403, 429) and code in STOPPED_CODES:
            seen["stopped_after"], seen["stopped_by"] = seen["requests"], code
            break
        gevent.sleep(pause)


def alerts_finisher(node: Node) -> dict[str, Any]:
    """Recall and false positives from the alerts the registry raised during the run."""
    plan, env = node.plan, node.env
    if plan is None or env is None:
        return {}
    subjects: set[str] | None = None
    if plan.workload.auditors and env.host:
        subjects = _alert_subjects(env.host, plan, node.start or 0.0)
    out: dict[str, Any] = {"false_positives": false_positives(node, subjects)}
    if not plan.adversaries:
        return out
    seen: list[dict[str, Any]] = list(node.detection.get("adversary_runs", []))
    out["adversary_runs"] = seen
    stopped = {a["username"] for a in seen if a.get("stopped_after")}
    alerted = subjects or set()
    adversaries = set(plan.adversaries)
    caught = {u for u in adversaries if u in stopped or u in alerted}
    ordinary = {a.username for a in plan.workload.accounts} - adversaries
    false_alerts = ordinary & alerted
    out["strategies"] = _by_strategy(plan.adversaries, seen, caught)
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


def false_positives(node: Node, alerted: set[str] | None) -> dict[str, Any]:
    """Ordinary accounts that logged in and were alerted on, suspended or blocked (counts only).

    The usernames gathered during the run (`ordinary_used`, `ordinary_flagged`, from every
    generator process) are taken out of the detection data here, so none reaches the reports.
    """
    used = set(node.detection.pop("ordinary_used", []))
    refused = set(node.detection.pop("ordinary_flagged", [])) & used
    alerted_used = (alerted or set()) & used
    flagged = refused | alerted_used
    return {
        "accounts_used": len(used),
        "alerted": len(alerted_used),
        "suspended_or_blocked": len(refused),
        "accounts_flagged": len(flagged),
        "share": len(flagged) / len(used) if used else 0.0,
        "alerts_checked": alerted is not None,
    }


def _by_strategy(
    adversaries: dict[str, str], runs: list[dict[str, Any]], caught: set[str]
) -> dict[str, dict[str, Any]]:
    """Per strategy: actors, how many acted and were caught, and the most children one reached."""
    rows: dict[str, dict[str, Any]] = {}
    for strategy in Strategy:
        actors = sorted(u for u, s in adversaries.items() if s == strategy.value)
        if not actors:
            continue
        mine = [r for r in runs if r.get("username") in actors]
        acted = [r for r in mine if r.get("requests")]
        got = [u for u in actors if u in caught]
        stops: dict[str, int] = {}
        for r in mine:
            if r.get("stopped_by"):
                stops[r["stopped_by"]] = stops.get(r["stopped_by"], 0) + 1
        rows[strategy.value] = {
            "kind": strategy.kind,
            "actors": len(actors),
            "acted": len(acted),
            "caught": len(got),
            "recall": len(got) / len(actors),
            "reach_max": max((int(r.get("reach") or 0) for r in mine), default=0),
            "full_records_max": max((int(r.get("full_records") or 0) for r in mine), default=0),
            "stopped_by": stops,
        }
    return rows


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
