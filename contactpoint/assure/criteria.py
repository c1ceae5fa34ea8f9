"""The declared criteria for each rollout wave, and the verdict they give on a run's facts.

The criteria are one YAML file (`criteria.yaml` beside this module, or `--criteria FILE`); the
verdict is a pure function of them and of :class:`Facts`, the few numbers a run establishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

SCHEMA = "contactpoint-assure-criteria/1"
DEFAULT_CRITERIA = Path(__file__).with_name("criteria.yaml")
SEVERITIES = ("low", "medium", "high", "critical")
STAGES = ("security", "static", "load", "audit", "backup", "retention")
_RULES = frozenset({"severity", "stages", "slo", "recall_below", "false_positives_above"})


class CriteriaError(ValueError):
    """The criteria file is not one this version understands; the message says where."""


class Verdict(StrEnum):
    GO = "go"
    CONDITIONS = "go with conditions"
    NO_GO = "no-go"
    UNJUDGED = "could not judge"


@dataclass(frozen=True)
class Rules:
    """One level's rules (no-go or conditions); a rule left out never holds."""

    severity: str | None = None
    stages: tuple[str, ...] = ()
    slo: bool = False
    recall_below: float | None = None
    false_positives_above: float | None = None


@dataclass(frozen=True)
class Wave:
    id: str
    title: str
    require: tuple[str, ...]
    no_go: Rules
    conditions: Rules


@dataclass(frozen=True)
class Criteria:
    waves: tuple[Wave, ...]
    source: str

    def with_fail_on(self, severity: str) -> Criteria:
        """Every wave's no-go severity set to ``severity`` (the --fail-on flag)."""
        waves = tuple(
            Wave(
                w.id,
                w.title,
                w.require,
                Rules(severity, *_rest(w.no_go)),
                w.conditions,
            )
            for w in self.waves
        )
        return Criteria(waves, f"{self.source} with --fail-on {severity}")


def _rest(rules: Rules) -> tuple[tuple[str, ...], bool, float | None, float | None]:
    return rules.stages, rules.slo, rules.recall_below, rules.false_positives_above


@dataclass(frozen=True)
class Facts:
    """What a run established. ``None`` means the run could not tell."""

    # Failed or errored scenarios: (id, severity label).
    failed_scenarios: Sequence[tuple[str, str]] = ()
    # Each stage's status: "passed", "failed", "error" or "not_tested".
    stages: Mapping[str, str] = field(default_factory=dict)
    slo_breached: bool | None = None
    recall: float | None = None
    false_positive_rate: float | None = None
    # Why a stage did not run or errored, by stage: said when a wave cannot be judged.
    notes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WaveVerdict:
    wave: Wave
    verdict: Verdict
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "wave": self.wave.id,
            "title": self.wave.title,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
        }


def load_criteria(path: Path | None = None) -> Criteria:
    """Read and check a criteria file (default: the bundled one)."""
    name = str(path) if path else "the bundled contactpoint/assure/criteria.yaml"
    try:
        data = yaml.safe_load((path or DEFAULT_CRITERIA).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CriteriaError(f"{name}: not YAML: {exc}") from exc
    return parse_criteria(data, name)


def parse_criteria(data: object, source: str = "<criteria>") -> Criteria:
    """Check ``data`` (a parsed criteria file) and return the criteria it declares."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise CriteriaError(f"{source}: expected a mapping with schema: {SCHEMA}")
    waves = data.get("waves")
    if not isinstance(waves, Mapping) or not waves:
        raise CriteriaError(f"{source}: `waves` must map each wave's id to its criteria")
    out = []
    for wave_id, body in waves.items():
        where = f"{source}: waves.{wave_id}"
        if not isinstance(body, Mapping):
            raise CriteriaError(f"{where}: expected a mapping")
        unknown = set(body) - {"title", "require", "no_go", "conditions"}
        if unknown:
            raise CriteriaError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        out.append(
            Wave(
                id=str(wave_id),
                title=str(body.get("title", wave_id)),
                require=_stages(body.get("require", []), f"{where}.require"),
                no_go=_rules(body.get("no_go", {}), f"{where}.no_go"),
                conditions=_rules(body.get("conditions", {}), f"{where}.conditions"),
            )
        )
    return Criteria(tuple(out), source)


def _stages(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or any(s not in STAGES for s in value):
        raise CriteriaError(f"{where}: a list of stages from {', '.join(STAGES)}")
    return tuple(str(s) for s in value)


def _ratio(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise CriteriaError(f"{where}: a share from 0 to 1")
    return float(value)


def _rules(value: object, where: str) -> Rules:
    if not isinstance(value, Mapping):
        raise CriteriaError(f"{where}: expected a mapping")
    unknown = set(value) - _RULES
    if unknown:
        raise CriteriaError(f"{where}: unknown rule(s) {', '.join(sorted(unknown))}")
    severity = value.get("severity")
    if severity is not None and severity not in SEVERITIES:
        raise CriteriaError(f"{where}.severity: one of {', '.join(SEVERITIES)}")
    slo = value.get("slo", False)
    if not isinstance(slo, bool):
        raise CriteriaError(f"{where}.slo: true or false")
    return Rules(
        severity=severity,
        stages=_stages(value.get("stages", []), f"{where}.stages"),
        slo=slo,
        recall_below=_ratio(value.get("recall_below"), f"{where}.recall_below"),
        false_positives_above=_ratio(
            value.get("false_positives_above"), f"{where}.false_positives_above"
        ),
    )


def _holding(rules: Rules, facts: Facts) -> list[str]:
    """The rules of one level that hold for ``facts``, each as a reason."""
    reasons = []
    if rules.severity is not None:
        floor = SEVERITIES.index(rules.severity)
        hit = [sid for sid, sev in facts.failed_scenarios if SEVERITIES.index(sev) >= floor]
        if hit:
            reasons.append(
                f"{len(hit)} scenario(s) at {rules.severity} or above failed: {', '.join(hit)}"
            )
    for stage in rules.stages:
        if facts.stages.get(stage) == "failed":
            reasons.append(f"the {stage} stage failed")
    if rules.slo and facts.slo_breached:
        reasons.append("the load run breached an SLO")
    if (
        rules.recall_below is not None
        and facts.recall is not None
        and facts.recall < rules.recall_below
    ):
        reasons.append(
            f"detection recall under load {facts.recall:.0%} is below {rules.recall_below:.0%}"
        )
    if (
        rules.false_positives_above is not None
        and facts.false_positive_rate is not None
        and facts.false_positive_rate > rules.false_positives_above
    ):
        reasons.append(
            f"false positives under load {facts.false_positive_rate:.1%} exceed "
            f"{rules.false_positives_above:.1%}"
        )
    return reasons


def judge_wave(wave: Wave, facts: Facts) -> WaveVerdict:
    """The wave's verdict: no-go first, then could-not-judge, then conditions, else go."""
    no_go = _holding(wave.no_go, facts)
    if no_go:
        return WaveVerdict(wave, Verdict.NO_GO, tuple(no_go))
    missing = [s for s in wave.require if facts.stages.get(s) not in ("passed", "failed")]
    unjudged = [
        f"the {s} stage could not be judged: {facts.notes.get(s) or 'it did not run'}"
        for s in missing
    ]
    if (
        "load" in wave.require
        and "load" not in missing
        and wave.conditions.recall_below is not None
        and facts.recall is None
    ):
        unjudged.append("detection recall under load was not measured")
    if unjudged:
        return WaveVerdict(wave, Verdict.UNJUDGED, tuple(unjudged))
    conditions = _holding(wave.conditions, facts)
    if conditions:
        return WaveVerdict(wave, Verdict.CONDITIONS, tuple(conditions))
    return WaveVerdict(wave, Verdict.GO, ())


def judge(criteria: Criteria, facts: Facts) -> list[WaveVerdict]:
    return [judge_wave(w, facts) for w in criteria.waves]


def exit_code(verdicts: Sequence[WaveVerdict]) -> int:
    """1 when any wave is no-go, else 3 when any could not be judged, else 0."""
    if any(v.verdict is Verdict.NO_GO for v in verdicts):
        return 1
    if any(v.verdict is Verdict.UNJUDGED for v in verdicts):
        return 3
    return 0
