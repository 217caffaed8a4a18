"""The A/B test's sequential decision: the mixture sequential probability ratio test (mSPRT) of Johari, Pekelis
and Walsh, "Always valid inference: continuous monitoring of A/B tests" (2017; Optimizely's Stats Engine).

Why: a fixed-sample test (a z-test on the difference) is valid only if looked at once, at a sample size fixed in
advance. Teams look at a running A/B test every day, and stopping the first time p < 0.05 turns a 5% false-
positive rate into 20-30% over a few dozen looks. The mSPRT instead computes, at each look, the likelihood
ratio of "some difference" (a normal mixture over effect sizes, N(0, tau^2)) against "no difference", from the
normal approximation of the estimated difference theta_hat with variance V:

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * theta_hat^2 / (2 * V * (V + tau^2)))

and the always-valid p-value is the running minimum of 1 / Lambda. By Ville's inequality the probability that
1/Lambda ever drops below alpha under no difference is at most alpha, so the experiment may be stopped at any look
the p-value crosses alpha, however often it is looked at: the false-positive rate stays at most alpha.
`tau^2` sets which effects the test is most sensitive to (the default: differences of about 5 percentage points in
error or conversion rates; for means, 0.2 standard deviations)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Arm = Literal["a", "b", ""]
DEFAULT_TAU2_PROPORTIONS = 0.05**2
DEFAULT_RELATIVE_TAU_MEANS = 0.2


@dataclass(frozen=True)
class SequentialResult:
    """`p_value` is this look's 1/Lambda (callers keep the running minimum); `higher` is the arm whose
    proportion or mean is significantly higher once p_value < alpha, else ''."""

    p_value: float
    higher: Arm
    difference: float  # b minus a


def msprt_p_value(theta_hat: float, variance: float, tau2: float) -> float:
    """1 / Lambda for an estimated difference with its variance (1 when there is no information)."""
    if variance <= 0 or tau2 <= 0:
        return 1.0
    exponent = tau2 * theta_hat**2 / (2.0 * variance * (variance + tau2))
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + exponent
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def _result(theta_hat: float, variance: float, tau2: float, alpha: float) -> SequentialResult:
    p_value = msprt_p_value(theta_hat, variance, tau2)
    higher: Arm = ("b" if theta_hat > 0 else "a") if p_value < alpha and theta_hat != 0 else ""
    return SequentialResult(p_value=p_value, higher=higher, difference=theta_hat)


def proportions_test(
    successes_a: int,
    n_a: int,
    successes_b: int,
    n_b: int,
    *,
    alpha: float = 0.05,
    tau2: float = DEFAULT_TAU2_PROPORTIONS,
) -> SequentialResult:
    """Two proportions (error rates, conversion rates): theta = p_b - p_a, unpooled variance."""
    if n_a <= 0 or n_b <= 0:
        return SequentialResult(p_value=1.0, higher="", difference=0.0)
    p_a, p_b = successes_a / n_a, successes_b / n_b
    variance = p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b
    return _result(p_b - p_a, variance, tau2, alpha)


def means_test(
    mean_a: float,
    variance_a: float,
    n_a: int,
    mean_b: float,
    variance_b: float,
    n_b: int,
    *,
    alpha: float = 0.05,
    relative_tau: float = DEFAULT_RELATIVE_TAU_MEANS,
) -> SequentialResult:
    """Two means (latency, a custom metric) from each arm's mean, variance and count: theta = mean_b - mean_a,
    with tau = relative_tau x the pooled standard deviation (scale-free)."""
    if n_a <= 1 or n_b <= 1:
        return SequentialResult(p_value=1.0, higher="", difference=0.0)
    variance = variance_a / n_a + variance_b / n_b
    pooled_sd = math.sqrt((variance_a + variance_b) / 2.0)
    return _result(mean_b - mean_a, variance, (relative_tau * pooled_sd) ** 2, alpha)
