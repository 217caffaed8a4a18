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


def run_of_job(job: TrainingJob) -> TrackingRun | None:
    return TrackingRun.objects.select_related("experiment").filter(training_job=job).first()


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


def comparison(runs: list[TrackingRun], metric: str) -> dict[str, Any]:
    """A compare view's content: one column per run, every param key with the runs' values (and whether they
    differ), every metric's final value per run, and one metric's series per run for the overlaid chart."""
    params = {run.pk: dict(run.params.values_list("key", "value")) for run in runs}
    finals = {run.pk: latest_metrics(run) for run in runs}
    param_keys = sorted({key for values in params.values() for key in values})
    metric_keys = sorted({key for values in finals.values() for key in values})
    return {
        "columns": [
            {"name": run.name, "job_id": run.training_job_id, "status": run.get_status_display()} for run in runs
        ],
        "param_rows": [
            {
                "key": key,
                "values": [params[run.pk].get(key, "") for run in runs],
                "differs": len({params[run.pk].get(key) for run in runs}) > 1,
            }
            for key in param_keys
        ],
        "metric_rows": [{"key": key, "values": [finals[run.pk].get(key) for run in runs]} for key in metric_keys],
        "metric_keys": metric_keys,
        "chart": {
            (f"job #{run.training_job_id}" if run.training_job_id else run.name): metric_series(run).get(metric, [])
            for run in runs
        }
        if metric
        else {},
    }
