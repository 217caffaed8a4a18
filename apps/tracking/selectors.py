"""Reads of experiment tracking, scoped to the caller's teams; and what a job's run says about the job (its final
metrics and tags, for the model registered from it)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.accounts.permissions import AnyUser, restrict
from apps.tracking.models import RunMetric, RunTag, TrackingExperiment, TrackingRun
from apps.training.models import TrainingJob

MAX_SERIES_POINTS = 5000  # a chart draws at most this many points per metric (the newest)


def experiments_for(user: AnyUser) -> QuerySet[TrackingExperiment]:
    return restrict(TrackingExperiment.objects.all(), user)


def runs_for(user: AnyUser) -> QuerySet[TrackingRun]:
    return restrict(TrackingRun.objects.all(), user).select_related("experiment", "training_job")


def run_by_token(digest: str) -> TrackingRun | None:
    """The job run whose live token has this digest: only while its job is scheduled or running."""
    from apps.training.models import ACTIVE_JOB_STATES

    return (
        TrackingRun.objects.select_related("experiment", "training_job__owner", "team")
        .filter(token_digest=digest, training_job__state__in=ACTIVE_JOB_STATES)
        .first()
    )


def latest_metrics(run: TrackingRun) -> dict[str, float]:
    """Each metric's value at its highest step (latest timestamp breaking ties), as MLflow reports a run's metrics."""
    latest: dict[str, tuple[int, int, float]] = {}
    for key, step, stamp, value in run.metrics.values_list("key", "step", "timestamp", "value"):
        if key not in latest or (step, stamp) >= latest[key][:2]:
            latest[key] = (step, stamp, value)
    return {key: value for key, (_, _, value) in sorted(latest.items())}


def latest_metric_points(run: TrackingRun) -> list[RunMetric]:
    best: dict[str, RunMetric] = {}
    for point in run.metrics.order_by("key", "step", "timestamp", "id"):
        best[point.key] = point
    return list(best.values())


def final_metrics(job: TrainingJob) -> dict[str, float]:
    run = TrackingRun.objects.filter(training_job=job).first()
    return latest_metrics(run) if run else {}


def run_tags(job: TrainingJob) -> dict[str, str]:
    return dict(RunTag.objects.filter(run__training_job=job).values_list("key", "value"))


def metric_series(run: TrackingRun) -> dict[str, list[dict[str, Any]]]:
    """Every metric of the run as points (step, value) ordered by step, for charts."""
    series: dict[str, list[dict[str, Any]]] = {}
    rows = run.metrics.order_by("key", "step", "timestamp", "id").values_list("key", "step", "value")
    for key, step, value in rows:
        points = series.setdefault(key, [])
        if len(points) < MAX_SERIES_POINTS:
            points.append({"step": step, "value": value if value == value else None})
    return series


def metric_keys(run: TrackingRun) -> list[str]:
    return list(run.metrics.order_by("key").values_list("key", flat=True).distinct())


def comparable_runs(run: TrackingRun, user: AnyUser, limit: int = 20) -> QuerySet[TrackingRun]:
    """The runs of the same experiment the user can see, newest first."""
    return runs_for(user).filter(experiment_id=run.experiment_id).order_by("-start_time", "-pk")[:limit]
