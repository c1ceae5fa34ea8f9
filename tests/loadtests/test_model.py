"""The national-rollout workload model: curve, volumes, stages, Little's law, profiles."""

from __future__ import annotations

import json
import math

import pytest

from loadtests.model import (
    HOURS_PER_WEEK,
    KIND_ROLES,
    PERSONA_KINDS,
    PROFILES,
    SECONDS_PER_DAY,
    THINK_TIME_S,
    NationalRollout,
    PopulationModel,
    Profile,
    hour_mix,
    national_rollout,
    peak_sessions_by_kind,
    profile_from_name,
    ramp,
    rollout_stages,
    steady,
    weekday_mix,
    weekly_curve,
)
from reference_app.localauthorities.catalogue import load_catalogue

MONDAY_0800 = 8
# The contractor's "about 200,000 a day": the model must land within 5 % of it.
DAILY_TOLERANCE = 0.05


def _sample_times(profile: Profile, count: int = 97) -> list[float]:
    return [profile.duration_s * index / count for index in range(count)]


@pytest.mark.parametrize("ratio", [1.5, 3.0, 9.0, 20.0])
def test_weekly_curve_peaks_on_monday_at_eight_with_the_asked_ratio(ratio: float) -> None:
    curve = weekly_curve(PopulationModel(peak_to_mean=ratio))
    mean = sum(curve) / len(curve)
    assert len(curve) == HOURS_PER_WEEK
    assert max(range(HOURS_PER_WEEK), key=curve.__getitem__) == MONDAY_0800
    assert sorted(curve)[-2] < curve[MONDAY_0800]
    assert curve[MONDAY_0800] / mean == pytest.approx(ratio, rel=1e-9)
    assert min(curve) >= 0


def test_working_hours_carry_nearly_all_load_with_some_out_of_hours() -> None:
    curve = weekly_curve(PopulationModel())
    working = sum(curve[day * 24 + hour] for day in range(5) for hour in range(7, 19))
    weekend_evening = sum(curve[5 * 24 :]) + sum(
        curve[day * 24 + hour] for day in range(5) for hour in (*range(19, 24), *range(7))
    )
    assert working / sum(curve) > 0.85
    assert weekend_evening > 0
    assert curve[5 * 24 + 20] > 0  # Saturday evening: police and social care work on


def test_national_enquiries_a_day_match_the_contractors_sizing() -> None:
    model = PopulationModel()
    national = rollout_stages(model)[-1]
    product = (
        model.users_national
        * model.daily_active_share
        * model.sessions_per_active_user
        * model.enquiries_per_session
    )
    assert national.enquiries_per_day == pytest.approx(product)
    assert abs(national.enquiries_per_day / model.specified_enquiries_per_day - 1) < (
        DAILY_TOLERANCE
    )
    # Integrating the hourly rates over the week gives seven such days.
    curve = weekly_curve(model)
    week = sum(national.rate_at_hour(curve, hour) * 3600 for hour in range(HOURS_PER_WEEK))
    assert week / 7 == pytest.approx(national.enquiries_per_day)
    assert national.peak_per_s == pytest.approx(product * model.peak_to_mean / SECONDS_PER_DAY)


def test_stages_start_with_the_pilot_region_and_end_with_every_la() -> None:
    catalogue = load_catalogue()
    north_west = {info.ons_code for info in catalogue if info.region == "North West"}
    stages = rollout_stages(PopulationModel(), waves=4)

    assert stages[0].name == "pilot: North West"
    assert set(stages[0].la_codes) == north_west
    assert "E10000017" in stages[0].la_codes
    assert stages[1].name == "early adopters"
    assert len(stages[1].new_la_codes) == 18
    assert [stage.name for stage in stages[2:]] == [
        "wave 1",
        "wave 2",
        "wave 3",
        "wave 4",
        "national",
    ]
    assert set(stages[-1].la_codes) == {info.ons_code for info in catalogue}
    assert len(stages[-1].la_codes) == 152
    assert stages[-1].users == PopulationModel().users_national


def test_each_la_goes_live_in_exactly_one_stage_and_stays_live() -> None:
    stages = rollout_stages(PopulationModel(), waves=3)
    first_live: dict[str, int] = {}
    for stage in stages:
        for code in stage.new_la_codes:
            assert code not in first_live, f"{code} goes live twice"
            first_live[code] = stage.index
    assert len(first_live) == 152
    for stage in stages:
        expected = {code for code, index in first_live.items() if index <= stage.index}
        assert set(stage.la_codes) == expected
    assert len(stages) == 3 + 3


def test_stage_users_are_proportional_to_children() -> None:
    model = PopulationModel()
    total = sum(info.children_0_17 for info in load_catalogue())
    for stage in rollout_stages(model):
        assert stage.users == round(model.users_national * stage.children / total)
    users = [stage.users for stage in rollout_stages(model)]
    assert users == sorted(users)


def test_users_follow_littles_law() -> None:
    model = PopulationModel(enquiries_per_session=2.0, think_time_s=50.0, login_s=20.0)
    assert model.session_s == 120.0
    # 10 enquiries/s at 2 per session = 5 sessions/s, each 120 s long: L = 5 x 120 = 600.
    assert steady(10.0, 60.0, model=model).users_at(30.0) == 600
    assert model.concurrent_sessions(10.0) == pytest.approx(600.0)
    plan = national_rollout(model=model)
    for t in _sample_times(plan):
        rate = plan.rate_at(t)
        assert plan.users_at(t) == max(1, round(rate / 2.0 * 120.0))


def test_a_trickle_still_gets_one_session_and_no_rate_gets_none() -> None:
    assert steady(0.001, 10.0).users_at(0.0) == 1
    assert steady(0.0, 10.0).users_at(0.0) == 0
    assert steady(5.0, 10.0, users=7).users_at(3.0) == 7


def test_intensity_scales_the_rate_linearly() -> None:
    base = national_rollout(300.0)
    tenfold = national_rollout(300.0, intensity=10.0)
    third = national_rollout(300.0, intensity=0.3)
    for t in _sample_times(base):
        assert base.rate_at(t) > 0
        assert tenfold.rate_at(t) == pytest.approx(10.0 * base.rate_at(t))
        assert third.rate_at(t) == pytest.approx(0.3 * base.rate_at(t))


def test_national_peak_at_intensity_one_is_the_nine_times_mean_figure() -> None:
    model = PopulationModel()
    plan = national_rollout(model=model)
    peak = max(plan.rate_at(t) for t in _sample_times(plan, 997))
    assert peak == pytest.approx(model.enquiries_per_day * 9.0 / SECONDS_PER_DAY)
    sizing = plan.describe()["sizing"]
    assert sizing["specified_peak_per_s"] == 50.0
    assert sizing["modelled_over_specified"] == pytest.approx(peak / 50.0, abs=1e-3)


@pytest.mark.parametrize(
    "profile",
    [national_rollout(200.0), steady(4.0, 10.0), ramp(1.0, 5.0, 50.0)],
    ids=["national-rollout", "steady", "ramp"],
)
def test_mix_sums_to_one_over_known_kinds(profile: Profile) -> None:
    for t in _sample_times(profile):
        mix = profile.mix_at(t)
        assert set(mix) <= set(PERSONA_KINDS)
        assert min(mix.values()) >= 0
        assert sum(mix.values()) == pytest.approx(1.0)


def test_mix_follows_working_patterns() -> None:
    model = PopulationModel()
    school_hours, evening, night = hour_mix(model, 10), hour_mix(model, 20), hour_mix(model, 3)
    assert school_hours["school"] > evening["school"]
    assert evening["police"] > school_hours["police"]
    assert night["school"] == 0
    assert night["police"] + night["social_worker"] == pytest.approx(1.0)
    saturday = hour_mix(model, 5 * 24 + 11)
    assert saturday["school"] == 0
    assert sum(weekday_mix(model).values()) == pytest.approx(1.0)


def test_steady_defaults_to_the_national_weekday_mix() -> None:
    assert steady(3.0, 10.0).mix_at(5.0) == pytest.approx(weekday_mix(PopulationModel()))
    custom = steady(3.0, 10.0, mix={"police": 3.0, "gp": 1.0})
    assert custom.mix_at(0.0) == {"police": 0.75, "gp": 0.25}
    with pytest.raises(ValueError, match="unknown persona kinds"):
        steady(3.0, 10.0, mix={"harvester": 1.0})


def test_ramp_steps_evenly_from_start_to_end() -> None:
    profile = ramp(2.0, 10.0, 100.0, steps=5)
    assert [profile.rate_at(t) for t in (0, 19.9, 20, 45, 60, 99.9, 100)] == [
        2.0,
        2.0,
        4.0,
        6.0,
        8.0,
        10.0,
        10.0,
    ]
    assert profile.stage_at(50.0) == "step 3/5"


def test_unknown_profile_name_raises_listing_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown profile 'spike'") as raised:
        profile_from_name("spike", duration_s=60.0)
    for known in PROFILES:
        assert known in str(raised.value)


def test_profiles_by_name() -> None:
    rollout = profile_from_name("national-rollout", duration_s=120.0, intensity=2.0)
    assert isinstance(rollout, NationalRollout)
    assert rollout.duration_s == pytest.approx(120.0)
    assert rollout.intensity == 2.0
    level = profile_from_name("steady", duration_s=30.0, rate=4.0, intensity=2.5)
    assert level.rate_at(10.0) == pytest.approx(10.0)
    assert level.duration_s == 30.0
    top = profile_from_name("ramp", duration_s=None, rate=None)
    assert top.rate_at(top.duration_s) == pytest.approx(PopulationModel().specified_peak_per_s)
    for name in PROFILES:
        assert isinstance(profile_from_name(name, duration_s=None), Profile)


def test_default_compression_maps_the_simulated_window_into_the_duration() -> None:
    plan = national_rollout(700.0, hours=(7.0, 10.0), waves=4)
    stages = len(plan.stages)
    assert plan.compression == pytest.approx(stages * 3 * 3600 / 700.0)
    assert plan.duration_s == pytest.approx(700.0)
    step = plan.stage_run_s
    assert step == pytest.approx(100.0)
    assert plan.simulated_s(0.0) == pytest.approx(7 * 3600)
    assert plan.simulated_s(step / 3) == pytest.approx(8 * 3600)
    assert plan.simulated_s(step * 0.999) == pytest.approx(10 * 3600, rel=1e-3)
    assert plan.stage_at(step / 2) == "pilot: North West"
    assert plan.stage_at(step * 1.5) == "early adopters"
    assert plan.stage_at(699.9) == "national"


def test_given_compression_sets_the_duration() -> None:
    plan = national_rollout(duration_s=1.0, compression=360.0, hours=(0.0, 24.0), waves=0)
    assert [stage.name for stage in plan.stages] == [
        "pilot: North West",
        "early adopters",
        "national",
    ]
    assert plan.duration_s == pytest.approx(3 * SECONDS_PER_DAY / 360.0)
    # A whole simulated Monday of the national stage, summed over run time, is Monday's volume.
    national = plan.stages[-1]
    start = 2 * plan.stage_run_s
    per_hour = plan.stage_run_s / 24
    run_total = sum(plan.rate_at(start + (hour + 0.5) * per_hour) * per_hour for hour in range(24))
    monday = sum(weekly_curve(plan.model)[:24]) / 24 * national.enquiries_per_day
    assert run_total * plan.compression == pytest.approx(monday)


def test_describe_is_json_and_names_stages_sources_and_settings() -> None:
    plan = national_rollout(300.0, intensity=3.0)
    described = json.loads(json.dumps(plan.describe()))
    assert described["intensity"] == 3.0
    assert described["compression"] == pytest.approx(plan.compression)
    assert [stage["name"] for stage in described["stages"]] == [s.name for s in plan.stages]
    assert set(described["model"]["sources"]) >= {"users_national", "peak_to_mean"}
    for profile in (steady(1.0, 5.0), ramp(1.0, 2.0, 5.0)):
        json.dumps(profile.describe())


def test_every_parameter_has_a_source() -> None:
    described = PopulationModel().describe()
    assert set(described["parameters"]) <= set(described["sources"])


def test_persona_tables_cover_every_kind() -> None:
    assert set(KIND_ROLES) == set(PERSONA_KINDS) == set(THINK_TIME_S)
    assert KIND_ROLES["data_manager"] == "la_data_manager"
    for low, high in THINK_TIME_S.values():
        assert 0 < low < high < 60


@pytest.mark.parametrize(
    "change",
    [
        {"peak_to_mean": 1.0},
        {"user_shares": (("school", 1.0),)},
        {"enquiries_per_session": 0.0},
        {"pilot_region": "Wessex"},
    ],
)
def test_bad_model_parameters_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"."):
        PopulationModel(**change)  # type: ignore[arg-type]


def test_bad_profile_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="intensity"):
        national_rollout(intensity=0.0)
    with pytest.raises(ValueError, match="duration_s"):
        steady(1.0, 0.0)
    with pytest.raises(ValueError, match="hours"):
        national_rollout(hours=(10.0, 7.0))
    assert math.isfinite(national_rollout().compression)


def test_live_las_follow_the_stages() -> None:
    plan = national_rollout(70.0, waves=2)
    assert set(plan.live_las_at(1.0)) == set(plan.stages[0].la_codes)
    assert len(plan.live_las_at(69.0)) == 152
    described = plan.describe()["stages"]
    assert sum(len(stage["new_la_codes"]) for stage in described) == 152


def test_peak_sessions_by_kind_covers_personas_absent_from_the_first_hour() -> None:
    # The rollout's stages start at 07:00, before voluntary services open: the first second's
    # mix has no voluntary worker, the busiest moments have dozens.
    profile = national_rollout(120)
    assert profile.mix_at(0.0)["voluntary"] == 0
    peaks = peak_sessions_by_kind(profile)
    assert peaks["voluntary"] > 10
    assert peaks["school"] > peaks["data_manager"] > 0
    assert sum(peaks.values()) >= max(profile.users_at(float(t)) for t in range(120))
