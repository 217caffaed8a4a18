"""Training KPIs (the seed blueprint's table): pipeline success rate and queue time, from Paved's own jobs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q, QuerySet

from apps.dashboards.registry import Area, Better, Kpi, Measurement, Period, Scope, ShareKpi, Target, Unit, register
from apps.dashboards.stats import percentile
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
    no_data = NO_JOBS

    def counts(self, *, period: Period, team_ids: list[int] | None) -> dict[int, tuple[int, int]]:
        # A job in `lost` is lost for good: one with a retry left is queued again in the same transaction.
        ended = TrainingJob.objects.filter(
            state__in=[*ENDED_JOB_STATES, JobState.LOST], finished_at__gte=period.start, finished_at__lt=period.end
        )
        return self.count_records(ended, Q(state=JobState.SUCCEEDED), team_ids)


class _QueueTime(Kpi):
    """Base of the queue-time percentiles: minutes from submitted to started, for jobs started in the period (a
    retried job's queue time spans its earlier attempts)."""

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = "training jobs (apps/training)"
    dimensions = ("team", "instance_type")
    quantile: float

    def _minutes(self, jobs: QuerySet[TrainingJob]) -> dict[int, list[float]]:
        by_team: dict[int, list[float]] = defaultdict(list)
        for team_id, submitted, started in jobs.values_list("team_id", "submitted_at", "started_at"):
            if started is not None:
                by_team[team_id].append(max(0.0, (started - submitted).total_seconds() / 60))
        return by_team

    def _started(self, period: Period) -> QuerySet[TrainingJob]:
        return TrainingJob.objects.filter(started_at__gte=period.start, started_at__lt=period.end)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        minutes = [value for values in self._minutes(scope.filter(self._started(period))).values() for value in values]
        if not minutes:
            return Measurement.none(NO_STARTS)
        return Measurement(value=percentile(minutes, self.quantile), sample=len(minutes))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        found = self._minutes(self._started(period).filter(team_id__in=wanted))
        return {
            team_id: Measurement(value=percentile(found[team_id], self.quantile), sample=len(found[team_id]))
            if found.get(team_id)
            else Measurement.none(NO_STARTS)
            for team_id in wanted
        }


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
