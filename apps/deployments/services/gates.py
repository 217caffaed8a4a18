"""Running a deployment's analysis against its endpoint's metrics: which measurements are due, taking them,
storing each with its value, threshold and verdict, and the step's verdict from them; and the SLO burn-rate
check of the post-promotion watch. The judging itself is apps/deployments/analysis (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from apps.deployments.analysis import judge as judging
from apps.deployments.analysis.burn_rate import burn_rate_check
from apps.deployments.analysis.spec import AnalysisSpec, MetricCheck, parse_analysis
from apps.deployments.errors import MetricsUnavailable
from apps.deployments.metrics.base import MetricName, MetricResult, MetricsProvider
from apps.deployments.models import Deployment, Measurement
from apps.deployments.services.backends import metrics_for, variant_name

Phase = judging.Phase
SUCCESSFUL, FAILED, INCONCLUSIVE = Phase.SUCCESSFUL, Phase.FAILED, Phase.INCONCLUSIVE
MIN_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class Verdict:
    """A step's verdict so far: a Phase, or None while measurements are still due."""

    phase: Phase | None
    message: str = ""


def spec_of(deployment: Deployment) -> AnalysisSpec:
    return parse_analysis(dict(deployment.analysis or {}))


def has_checks(deployment: Deployment) -> bool:
    return bool(spec_of(deployment).checks)


def _taken(deployment: Deployment) -> dict[str, list[str]]:
    phases: dict[str, list[str]] = {}
    rows = Measurement.objects.filter(deployment=deployment, step_index=deployment.step_index).order_by("pk")
    for check, phase in rows.values_list("check_name", "phase"):
        phases.setdefault(check, []).append(phase)
    return phases


def _due_at(deployment: Deployment, check: MetricCheck, taken: int, now: datetime) -> datetime:
    started = deployment.step_started_at or now
    return started + timedelta(seconds=check.interval_seconds * (taken + 1))


def next_measurement_in(deployment: Deployment, *, now: datetime) -> float:
    taken = _taken(deployment)
    waits = [
        (_due_at(deployment, check, len(taken.get(check.name, [])), now) - now).total_seconds()
        for check in spec_of(deployment).checks
        if len(taken.get(check.name, [])) < check.count
    ]
    return max(MIN_WAIT_SECONDS, min(waits)) if waits else MIN_WAIT_SECONDS


def _query(
    provider: MetricsProvider, check: MetricCheck, *, variant: str, start: datetime, end: datetime
) -> MetricResult:
    return provider.query(variant=variant, metric=check.metric, start=start, end=end, percentile=check.percentile)


def _measure(deployment: Deployment, check: MetricCheck, provider: MetricsProvider, now: datetime) -> judging.Judgement:
    start = now - timedelta(seconds=check.interval_seconds)
    new = variant_name(deployment.version.version)
    stable = variant_name(deployment.baseline_version.version) if deployment.baseline_version else None
    canary: MetricResult | None = None
    baseline: MetricResult | None = None
    error: str | None = None
    try:
        canary = _query(provider, check, variant=new, start=start, end=now)
        if check.baseline is not None and stable is not None:
            baseline = _query(provider, check, variant=stable, start=start, end=now)
    except MetricsUnavailable as exc:
        error = exc.message
    judgement = judging.judge_measurement(check, canary=canary, baseline=baseline, error=error)
    Measurement.objects.create(
        deployment=deployment,
        step_index=deployment.step_index,
        check_name=check.name,
        metric=str(check.metric),
        phase=str(judgement.phase),
        value=judgement.value,
        baseline_value=baseline.value if baseline is not None else None,
        threshold=judgement.threshold[:120],
        count=canary.count if canary is not None else 0,
        baseline_count=baseline.count if baseline is not None else 0,
        message=judgement.message[:300],
        window_start=start,
        window_end=now,
        measured_at=now,
    )
    if judgement.phase == FAILED and deployment.first_breach_at is None:
        Deployment.objects.filter(pk=deployment.pk, first_breach_at=None).update(first_breach_at=now)
        deployment.first_breach_at = now
    return judgement


def measure_due(deployment: Deployment, *, now: datetime) -> Verdict:
    """Take every measurement that is due, then the step's verdict (failed as soon as a check exceeds its
    failure limit; inconclusive when no data or errors exceed the inconclusive limit)."""
    spec = spec_of(deployment)
    provider = metrics_for(deployment.endpoint)
    taken = _taken(deployment)
    last: dict[str, judging.Judgement] = {}
    for check in spec.checks:
        done = taken.get(check.name, [])
        if len(done) < check.count and now >= _due_at(deployment, check, len(done), now):
            judgement = _measure(deployment, check, provider, now)
            done.append(str(judgement.phase))
            taken[check.name] = done
            last[check.name] = judgement
    summaries = [
        (check, judging.summarize(check, [Phase(p) for p in taken.get(check.name, [])])) for check in spec.checks
    ]
    step = judging.summarize_step([summary for _, summary in summaries])
    reasons = [last[check.name].message for check, summary in summaries if summary == step and check.name in last]
    return Verdict(phase=step, message="; ".join(reasons) or (str(step) if step else ""))


# --- After promotion: the SLO burn rate -------------------------------------------------------------------


def post_promotion_seconds(deployment: Deployment) -> int:
    return spec_of(deployment).post_promotion_seconds


def burn_rate_interval(deployment: Deployment) -> float:
    return float(spec_of(deployment).burn_rate_interval_seconds)


def _errors_and_requests(provider: MetricsProvider, *, variant: str, start: datetime, end: datetime) -> tuple[int, int]:
    requests = provider.query(variant=variant, metric=MetricName.REQUESTS, start=start, end=end)
    errors = provider.query(variant=variant, metric=MetricName.ERRORS, start=start, end=end)
    return int(errors.value or 0), int(requests.value or 0)


def burn_rate_breach(deployment: Deployment, *, now: datetime) -> str | None:
    """The Google SRE workbook's page condition on the new version since it took 100%: burn rate above the
    factor over both the long and the short window. Returns why, or None."""
    spec = spec_of(deployment)
    provider = metrics_for(deployment.endpoint)
    new = variant_name(deployment.version.version)
    try:
        long = _errors_and_requests(
            provider, variant=new, start=now - timedelta(seconds=spec.burn_rate_long_seconds), end=now
        )
        short = _errors_and_requests(
            provider, variant=new, start=now - timedelta(seconds=spec.burn_rate_short_seconds), end=now
        )
    except MetricsUnavailable:
        return None  # no verdict without data; the watch goes on
    judgement = burn_rate_check(long=long, short=short, slo_target=spec.slo_target, factor=spec.burn_rate_factor)
    if judgement.phase != FAILED:
        return None
    if deployment.first_breach_at is None:
        Deployment.objects.filter(pk=deployment.pk, first_breach_at=None).update(first_breach_at=now)
        deployment.first_breach_at = now
    return judgement.message
