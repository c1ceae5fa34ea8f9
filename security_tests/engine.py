"""The scenario engine: registered scenarios, their findings, results and the run.

A scenario is a small function with a one-line docstring, registered under a dotted id
(``group.name``) with the controls it maps to (OWASP API Security Top 10 2023 items, OWASP ASVS
5.0 requirement ids), a severity, and the reference registry's development switches that make it
fail (``guards``). It passes by returning, fails by raising :class:`Finding`, and skips by raising
:class:`Skip` with the reason. The CLI (`contactpoint attack`) and the pytest plugin are two
front ends over :func:`run`.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from security_tests.context import Context
    from security_tests.target import Target

GROUPS: dict[str, str] = {
    "auth": "Authentication",
    "authz": "Object and function authorization",
    "shielding": "Shielding and sensitive services",
    "harvesting": "Harvesting",
    "exfiltration": "Exfiltration (the lost discs)",
    "insider": "Insider abuse",
    "audit": "Audit",
    "injection": "Injection and input handling",
    "transport": "Transport and headers",
    "static": "Static analysis and fuzzing",
}

# OWASP API Security Top 10 (2023), by id.
OWASP_API_2023: dict[str, str] = {
    "API1:2023": "Broken Object Level Authorization",
    "API2:2023": "Broken Authentication",
    "API3:2023": "Broken Object Property Level Authorization",
    "API4:2023": "Unrestricted Resource Consumption",
    "API5:2023": "Broken Function Level Authorization",
    "API6:2023": "Unrestricted Access to Sensitive Business Flows",
    "API7:2023": "Server Side Request Forgery",
    "API8:2023": "Security Misconfiguration",
    "API9:2023": "Improper Inventory Management",
    "API10:2023": "Unsafe Consumption of APIs",
}

# Items that do not apply to the registry, and why (the coverage table states them).
NOT_APPLICABLE: dict[str, str] = {
    "API7:2023": "the registry fetches no URL a caller supplies",
    "API10:2023": "the registry consumes no third-party API",
}


class Severity(IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(StrEnum):
    PASSED = "pass"
    FAILED = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Finding(AssertionError):
    """The control the scenario checks is missing or broken: the scenario fails."""


class Skip(Exception):
    """The scenario cannot run against this target; the message says why."""


def expect(condition: object, message: str) -> None:
    """Fail the scenario with ``message`` unless ``condition`` holds."""
    if not condition:
        raise Finding(message)


ScenarioFunc = Callable[["Context"], None]


@dataclass(frozen=True)
class Scenario:
    """One registered scenario and what it stands for."""

    id: str
    title: str
    owasp: tuple[str, ...]
    asvs: tuple[str, ...]
    severity: Severity
    func: ScenarioFunc = field(compare=False, repr=False)
    # Development switches of the reference registry that make this scenario fail when off.
    guards: tuple[str, ...] = ()
    # Why no switch can make it fail, when ``guards`` is empty (stated in the docs).
    gap: str | None = None
    # What the run must offer: "database" (--database), "https", "canaries", "source".
    needs: frozenset[str] = frozenset()
    # Scenarios that leave the harness's source address throttled run last, in this order.
    order: int = 0
    # A scenario that mostly waits out a per-minute limit runs beside the others, on its own
    # throwaway accounts, so the suite's time is not the sum of its waits.
    background: bool = False

    @property
    def group(self) -> str:
        return self.id.split(".", 1)[0]


REGISTRY: dict[str, Scenario] = {}
# Scenarios at this order or later leave the source throttled: nothing runs beside or after them
# that needs it.
LAST_ORDER = 90


def scenario(
    id: str,
    *,
    owasp: Sequence[str],
    asvs: Sequence[str],
    severity: Severity,
    guards: Sequence[str] = (),
    gap: str | None = None,
    needs: Iterable[str] = (),
    order: int = 0,
    background: bool = False,
) -> Callable[[ScenarioFunc], ScenarioFunc]:
    """Register a scenario function under ``id``; its docstring's first line is the title."""

    def register(func: ScenarioFunc) -> ScenarioFunc:
        group = id.split(".", 1)[0]
        if group not in GROUPS:
            raise ValueError(f"{id}: unknown group {group!r}")
        if id in REGISTRY:
            raise ValueError(f"{id}: registered twice")
        unknown = [item for item in owasp if item not in OWASP_API_2023]
        if unknown or not owasp or not asvs:
            raise ValueError(f"{id}: needs OWASP API 2023 and ASVS ids (bad: {unknown})")
        if bool(guards) == bool(gap):
            raise ValueError(f"{id}: give either guards or the gap that explains their absence")
        title = (func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else ""
        if not title:
            raise ValueError(f"{id}: the function needs a one-line docstring")
        REGISTRY[id] = Scenario(
            id=id,
            title=title,
            owasp=tuple(owasp),
            asvs=tuple(asvs),
            severity=severity,
            func=func,
            guards=tuple(guards),
            gap=gap,
            needs=frozenset(needs),
            order=order,
            background=background,
        )
        return func

    return register


def load_all() -> dict[str, Scenario]:
    """Import every scenario module so the registry is complete; return it."""
    import security_tests.scenarios  # noqa: F401 (imports register the scenarios)

    return REGISTRY


def select(only: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios named by group or id in ``only`` (all when empty), in run order."""
    scenarios = load_all()
    chosen: list[Scenario] = []
    for item in only:
        if item not in GROUPS and item not in scenarios:
            raise KeyError(item)
    for sc in scenarios.values():
        if not only or sc.group in only or sc.id in only:
            chosen.append(sc)
    group_rank = {name: i for i, name in enumerate(GROUPS)}
    return sorted(chosen, key=lambda s: (s.order, group_rank[s.group], s.id))


@dataclass
class Result:
    scenario: Scenario
    status: Status
    message: str
    seconds: float
    evidence: list[dict[str, Any]]
    # When it began (seconds since the epoch): JUnit suite times are the span of their cases.
    started: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "id": sc.id,
            "group": sc.group,
            "title": sc.title,
            "severity": sc.severity.label,
            "owasp_api_2023": list(sc.owasp),
            "asvs_5_0": list(sc.asvs),
            "guards": list(sc.guards),
            "status": self.status.value,
            "message": self.message,
            "seconds": round(self.seconds, 3),
            "evidence": self.evidence,
        }


# A scenario that fails while the target throttles the harness's own address is this error.
THROTTLED_MESSAGE = (
    "the target refused the harness's own address its requests a minute (429 "
    "source_rate_limited), so this result cannot be judged: lift the per-source allowance for "
    "the harness's address (CONTACTPOINT_LIMIT_SOURCE_PER_MINUTE on the reference registry)"
)


def run_one(target: Target, sc: Scenario) -> Result:
    """Run one scenario against ``target`` and judge it."""
    from security_tests.context import Context

    missing = sorted(need for need in sc.needs if not target.offers(need))
    if missing:
        reasons = "; ".join(target.missing_reason(need) for need in missing)
        return Result(sc, Status.SKIPPED, reasons, 0.0, [], time.time())
    began, started = time.perf_counter(), time.time()
    with Context(target, sc) as ctx:
        try:
            sc.func(ctx)
            status, message = Status.PASSED, "the control held"
        except Finding as exc:
            status, message = Status.FAILED, str(exc)
        except Skip as exc:
            status, message = Status.SKIPPED, str(exc)
        except Exception as exc:  # any other failure: the check could not be made
            status = Status.ERROR
            message = f"{type(exc).__name__}: {exc}"
            ctx.evidence.note("traceback: " + traceback.format_exc(limit=4)[-1500:])
        if status is Status.FAILED and ctx.throttled:
            # The control was not shown to fail: the target refused the harness's own address.
            # Still an error, so it still fails the run, but not reported as a finding.
            status, message = Status.ERROR, f"{THROTTLED_MESSAGE}; {message}"
        evidence = ctx.evidence.dump()
    return Result(sc, status, message, time.perf_counter() - began, evidence, started)


# While the run waits for background scenarios, it says so this often (seconds).
WAITING_NOTE_EVERY = 10.0


def run(
    target: Target,
    scenarios: Sequence[Scenario],
    on_result: Callable[[int, int, Result], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> list[Result]:
    """Run ``scenarios`` in order, reporting each result as it comes.

    Background scenarios start first, each in its own thread, and are joined before the
    scenarios that throttle the source address (order 90 and up) run. While the run waits for
    them it tells ``on_wait`` which, every ``WAITING_NOTE_EVERY`` seconds.
    """
    results: list[Result] = []

    def done(result: Result) -> None:
        results.append(result)
        if on_result:
            on_result(len(results), len(scenarios), result)

    late = [sc for sc in scenarios if sc.order >= LAST_ORDER]
    early = [sc for sc in scenarios if sc.order < LAST_ORDER]
    background = [sc for sc in early if sc.background]
    with ThreadPoolExecutor(max_workers=max(1, len(background))) as pool:
        pending = [pool.submit(run_one, target, sc) for sc in background]
        for sc in early:
            if not sc.background:
                done(run_one(target, sc))
        began = time.monotonic()
        waiting = dict(zip(pending, background, strict=True))
        while waiting:
            finished, _ = wait(waiting, timeout=WAITING_NOTE_EVERY, return_when=FIRST_COMPLETED)
            for future in finished:
                waiting.pop(future)
                done(future.result())
            if waiting and on_wait:
                ids = ", ".join(sc.id for sc in waiting.values())
                on_wait(
                    f"waiting for {len(waiting)} background scenario(s), "
                    f"{time.monotonic() - began:.0f}s so far: {ids}"
                )
    for sc in late:
        done(run_one(target, sc))
    order = {sc.id: i for i, sc in enumerate(scenarios)}
    return sorted(results, key=lambda r: order[r.scenario.id])


def failing(results: Iterable[Result], threshold: Severity) -> list[Result]:
    """Results that fail the run: failed or errored at or above ``threshold``."""
    return [
        r
        for r in results
        if r.status in (Status.FAILED, Status.ERROR) and r.scenario.severity >= threshold
    ]
