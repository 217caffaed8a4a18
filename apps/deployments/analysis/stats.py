"""Two-sample tests for the baseline comparison, in pure Python (scipy would cost ~216 MB and 7 s of import for
two formulas). Both use the normal approximation, which is what a minimum sample size per arm is for.

- Mann-Whitney U (latency): ranks with ties averaged, tie-corrected variance, continuity correction. It asks
  whether one arm's values tend to be larger, without assuming a distribution (latencies are skewed).
- Two-proportion z-test (error rates): pooled proportion under the null hypothesis of equal rates.
Matched scipy.stats.mannwhitneyu(method="asymptotic") and statsmodels' proportions_ztest to 6 decimals here."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alternative = Literal["two-sided", "greater", "less"]


@dataclass(frozen=True)
class TestResult:
    statistic: float
    p_value: float


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _p_value(z: float, alternative: Alternative) -> float:
    if alternative == "greater":
        return normal_sf(z)
    if alternative == "less":
        return normal_sf(-z)
    return min(1.0, 2.0 * normal_sf(abs(z)))


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of `values`, and the sizes of the groups of ties."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        rank = (start + end) / 2.0 + 1.0
        for index in order[start : end + 1]:
            ranks[index] = rank
        if end > start:
            ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


def mann_whitney_u(x: Sequence[float], y: Sequence[float], *, alternative: Alternative = "two-sided") -> TestResult:
    """U of `x` against `y`; "greater" asks whether x tends to be larger than y. Empty samples: p = 1."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return TestResult(statistic=0.0, p_value=1.0)
    ranks, ties = _ranks([*x, *y])
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    mean = n1 * n2 / 2.0
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return TestResult(statistic=u1, p_value=1.0)
    deviation = u1 - mean
    if alternative == "two-sided":
        correction = 0.5 if deviation > 0 else -0.5 if deviation < 0 else 0.0
    else:
        correction = 0.5 if alternative == "greater" else -0.5
    z = (deviation - correction) / math.sqrt(variance)
    return TestResult(statistic=u1, p_value=_p_value(z, alternative))


def two_proportion_z(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, alternative: Alternative = "two-sided"
) -> TestResult:
    """z for p_a - p_b (pooled); "greater" asks whether a's proportion is higher. No data or no variance: p = 1."""
    if n_a <= 0 or n_b <= 0:
        return TestResult(statistic=0.0, p_value=1.0)
    pooled = (successes_a + successes_b) / (n_a + n_b)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    if variance <= 0:
        return TestResult(statistic=0.0, p_value=1.0)
    z = (successes_a / n_a - successes_b / n_b) / math.sqrt(variance)
    return TestResult(statistic=z, p_value=_p_value(z, alternative))
