"""Judging measurements like Argo Rollouts' analysis runs. One measurement is successful, failed, inconclusive or
an error; a check's measurements summarize against its limits; a step's checks summarize into its verdict.

The rule that matters most: no data and errors are never a pass. A window with no requests, a metrics backend
that did not answer, or a baseline comparison with fewer samples than its minimum is inconclusive, and too many
inconclusive measurements pause the rollout for a person instead of letting it through."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from apps.deployments.analysis.spec import MetricCheck
from apps.deployments.analysis.stats import mann_whitney_u, two_proportion_z
from apps.deployments.metrics.base import MetricName, MetricResult


class Phase(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Judgement:
    phase: Phase
    value: float | None
    threshold: str
    message: str


def _describe(check: MetricCheck, value: float) -> str:
    if check.metric == MetricName.ERROR_RATE:
        return f"error rate {value:.2%}"
    if check.metric == MetricName.LATENCY:
        label = f"p{check.percentile:g} latency" if check.percentile else "mean latency"
        return f"{label} {value:.3f} s"
    return f"{check.metric} {value:g}"


def _threshold_text(check: MetricCheck) -> str:
    parts = []
    if check.success is not None:
        parts.append(f"pass {check.success}")
    if check.failure is not None:
        parts.append(f"fail {check.failure}")
    if check.baseline is not None:
        parts.append(f"vs baseline p<{check.baseline.alpha:g}")
    return "; ".join(parts)


def _baseline_verdict(
    check: MetricCheck, canary: MetricResult, baseline: MetricResult | None
) -> tuple[Phase | None, str]:
    """(FAILED, why) when the canary is significantly worse than the baseline; (INCONCLUSIVE, why) when there is
    too little to compare; (None, how it compared) otherwise."""
    test = check.baseline
    if test is None:
        return None, ""
    if baseline is None or baseline.value is None:
        return Phase.INCONCLUSIVE, "no baseline data"
    if test.kind == "two_proportion":
        if canary.count < test.min_samples or baseline.count < test.min_samples:
            return Phase.INCONCLUSIVE, (
                f"{canary.count}/{baseline.count} requests, under the {test.min_samples} per arm a comparison needs"
            )
        canary_errors = round(canary.value * canary.count) if canary.value is not None else 0
        baseline_errors = round(baseline.value * baseline.count)
        result = two_proportion_z(canary_errors, canary.count, baseline_errors, baseline.count, alternative="greater")
        detail = f"vs baseline {baseline.value:.2%} ({baseline_errors}/{baseline.count}), p={result.p_value:.4g}"
    else:
        if len(canary.samples) < test.min_samples or len(baseline.samples) < test.min_samples:
            return Phase.INCONCLUSIVE, (
                f"{len(canary.samples)}/{len(baseline.samples)} latency samples, under the {test.min_samples} "
                "per arm a comparison needs"
            )
        result = mann_whitney_u(canary.samples, baseline.samples, alternative="greater")
        detail = f"vs baseline {baseline.value:.3f} s, Mann-Whitney p={result.p_value:.4g}"
    if result.p_value < test.alpha:
        return Phase.FAILED, f"{detail} < {test.alpha:g}: worse than the stable version"
    return None, detail


def judge_measurement(
    check: MetricCheck, *, canary: MetricResult | None, baseline: MetricResult | None, error: str | None
) -> Judgement:
    threshold = _threshold_text(check)
    if error is not None:
        return Judgement(Phase.ERROR, None, threshold, f"measurement failed: {error}"[:300])
    if canary is None or canary.value is None or math.isnan(canary.value):
        requests = canary.count if canary is not None else 0
        return Judgement(
            Phase.INCONCLUSIVE, None, threshold, f"no data: {requests} requests in {check.interval_seconds} s"
        )
    value = canary.value
    described = f"{_describe(check, value)} ({canary.count} requests)"
    if check.failure is not None and check.failure.holds(value):
        return Judgement(Phase.FAILED, value, threshold, f"{described}: fails {check.failure}")
    if check.success is not None and not check.success.holds(value):
        return Judgement(Phase.FAILED, value, threshold, f"{described}: not {check.success}")
    if check.baseline is not None:
        phase, detail = _baseline_verdict(check, canary, baseline)
        if phase is not None:
            return Judgement(phase, value, threshold, f"{described} {detail}"[:300])
        return Judgement(Phase.SUCCESSFUL, value, threshold, f"{described} {detail}"[:300])
    return Judgement(Phase.SUCCESSFUL, value, threshold, f"{described}: within {threshold}")


def summarize(check: MetricCheck, phases: Sequence[Phase]) -> Phase | None:
    """A check's verdict from its measurements so far; None while more are due and no limit is exceeded."""
    failed = sum(1 for phase in phases if phase == Phase.FAILED)
    unsure = sum(1 for phase in phases if phase in (Phase.INCONCLUSIVE, Phase.ERROR))
    if failed > check.failure_limit:
        return Phase.FAILED
    if unsure > check.inconclusive_limit:
        return Phase.INCONCLUSIVE
    if len(phases) < check.count:
        return None
    if not any(phase == Phase.SUCCESSFUL for phase in phases):
        return Phase.INCONCLUSIVE
    return Phase.SUCCESSFUL


def summarize_step(summaries: Sequence[Phase | None]) -> Phase | None:
    """A step's verdict from its checks': failed beats inconclusive beats still measuring beats successful."""
    if Phase.FAILED in summaries:
        return Phase.FAILED
    if Phase.INCONCLUSIVE in summaries:
        return Phase.INCONCLUSIVE
    if None in summaries:
        return None
    return Phase.SUCCESSFUL
