"""The reference set-up of `contactpoint load`: its crowd's size, its working hours, its false
positives."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from loadtests import model
from loadtests.accounts import _pick
from loadtests.cli import (
    FALSE_POSITIVE_TARGET,
    REFERENCE_CHILDREN,
    crowd_by_role,
    crowd_detection,
    reference_size,
    working_hours_zone,
)
from loadtests.workload import sessions_needed


@pytest.mark.parametrize("intensity", [1.0, 4.0])
def test_the_crowd_covers_the_sessions_the_plan_needs_of_every_kind(intensity: float) -> None:
    profile = model.profile_from_name(
        "national-rollout", duration_s=60, rate=None, intensity=intensity
    )
    roles = crowd_by_role(profile)
    assert set(roles) == set(model.KIND_ROLES.values())
    for t in range(61):
        need = sessions_needed(profile, float(t))
        assert 0 < need <= profile.users_at(float(t))
        mix = profile.mix_at(float(t))
        for role in roles:
            share = sum(w for k, w in mix.items() if model.KIND_ROLES[k] == role) / sum(
                mix.values()
            )
            assert roles[role] >= need * share
    assert sum(roles.values()) >= max(sessions_needed(profile, float(t)) for t in range(61))


def test_adversaries_take_their_accounts_from_a_larger_pool() -> None:
    profile = model.profile_from_name("national-rollout", duration_s=60, rate=None)
    assert sum(crowd_by_role(profile, adversaries=20).values()) >= 20 + sum(
        crowd_by_role(profile).values()
    )


def test_the_registry_grows_only_when_its_staff_cannot_carry_the_crowd() -> None:
    profile = model.profile_from_name("national-rollout", duration_s=60, rate=None)
    assert reference_size(crowd_by_role(profile)) == REFERENCE_CHILDREN
    four = crowd_by_role(
        model.profile_from_name("national-rollout", duration_s=60, rate=None, intensity=4.0)
    )
    children = reference_size(four)
    assert children > REFERENCE_CHILDREN
    # Enough practitioners of every role, at the generator's ratio and caseload share.
    per_child = 390_000 / 11_000_000
    assert children * 0.36 * per_child * 0.7 >= four["education_practitioner"]


@pytest.mark.parametrize("hour", range(24))
def test_a_run_at_any_hour_starts_a_working_morning(hour: int) -> None:
    now = calendar.timegm((2026, 12, 6, hour, 37, 0))
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(working_hours_zone(now)))
    assert (local.hour, local.minute) == (9, 37)


def test_only_accounts_with_a_caseload_are_picked_the_las_in_turn() -> None:
    @dataclass
    class Row:
        id: int
        role: str
        organisation_id: int
        local_authority_id: int
        k: int

    rows = [
        Row(1, "education_practitioner", 10, 1, 1),
        Row(2, "education_practitioner", 11, 1, 2),  # its school has no caseload
        Row(3, "education_practitioner", 12, 1, 3),
        Row(4, "education_practitioner", 20, 2, 1),
        Row(5, "la_data_manager", 30, 2, 1),  # sees the LA's records by role: no caseload needed
    ]
    cases = {10: ["c1"], 12: ["c2"], 20: ["c3"]}
    counts = {"education_practitioner": 2, "la_data_manager": 1}
    assert [r.id for r in _pick(rows, cases, counts)] == [1, 4, 5]


def test_crowd_false_positives_are_counted_over_the_accounts_used(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE practitioners (id INTEGER PRIMARY KEY, username TEXT, status TEXT,"
                " totp_last_step INTEGER)"
            )
        )
        conn.execute(text("CREATE TABLE alerts (id INTEGER PRIMARY KEY, subject_user_id INT)"))
        for i in range(1, 201):
            status = "suspended" if i == 3 else "active"
            step = None if i > 100 else i  # the last hundred never logged in
            conn.execute(
                text("INSERT INTO practitioners VALUES (:i, :u, :s, :t)"),
                {"i": i, "u": f"user{i}", "s": status, "t": step},
            )
        # Alerted: one used account twice, one suspended, one account never used.
        for subject in (2, 2, 3, 150):
            conn.execute(text("INSERT INTO alerts (subject_user_id) VALUES (:s)"), {"s": subject})
    engine.dispose()
    found = crowd_detection(url, [f"user{i}" for i in range(1, 201)])
    assert found == {
        "accounts_used": 100,
        "alerted": 2,
        "suspended": 1,
        "false_positive_rate": 0.02,
        "false_positive_target": FALSE_POSITIVE_TARGET,
    }
