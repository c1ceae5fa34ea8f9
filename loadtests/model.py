"""The national-rollout workload model: from population facts to a planned arrival rate.

A load run asks three things of the model at every second: how many enquiries a second to start,
which kinds of practitioner make them, and how many practitioner sessions are open at once. The
answers come from the facts below, each with its source. "Enquiry" means one look-up: a search
for a child followed by a view of the record found (the engine turns it into HTTP requests).

    parameter                  default     source
    -------------------------  ----------  ------------------------------------------------------
    LAs, children per LA       152, 11.4m  reference_app/localauthorities/data/
                                           local_authorities.csv (estimates, see its README)
    users_national             390,000     DOMAIN.md: 330,000 in the business case, 390,000 by
                                           Nov 2008
    user_shares                see below   assumption: DOMAIN.md names the sectors only
    daily_active_share         0.16        assumption: so that users x active x sessions x
    sessions_per_active_user   1.6         enquiries gives the contractor's 200,000 a day
    enquiries_per_session      2.0         assumption: one child, a refined search or a sibling
    think_time_s               45 s        assumption: search, read, open the record, note it
    login_s                    30 s        assumption: token + PIN + password (DOMAIN.md)
    peak_to_mean               9.0         DOMAIN.md: NHS Spine runs at ~9x its daily mean at peak
    specified_enquiries_per_day 200,000    DOMAIN.md: the contractor's sizing
    specified_peak_per_s       50          DOMAIN.md: the contractor's sizing (transactions/s)
    specified_response_s       1.0         DOMAIN.md: the contractor's sizing
    pilot_region, pilot_la     North West, DOMAIN.md: a pilot region (north-west); Lancashire
                               E10000017   the pilot LA
    early_adopters             18          DOMAIN.md: 18 early-adopter LAs, 800 practitioners
    THINK_TIME_S               2-15 s      assumption: reading results before opening a record
    hourly shapes by kind      see code    assumption: school, surgery and office hours; police
                                           and social care emergency duty round the clock

User shares (assumption; schools are the most numerous settings, about 10 data managers per LA):
school 40 %, social_worker 15 %, health_visitor 12 %, voluntary 11.6 %, gp 10 %, police 8 %,
yot 3 %, data_manager 0.4 %.

Derivations (the numbers at each rollout stage: `python -m loadtests.model`, docs/load-model.md):

- Enquiries a day = users x `daily_active_share` x `sessions_per_active_user` x
  `enquiries_per_session` = 390,000 x 0.16 x 1.6 x 2 = 199,680 nationally. "A day" is the mean
  day of a week (weekly total / 7); weekdays carry more, weekends less.
- The weekly curve has 168 hourly weights: each kind's hourly shape weighted by its user share,
  weekday factors (Monday busiest), a Monday 08:00 backlog. It is then normalised over the
  **whole week**: the weights' mean is 1 and the Monday 08:00 weight is `peak_to_mean`, so the
  peak rate is `peak_to_mean` x the mean rate (9 x 199,680 / 86,400 = 20.8 enquiries a second
  nationally, against the 50 a second specified). When the shape is less peaky than asked, only
  the Monday 08:00 hour is raised; when it is peakier, it is blended with a flat week.
- Concurrent sessions by Little's law (L = lambda x W): sessions in progress = session arrival
  rate x session duration = (enquiries a second / `enquiries_per_session`) x (`login_s` +
  `enquiries_per_session` x `think_time_s`).

This module is pure Python: it must not import locust or gevent, which patch the process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

from reference_app.localauthorities.catalogue import REGIONS, LocalAuthorityInfo, load_catalogue

PERSONA_KINDS: Final[tuple[str, ...]] = (
    "school",
    "gp",
    "health_visitor",
    "social_worker",
    "yot",
    "police",
    "voluntary",
    "data_manager",
)

KIND_ROLES: Final[dict[str, str]] = {
    "school": "education_practitioner",
    "gp": "health_practitioner",
    "health_visitor": "health_practitioner",
    "social_worker": "social_care_practitioner",
    "yot": "youth_offending_practitioner",
    "police": "police_practitioner",
    "voluntary": "voluntary_practitioner",
    "data_manager": "la_data_manager",
}

# Seconds spent reading a results list before opening a record (min, max; drawn uniformly).
# Those who look up children all day (data managers, police, social workers) are quicker.
THINK_TIME_S: Final[dict[str, tuple[float, float]]] = {
    "school": (4.0, 15.0),
    "gp": (3.0, 12.0),
    "health_visitor": (3.0, 12.0),
    "social_worker": (2.0, 8.0),
    "yot": (3.0, 10.0),
    "police": (2.0, 8.0),
    "voluntary": (4.0, 15.0),
    "data_manager": (2.0, 6.0),
}

PROFILES: Final[tuple[str, ...]] = ("national-rollout", "steady", "ramp")

DAYS: Final[tuple[str, ...]] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)
HOURS_PER_WEEK: Final = 168
SECONDS_PER_DAY: Final = 86_400.0
PEAK_HOUR_OF_WEEK: Final = 8  # Monday 08:00-09:00

DEFAULT_USER_SHARES: Final[tuple[tuple[str, float], ...]] = (
    ("school", 0.40),
    ("gp", 0.10),
    ("health_visitor", 0.12),
    ("social_worker", 0.15),
    ("yot", 0.03),
    ("police", 0.08),
    ("voluntary", 0.116),
    ("data_manager", 0.004),
)

PARAMETER_SOURCES: Final[dict[str, str]] = {
    "users_national": "DOMAIN.md: 330,000 users in the business case, 390,000 by Nov 2008",
    "user_shares": (
        "assumption: DOMAIN.md names the sectors (education, health, social work, youth "
        "offending, police, voluntary); schools the most numerous; about 10 data managers per LA"
    ),
    "daily_active_share": "assumption, so users x active x sessions x enquiries ~ 200,000 a day",
    "sessions_per_active_user": "assumption, so users x active x sessions x enquiries ~ 200,000",
    "enquiries_per_session": "assumption: one child looked up, a refined search or a sibling",
    "think_time_s": "assumption: search, read results, open the record, note the contacts",
    "login_s": "assumption: token + PIN + password (DOMAIN.md: two-factor login)",
    "peak_to_mean": "DOMAIN.md: NHS Spine runs at roughly 9x its daily mean at peak",
    "specified_enquiries_per_day": "DOMAIN.md: contractor's sizing, about 200,000 enquiries a day",
    "specified_peak_per_s": "DOMAIN.md: contractor's sizing, a peak of about 50 transactions/s",
    "specified_response_s": "DOMAIN.md: contractor's sizing, 1 s response",
    "pilot_region": "DOMAIN.md: a pilot region (north-west)",
    "pilot_la": "brief: Lancashire (E10000017), the pilot LA of the North West",
    "early_adopters": "DOMAIN.md: then 18 early-adopter LAs with 800 trained practitioners",
    "children": "reference_app/localauthorities/data/local_authorities.csv (estimates)",
}


def _hours(*spans: tuple[int, int, float]) -> tuple[float, ...]:
    """Return 24 hourly weights from (first hour, last hour inclusive, weight) spans."""
    weights = [0.0] * 24
    for first, last, weight in spans:
        for hour in range(first, last + 1):
            weights[hour] = weight
    return tuple(weights)


def _listed(values: Sequence[float], start: int = 0) -> tuple[float, ...]:
    """Return 24 hourly weights with values placed from hour start, zero elsewhere."""
    weights = [0.0] * 24
    weights[start : start + len(values)] = values
    return tuple(weights)


# Relative activity of one user of each kind in each hour (peak about 1). Schools check before
# registration and at the end of the day; surgeries run 08:00-18:30; police and the social care
# emergency duty teams work round the clock, police busiest in the evening.
_WEEKDAY_SHAPES: Final[dict[str, tuple[float, ...]]] = {
    "school": _listed(
        (0.3, 1.0, 0.8, 0.6, 0.55, 0.65, 0.55, 0.5, 0.7, 0.6, 0.3, 0.1, 0.03, 0.02, 0.01), 7
    ),
    "gp": _listed((0.1, 0.9, 1.0, 0.95, 0.9, 0.6, 0.7, 0.9, 0.9, 0.85, 0.6, 0.3, 0.05), 7),
    "health_visitor": _listed((0.05, 0.6, 1.0, 0.9, 0.8, 0.5, 0.8, 0.9, 0.8, 0.6, 0.3, 0.05), 7),
    "social_worker": _listed(
        (0.05,) * 7
        + (0.2, 0.8, 1.0, 1.0, 0.95, 0.7, 0.85, 0.95, 0.9, 0.8, 0.5, 0.3)
        + (0.2, 0.18, 0.15, 0.12, 0.1)
    ),
    "yot": _listed((0.1, 0.6, 1.0, 1.0, 0.9, 0.6, 0.8, 0.9, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05), 7),
    "police": (
        *(0.3, 0.2, 0.15, 0.1, 0.08, 0.08, 0.15, 0.3, 0.45, 0.55, 0.55, 0.55),
        *(0.55, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.8, 0.75, 0.65, 0.5, 0.4),
    ),
    "voluntary": _listed(
        (0.4, 0.9, 1.0, 0.9, 0.6, 0.8, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05), 8
    ),
    "data_manager": _listed((0.5, 1.0, 1.0, 0.9, 0.5, 0.8, 1.0, 0.9, 0.7, 0.2), 8),
}

_WEEKEND_SHAPES: Final[dict[str, tuple[float, ...]]] = {
    "school": _hours(),
    "gp": _hours((9, 11, 0.05)),
    "health_visitor": _hours(),
    "social_worker": _hours((0, 7, 0.03), (8, 21, 0.08), (22, 23, 0.05)),
    "yot": _hours((9, 16, 0.05)),
    "police": tuple(0.7 * weight for weight in _WEEKDAY_SHAPES["police"]),
    "voluntary": _hours((10, 16, 0.1)),
    "data_manager": _hours(),
}

# Weekday factors: Monday busiest (the weekend's events are followed up), Friday quietest.
_DAY_FACTORS: Final[tuple[float, ...]] = (1.0, 0.9, 0.9, 0.88, 0.8, 1.0, 1.0)
# Monday 08:00: the weekend's backlog at the start of the working week makes it the peak hour.
_MONDAY_BACKLOG: Final = 1.25


@dataclass(frozen=True, slots=True)
class PopulationModel:
    """The national population and its habits; every figure's source is in PARAMETER_SOURCES.

    Frozen so one model can be shared by profiles; `user_shares` is a tuple of
    (kind, share) pairs for the same reason (`shares()` gives it as a dict).
    """

    users_national: int = 390_000
    user_shares: tuple[tuple[str, float], ...] = DEFAULT_USER_SHARES
    daily_active_share: float = 0.16
    sessions_per_active_user: float = 1.6
    enquiries_per_session: float = 2.0
    think_time_s: float = 45.0
    login_s: float = 30.0
    peak_to_mean: float = 9.0
    specified_enquiries_per_day: int = 200_000
    specified_peak_per_s: float = 50.0
    specified_response_s: float = 1.0
    pilot_region: str = "North West"
    pilot_la: str = "E10000017"
    early_adopters: int = 18

    def __post_init__(self) -> None:
        kinds = [kind for kind, _ in self.user_shares]
        if sorted(kinds) != sorted(PERSONA_KINDS):
            raise ValueError(f"user_shares must name each of {PERSONA_KINDS} once, got {kinds}")
        if any(share < 0 for _, share in self.user_shares):
            raise ValueError("user_shares must not be negative")
        if not math.isclose(sum(share for _, share in self.user_shares), 1.0, abs_tol=1e-9):
            raise ValueError("user_shares must sum to 1")
        if not 1.0 < self.peak_to_mean < HOURS_PER_WEEK:
            raise ValueError(
                f"peak_to_mean must be in (1, {HOURS_PER_WEEK}), got {self.peak_to_mean}"
            )
        positive = {
            "users_national": self.users_national,
            "daily_active_share": self.daily_active_share,
            "sessions_per_active_user": self.sessions_per_active_user,
            "enquiries_per_session": self.enquiries_per_session,
            "think_time_s": self.think_time_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.login_s < 0 or self.early_adopters < 0:
            raise ValueError("login_s and early_adopters must not be negative")
        if self.pilot_region not in REGIONS:
            raise ValueError(f"unknown pilot_region {self.pilot_region!r}")

    def shares(self) -> dict[str, float]:
        """Return the user share of each persona kind."""
        return dict(self.user_shares)

    @property
    def enquiries_per_user_day(self) -> float:
        """Enquiries a registered user makes on a mean day (active share x sessions x calls)."""
        return self.daily_active_share * self.sessions_per_active_user * self.enquiries_per_session

    @property
    def enquiries_per_day(self) -> float:
        """Enquiries on a mean day with every LA live."""
        return self.users_national * self.enquiries_per_user_day

    @property
    def session_s(self) -> float:
        """Mean session duration W in real seconds: log in, then each enquiry's think time."""
        return self.login_s + self.enquiries_per_session * self.think_time_s

    def concurrent_sessions(self, enquiries_per_s: float) -> float:
        """Return sessions in progress by Little's law: session arrival rate x session duration."""
        return enquiries_per_s / self.enquiries_per_session * self.session_s

    def describe(self) -> dict[str, Any]:
        """Return the parameters, derived figures and sources as a JSON-able dict."""
        parameters: dict[str, Any] = {
            name: getattr(self, name) for name in self.__dataclass_fields__ if name != "user_shares"
        }
        parameters["user_shares"] = self.shares()
        return {
            "parameters": parameters,
            "derived": {
                "enquiries_per_user_day": self.enquiries_per_user_day,
                "enquiries_per_day": self.enquiries_per_day,
                "mean_per_s": self.enquiries_per_day / SECONDS_PER_DAY,
                "peak_per_s": self.enquiries_per_day * self.peak_to_mean / SECONDS_PER_DAY,
                "session_s": self.session_s,
                "users_by_kind": {
                    kind: round(self.users_national * share) for kind, share in self.user_shares
                },
            },
            "sources": dict(PARAMETER_SOURCES),
            "think_time_s": {kind: list(span) for kind, span in THINK_TIME_S.items()},
        }


def _kind_activity(model: PopulationModel, hour_of_week: int) -> dict[str, float]:
    """Return each kind's share of users x its activity in that hour (before normalising)."""
    day, hour = divmod(hour_of_week, 24)
    shapes = _WEEKDAY_SHAPES if day < 5 else _WEEKEND_SHAPES
    factor = _DAY_FACTORS[day] * (_MONDAY_BACKLOG if hour_of_week == PEAK_HOUR_OF_WEEK else 1.0)
    return {kind: share * shapes[kind][hour] * factor for kind, share in model.user_shares}


def weekly_curve(model: PopulationModel) -> tuple[float, ...]:
    """Return 168 hourly weights, Monday 00:00 first, mean 1, Monday 08:00 = peak_to_mean.

    The base shape is the sum over kinds of user share x hourly activity x day factor. Its
    Monday 08:00 hour is then raised (or the week blended with a flat one, if the shape is
    already peakier than asked) so that peak / mean over the whole week is `peak_to_mean`.
    """
    base = [sum(_kind_activity(model, hour).values()) for hour in range(HOURS_PER_WEEK)]
    ratio = model.peak_to_mean
    rest = sum(base) - base[PEAK_HOUR_OF_WEEK]
    natural = base[PEAK_HOUR_OF_WEEK] * HOURS_PER_WEEK / sum(base)
    if ratio >= natural:
        # Solve peak = ratio * (rest + peak) / 168 for the peak hour alone.
        base[PEAK_HOUR_OF_WEEK] = ratio * rest / (HOURS_PER_WEEK - ratio)
    else:
        # Blend w' = (1 - a) w + a m: (p - ratio m)(1 - a) = a (ratio - 1) m with m = mean(w).
        mean = sum(base) / HOURS_PER_WEEK
        odds = (base[PEAK_HOUR_OF_WEEK] - ratio * mean) / ((ratio - 1.0) * mean)
        blend = odds / (1.0 + odds)
        base = [(1.0 - blend) * weight + blend * mean for weight in base]
    mean = sum(base) / HOURS_PER_WEEK
    return tuple(weight / mean for weight in base)


def hour_mix(model: PopulationModel, hour_of_week: int) -> dict[str, float]:
    """Return the share of enquiries each persona kind makes in one hour of the week (sum 1)."""
    activity = _kind_activity(model, hour_of_week % HOURS_PER_WEEK)
    total = sum(activity.values())
    if total <= 0:
        return model.shares()
    return {kind: value / total for kind, value in activity.items()}


def weekday_mix(model: PopulationModel, day: int = 0) -> dict[str, float]:
    """Return the share of one day's enquiries each persona kind makes (default Monday)."""
    curve = weekly_curve(model)
    hours = range(day * 24, day * 24 + 24)
    volume = sum(curve[hour] for hour in hours)
    totals = dict.fromkeys(PERSONA_KINDS, 0.0)
    for hour in hours:
        for kind, share in hour_mix(model, hour).items():
            totals[kind] += curve[hour] * share / volume
    return totals


@dataclass(frozen=True, slots=True)
class Stage:
    """One rollout stage: the LAs live from it on, and the real load they bring."""

    index: int
    name: str
    la_codes: tuple[str, ...]
    new_la_codes: tuple[str, ...]
    children: int
    users: int
    enquiries_per_day: float
    peak_per_s: float

    def rate_at_hour(self, curve: Sequence[float], hour_of_week: int) -> float:
        """Return the real enquiries a second in one hour of the week at this stage."""
        return self.enquiries_per_day * curve[hour_of_week % HOURS_PER_WEEK] / SECONDS_PER_DAY

    def describe(self) -> dict[str, Any]:
        """Return the stage as a JSON-able dict (the codes of the LAs it brings live)."""
        return {
            "name": self.name,
            "las_live": len(self.la_codes),
            "las_new": len(self.new_la_codes),
            "children": self.children,
            "users": self.users,
            "enquiries_per_day": round(self.enquiries_per_day, 1),
            "peak_per_s": round(self.peak_per_s, 3),
            "new_la_codes": list(self.new_la_codes),
        }


def _early_adopters(candidates: Sequence[LocalAuthorityInfo], count: int) -> list[str]:
    """Pick early adopters: the largest LAs of each region in turn, spread over the country."""
    by_region = {
        region: sorted(
            (info for info in candidates if info.region == region),
            key=lambda info: (-info.children_0_17, info.ons_code),
        )
        for region in REGIONS
    }
    chosen: list[str] = []
    depth = 0
    while len(chosen) < count and any(len(queue) > depth for queue in by_region.values()):
        for queue in by_region.values():
            if depth < len(queue) and len(chosen) < count:
                chosen.append(queue[depth].ons_code)
        depth += 1
    return chosen


def rollout_stages(model: PopulationModel = PopulationModel(), waves: int = 4) -> list[Stage]:
    """Return the rollout stages: pilot region, early adopters, `waves` waves, national.

    - pilot: every LA of `model.pilot_region` (North West, with Lancashire the pilot LA);
    - early adopters: `model.early_adopters` LAs from the other regions, the largest of each
      region taken in turn so that every region has one before any has two;
    - the remaining LAs, ordered by region then code, in `waves + 1` near-equal groups: "wave 1"
      ... "wave N", and the last group makes the stage "national" (all 152 live).
    Users in a stage = national users x the live LAs' share of children.
    """
    if waves < 0:
        raise ValueError(f"waves must not be negative, got {waves}")
    catalogue = load_catalogue()
    total_children = sum(info.children_0_17 for info in catalogue)
    pilot = [info.ons_code for info in catalogue if info.region == model.pilot_region]
    if model.pilot_la not in pilot:
        raise ValueError(f"pilot LA {model.pilot_la} is not in {model.pilot_region}")
    others = [info for info in catalogue if info.region != model.pilot_region]
    early = _early_adopters(others, model.early_adopters)
    region_order = {region: position for position, region in enumerate(REGIONS)}
    remaining = sorted(
        (info for info in others if info.ons_code not in set(early)),
        key=lambda info: (region_order[info.region], info.ons_code),
    )
    groups: list[tuple[str, list[str]]] = [
        (f"pilot: {model.pilot_region}", pilot),
        ("early adopters", early),
    ]
    parts = waves + 1
    for part in range(parts):
        chunk = remaining[part * len(remaining) // parts : (part + 1) * len(remaining) // parts]
        name = "national" if part == parts - 1 else f"wave {part + 1}"
        groups.append((name, [info.ons_code for info in chunk]))

    children = {info.ons_code: info.children_0_17 for info in catalogue}
    stages: list[Stage] = []
    live: list[str] = []
    for index, (name, new) in enumerate(groups):
        live = sorted([*live, *new])
        live_children = sum(children[code] for code in live)
        users = model.users_national * live_children / total_children
        per_day = users * model.enquiries_per_user_day
        stages.append(
            Stage(
                index=index,
                name=name,
                la_codes=tuple(live),
                new_la_codes=tuple(sorted(new)),
                children=live_children,
                users=round(users),
                enquiries_per_day=per_day,
                peak_per_s=per_day * model.peak_to_mean / SECONDS_PER_DAY,
            )
        )
    return stages


@runtime_checkable
class Profile(Protocol):
    """What the engine asks of a run: planned enquiries, persona mix and sessions over time.

    `t` is run time in seconds since the start, 0 <= t < duration_s; values outside are
    clamped to that range. `rate_at` is planned enquiries a second (each a search then a view);
    `users_at` is concurrent practitioner sessions by Little's law, at least 1 whenever the rate
    is positive; `mix_at` weights persona kinds (sums to 1); `describe` is JSON-able and goes
    into the run summary as `run.model`.
    """

    @property
    def name(self) -> str: ...

    @property
    def duration_s(self) -> float: ...

    def rate_at(self, t: float) -> float: ...

    def mix_at(self, t: float) -> dict[str, float]: ...

    def users_at(self, t: float) -> int: ...

    def stage_at(self, t: float) -> str: ...

    def describe(self) -> dict[str, Any]: ...


def peak_sessions_by_kind(profile: Profile) -> dict[str, int]:
    """Return each persona kind's most planned sessions in any second of the profile.

    The planned sessions (`users_at`) times the kind's share of the mix then, rounded up: what a
    crowd must hold of each kind, and how a run orders its sessions so that any number of them
    holds the kinds as the busiest moments need them (not as the first second's mix has them).
    """
    most = dict.fromkeys(PERSONA_KINDS, 0)
    for t in range(math.ceil(profile.duration_s)):
        users = profile.users_at(float(t))
        for kind, share in profile.mix_at(float(t)).items():
            most[kind] = max(most[kind], math.ceil(users * share))
    return most


def _sessions(model: PopulationModel, rate: float) -> int:
    """Return sessions in progress for a rate (Little's law), at least 1 if the rate is positive."""
    if rate <= 0:
        return 0
    return max(1, round(model.concurrent_sessions(rate)))


def _check_mix(mix: Mapping[str, float]) -> dict[str, float]:
    """Return the mix normalised to sum 1, refusing unknown kinds and negative weights."""
    unknown = set(mix) - set(PERSONA_KINDS)
    if unknown:
        raise ValueError(f"unknown persona kinds {sorted(unknown)}; known: {PERSONA_KINDS}")
    total = sum(mix.values())
    if any(weight < 0 for weight in mix.values()) or total <= 0:
        raise ValueError("mix weights must be non-negative with a positive sum")
    return {kind: weight / total for kind, weight in mix.items()}


def _check_duration(duration_s: float) -> None:
    if not duration_s > 0 or math.isinf(duration_s):
        raise ValueError(f"duration_s must be positive and finite, got {duration_s}")


@dataclass(frozen=True)
class NationalRollout:
    """The rollout stages in turn, each one simulated working Monday window, compressed.

    Run second t falls in stage `int(t / stage_run_s)`; inside it, simulated time runs from
    `hours[0]` o'clock on Monday at `compression` simulated seconds per run second. The planned
    rate is the stage's real rate at that simulated hour x `intensity`.
    """

    model: PopulationModel
    stages: tuple[Stage, ...]
    hours: tuple[float, float]
    compression: float
    intensity: float
    name: str = "national-rollout"
    curve: tuple[float, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "curve", weekly_curve(self.model))

    @property
    def window_s(self) -> float:
        """Simulated seconds of Monday each stage covers."""
        return (self.hours[1] - self.hours[0]) * 3600.0

    @property
    def stage_run_s(self) -> float:
        """Run seconds each stage takes."""
        return self.window_s / self.compression

    @property
    def duration_s(self) -> float:
        """Run seconds for all stages."""
        return self.stage_run_s * len(self.stages)

    def _clamp(self, t: float) -> float:
        return min(max(t, 0.0), math.nextafter(self.duration_s, 0.0))

    def _stage(self, t: float) -> Stage:
        index = min(int(self._clamp(t) // self.stage_run_s), len(self.stages) - 1)
        return self.stages[index]

    def simulated_s(self, t: float) -> float:
        """Return the simulated time at run second t, in seconds since Monday 00:00."""
        into_stage = self._clamp(t) - self._stage(t).index * self.stage_run_s
        return min(self.hours[0] * 3600.0 + into_stage * self.compression, SECONDS_PER_DAY - 1e-6)

    def _hour(self, t: float) -> int:
        return int(self.simulated_s(t) // 3600.0)

    def rate_at(self, t: float) -> float:
        """Return planned enquiries a second at run second t."""
        return self._stage(t).rate_at_hour(self.curve, self._hour(t)) * self.intensity

    def mix_at(self, t: float) -> dict[str, float]:
        """Return the persona mix of the simulated hour at run second t."""
        return hour_mix(self.model, self._hour(t))

    def users_at(self, t: float) -> int:
        """Return concurrent sessions at run second t by Little's law."""
        return _sessions(self.model, self.rate_at(t))

    def stage_at(self, t: float) -> str:
        """Return the name of the rollout stage at run second t."""
        return self._stage(t).name

    def live_las_at(self, t: float) -> tuple[str, ...]:
        """Return the ONS codes of the LAs live at run second t (accounts to draw users from)."""
        return self._stage(t).la_codes

    def describe(self) -> dict[str, Any]:
        """Return the plan: parameters, stages with their run times and peaks, and the sizing."""
        stages = []
        for stage in self.stages:
            start = stage.index * self.stage_run_s
            rates = [stage.rate_at_hour(self.curve, hour) for hour in self._window_hours()]
            peak = max(rates) * self.intensity
            stages.append(
                stage.describe()
                | {
                    "start_s": round(start, 3),
                    "end_s": round(start + self.stage_run_s, 3),
                    "planned_peak_per_s": round(peak, 3),
                    "planned_peak_users": _sessions(self.model, peak),
                }
            )
        national = self.stages[-1].peak_per_s
        return {
            "profile": self.name,
            "duration_s": self.duration_s,
            "intensity": self.intensity,
            "compression": self.compression,
            "simulated": {"day": "Monday", "from_hour": self.hours[0], "to_hour": self.hours[1]},
            "stage_run_s": self.stage_run_s,
            "stages": stages,
            "sizing": {
                "modelled_peak_per_s": round(national, 3),
                "planned_peak_per_s": round(national * self.intensity, 3),
                "specified_peak_per_s": self.model.specified_peak_per_s,
                "modelled_over_specified": round(national / self.model.specified_peak_per_s, 3),
                "modelled_enquiries_per_day": round(self.model.enquiries_per_day, 1),
                "specified_enquiries_per_day": self.model.specified_enquiries_per_day,
                "specified_response_s": self.model.specified_response_s,
            },
            "model": self.model.describe(),
        }

    def _window_hours(self) -> range:
        return range(int(self.hours[0]), math.ceil(self.hours[1]))


def national_rollout(
    duration_s: float = 600,
    *,
    intensity: float = 1.0,
    compression: float | None = None,
    model: PopulationModel = PopulationModel(),
    waves: int = 4,
    hours: tuple[float, float] = (7.0, 10.0),
) -> NationalRollout:
    """Return the national-rollout profile: every stage's busiest Monday hours in turn.

    Each stage (pilot, early adopters, waves, national) simulates Monday from `hours[0]` to
    `hours[1]` o'clock (default 07:00-10:00, around the 08:00 peak; (0, 24) for the whole day).
    `compression` is simulated seconds per run second: by default the one that fits all stages
    into `duration_s`; if given, `duration_s` is ignored and the duration is what the plan takes.
    The planned rate is the real rate for that stage and simulated hour x `intensity` (10 = ten
    times the modelled load, for headroom tests).
    """
    if not intensity > 0:
        raise ValueError(f"intensity must be positive, got {intensity}")
    if not 0.0 <= hours[0] < hours[1] <= 24.0:
        raise ValueError(f"hours must satisfy 0 <= start < end <= 24, got {hours}")
    stages = tuple(rollout_stages(model, waves))
    window_s = (hours[1] - hours[0]) * 3600.0
    if compression is None:
        _check_duration(duration_s)
        compression = window_s * len(stages) / duration_s
    elif not compression > 0 or math.isinf(compression):
        raise ValueError(f"compression must be positive and finite, got {compression}")
    return NationalRollout(
        model=model, stages=stages, hours=hours, compression=compression, intensity=intensity
    )


@dataclass(frozen=True)
class StepProfile:
    """A rate held constant over equal steps (one step: a steady run)."""

    name: str
    duration_s: float
    rates: tuple[float, ...]
    mix: dict[str, float]
    users: tuple[int, ...]
    model: PopulationModel

    def _step(self, t: float) -> int:
        share = min(max(t, 0.0), self.duration_s) / self.duration_s
        return min(int(share * len(self.rates)), len(self.rates) - 1)

    def rate_at(self, t: float) -> float:
        """Return planned enquiries a second at run second t."""
        return self.rates[self._step(t)]

    def mix_at(self, t: float) -> dict[str, float]:
        """Return the fixed persona mix."""
        return dict(self.mix)

    def users_at(self, t: float) -> int:
        """Return the concurrent sessions of the step at run second t."""
        return self.users[self._step(t)]

    def stage_at(self, t: float) -> str:
        """Return "steady", or "step i/n" for a ramp."""
        if len(self.rates) == 1:
            return self.name
        return f"step {self._step(t) + 1}/{len(self.rates)}"

    def describe(self) -> dict[str, Any]:
        """Return the steps, mix and model as a JSON-able dict."""
        step_s = self.duration_s / len(self.rates)
        return {
            "profile": self.name,
            "duration_s": self.duration_s,
            "steps": [
                {"start_s": index * step_s, "rate_per_s": rate, "users": users}
                for index, (rate, users) in enumerate(zip(self.rates, self.users, strict=True))
            ],
            "mix": dict(self.mix),
            "sizing": {
                "modelled_peak_per_s": round(
                    self.model.enquiries_per_day * self.model.peak_to_mean / SECONDS_PER_DAY, 3
                ),
                "specified_peak_per_s": self.model.specified_peak_per_s,
            },
            "model": self.model.describe(),
        }


def steady(
    rate: float,
    duration_s: float,
    *,
    mix: dict[str, float] | None = None,
    users: int | None = None,
    model: PopulationModel = PopulationModel(),
) -> StepProfile:
    """Return a constant-rate profile, for benchmarks.

    `mix` defaults to the national Monday mix (`weekday_mix`); `users` defaults to Little's law
    from the model's session duration and enquiries per session.
    """
    return ramp(rate, rate, duration_s, steps=1, mix=mix, users=users, model=model, name="steady")


def ramp(
    start: float,
    end: float,
    duration_s: float,
    steps: int = 5,
    *,
    mix: dict[str, float] | None = None,
    users: int | None = None,
    model: PopulationModel = PopulationModel(),
    name: str = "ramp",
) -> StepProfile:
    """Return a step ramp from `start` to `end` enquiries a second in `steps` equal steps.

    For capacity finding: the rate is held for duration_s / steps at each level. `mix` and
    `users` default as for `steady` (users by Little's law at each step's rate).
    """
    _check_duration(duration_s)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if start < 0 or end < 0 or math.isinf(start) or math.isinf(end):
        raise ValueError(f"rates must be non-negative and finite, got {start} and {end}")
    if users is not None and users < 1:
        raise ValueError(f"users must be at least 1, got {users}")
    if steps == 1:
        rates: tuple[float, ...] = (end,)
    else:
        rates = tuple(start + (end - start) * step / (steps - 1) for step in range(steps))
    sessions = tuple(
        (users if rate > 0 else 0) if users is not None else _sessions(model, rate)
        for rate in rates
    )
    return StepProfile(
        name=name,
        duration_s=float(duration_s),
        rates=rates,
        mix=_check_mix(mix) if mix is not None else weekday_mix(model),
        users=sessions,
        model=model,
    )


def profile_from_name(
    name: str,
    *,
    duration_s: float | None,
    rate: float | None = None,
    intensity: float = 1.0,
) -> Profile:
    """Return the named profile (one of PROFILES) for the command line.

    - "national-rollout": `national_rollout(duration_s or 600, intensity=intensity)`; `rate`
      must not be given.
    - "steady": `rate` (default: the modelled national peak, 20.8/s) x `intensity`, for
      `duration_s` (default 300 s).
    - "ramp": five steps up to `rate` (default: the specified peak, 50/s) x `intensity`,
      starting at a fifth of it, over `duration_s` (default 600 s).
    Raises ValueError for an unknown name (listing the known ones) or a bad value.
    """
    if not intensity > 0:
        raise ValueError(f"intensity must be positive, got {intensity}")
    model = PopulationModel()
    if name == "national-rollout":
        if rate is not None:
            raise ValueError("national-rollout takes its rate from the model; use --intensity")
        return national_rollout(600.0 if duration_s is None else duration_s, intensity=intensity)
    if name == "steady":
        base = model.enquiries_per_day * model.peak_to_mean / SECONDS_PER_DAY
        level = (base if rate is None else rate) * intensity
        return steady(level, 300.0 if duration_s is None else duration_s, model=model)
    if name == "ramp":
        top = (model.specified_peak_per_s if rate is None else rate) * intensity
        steps = 5
        return ramp(top / steps, top, 600.0 if duration_s is None else duration_s, steps)
    raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}")


def stage_table(model: PopulationModel = PopulationModel(), waves: int = 4) -> str:
    """Return the rollout stages as a Markdown table of real (intensity 1) figures."""
    curve = weekly_curve(model)
    monday = sum(curve[:24]) / 24.0
    lines = [
        "| stage | LAs live (new) | children | users | enquiries/day | Monday | peak/s | "
        "sessions at peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stage in rollout_stages(model, waves):
        lines.append(
            f"| {stage.name} | {len(stage.la_codes)} ({len(stage.new_la_codes)}) | "
            f"{stage.children:,} | {stage.users:,} | {stage.enquiries_per_day:,.0f} | "
            f"{stage.enquiries_per_day * monday:,.0f} | {stage.peak_per_s:.2f} | "
            f"{_sessions(model, stage.peak_per_s):,} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the model's derived figures and the rollout stage table."""
    model = PopulationModel()
    plan = national_rollout(model=model)
    print(
        f"enquiries/day {model.enquiries_per_day:,.0f} (specified "
        f"{model.specified_enquiries_per_day:,}); peak/mean {model.peak_to_mean}; "
        f"national peak {plan.stages[-1].peak_per_s:.2f}/s (specified "
        f"{model.specified_peak_per_s:.0f}/s); session {model.session_s:.0f} s; "
        f"default run: {len(plan.stages)} stages x {plan.stage_run_s:.1f} s, "
        f"compression {plan.compression:.1f}x"
    )
    print(stage_table(model))
    curve = weekly_curve(model)
    print("Monday hourly weights (week mean 1):", " ".join(f"{w:.2f}" for w in curve[:24]))
    names = {info.ons_code: info.name for info in load_catalogue()}
    early = rollout_stages(model)[1].new_la_codes
    print("early adopters:", ", ".join(names[code] for code in early))
    print("Monday mix:", {kind: round(share, 3) for kind, share in weekday_mix(model).items()})


if __name__ == "__main__":
    main()
