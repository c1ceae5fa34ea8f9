"""The reference set-up of `contactpoint load`: its crowd's size, its working hours, its false
positives."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from loadtests import model
from loadtests.cli import (
    FALSE_POSITIVE_TARGET,
    REFERENCE_CHILDREN,
    _keep_caseloads,
    crowd_detection,
    peak_sessions,
    reference_size,
    working_hours_zone,
)


@pytest.mark.parametrize("intensity", [1.0, 4.0])
def test_the_crowd_covers_the_profiles_peak(intensity: float) -> None:
    profile = model.profile_from_name(
        "national-rollout", duration_s=60, rate=None, intensity=intensity
    )
    peak = peak_sessions(profile)
    assert peak == max(profile.users_at(float(t)) for t in range(61))
    assert peak >= profile.users_at(59.0) > 0
    assert reference_size(peak) >= 2 * peak


def test_a_small_crowd_keeps_the_smallest_registry() -> None:
    assert reference_size(10) == REFERENCE_CHILDREN


@pytest.mark.parametrize("hour", range(24))
def test_a_run_at_any_hour_starts_a_working_morning(hour: int) -> None:
    now = calendar.timegm((2026, 12, 6, hour, 37, 0))
    local = datetime.fromtimestamp(now, UTC).astimezone(ZoneInfo(working_hours_zone(now)))
    assert (local.hour, local.minute) == (9, 37)


def test_only_accounts_with_a_caseload_are_kept_auditors_first(tmp_path: Path) -> None:
    crowd = tmp_path / "crowd.json"
    people = [
        {"username": "a", "role": "gp", "caseload": [{"id": "c1"}]},
        {"username": "b", "role": "gp", "caseload": []},
        {"username": "c", "role": "gp", "caseload": [{"id": "c2"}]},
        {"username": "d", "role": "national_auditor", "caseload": []},
    ]
    crowd.write_text(json.dumps(people))
    _keep_caseloads(crowd, 2)
    assert [p["username"] for p in json.loads(crowd.read_text())] == ["d", "a"]


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
