"""Timing comparisons that hold on a busy machine: a practical bound, a rank test, and a retry.

A timing oracle (an unknown user answered without the password hash, a shielded child's search
taking its own plan) shows as one kind of request being consistently faster or slower than the
other, by a margin. A loaded machine adds time at random. So a comparison is judged in rounds
of interleaved samples:

- the two kinds' statistic (the fastest, or the median) within the allowed difference: **same**;
- beyond it, and a two-sided Mann-Whitney rank test on every sample so far says the kinds differ
  with a chance below ``FALSE_ALARM`` (0.1 %) of that happening by luck: **differs**;
- beyond it but not significant: another round, and after the last **inconclusive** (reported
  as a skip saying so, never a pass or a fail).

With four samples a kind, no ordering is significant at 0.1 % (the smallest two-sided p is
2/70), so a first round can pass but never fail: a difference must hold over a second round.

The rank test is exact (the distribution of the U statistic by counting), written here because
it is a dozen lines; scipy would bring a large dependency for one function.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from security_tests.engine import Skip

FALSE_ALARM = 0.001

Outcome = Literal["same", "differs", "inconclusive"]
Statistic = Callable[[Sequence[float]], float]


class Inconclusive(Skip):
    """The machine was too noisy to tell: reported as a skip whose reason says so."""


@cache
def _u_counts(n: int, m: int) -> tuple[int, ...]:
    """How many of the C(n+m, n) orderings give each value of U (0..n*m), no ties."""
    if n == 0 or m == 0:
        return (1,)
    # The largest value is either from the first sample (adding m to U) or from the second.
    with_first = _u_counts(n - 1, m)
    with_second = _u_counts(n, m - 1)
    counts = [0] * (n * m + 1)
    for u, c in enumerate(with_first):
        counts[u + m] += c
    for u, c in enumerate(with_second):
        counts[u] += c
    return tuple(counts)


def rank_test(a: Sequence[float], b: Sequence[float]) -> float:
    """The exact two-sided Mann-Whitney p-value that ``a`` and ``b`` come from one distribution.

    Ties (rare with timings in seconds) count half, as usual.
    """
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return 1.0
    u = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)
    counts = _u_counts(n, m)
    total = sum(counts)
    extreme = min(u, n * m - u)
    tail = sum(c for value, c in enumerate(counts) if value <= extreme) / total
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    first: float
    second: float
    allowed: float
    p_value: float
    samples: int

    def describe(self, first: str, second: str, statistic: str) -> str:
        return (
            f"{statistic} of {self.samples} each: {first} {self.first * 1000:.1f} ms, {second} "
            f"{self.second * 1000:.1f} ms; allowed difference {self.allowed * 1000:.1f} ms; "
            f"rank test p = {self.p_value:.2g} (differs below {FALSE_ALARM})"
        )


def judge(
    a: Sequence[float],
    b: Sequence[float],
    *,
    ratio: float,
    floor: float,
    statistic: Statistic = min,
) -> Judgement:
    """Compare two kinds' samples: see the module docstring."""
    first, second = statistic(a), statistic(b)
    allowed = max(floor, ratio * max(first, second))
    p_value = rank_test(a, b)
    if abs(first - second) <= allowed:
        outcome: Outcome = "same"
    elif p_value < FALSE_ALARM:
        outcome = "differs"
    else:
        outcome = "inconclusive"
    return Judgement(outcome, first, second, allowed, p_value, min(len(a), len(b)))


def median(samples: Sequence[float]) -> float:
    return float(statistics.median(samples))
