"""The scheduler pass: places queued jobs on clusters, first submitted first per cluster, within the team's
GPU quota; the timeout pass; and the liveness pass (a running job whose agent went silent is lost). Each takes
`now` and is safe to run twice or concurrently (beat runs them).

Placement rules, in order (the first that holds keeps the job queued and becomes its `state_reason`):
- the target cluster is not running, or already holds a job (a cluster runs one job at a time);
- an older queued job waits for the same cluster (strict FIFO: no job jumps the queue, even a smaller one);
- the team's scheduled and running jobs plus this one would exceed its effective GPU quota
  (`clusters.selectors.effective_quota`: the team quota plus active exceptions).
A job without a target cluster takes the first running cluster of its team that fits and is free (never a cluster
made for another job). A job whose own cluster (`owns_cluster`) failed or went away before it ran fails."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.selectors import effective_quota
from apps.training import selectors
from apps.training.errors import IllegalJobTransition
from apps.training.models import JobNode, JobState, TrainingJob
from apps.training.services.job_clusters import fail_job_without_cluster
from apps.training.services.jobs import lose_job
from apps.training.services.transitions import job_transition

MAX_JOBS_PER_PASS = 500


def schedule_jobs(*, now: datetime | None = None) -> list[int]:
    """One pass over the queue; returns the ids of the jobs it moved to scheduling."""
    now = now or timezone.now()
    _requeue_stranded()
    queued = list(selectors.queue().values_list("pk", flat=True)[:MAX_JOBS_PER_PASS])
    return [pk for pk in queued if _place(pk, now=now)]


def _requeue_stranded() -> None:
    """A scheduled job whose cluster stopped before the agent started it waits again for the cluster (the ranks
    its nodes claimed meanwhile are given up: the gang forms afresh once it is placed again)."""
    stranded = TrainingJob.objects.filter(state=JobState.SCHEDULING).exclude(cluster__state=ClusterState.RUNNING)
    for job in stranded.select_related("cluster"):
        try:
            job_transition(
                job=job,
                to=JobState.QUEUED,
                reason=f"waiting: cluster {job.cluster.name if job.cluster else ''} stopped before the job started",
            )
        except IllegalJobTransition:
            continue  # it started or ended meanwhile
        JobNode.objects.filter(job=job, attempt=job.retries).delete()


def _place(pk: int, *, now: datetime) -> bool:
    with transaction.atomic():
        job = TrainingJob.objects.select_for_update(of=("self",)).select_related("team", "cluster").get(pk=pk)
        if job.state != JobState.QUEUED:
            return False
        # One team's placements are serialized (its clusters and its quota): two passes cannot both take them.
        team = Team.objects.select_for_update().get(pk=job.team_id)
        if job.cluster is not None and fail_job_without_cluster(job=job, cluster=job.cluster, now=now) is not None:
            return False
        cluster, waiting = _choose_cluster(job)
        if cluster is None:
            return _wait(job, waiting)
        quota = effective_quota(team)
        used = selectors.team_training_gpus(team)
        if used + job.gpus > quota.max_gpus:
            return _wait(
                job,
                f"over the team's GPU quota: needs {job.gpus} GPUs, {used} of {quota.max_gpus} held by the "
                "team's running jobs",
            )
        job_transition(
            job=job,
            to=JobState.SCHEDULING,
            reason=f"scheduled on cluster {cluster.name}; waiting for the node agent to start it",
            cluster=cluster,
            scheduled_at=now,
        )
        return True


def _wait(job: TrainingJob, reason: str) -> bool:
    """Say why the job still waits (not a transition: it stays queued)."""
    reason = reason[:300]
    if job.state_reason != reason:
        TrainingJob.objects.filter(pk=job.pk).update(state_reason=reason, updated_at=timezone.now())
    return False


def _choose_cluster(job: TrainingJob) -> tuple[Cluster | None, str]:
    if job.cluster is not None:
        return _free(job, job.cluster)
    fitting = (
        Cluster.objects.filter(
            team_id=job.team_id,
            state=ClusterState.RUNNING,
            gpus_per_node__gte=job.gpus_per_node,
            node_count__gte=job.node_count,
        )
        .exclude(training_jobs__owns_cluster=True)
        .order_by("pk")
    )
    for cluster in fitting:
        if _free(job, cluster)[0] is not None:
            return cluster, ""
    return None, (
        f"waiting: no running cluster of team {job.team.slug} with {job.node_count} x {job.gpus_per_node} GPUs is free"
    )


def _free(job: TrainingJob, cluster: Cluster) -> tuple[Cluster | None, str]:
    if cluster.state in (ClusterState.REQUESTED, ClusterState.PROVISIONING):
        return None, f"waiting: cluster {cluster.name} is provisioning"
    if cluster.state != ClusterState.RUNNING:
        return None, f"waiting: cluster {cluster.name} is {cluster.state}"
    holder = selectors.job_on_cluster(cluster)
    if holder is not None:
        return None, f"waiting: cluster {cluster.name} runs job #{holder.pk}"
    ahead = (
        selectors.queue(cluster_id=cluster.pk)
        .filter(Q(submitted_at__lt=job.submitted_at) | Q(submitted_at=job.submitted_at, pk__lt=job.pk))
        .first()
    )
    if ahead is not None:
        return None, f"waiting: job #{ahead.pk} is ahead of it on cluster {cluster.name}"
    return cluster, ""


def expire_jobs(*, now: datetime | None = None) -> list[int]:
    """Time out running jobs past their max run time at `now`; returns their ids."""
    now = now or timezone.now()
    expired = []
    for job in selectors.overdue_jobs(now=now):
        try:
            job_transition(
                job=job,
                to=JobState.TIMED_OUT,
                reason=f"ran past its max run time of {job.max_run_minutes} minutes",
                finished_at=now,
            )
        except IllegalJobTransition:
            continue  # it ended meanwhile
        expired.append(job.pk)
    return expired


def lose_silent_jobs(*, now: datetime | None = None) -> list[int]:
    """Mark lost the jobs one of whose nodes stopped posting (a dead node, a killed agent) for longer than
    TRAINING_LOST_AFTER_SECONDS (a running job, or one gathering its gang), and the placed jobs whose gang no
    agent completed within TRAINING_CLAIM_TIMEOUT_SECONDS (a node that never came would hold the cluster for
    ever); the retry is a new attempt, whose gang forms afresh; each job's retry policy then applies
    (`lose_job`). Returns their ids."""
    now = now or timezone.now()
    after = settings.TRAINING_LOST_AFTER_SECONDS
    lost = []
    reasons = [
        (job, f"{f'node {node.instance_id}' if node else 'its node'} sent nothing for over {after} s")
        for job, node in selectors.silent_jobs(now=now, after_seconds=after)
    ]
    claim_after = settings.TRAINING_CLAIM_TIMEOUT_SECONDS
    reasons += [
        (job, f"{claimed} of {job.node_count} node(s) claimed it within {claim_after} s of its placement")
        for job, claimed in selectors.unclaimed_jobs(now=now, after_seconds=claim_after)
    ]
    for job, reason in reasons:
        try:
            lose_job(job=job, reason=reason, now=now)
        except IllegalJobTransition:
            continue  # it ended meanwhile
        lost.append(job.pk)
    return lost
