"""The timing judgement: a practical bound, an exact rank test, and inconclusive on noise."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from security_tests.engine import Skip
from security_tests.timing import FALSE_ALARM, Inconclusive, judge, median, rank_test


def brute_force_p(a: list[float], b: list[float]) -> float:
    """The two-sided p-value by relabelling every way (small samples only)."""
    pooled = a + b

    def u(first: tuple[float, ...], second: list[float]) -> float:
        return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in first for y in second)

    seen = u(tuple(a), b)
    extreme = min(seen, len(a) * len(b) - seen)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        first = tuple(pooled[i] for i in chosen)
        second = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        value = u(first, second)
        total += 1
        hits += min(value, len(a) * len(b) - value) <= extreme
    return hits / total


def test_the_exact_rank_test_matches_counting_every_relabelling() -> None:
    rng = random.Random(7)
    for n, m in ((3, 3), (4, 4), (4, 5), (5, 3)):
        a = [rng.random() for _ in range(n)]
        b = [rng.random() + 0.3 for _ in range(m)]
        assert math.isclose(rank_test(a, b), min(1.0, brute_force_p(a, b)))


def test_four_samples_a_kind_can_never_be_significant() -> None:
    separated = rank_test([1, 2, 3, 4], [10, 11, 12, 13])
    assert math.isclose(separated, 2 / 70)
    assert separated > FALSE_ALARM


def test_a_skipped_hash_is_found_in_two_rounds() -> None:
    hashed = [0.040, 0.043, 0.041, 0.052, 0.044, 0.040, 0.047, 0.042]
    skipped = [0.002, 0.003, 0.002, 0.004, 0.002, 0.002, 0.003, 0.005]
    first = judge(hashed[:4], skipped[:4], ratio=0.25, floor=0.003)
    assert first.outcome == "inconclusive"  # one round can pass, never fail
    assert judge(hashed, skipped, ratio=0.25, floor=0.003).outcome == "differs"


def test_noise_on_one_sample_is_not_a_difference() -> None:
    # A busy moment slowed every sample of one kind in one round, but not the ranks overall.
    a = [0.040, 0.090, 0.041, 0.095, 0.044, 0.040, 0.047, 0.042]
    b = [0.080, 0.043, 0.085, 0.041, 0.088, 0.045, 0.041, 0.043]
    verdict = judge(a, b, ratio=0.25, floor=0.003, statistic=median)
    assert verdict.outcome in ("same", "inconclusive")


def test_close_timings_are_the_same() -> None:
    verdict = judge([0.040, 0.041], [0.043, 0.042], ratio=0.25, floor=0.003)
    assert verdict.outcome == "same"
    assert "allowed difference" in verdict.describe("a", "b", "fastest")


def test_inconclusive_is_reported_as_a_skip_not_a_pass() -> None:
    with pytest.raises(Skip, match="inconclusive"):
        raise Inconclusive("inconclusive: too noisy")
