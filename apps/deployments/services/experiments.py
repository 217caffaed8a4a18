"""A/B tests on an endpoint: start one (the challenger joins at its weight, sticky per caller), evaluate it (per
arm: requests, error rate, latency and any custom metric; the sequential test's always-valid p-value and
decision), conclude it when the test decides or the time is up, promote the winner with one click, or stop it.

One experiment or rollout per endpoint at a time: an experiment holds the traffic split, a rollout would move it."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.core.transitions import Machine, transition
from apps.deployments.analysis import sequential
from apps.deployments.errors import EndpointBusy, InvalidDeployment, MetricsUnavailable, TargetError
from apps.deployments.metrics.base import MetricName
from apps.deployments.models import (
    ACTIVE_DEPLOYMENT_STATES,
    ACTIVE_EXPERIMENT_STATES,
    ALLOWED_EXPERIMENT_TRANSITIONS,
    Endpoint,
    Environment,
    Experiment,
    ExperimentState,
    Observation,
    Strategy,
)
from apps.deployments.services.backends import metrics_for, target_for, variant_name, variant_spec
from apps.deployments.services.rollouts import VersionNotApproved, start_deployment
from apps.deployments.services.transitions import IllegalDeploymentTransition
from apps.registry.models import ModelVersion, VersionStatus

E = ExperimentState
BUILT_IN_METRICS = {"error_rate", "latency"}  # lower is better; a custom metric: higher is better
MAX_DURATION_SECONDS = 30 * 24 * 3600

EXPERIMENT_MACHINE: Machine[Experiment] = Machine(
    model=Experiment,
    field="state",
    edges=ALLOWED_EXPERIMENT_TRANSITIONS,
    illegal=lambda experiment, previous, to: IllegalDeploymentTransition(
        f"Experiment {experiment.name} is {previous}; it cannot become {to}."
    ),
    reason_field="state_reason",
    stamps={E.RUNNING: "started_at", E.CONCLUDED: "concluded_at"},
    related=("endpoint", "team"),
    audit_verb=lambda to: f"experiment.{to}",
)


def experiment_transition(
    *, experiment: Experiment, to: str, actor: User | None = None, reason: str = "", **fields: Any
) -> Experiment:
    return transition(EXPERIMENT_MACHINE, obj=experiment, to=to, actor=actor, reason=reason, fields=fields)


def start_experiment(
    *,
    actor: User,
    endpoint: Endpoint,
    version_b: ModelVersion,
    name: str = "",
    weight_b: int = 50,
    metric: str = "error_rate",
    alpha: float = 0.05,
    duration_seconds: int = 24 * 3600,
) -> Experiment:
    require(actor, "deployment.operate", endpoint, message="Only members of the team run experiments on it.")
    version_a = endpoint.stable_version
    if version_a is None:
        raise InvalidDeployment("The endpoint serves nothing yet: deploy a first version, then test against it.")
    if version_b.model_id != endpoint.model_id or version_b.pk == version_a.pk:
        raise InvalidDeployment("Arm B must be another version of the endpoint's model.", field="version_b")
    if version_b.status == VersionStatus.ARCHIVED:
        raise InvalidDeployment(f"{version_b} is archived.", field="version_b")
    if endpoint.environment == Environment.PRODUCTION and not version_b.approved:
        raise VersionNotApproved(f"{version_b} has no production approval yet.", field="version_b")
    if not 1 <= weight_b <= 99:
        raise InvalidDeployment("Arm B's share is 1 to 99 percent.", field="weight_b")
    if not (metric in BUILT_IN_METRICS or (metric.replace("_", "").replace("-", "").isalnum() and len(metric) <= 60)):
        raise InvalidDeployment(
            "The metric is error_rate, latency, or a custom name (letters, digits, - and _).", field="metric"
        )
    if not 0 < alpha < 0.5:
        raise InvalidDeployment("alpha is between 0 and 0.5.", field="alpha")
    if not 60 <= duration_seconds <= MAX_DURATION_SECONDS:
        raise InvalidDeployment("The duration is 1 minute to 30 days.", field="duration_seconds")
    if endpoint.deployments.filter(state__in=sorted(ACTIVE_DEPLOYMENT_STATES)).exists():
        raise EndpointBusy(f"{endpoint.name} has a rollout in progress; wait for it first.", field="endpoint")
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                team=endpoint.team,
                endpoint=endpoint,
                name=name or f"v{version_a.version} vs v{version_b.version}",
                version_a=version_a,
                version_b=version_b,
                weight_b=weight_b,
                metric=metric,
                alpha=alpha,
                duration_seconds=duration_seconds,
                started_by=actor,
            )
    except IntegrityError as exc:
        raise EndpointBusy(f"{endpoint.name} already runs an experiment.", field="endpoint") from exc
    record(
        actor=actor,
        team=endpoint.team,
        verb="experiment.requested",
        target=experiment,
        data={"a": version_a.version, "b": version_b.version, "weight_b": weight_b, "metric": metric},
    )
    _queue(experiment)
    return experiment


def _queue(experiment: Experiment) -> None:
    from apps.deployments import tasks

    pk = experiment.pk
    transaction.on_commit(lambda: tasks.evaluate_experiment.delay(pk))


def _names(experiment: Experiment) -> tuple[str, str]:
    return variant_name(experiment.version_a.version), variant_name(experiment.version_b.version)


def _split(experiment: Experiment, *, weight_b: int) -> None:
    a, b = _names(experiment)
    weights = {a: 100 - weight_b, b: weight_b}
    target_for(experiment.endpoint).set_weights(weights=weights)
    Endpoint.objects.filter(pk=experiment.endpoint_id).update(traffic=weights)


def _start(experiment: Experiment, now: datetime) -> None:
    endpoint = experiment.endpoint
    target = target_for(endpoint)
    try:
        target.prepare(variant=variant_spec(endpoint, experiment.version_a))
        target.prepare(variant=variant_spec(endpoint, experiment.version_b))
        _split(experiment, weight_b=experiment.weight_b)
    except TargetError as exc:
        experiment_transition(experiment=experiment, to=E.FAILED, reason=exc.message[:300])
        return
    experiment_transition(
        experiment=experiment,
        to=E.RUNNING,
        reason=f"{experiment.weight_b}% on B.",
        ends_at=now + timedelta(seconds=experiment.duration_seconds),
    )


def _arm_stats(experiment: Experiment, arm: str, variant: str, start: datetime, now: datetime) -> dict[str, Any]:
    """Requests, errors, error rate and mean/p95 latency of one arm since the start; a custom metric's mean,
    variance and count from the observations."""
    provider = metrics_for(experiment.endpoint)
    requests = provider.query(variant=variant, metric=MetricName.REQUESTS, start=start, end=now)
    errors = provider.query(variant=variant, metric=MetricName.ERRORS, start=start, end=now)
    latency = provider.query(variant=variant, metric=MetricName.LATENCY, start=start, end=now, percentile=95.0)
    n = int(requests.value or 0)
    stats: dict[str, Any] = {
        "variant": variant,
        "requests": n,
        "errors": int(errors.value or 0),
        "error_rate": (int(errors.value or 0) / n) if n else None,
        "latency_p95": latency.value,
        "latency_samples": list(latency.samples),
    }
    if experiment.metric not in BUILT_IN_METRICS:
        values = list(Observation.objects.filter(experiment=experiment, arm=arm).values_list("value", flat=True))
        stats["custom_n"] = len(values)
        stats["custom_mean"] = statistics.fmean(values) if values else None
        stats["custom_variance"] = statistics.pvariance(values) if len(values) > 1 else None
    return stats


def _custom_summary(stats: dict[str, Any]) -> tuple[float, float, int] | None:
    if stats.get("custom_variance") is None:
        return None
    return stats["custom_mean"], stats["custom_variance"], stats["custom_n"]


def _decide(experiment: Experiment, a: dict[str, Any], b: dict[str, Any]) -> tuple[float | None, str]:
    """The always-valid p-value and the winning arm so far ('' while undecided), for the experiment's metric."""
    metric = experiment.metric
    if metric == "error_rate":
        if not a["requests"] or not b["requests"]:
            return None, ""
        result = sequential.proportions_test(
            a["errors"], a["requests"], b["errors"], b["requests"], alpha=experiment.alpha
        )
        higher = result.higher
        lower_is_better = True
    else:
        if metric == "latency":
            xa, xb = a.pop("latency_samples"), b.pop("latency_samples")
            summary_a = (statistics.fmean(xa), statistics.pvariance(xa), len(xa)) if len(xa) > 1 else None
            summary_b = (statistics.fmean(xb), statistics.pvariance(xb), len(xb)) if len(xb) > 1 else None
            lower_is_better = True
        else:
            summary_a = (
                (a["custom_mean"], a["custom_variance"], a["custom_n"])
                if a.get("custom_variance") is not None
                else None
            )
            summary_b = (
                (b["custom_mean"], b["custom_variance"], b["custom_n"])
                if b.get("custom_variance") is not None
                else None
            )
            lower_is_better = False
        if summary_a is None or summary_b is None:
            return None, ""
        result = sequential.means_test(*summary_a, *summary_b, alpha=experiment.alpha)
        higher = result.higher
    if not higher:
        return result.p_value, ""
    winner = ({"a": "b", "b": "a"}[higher]) if lower_is_better else higher
    return result.p_value, winner


def evaluate(*, experiment_id: int, now: datetime | None = None) -> Experiment | None:
    """One look at a running experiment (the beat's, every few seconds): store the per-arm figures and the
    test's verdict; conclude when it decides or when the time is up."""
    now = now or timezone.now()
    experiment = (
        Experiment.objects.select_related("endpoint", "endpoint__team", "version_a", "version_b")
        .filter(pk=experiment_id)
        .first()
    )
    if experiment is None or experiment.state not in ACTIVE_EXPERIMENT_STATES:
        return experiment
    if experiment.state == E.STARTING:
        _start(experiment, now)
        return experiment
    start = experiment.started_at or now
    a_name, b_name = _names(experiment)
    try:
        a = _arm_stats(experiment, "a", a_name, start, now)
        b = _arm_stats(experiment, "b", b_name, start, now)
    except MetricsUnavailable as exc:
        Experiment.objects.filter(pk=experiment.pk).update(evaluated_at=now, state_reason=exc.message[:300])
        return experiment
    p_value, winner = _decide(experiment, a, b)
    a.pop("latency_samples", None)
    b.pop("latency_samples", None)
    result = {"a": a, "b": b, "p_value": p_value, "winner": winner, "at": now.isoformat()}
    if winner or (experiment.ends_at is not None and now >= experiment.ends_at):
        reason = (
            f"Arm {winner.upper()} wins (always-valid p={p_value:.4g} < {experiment.alpha})"
            if winner
            else "Time is up with no significant difference."
        )
        return experiment_transition(
            experiment=experiment, to=E.CONCLUDED, reason=reason, result=result, winner=winner, evaluated_at=now
        )
    Experiment.objects.filter(pk=experiment.pk).update(result=result, evaluated_at=now)
    experiment.result = result
    return experiment


def promote_winner(*, actor: User, experiment: Experiment) -> Experiment:
    """B won: roll it out all at once (a deployment, so it is recorded like any other); A won or no difference:
    back to 100% on A. Either way the experiment ends."""
    require(actor, "deployment.operate", experiment, message="Only members of the team promote its experiments.")
    if experiment.state != E.CONCLUDED:
        raise InvalidDeployment("Only a concluded experiment has a winner to promote.")
    if experiment.winner == "b":
        experiment = experiment_transition(experiment=experiment, to=E.PROMOTED, actor=actor, reason="Promoting B.")
        start_deployment(
            actor=actor,
            endpoint=experiment.endpoint,
            version=experiment.version_b,
            strategy=Strategy.ALL_AT_ONCE,
            reason=f"Winner of experiment {experiment.name}",
        )
        return experiment
    return stop_experiment(actor=actor, experiment=experiment)


def stop_experiment(*, actor: User, experiment: Experiment) -> Experiment:
    """All traffic back on A, B's variant removed."""
    require(actor, "deployment.operate", experiment, message="Only members of the team stop its experiments.")
    _, b = _names(experiment)
    if experiment.state != E.STARTING:
        _split(experiment, weight_b=0)
        target_for(experiment.endpoint).teardown(variant=b)
    a, _ = _names(experiment)
    Endpoint.objects.filter(pk=experiment.endpoint_id).update(traffic={a: 100})
    return experiment_transition(
        experiment=experiment, to=E.STOPPED, actor=actor, reason=f"Stopped by {actor.username}; 100% on A."
    )


def observe(*, actor: User, experiment: Experiment, arm: str, value: float, now: datetime | None = None) -> Observation:
    """A custom metric value for one arm; only while the experiment runs, and only for a custom metric."""
    require(actor, "deployment.operate", experiment, message="Only members of the team report to its experiments.")
    if experiment.state != E.RUNNING:
        raise InvalidDeployment("Observations are taken only while the experiment runs.")
    if experiment.metric in BUILT_IN_METRICS:
        raise InvalidDeployment(f"This experiment judges {experiment.metric}, which Paved measures itself.")
    return Observation.objects.create(experiment=experiment, arm=arm, value=value, at=now or timezone.now())


def due_experiments() -> list[int]:
    return list(Experiment.objects.filter(state__in=sorted(ACTIVE_EXPERIMENT_STATES)).values_list("pk", flat=True))
