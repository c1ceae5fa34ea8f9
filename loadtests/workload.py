"""Who the load is made of: accounts, the children they look for, and each persona's task mix.

Pure data and choices, no HTTP: the Locust users (`loadtests/scenarios/`) carry these out.

Accounts come from a personas file (username, password, TOTP secret, role, LA; the generator's
`personas.json`, or `contactpoint load accounts` for many accounts with caseloads). A persona
entry may carry a `caseload`: children the account's own service works with (search fields and
identifier). A practitioner mostly looks up their own caseload, as ContactPoint's users did (a
school its pupils, a GP practice its patients); otherwise, and for the rest of their lookups, the
children come from the generator's per-LA sample (`children_sample.jsonl` beside the personas
file), so requests spread over the whole population.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from loadtests.model import KIND_ROLES, THINK_TIME_S

API = "/api/v1"
# The names the ordinary crowd's requests are counted under: an SLO objective names one of these.
LOGIN = f"POST {API}/auth/login"
SEARCH = f"POST {API}/children/search"
VIEW = f"GET {API}/children/{{id}}"
AUDIT_EVENTS = f"GET {API}/audit/events"
ALERTS = f"GET {API}/alerts"
# The endpoint each step's action sends to (the name its metrics carry).
ACTION_ENDPOINTS = {"search": SEARCH, "view": VIEW, "audit": AUDIT_EVENTS, "alerts": ALERTS}
ENDPOINTS = (LOGIN, SEARCH, VIEW, AUDIT_EVENTS, ALERTS)


class Strategy(StrEnum):
    """How an adversary hidden in the crowd misbehaves: the naive kind, and ways round the rules.

    Assigned in this order (`--adversaries 2` gives one naive harvester and one naive snooper;
    `--adversaries 9` every strategy once).
    """

    NAIVE_HARVEST = "naive-harvest"  # one surname over many postcodes and dates, a script's pace
    NAIVE_SNOOP = "naive-snoop"  # canaries and uninvolved children, a person's pace
    SURNAME_SWEEP = "surname-sweep"  # a different surname (and its date of birth) each search
    CLAIM_THEN_SNOOP = "claim-then-snoop"  # claims an involvement first, then views
    GIVEN_NAME_SWEEP = "given-name-sweep"  # one surname, every given name in turn
    LOW_AND_SLOW = "low-and-slow"  # a few uninvolved views, far apart
    DOB_SWEEP = "dob-sweep"  # one surname, one date of birth a search
    POSTCODE_SWEEP = "postcode-sweep"  # one surname, one postcode a search
    RESULTS_ONLY = "results-only"  # harvests what searches return, never opens a record

    @property
    def kind(self) -> str:
        snoopers = (Strategy.NAIVE_SNOOP, Strategy.CLAIM_THEN_SNOOP, Strategy.LOW_AND_SLOW)
        return "snooper" if self in snoopers else "harvester"


# Reasons for access, from the registry's codes (caf_assessment, contact_practitioner,
# safeguarding, service_delivery; the emergency override is not an everyday reason).
REASONS: dict[str, tuple[str, ...]] = {
    "school": ("service_delivery", "contact_practitioner", "safeguarding"),
    "gp": ("service_delivery", "contact_practitioner", "safeguarding"),
    "health_visitor": ("service_delivery", "caf_assessment", "safeguarding"),
    "social_worker": ("safeguarding", "caf_assessment", "contact_practitioner"),
    "yot": ("service_delivery", "contact_practitioner"),
    "police": ("safeguarding", "contact_practitioner"),
    "voluntary": ("service_delivery", "caf_assessment"),
    "data_manager": ("service_delivery", "safeguarding"),
}


class WorkloadError(ValueError):
    """The personas or sample files cannot be used (bad usage, exit 2)."""


@dataclass(frozen=True)
class Child:
    """A child to look for: what a practitioner would type, and the record's identifier."""

    child_id: str
    family_name: str
    given_name: str
    date_of_birth: str
    postcode: str | None
    local_authority: str | None
    shielded: bool = False
    # Lives with a shielded child: withheld and unfindable by postcode as a shielded child is.
    household_shielded: bool = False

    @property
    def protected(self) -> bool:
        return self.shielded or self.household_shielded

    @classmethod
    def of(cls, row: dict[str, Any]) -> Child:
        return cls(
            child_id=str(row["child_id"]),
            family_name=str(row["family_name"]),
            given_name=str(row["given_name"]),
            date_of_birth=str(row["date_of_birth"]),
            postcode=row.get("postcode"),
            local_authority=row.get("local_authority"),
            shielded=bool(row.get("shielded", False)),
            household_shielded=bool(row.get("household_shielded", False)),
        )


@dataclass
class Account:
    """A practitioner account the load can log in as."""

    username: str
    password: str
    totp_secret: str
    role: str
    kind: str
    local_authority: str | None = None
    caseload: list[Child] = field(default_factory=list)
    adversary: str | None = None


@dataclass
class Workload:
    """Everything the users of one run draw from."""

    accounts: list[Account]
    sample: dict[str, list[Child]]
    canaries: list[Child]
    auditors: list[Account] = field(default_factory=list)

    def children(self, la: str | None) -> list[Child]:
        """The sample children of an LA (any LA's when it has none)."""
        if la and self.sample.get(la):
            return self.sample[la]
        return [c for rows in self.sample.values() for c in rows]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _kind(role: str, index: int) -> str | None:
    kinds = [k for k, r in KIND_ROLES.items() if r == role]
    if not kinds:
        return None
    # Health accounts alternate between GP practice staff and health visitors.
    return kinds[index % len(kinds)]


def load_workload(personas: Path, sample: Path | None = None) -> Workload:
    """Read the personas file and the sample and canary files beside it (or `sample`)."""
    try:
        rows = json.loads(personas.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WorkloadError(f"cannot read the personas file {personas}: {exc}") from exc
    if not isinstance(rows, list):
        raise WorkloadError(f"{personas}: expected a JSON list of personas")
    accounts: list[Account] = []
    auditors: list[Account] = []
    for index, row in enumerate(rows):
        try:
            role = str(row["role"])
            account = Account(
                username=str(row["username"]),
                password=str(row["password"]),
                totp_secret=str(row["totp_secret"]),
                role=role,
                kind=row.get("kind") or _kind(role, index) or role,
                local_authority=row.get("local_authority"),
                caseload=[Child.of(c) for c in row.get("caseload", [])],
            )
        except (KeyError, TypeError) as exc:
            raise WorkloadError(
                f"{personas}: persona {index} needs username, password, totp_secret and role"
            ) from exc
        if role == "national_auditor":
            auditors.append(account)
        elif account.kind in KIND_ROLES:
            accounts.append(account)
    if not accounts:
        raise WorkloadError(f"{personas}: no practitioner or data manager account to load with")
    sample_rows = _jsonl(sample or personas.parent / "children_sample.jsonl")
    by_la: dict[str, list[Child]] = {}
    for row in sample_rows:
        child = Child.of(row)
        by_la.setdefault(child.local_authority or "", []).append(child)
    if not by_la and not any(a.caseload for a in accounts):
        raise WorkloadError(
            f"no children to look for: neither {personas.parent / 'children_sample.jsonl'} "
            "nor a caseload in the personas file"
        )
    canaries = [Child.of(r) for r in _jsonl(personas.parent / "canaries.jsonl")]
    return Workload(accounts=accounts, sample=by_la, canaries=canaries, auditors=auditors)


def interleave(accounts: Sequence[Account], weights: dict[str, float]) -> list[Account]:
    """Order accounts so any prefix holds the kinds in proportion to `weights`.

    The run spawns sessions in this order; a prefix of 50 accounts then has about as many school
    staff as the mix asks for, not the first 50 of the file. One account of every kind comes
    first: arrivals are drawn for every kind the crowd has, so a rare one (an LA's data manager)
    needs a session from the start, not after hundreds of others.
    """
    queues: dict[str, list[Account]] = {}
    for account in accounts:
        queues.setdefault(account.kind, []).append(account)
    credit = dict.fromkeys(queues, -1.0)  # each kind's first is placed already
    total = sum(weights.get(k, 0.0) for k in queues) or 1.0
    firsts = sorted(queues, key=lambda k: (-weights.get(k, 0.0), k))
    ordered: list[Account] = [queues[kind].pop(0) for kind in firsts]
    while any(queues.values()):
        live = [k for k in queues if queues[k]]
        for kind in live:
            credit[kind] += (weights.get(kind, 0.0) / total) or 1e-6
        kind = max(live, key=lambda k: credit[k])
        credit[kind] -= 1.0
        ordered.append(queues[kind].pop(0))
    return ordered


@dataclass(frozen=True)
class Step:
    """One request of a task, with the reading time before it."""

    action: str  # search | view | alerts | audit | me
    think_s: float = 0.0


# Task mixes: (weight, steps). A lookup is a search then the view of the child found; some
# roles open the record's audit trail or the LA's alerts.
TASKS: dict[str, tuple[tuple[float, tuple[str, ...]], ...]] = {
    "school": ((0.9, ("search", "view")), (0.1, ("search",))),
    "gp": ((0.85, ("search", "view")), (0.15, ("search",))),
    "health_visitor": ((0.9, ("search", "view")), (0.1, ("search",))),
    "social_worker": ((0.8, ("search", "view")), (0.2, ("search", "view", "view"))),
    "yot": ((0.85, ("search", "view")), (0.15, ("search",))),
    "police": ((0.8, ("search", "view")), (0.2, ("search",))),
    "voluntary": ((0.8, ("search", "view")), (0.2, ("search",))),
    "data_manager": (
        (0.5, ("alerts",)),
        (0.3, ("search", "view")),
        (0.2, ("search", "view", "audit")),
    ),
}


def draw_task(kind: str, rng: random.Random, think_scale: float = 1.0) -> list[Step]:
    """A task of this persona's mix, with think times drawn for each step after the first."""
    options = TASKS[kind]
    steps = rng.choices([s for _, s in options], weights=[w for w, _ in options])[0]
    low, high = THINK_TIME_S[kind]
    return [
        Step(action, 0.0 if i == 0 else rng.uniform(low, high) * think_scale)
        for i, action in enumerate(steps)
    ]


def pick_child(account: Account, workload: Workload, rng: random.Random) -> Child:
    """A child this practitioner would look for: mostly their caseload, else the LA's sample."""
    if account.caseload and (rng.random() < 0.9 or not workload.sample):
        return rng.choice(account.caseload)
    candidates = [c for c in workload.children(account.local_authority) if not c.protected]
    return rng.choice(candidates or workload.children(None))


def search_body(child: Child, rng: random.Random) -> dict[str, str]:
    """Family name plus one or two more criteria, as a practitioner would search."""
    body = {"family_name": child.family_name}
    choice = rng.random()
    if choice < 0.5 or not child.postcode:
        body["given_name"] = child.given_name
        body["date_of_birth"] = child.date_of_birth
    elif choice < 0.8:
        body["given_name"] = child.given_name
        body["postcode"] = child.postcode
    else:
        body["date_of_birth"] = child.date_of_birth
    return body


def reason(kind: str, rng: random.Random) -> str:
    return rng.choice(REASONS.get(kind, ("safeguarding",)))
