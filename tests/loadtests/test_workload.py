"""Accounts, children and task mixes for the crowd."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from loadtests.workload import (
    TASKS,
    Account,
    WorkloadError,
    draw_task,
    interleave,
    load_workload,
    pick_child,
    search_body,
)
from reference_app.config import Settings
from reference_app.limits.service import ROLE_QUOTAS, SWEEP_FAMILY_NAMES, SWEEP_FIELD

CHILD = {
    "child_id": "C1",
    "family_name": "Testperson",
    "given_name": "Alex",
    "date_of_birth": "2015-03-01",
    "postcode": "QA1 1AA",  # fictional (no UK postcode area starts with Q)
    "local_authority": "E1",
}


def _files(tmp_path: Path, personas: list[dict[str, object]]) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(personas))
    (tmp_path / "children_sample.jsonl").write_text(json.dumps(CHILD) + "\n")
    return path


def _persona(name: str, role: str, **extra: object) -> dict[str, object]:
    return {"username": name, "password": "p", "totp_secret": "S", "role": role, **extra}


def test_roles_become_persona_kinds_and_auditors_are_kept_apart(tmp_path: Path) -> None:
    path = _files(
        tmp_path,
        [
            _persona("h1", "health_practitioner"),
            _persona("h2", "health_practitioner"),
            _persona("s1", "education_practitioner", caseload=[CHILD]),
            _persona("a1", "national_auditor"),
            _persona("x1", "system_administrator"),
        ],
    )
    workload = load_workload(path)
    kinds = {a.username: a.kind for a in workload.accounts}
    assert kinds == {"h1": "gp", "h2": "health_visitor", "s1": "school"}
    assert [a.username for a in workload.auditors] == ["a1"]
    assert workload.accounts[2].caseload[0].child_id == "C1"
    assert workload.children("E1")[0].postcode == "QA1 1AA"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "cannot read"),
        ('{"a": 1}', "JSON list"),
        ('[{"username": "u"}]', "needs username, password"),
        ('[{"username": "u", "password": "p", "totp_secret": "s", "role": "national_auditor"}]',
         "no practitioner"),
    ],
)  # fmt: skip
def test_unusable_personas_files_are_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "personas.json"
    path.write_text(content)
    with pytest.raises(WorkloadError, match=message):
        load_workload(path)


def test_interleaving_keeps_every_prefix_near_the_mix() -> None:
    accounts = [
        Account(f"{kind}{i}", "p", "s", "r", kind)
        for kind, n in (("school", 60), ("gp", 30), ("police", 10))
        for i in range(n)
    ]
    ordered = interleave(accounts, {"school": 0.6, "gp": 0.3, "police": 0.1})
    assert sorted(a.username for a in ordered) == sorted(a.username for a in accounts)
    first = Counter(a.kind for a in ordered[:20])
    want = {"school": 12, "gp": 6, "police": 2}
    assert all(abs(first[kind] - n) <= 1 for kind, n in want.items()), first


def test_interleaving_puts_one_account_of_every_kind_first() -> None:
    # A kind the mix rarely asks for still gets a session among the first: its arrivals come.
    accounts = [
        Account(f"{kind}{i}", "p", "s", "r", kind)
        for kind, n in (("school", 300), ("data_manager", 2))
        for i in range(n)
    ]
    ordered = interleave(accounts, {"school": 0.996, "data_manager": 0.004})
    assert [a.kind for a in ordered[:2]] == ["school", "data_manager"]


def test_tasks_follow_the_mix_and_think_between_steps() -> None:
    rng = random.Random(3)
    tasks = [draw_task("data_manager", rng) for _ in range(2000)]
    alerts = sum(1 for t in tasks if t[0].action == "alerts") / len(tasks)
    assert abs(alerts - TASKS["data_manager"][0][0]) < 0.05
    lookup = next(t for t in tasks if len(t) >= 2)
    assert lookup[0].think_s == 0
    assert lookup[1].think_s >= 2.0
    assert all(s.think_s == 0 for s in draw_task("school", rng, think_scale=0))


def test_searches_carry_the_family_name_and_another_criterion() -> None:
    rng = random.Random(7)
    from loadtests.workload import Child

    child = Child.of(CHILD)
    for _ in range(50):
        body = search_body(child, rng)
        assert body["family_name"] == "Testperson"
        assert len(body) >= 2


def test_practitioners_mostly_look_up_their_caseload(tmp_path: Path) -> None:
    own = {**CHILD, "child_id": "MINE"}
    path = _files(tmp_path, [_persona("s1", "education_practitioner", caseload=[own])])
    workload = load_workload(path)
    rng = random.Random(1)
    picks = Counter(pick_child(workload.accounts[0], workload, rng).child_id for _ in range(1000))
    assert 850 < picks["MINE"] < 950


def test_an_ordinary_practitioners_day_stays_under_the_limits(tmp_path: Path) -> None:
    """A busy day of the crowd's practitioners, all in one hour, trips no sweep and no daily cap.

    The model's active user makes about three enquiries a day (1.6 sessions of 2); a day of 40,
    by each of ten colleagues sharing the organisation's caseload, is far above it.
    """
    rng = random.Random(5)

    def child(n: int, la: str = "E1") -> dict[str, object]:
        return {
            "child_id": f"C{n}",
            "family_name": f"Family{n}",
            "given_name": f"Given{n}",
            "date_of_birth": f"2015-{1 + n % 12:02d}-{1 + n % 28:02d}",
            "postcode": f"QA{n % 90 + 1} 1AA",
            "local_authority": la,
        }

    caseload = [child(n) for n in range(20)]
    team = [_persona(f"s{i}", "voluntary_practitioner", caseload=caseload) for i in range(10)]
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(team))
    sample = "\n".join(json.dumps(child(n)) for n in range(100, 600))
    (tmp_path / "children_sample.jsonl").write_text(sample + "\n")
    workload = load_workload(path)
    day, everyone = 40, set()
    for account in workload.accounts:
        fields: dict[str, set[str]] = {}
        seen = set()
        for _ in range(day):
            found = pick_child(account, workload, rng)
            seen.add(found.child_id)
            for name, value in search_body(found, rng).items():
                fields.setdefault(name, set()).add(value)
        everyone |= seen
        assert len(seen) < min(q.distinct_children_per_day for q in ROLE_QUOTAS.values())
        assert len(fields["family_name"]) < SWEEP_FAMILY_NAMES
        for name in ("given_name", "date_of_birth", "postcode"):
            assert len(fields.get(name, ())) < SWEEP_FIELD
    assert len(everyone) < Settings.model_fields["limit_organisation_children_per_day"].default
