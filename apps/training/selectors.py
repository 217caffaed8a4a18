"""Reads of training jobs. `jobs_for` is the one place a caller's view of jobs is scoped to their teams."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, restrict
from apps.clusters.models import Cluster, Node
from apps.training.models import (
    ACTIVE_JOB_STATES,
    ENDED_JOB_STATES,
    DefinitionFire,
    JobDefinition,
    JobLogChunk,
    JobNode,
    JobState,
    TrainingJob,
)
from apps.training.spec import next_fire_time


def jobs_for(user: AnyUser) -> QuerySet[TrainingJob]:
    """Jobs of the user's teams (others' jobs do not exist for them: 404)."""
    return restrict(TrainingJob.objects.select_related("team", "owner", "cluster", "definition"), user)


def queue(*, cluster_id: int | None = None) -> QuerySet[TrainingJob]:
    """Queued jobs, first submitted first (the order the scheduler places them in)."""
    queued = TrainingJob.objects.filter(state=JobState.QUEUED)
    if cluster_id is not None:
        queued = queued.filter(cluster_id=cluster_id)
    return queued.order_by("submitted_at", "pk")


def job_on_cluster(cluster: Cluster) -> TrainingJob | None:
    """The job holding `cluster` (scheduled or running); a cluster runs one job at a time."""
    return TrainingJob.objects.filter(cluster=cluster, state__in=ACTIVE_JOB_STATES).order_by("pk").first()


def team_training_gpus(team: Team) -> int:
    """GPUs the team's scheduled and running jobs hold, counted against its effective GPU quota."""
    return sum(
        job.gpus
        for job in TrainingJob.objects.filter(team=team, state__in=ACTIVE_JOB_STATES).only(
            "gpus_per_node", "node_count"
        )
    )


def overdue_jobs(*, now: datetime) -> list[TrainingJob]:
    """Running jobs past their max run time at `now` (few: at most one per cluster)."""
    running = TrainingJob.objects.filter(state=JobState.RUNNING, started_at__isnull=False).order_by("pk")
    return [
        job
        for job in running
        if job.started_at is not None and job.started_at + timedelta(minutes=job.max_run_minutes) <= now
    ]


def silent_jobs(*, now: datetime, after_seconds: int) -> list[tuple[TrainingJob, Node | None]]:
    """Jobs one of whose nodes has sent nothing (no log post, no claim poll) for `after_seconds` at `now`, each
    with that node: a running job with a silent node (one that has not reported its exit yet), a job still
    gathering its gang (scheduling) with a silent early claimant, and a running job silent as a whole."""
    cutoff = now - timedelta(seconds=after_seconds)
    silent_nodes = JobNode.objects.filter(exit_code__isnull=True, last_heartbeat_at__lt=cutoff)
    jobs = (
        TrainingJob.objects.alias(
            has_silent_node=Exists(silent_nodes.filter(job=OuterRef("pk"), attempt=OuterRef("retries")))
        )
        .filter(
            Q(state=JobState.RUNNING, last_heartbeat_at__lt=cutoff)
            | Q(state__in=ACTIVE_JOB_STATES, has_silent_node=True)
        )
        .select_related("node")
        .order_by("pk")
    )
    found: list[tuple[TrainingJob, Node | None]] = []
    for job in jobs:
        of_attempt = silent_nodes.filter(job=job, attempt=job.retries).select_related("node")
        silent = of_attempt.order_by("last_heartbeat_at").first()
        found.append((job, silent.node if silent else job.node))
    return found


def unclaimed_jobs(*, now: datetime, after_seconds: int) -> list[tuple[TrainingJob, int]]:
    """Jobs placed on their cluster over `after_seconds` ago whose gang is still incomplete (no agent claimed a
    single-node job; a node of a multi-node job never came), each with the number of ranks claimed."""
    cutoff = now - timedelta(seconds=after_seconds)
    found = []
    for job in TrainingJob.objects.filter(state=JobState.SCHEDULING, scheduled_at__lt=cutoff).order_by("pk"):
        claimed = JobNode.objects.filter(job=job, attempt=job.retries).count()
        if claimed < job.node_count:
            found.append((job, claimed))
    return found


def attempt_nodes(job: TrainingJob) -> QuerySet[JobNode]:
    """The nodes of the job's current attempt, by rank (rank 0 is the rendezvous)."""
    return JobNode.objects.filter(job=job, attempt=job.retries).select_related("node").order_by("rank")


def job_node_of(job: TrainingJob, node: Node) -> JobNode | None:
    """`node`'s part in the job's current attempt, if it claimed one."""
    return attempt_nodes(job).filter(node=node).first()


def job_log_tail(job: TrainingJob, *, chunks: int = 200) -> tuple[int, list[str]]:
    """The first line number and the lines of the job's last `chunks` log chunks (about the last `chunks`
    seconds of output), oldest first: what the job page shows."""
    rows = list(JobLogChunk.objects.filter(job=job).order_by("-seq").values_list("first_line", "text")[:chunks])
    rows.reverse()
    if not rows:
        return 1, []
    return rows[0][0], [line for _, text in rows for line in text.split("\n")]


def last_log_chunk(job: TrainingJob) -> JobLogChunk | None:
    return JobLogChunk.objects.filter(job=job).order_by("-seq").first()


def line_after(chunk: JobLogChunk | None) -> int:
    """The number of the line that follows `chunk` (1 for an empty log)."""
    return chunk.first_line + chunk.line_count if chunk else 1


def next_log_line(job: TrainingJob) -> int:
    """Where the job's log continues (a retried job's attempts share one log, numbered from 1)."""
    return line_after(last_log_chunk(job))


def iter_job_log(job: TrainingJob) -> list[str]:
    """The job's log lines in order (tests and small logs; the page reads `job_log_tail`)."""
    texts = JobLogChunk.objects.filter(job=job).order_by("seq").values_list("text", flat=True)
    return [line for text in texts for line in text.split("\n")]


def definitions_for(user: AnyUser) -> QuerySet[JobDefinition]:
    """Job definitions of the user's teams (others' do not exist for them: 404)."""
    return restrict(JobDefinition.objects.select_related("team", "owner", "cluster"), user)


def due_definitions(*, now: datetime) -> QuerySet[JobDefinition]:
    """Scheduled, not suspended definitions whose next cron time has come, the longest waiting first."""
    return (
        JobDefinition.objects.filter(suspended=False, next_run_at__lte=now)
        .exclude(schedule="")
        .order_by("next_run_at", "pk")
    )


def recent_fires(definition: JobDefinition, *, limit: int = 50) -> list[DefinitionFire]:
    """The definition's latest firings with their jobs (the job's state is the firing's result)."""
    return list(definition.fires.select_related("job", "actor").order_by("-fired_at", "-id")[:limit])


def last_fire(definition: JobDefinition) -> DefinitionFire | None:
    return definition.fires.select_related("job").order_by("-fired_at", "-id").first()


def upcoming_runs(definition: JobDefinition, *, count: int = 3) -> list[datetime]:
    """The next cron times (none for a suspended or trigger-only definition)."""
    if definition.next_run_at is None or not definition.schedule:
        return []
    times = [definition.next_run_at]
    while len(times) < count:
        times.append(next_fire_time(definition.schedule, times[-1]))
    return times


def job_metrics(job: TrainingJob) -> dict[str, Any]:
    """The job's metric series (from its tracking run) and whether it may log more: the chart's and the API's."""
    from apps.tracking.selectors import metric_series, run_of_job

    run = run_of_job(job)
    series = metric_series(run) if run else {}
    return {
        "series": series,
        "points": sum(len(points) for points in series.values()),
        "running": job.state not in ENDED_JOB_STATES,
    }
