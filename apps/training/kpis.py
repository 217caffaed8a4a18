"""Training KPIs (the seed blueprint's table): pipeline success rate and queue time, from Paved's own jobs."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q

from apps.dashboards.registry import (
    Area,
    Better,
    PartialRow,
    Period,
    Sample,
    SamplesKpi,
    ShareKpi,
    Target,
    Unit,
    of_teams,
    register,
)
from apps.training.models import ENDED_JOB_STATES, JobState, TrainingJob

NO_JOBS = "no data yet: no training job ended in this period"
NO_STARTS = "no data yet: no training job started in this period"


@register
class TrainingPipelineSuccess(ShareKpi):
    """Succeeded jobs / jobs that ended (succeeded, failed, cancelled, timed out, or lost for good) in the period,
    in percent; jobs submitted by a definition's schedule or trigger count like any other."""

    key = "training_success_rate"
    name = "Training pipeline success rate"
    area = Area.DELIVERY
    source = "training jobs (apps/training)"
    target = Target(green=95, amber=90, note="seed: 95-99% completion")
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_JOBS

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        # A job in `lost` is lost for good: one with a retry left is queued again in the same transaction.
        ended = TrainingJob.objects.filter(
            state__in=[*ENDED_JOB_STATES, JobState.LOST], finished_at__gte=period.start, finished_at__lt=period.end
        )
        return self.count_records(ended, Q(state=JobState.SUCCEEDED), period=period, when="finished_at",
                                  split_field="template_version__template__slug", team_ids=team_ids)  # fmt: skip


class _QueueTime(SamplesKpi):
    """Base of the queue-time percentiles: minutes from submitted to started, for jobs started in the period (a
    retried job's queue time spans its earlier attempts)."""

    kept_as = "training_queue"  # P50 and P95 keep the same samples: one set of kept days

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = "training jobs (apps/training)"
    dimensions = ("team", "instance_type")
    split = "instance_type"
    no_data = NO_STARTS

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        started = TrainingJob.objects.filter(started_at__gte=period.start, started_at__lt=period.end)
        rows = of_teams(started, team_ids).values_list(
            "team_id", "cluster__instance_type", "submitted_at", "started_at"
        )
        for team_id, instance_type, submitted, started_at in rows:
            yield team_id, instance_type or "", started_at, max(0.0, (started_at - submitted).total_seconds() / 60)


@register
class TrainingQueueP50(_QueueTime):
    """Median minutes from a training job's submission to its start, over the jobs started in the period."""

    key = "training_queue_p50"
    name = "Training queue time P50"
    quantile = 50
    target = Target(green=15, amber=30, better=Better.LOWER, note="seed: P50 < 15 min")


@register
class TrainingQueueP95(_QueueTime):
    """95th percentile of minutes from a training job's submission to its start, over the jobs started in the
    period."""

    key = "training_queue_p95"
    name = "Training queue time P95"
    quantile = 95
    target = Target(green=60, amber=90, better=Better.LOWER, note="seed: P95 < 60 min")
