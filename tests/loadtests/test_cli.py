"""`contactpoint load`'s own sizing: the reference crowd for a profile, and its working hours."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loadtests.cli import WORKING_MORNING_HOUR, crowd_size, working_hours_zone
from loadtests.model import KIND_ROLES, profile_from_name


@pytest.mark.parametrize("intensity", [1.0, 4.0])
def test_the_reference_crowd_holds_every_personas_planned_peak(intensity: float) -> None:
    profile = profile_from_name("national-rollout", duration_s=120, intensity=intensity)
    crowd = crowd_size(profile)
    peak = max(profile.users_at(float(t)) for t in range(120))
    assert sum(crowd.values()) >= peak
    # Every second, each role has accounts for the sessions the plan gives its personas then.
    for t in range(120):
        users, mix = profile.users_at(float(t)), profile.mix_at(float(t))
        for kind, share in mix.items():
            assert crowd[KIND_ROLES[kind]] >= math.ceil(users * share), (t, kind)


def test_the_crowd_grows_with_the_intensity_and_takes_in_the_adversaries() -> None:
    one = crowd_size(profile_from_name("national-rollout", duration_s=120, intensity=1))
    four = crowd_size(profile_from_name("national-rollout", duration_s=120, intensity=4))
    assert sum(four.values()) >= 3.9 * sum(one.values())
    armed = crowd_size(
        profile_from_name("national-rollout", duration_s=120, intensity=1), adversaries=90
    )
    assert sum(armed.values()) >= sum(one.values()) + 90


@pytest.mark.parametrize("hour", range(24))
def test_a_reference_run_starts_in_a_working_morning_at_any_hour(hour: int) -> None:
    now = datetime(2026, 12, 6, hour, 47, tzinfo=UTC)
    local = now.astimezone(ZoneInfo(working_hours_zone(now.timestamp())))
    assert local.hour == WORKING_MORNING_HOUR
    assert local.minute == 47


def test_an_slo_naming_an_endpoint_the_workload_never_sends_is_a_usage_error(
    tmp_path: Path,
) -> None:
    from click.testing import CliRunner

    from contactpoint.cli import main

    slo = tmp_path / "slo.yaml"
    slo.write_text("objectives:\n  - endpoint: 'GET /api/v1/childs/{id}'\n    p99_ms: 250\n")
    # The target is never contacted: the check comes before the run.
    result = CliRunner().invoke(
        main, ["load", "--reference", "--slo", str(slo), "--reference-dir", str(tmp_path / "r")]
    )
    assert result.exit_code == 2, result.output
    assert "the workload sends no 'GET /api/v1/childs/{id}'" in result.output
    assert not (tmp_path / "r").exists()
