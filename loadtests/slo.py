"""Service-level objectives for a load run: the YAML file, the verdict, and its JUnit form.

An SLO file declares what a run must show to pass::

    latency: corrected          # or service: which histogram the percentiles come from
    min_samples: 200            # fewer samples than this and a percentile is not judged
    abort_on_breach: false      # the engine may stop a run once a judged objective breaches
    objectives:
      - name: record view
        endpoint: "GET /api/v1/children/{id}"   # "*" = all endpoints (the default)
        persona: "*"                            # "*" = all personas (the default)
        p99_ms: 250
      - endpoint: "*"
        error_rate: 0.01
    rate:
      achieved_ratio_min: 0.95
      dropped_max_ratio: 0.001
    false_positives_max_ratio: 0.01   # ordinary accounts alerted, suspended or blocked: under 1 %

A file without a ``rate:`` block keeps the default rate checks (achieved at least 95 % of the
plan, at most 0.1 % dropped); ``rate: null`` switches them off. Before a run, ``check_workload``
refuses objectives naming an endpoint or persona the workload never uses (a usage error, exit 2).

``evaluate`` turns a run summary (the ``contactpoint-load/1`` dict) and an ``Slo`` into a
``Verdict`` whose ``exit_code`` is the command's: 0 pass, 1 fail, 3 invalid. An objective that
cannot be judged (no such endpoint or persona in the run, too few samples) makes the run invalid
rather than passing quietly, and shows as an error, not a skip, in JUnit.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

# PyYAML ships no type hints; types-PyYAML may or may not be installed.
import yaml  # type: ignore[import-untyped,unused-ignore]

SLO_DIR = Path(__file__).parent / "slo"
DEFAULT_SLO_PATH = SLO_DIR / "national-rollout.yaml"
BENCHMARK_SLO_PATH = SLO_DIR / "benchmark.yaml"
BUNDLED_SLOS: dict[str, Path] = {
    "national-rollout": DEFAULT_SLO_PATH,
    "benchmark": BENCHMARK_SLO_PATH,
}

LatencySource = Literal["corrected", "service"]
CheckKind = Literal["latency", "error_rate", "rate", "validity", "false_positives"]
Outcome = Literal["pass", "fail", "not_judged"]
Status = Literal["pass", "fail", "invalid"]

# The percentile keys of an objective, in the order checks are listed, and the summary's keys.
PERCENTILES: dict[str, str] = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p999",
    "max_ms": "max",
}
_OBJECTIVE_KEYS = frozenset({"name", "endpoint", "persona", "error_rate", "min_samples"}) | set(
    PERCENTILES
)
_TOP_KEYS = frozenset(
    {"latency", "min_samples", "abort_on_breach", "objectives", "rate", "false_positives_max_ratio"}
)
_RATE_KEYS = frozenset({"achieved_ratio_min", "dropped_max_ratio"})
# "*" or a bounded request name such as "GET /api/v1/children/{id}".
_ENDPOINT = re.compile(r"\*|[A-Z]+ /\S*")
ALL = "*"


class SloError(ValueError):
    """An SLO file that cannot be used; the message names the file and the offending key."""


@dataclass(frozen=True)
class Objective:
    """What one endpoint (or all, ``"*"``) must show for one persona (or all, ``"*"``).

    Percentile bounds are in milliseconds and inclusive; ``error_rate`` is the largest share of
    failed requests allowed. ``min_samples`` overrides the file's value for this objective.
    """

    name: str
    endpoint: str = ALL
    persona: str = ALL
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    error_rate: float | None = None
    min_samples: int | None = None

    def percentiles(self) -> list[tuple[str, float]]:
        """The (summary statistic, bound in ms) pairs this objective sets, lowest first."""
        out: list[tuple[str, float]] = []
        for key, statistic in PERCENTILES.items():
            bound = getattr(self, key)
            if bound is not None:
                out.append((statistic, bound))
        return out


@dataclass(frozen=True)
class RateObjective:
    """How much of the planned load the run must deliver."""

    achieved_ratio_min: float | None = None
    dropped_max_ratio: float | None = None


# The rate checks a file without a `rate:` block keeps.
DEFAULT_RATE = RateObjective(achieved_ratio_min=0.95, dropped_max_ratio=0.001)


@dataclass(frozen=True)
class Slo:
    """A parsed SLO file: see the module docstring for its keys."""

    objectives: tuple[Objective, ...]
    rate: RateObjective | None = None
    latency: LatencySource = "corrected"
    min_samples: int = 200
    abort_on_breach: bool = False
    source: str = "<slo>"
    # Ordinary crowd accounts the registry alerted on, suspended or blocked: strictly under this
    # share of the accounts that logged in (None: not judged).
    false_positives_max_ratio: float | None = None


@dataclass(frozen=True)
class Check:
    """One judged (or unjudgeable) comparison of a measured value against its bound.

    ``comparison`` says which way the bound goes: ``"<="`` for latency, error and dropped
    ratios, ``">="`` for the achieved rate, ``"<"`` for false positives. ``measured`` is ``None``
    when nothing was measured.
    """

    name: str
    kind: CheckKind
    endpoint: str
    persona: str
    statistic: str
    measured: float | None
    threshold: float
    unit: str
    outcome: Outcome
    detail: str
    comparison: Literal["<=", ">=", "<"] = "<="

    def as_dict(self) -> dict[str, Any]:
        """The check as plain JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The outcome of a run against an SLO.

    ``status`` is ``"pass"`` (exit 0), ``"fail"`` (exit 1: an objective breached or the run
    aborted) or ``"invalid"`` (exit 3: the run cannot be trusted or an objective could not be
    judged). ``reasons`` explains any status other than pass, one line each.
    """

    checks: tuple[Check, ...]
    status: Status
    exit_code: int
    reasons: tuple[str, ...]

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that were judged and breached."""
        return tuple(c for c in self.checks if c.outcome == "fail")

    @property
    def not_judged(self) -> tuple[Check, ...]:
        """The checks that could not be judged."""
        return tuple(c for c in self.checks if c.outcome == "not_judged")

    def as_dict(self) -> dict[str, Any]:
        """The verdict as it appears under ``"verdict"`` in summary.json."""
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "reasons": list(self.reasons),
            "checks": [c.as_dict() for c in self.checks],
        }


# --- parsing ---------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A safe loader that refuses a key given twice (PyYAML would keep the last silently)."""


def _construct_mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise SloError(f"duplicate key {key!r} (line {line})")
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_slo(path: Path) -> Slo:
    """Read and check an SLO file; raise ``SloError`` naming the file and the bad key."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SloError(f"{source}: cannot read the SLO file: {exc}") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except SloError as exc:
        raise SloError(f"{source}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SloError(f"{source}: not valid YAML: {exc}") from exc
    return parse_slo(data, source)


def parse_slo(data: object, source: str = "<slo>") -> Slo:
    """Check already-loaded SLO data (a mapping) and build an ``Slo``.

    Unknown keys are errors, percentile bounds must be positive numbers, ratios lie in [0, 1],
    and there must be at least one objective or a rate objective.
    """

    def fail(where: str, message: str) -> SloError:
        return SloError(f"{source}: {where}: {message}")

    if not isinstance(data, Mapping):
        raise SloError(
            f"{source}: the SLO file must be a mapping of keys, got {type(data).__name__}"
        )
    _reject_unknown(data, _TOP_KEYS, "", fail)

    latency = data.get("latency", "corrected")
    if latency not in ("corrected", "service"):
        raise fail("latency", f"must be 'corrected' or 'service', got {latency!r}")
    min_samples = _count(data.get("min_samples", 200), "min_samples", fail)
    abort = data.get("abort_on_breach", False)
    if not isinstance(abort, bool):
        raise fail("abort_on_breach", f"must be true or false, got {abort!r}")

    raw_objectives = data.get("objectives", [])
    if raw_objectives is None:
        raw_objectives = []
    if not isinstance(raw_objectives, list):
        raise fail("objectives", f"must be a list, got {type(raw_objectives).__name__}")
    objectives = tuple(
        _objective(item, f"objectives[{i}]", fail) for i, item in enumerate(raw_objectives)
    )
    names: set[str] = set()
    for i, objective in enumerate(objectives):
        if objective.name in names:
            raise fail(
                f"objectives[{i}].name",
                f"{objective.name!r} is used twice; give each objective its own name",
            )
        names.add(objective.name)

    # Without a `rate:` block the default rate checks stay; `rate: null` switches them off.
    rate = _rate(data["rate"], fail) if "rate" in data else DEFAULT_RATE
    false_positives = data.get("false_positives_max_ratio")
    if false_positives is not None:
        false_positives = _ratio(false_positives, "false_positives_max_ratio", fail)
    if not objectives and rate is None:
        raise SloError(f"{source}: at least one objective or a rate objective is required")
    return Slo(
        objectives=objectives,
        rate=rate,
        latency=latency,
        min_samples=min_samples,
        abort_on_breach=abort,
        source=source,
        false_positives_max_ratio=false_positives,
    )


def check_workload(slo: Slo, endpoints: Iterable[str], personas: Iterable[str]) -> None:
    """Refuse, before a run, objectives naming an endpoint or persona the workload never uses.

    Such an objective could only be found unjudgeable after the whole run.
    """
    known_endpoints, known_personas = set(endpoints), set(personas)
    for i, objective in enumerate(slo.objectives):
        if objective.endpoint != ALL and objective.endpoint not in known_endpoints:
            raise SloError(
                f"{slo.source}: objectives[{i}].endpoint: the workload sends no "
                f"{objective.endpoint!r} (it sends {', '.join(sorted(known_endpoints))})"
            )
        if objective.persona != ALL and objective.persona not in known_personas:
            raise SloError(
                f"{slo.source}: objectives[{i}].persona: no persona {objective.persona!r} "
                f"(the personas are {', '.join(sorted(known_personas))})"
            )


def _reject_unknown(data: Mapping[Any, Any], known: frozenset[str], where: str, fail: Any) -> None:
    for key in data:
        if key not in known:
            place = f"{where}.{key}" if where else str(key)
            raise fail(place, f"unknown key (expected one of {', '.join(sorted(known))})")


def _number(value: object, where: str, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(where, f"must be a number, got {value!r}")
    return float(value)


def _count(value: object, where: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise fail(where, f"must be a whole number of at least 1, got {value!r}")
    return value


def _ratio(value: object, where: str, fail: Any) -> float:
    number = _number(value, where, fail)
    if not 0.0 <= number <= 1.0:
        raise fail(where, f"must lie between 0 and 1, got {value!r}")
    return number


def _objective(item: object, where: str, fail: Any) -> Objective:
    if not isinstance(item, Mapping):
        raise fail(where, f"must be a mapping, got {type(item).__name__}")
    _reject_unknown(item, _OBJECTIVE_KEYS, where, fail)
    endpoint = item.get("endpoint", ALL)
    if not isinstance(endpoint, str) or not _ENDPOINT.fullmatch(endpoint):
        raise fail(
            f"{where}.endpoint",
            f'must be "*" or a request name like "GET /api/v1/alerts", got {endpoint!r}',
        )
    persona = item.get("persona", ALL)
    if not isinstance(persona, str) or not persona.strip():
        raise fail(f"{where}.persona", f'must be "*" or a persona kind, got {persona!r}')
    bounds: dict[str, float] = {}
    for key in PERCENTILES:
        if key in item:
            bound = _number(item[key], f"{where}.{key}", fail)
            if bound <= 0:
                raise fail(f"{where}.{key}", f"must be a positive number, got {item[key]!r}")
            bounds[key] = bound
    error_rate = None
    if "error_rate" in item:
        error_rate = _ratio(item["error_rate"], f"{where}.error_rate", fail)
    if not bounds and error_rate is None:
        raise fail(where, f"sets no bound (give one of {', '.join(PERCENTILES)} or error_rate)")
    min_samples = None
    if "min_samples" in item:
        min_samples = _count(item["min_samples"], f"{where}.min_samples", fail)
    name = item.get("name", _default_name(endpoint, persona))
    if not isinstance(name, str) or not name.strip():
        raise fail(f"{where}.name", f"must be a non-empty string, got {name!r}")
    return Objective(
        name=name.strip(),
        endpoint=endpoint,
        persona=persona,
        error_rate=error_rate,
        min_samples=min_samples,
        **bounds,
    )


def _default_name(endpoint: str, persona: str) -> str:
    name = "all endpoints" if endpoint == ALL else endpoint
    return name if persona == ALL else f"{name} as {persona}"


def _rate(raw: object, fail: Any) -> RateObjective | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise fail("rate", f"must be a mapping, got {type(raw).__name__}")
    _reject_unknown(raw, _RATE_KEYS, "rate", fail)
    achieved = raw.get("achieved_ratio_min")
    dropped = raw.get("dropped_max_ratio")
    if achieved is None and dropped is None:
        raise fail("rate", "sets no bound (give achieved_ratio_min or dropped_max_ratio)")
    return RateObjective(
        achieved_ratio_min=None
        if achieved is None
        else _ratio(achieved, "rate.achieved_ratio_min", fail),
        dropped_max_ratio=None
        if dropped is None
        else _ratio(dropped, "rate.dropped_max_ratio", fail),
    )


# --- evaluation ------------------------------------------------------------------------------


def evaluate(summary: Mapping[str, Any], slo: Slo) -> Verdict:
    """Judge a run summary against an SLO.

    The status is decided in this order: a run the engine marked invalid is ``"invalid"`` (exit
    3: its measurements cannot be trusted either way); an aborted run is ``"fail"`` (exit 1);
    a breached objective is ``"fail"``; an objective that could not be judged (no row for its
    endpoint and persona, no requests, or fewer than ``min_samples`` for a percentile) is
    ``"invalid"``; otherwise ``"pass"``. A definite breach outranks an unjudged objective
    because exit 1 means "an SLO breached", and that stays true whatever else is missing.
    """
    run = summary.get("run", {}) or {}
    valid = bool(run.get("valid", True))
    invalid_reasons = [str(r) for r in run.get("invalid_reasons", []) or []]
    aborted = bool(run.get("aborted", False))
    abort_reason = run.get("abort_reason")

    checks: list[Check] = [
        _validity_check(valid, invalid_reasons),
        _completion_check(aborted, abort_reason),
    ]
    sessions = run.get("sessions")
    if isinstance(sessions, Mapping):
        checks.append(_sessions_check(sessions))
    checks.extend(_objective_checks(summary, slo, live=False))
    checks.extend(_rate_checks(summary, slo))
    if slo.false_positives_max_ratio is not None:
        checks.append(_false_positive_check(summary, slo.false_positives_max_ratio))

    breached = [c for c in checks if c.outcome == "fail" and c.kind != "validity"]
    unjudged = [c for c in checks if c.outcome == "not_judged"]
    reasons: list[str] = []
    if not valid:
        reasons.extend(invalid_reasons or ["the engine marked the run invalid"])
    if aborted:
        reasons.append(f"run aborted: {abort_reason or 'no reason given'}")
    reasons.extend(f"breached: {c.name}: {c.detail}" for c in breached)
    reasons.extend(f"not judged: {c.name}: {c.detail}" for c in unjudged)

    status: Status
    if not valid:
        status, code = "invalid", 3
    elif aborted or breached:
        status, code = "fail", 1
    elif unjudged:
        status, code = "invalid", 3
    else:
        status, code = "pass", 0
    return Verdict(checks=tuple(checks), status=status, exit_code=code, reasons=tuple(reasons))


def breaches(summary: Mapping[str, Any], slo: Slo) -> list[Check]:
    """The latency and error-rate checks that are judged and breached, for a live abort.

    Meant to be called by the engine during a run on a partial summary (only ``"latency"`` is
    read). Unlike ``evaluate``, an error rate is judged only once its row has ``min_samples``
    requests, so a few early failures cannot stop a run.
    """
    return [c for c in _objective_checks(summary, slo, live=True) if c.outcome == "fail"]


def _validity_check(valid: bool, reasons: list[str]) -> Check:
    return Check(
        name="run valid",
        kind="validity",
        endpoint=ALL,
        persona=ALL,
        statistic="valid",
        measured=1.0 if valid else 0.0,
        threshold=1.0,
        unit="flag",
        outcome="pass" if valid else "fail",
        detail="the engine found the run valid"
        if valid
        else "; ".join(reasons) or "the engine marked the run invalid",
        comparison=">=",
    )


def _sessions_check(sessions: Mapping[str, Any]) -> Check:
    """Whether the harness held enough sessions for its arrivals (part of the run's validity)."""
    share = _as_float(sessions.get("starved_share")) or 0.0
    bound = _as_float(sessions.get("starved_max_share"))
    bound = 0.01 if bound is None else bound
    starved, arrivals = _as_count(sessions.get("starved")), _as_count(sessions.get("arrivals"))
    ok = share <= bound
    return Check(
        name="sessions for the arrivals",
        kind="validity",
        endpoint=ALL,
        persona=ALL,
        statistic="starved_share",
        measured=share,
        threshold=bound,
        unit="ratio",
        outcome="pass" if ok else "fail",
        detail=f"{starved} of {arrivals} arrivals starved of a session by the harness "
        f"({share:.2%}), {'within' if ok else 'above'} {bound:.2%}; the account pool holds "
        f"{_as_count(sessions.get('accounts'))} accounts for a planned peak of "
        f"{_as_count(sessions.get('planned_peak'))} sessions",
    )


def _false_positive_check(summary: Mapping[str, Any], bound: float) -> Check:
    """Ordinary accounts alerted on, suspended or blocked, against the accounts that logged in."""
    detection = summary.get("detection", {}) or {}
    found = detection.get("false_positives") if isinstance(detection, Mapping) else None
    make = partial(
        Check,
        name="false positives",
        kind="false_positives",
        endpoint=ALL,
        persona=ALL,
        statistic="flagged_share",
        threshold=bound,
        unit="ratio",
        comparison="<",
    )
    used = _as_count(found.get("accounts_used")) if isinstance(found, Mapping) else 0
    if not isinstance(found, Mapping) or used == 0:
        return make(measured=None, outcome="not_judged", detail="no ordinary account logged in")
    flagged = _as_count(found.get("accounts_flagged"))
    share = flagged / used
    ok = share < bound
    how = "alerts and refusals" if found.get("alerts_checked") else "refusals only (no auditor)"
    return make(
        measured=share,
        outcome="pass" if ok else "fail",
        detail=f"{flagged} of {used} ordinary accounts alerted on, suspended or blocked "
        f"({share:.2%}), {'under' if ok else 'not under'} {bound:.2%}; from {how}",
    )


def _completion_check(aborted: bool, reason: object) -> Check:
    return Check(
        name="run completed",
        kind="validity",
        endpoint=ALL,
        persona=ALL,
        statistic="completed",
        measured=0.0 if aborted else 1.0,
        threshold=1.0,
        unit="flag",
        outcome="fail" if aborted else "pass",
        detail=f"aborted: {reason or 'no reason given'}" if aborted else "ran to the end",
        comparison=">=",
    )


def _rows(summary: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    rows: dict[tuple[str, str], Mapping[str, Any]] = {}
    for row in summary.get("latency", []) or []:
        rows[(str(row.get("endpoint")), str(row.get("persona")))] = row
    return rows


def _objective_checks(summary: Mapping[str, Any], slo: Slo, *, live: bool) -> Iterator[Check]:
    rows = _rows(summary)
    histogram = f"{slo.latency}_ms"
    for objective in slo.objectives:
        row = rows.get((objective.endpoint, objective.persona))
        needed = objective.min_samples or slo.min_samples
        count = _as_count(row.get("count")) if row is not None else 0
        missing = (
            f"the run has no row for endpoint {objective.endpoint!r} "
            f"and persona {objective.persona!r}"
        )

        for statistic, bound in objective.percentiles():
            make = partial(
                Check,
                name=f"{objective.name} {statistic}",
                kind="latency",
                endpoint=objective.endpoint,
                persona=objective.persona,
                statistic=statistic,
                threshold=bound,
                unit="ms",
            )
            if row is None:
                yield make(measured=None, outcome="not_judged", detail=missing)
                continue
            value = _as_float((row.get(histogram) or {}).get(statistic))
            if count < needed:
                yield make(
                    measured=value,
                    outcome="not_judged",
                    detail=f"{count} samples, fewer than the {needed} needed",
                )
            elif value is None:
                yield make(
                    measured=None,
                    outcome="not_judged",
                    detail=f"the row has no {slo.latency} {statistic}",
                )
            else:
                ok = value <= bound
                yield make(
                    measured=value,
                    outcome="pass" if ok else "fail",
                    detail=f"{statistic} {value:.1f} ms {'<=' if ok else '>'} {_fmt(bound)} ms "
                    f"({slo.latency}, {count} samples)",
                )

        if objective.error_rate is not None:
            make = partial(
                Check,
                name=f"{objective.name} error rate",
                kind="error_rate",
                endpoint=objective.endpoint,
                persona=objective.persona,
                statistic="error_rate",
                threshold=objective.error_rate,
                unit="ratio",
            )
            if row is None:
                yield make(measured=None, outcome="not_judged", detail=missing)
                continue
            errors = _as_count(row.get("errors"))
            rate = _as_float(row.get("error_rate"))
            if rate is None and count > 0:
                rate = errors / count
            if count == 0 or rate is None:
                yield make(measured=rate, outcome="not_judged", detail="no requests")
            elif live and count < needed:
                yield make(
                    measured=rate,
                    outcome="not_judged",
                    detail=f"{count} requests, fewer than the {needed} needed",
                )
            else:
                ok = rate <= objective.error_rate
                yield make(
                    measured=rate,
                    outcome="pass" if ok else "fail",
                    detail=f"{errors} of {count} requests failed ({rate:.2%}), "
                    f"{'within' if ok else 'above'} {objective.error_rate:.2%}",
                )


def _rate_checks(summary: Mapping[str, Any], slo: Slo) -> Iterator[Check]:
    if slo.rate is None:
        return
    rate = summary.get("rate", {}) or {}
    planned = _as_count(rate.get("planned"))
    if slo.rate.achieved_ratio_min is not None:
        bound = slo.rate.achieved_ratio_min
        make = partial(
            Check,
            name="achieved rate",
            kind="rate",
            endpoint=ALL,
            persona=ALL,
            statistic="achieved_ratio",
            threshold=bound,
            unit="ratio",
            comparison=">=",
        )
        ratio = _as_float(rate.get("achieved_ratio"))
        if planned == 0 or ratio is None:
            yield make(measured=ratio, outcome="not_judged", detail="nothing planned")
        else:
            ok = ratio >= bound
            yield make(
                measured=ratio,
                outcome="pass" if ok else "fail",
                detail=f"{_fmt(_as_float(rate.get('achieved_per_s')))} of "
                f"{_fmt(_as_float(rate.get('planned_per_s')))} requests/s planned "
                f"({ratio:.1%}), {'at least' if ok else 'below'} {bound:.1%}",
            )
    if slo.rate.dropped_max_ratio is not None:
        bound = slo.rate.dropped_max_ratio
        make = partial(
            Check,
            name="dropped arrivals",
            kind="rate",
            endpoint=ALL,
            persona=ALL,
            statistic="dropped_ratio",
            threshold=bound,
            unit="ratio",
        )
        dropped = _as_count(rate.get("dropped"))
        if planned == 0:
            yield make(measured=None, outcome="not_judged", detail="nothing planned")
        else:
            share = dropped / planned
            ok = share <= bound
            yield make(
                measured=share,
                outcome="pass" if ok else "fail",
                detail=f"{dropped} of {planned} planned arrivals dropped ({share:.2%}), "
                f"{'within' if ok else 'above'} {bound:.2%}",
            )


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_count(value: object) -> int:
    number = _as_float(value)
    return int(number) if number is not None else 0


def _fmt(value: float | None) -> str:
    """A number without a needless ".0"; "?" for nothing."""
    if value is None:
        return "?"
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.0f}"


# --- JUnit -----------------------------------------------------------------------------------


def write_junit(verdict: Verdict, summary: Mapping[str, Any], path: Path) -> None:
    """Write the verdict as JUnit XML: one testcase per check.

    A breached check is a ``<failure>``; a check that could not be judged is an ``<error>``
    ("not judged: ..."), never a skip, so CI does not read it as benign. The suite carries the
    target, profile and status as properties.
    """
    run = summary.get("run", {}) or {}
    failures = sum(1 for c in verdict.checks if c.outcome == "fail")
    errors = sum(1 for c in verdict.checks if c.outcome == "not_judged")
    duration = _as_float(run.get("duration_s")) or 0.0
    suite = ET.Element(
        "testsuite",
        name="contactpoint-load",
        tests=str(len(verdict.checks)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{duration:.3f}",
    )
    if run.get("started_at"):
        suite.set("timestamp", str(run["started_at"]))
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", run.get("target", "")),
        ("profile", run.get("profile", "")),
        ("status", verdict.status),
        ("exit_code", verdict.exit_code),
    ):
        ET.SubElement(props, "property", name=name, value=str(value))
    for check in verdict.checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"slo.{check.kind}", name=check.name, time="0"
        )
        if check.outcome == "fail":
            failure = ET.SubElement(case, "failure", message=check.detail, type=check.kind)
            failure.text = _junit_text(check)
        elif check.outcome == "not_judged":
            error = ET.SubElement(
                case, "error", message=f"not judged: {check.detail}", type="not_judged"
            )
            error.text = _junit_text(check)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    ET.indent(suite)
    ET.ElementTree(suite).write(partial, encoding="utf-8", xml_declaration=True)
    os.replace(partial, path)


def _junit_text(check: Check) -> str:
    if check.kind == "validity":
        return check.detail + "\n"
    measured = "nothing" if check.measured is None else f"{_fmt(check.measured)} {check.unit}"
    return (
        f"endpoint: {check.endpoint}\npersona: {check.persona}\n"
        f"{check.statistic}: measured {measured}, "
        f"bound {check.comparison} {_fmt(check.threshold)} {check.unit}\n"
    )
