"""The scheduler: FIFO per cluster, one job per cluster, the team's GPU quota, and why a job waits; timeouts by
an explicit clock; cancelling frees the cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState
from apps.training.models import JobState
from apps.training.services.jobs import cancel_job, finish_job, start_job
from apps.training.services.scheduling import expire_jobs, lose_silent_jobs, schedule_jobs
from tests.factories import ClusterFactory, TrainingJobFactory


def _job(team: Any, owner: Any, at: Any, **fields: Any) -> Any:
    return TrainingJobFactory(team=team, owner=owner, submitted_at=at, **fields)


def test_the_oldest_job_takes_a_free_cluster_and_the_next_waits_saying_why(
    alice: Any, vision: Any, gpu_box: Any, t0: Any
) -> None:
    second = _job(vision, alice, t0 + timedelta(seconds=1), cluster=gpu_box)
    first = _job(vision, alice, t0, cluster=gpu_box)

    moved = schedule_jobs(now=t0 + timedelta(minutes=1))

    first.refresh_from_db()
    second.refresh_from_db()
    assert moved == [first.pk]
    assert (first.state, first.scheduled_at) == (JobState.SCHEDULING, t0 + timedelta(minutes=1))
    assert first.state_reason == "scheduled on cluster gpu-box; waiting for the node agent to start it"
    assert second.state == JobState.QUEUED
    assert second.state_reason == f"waiting: cluster gpu-box runs job #{first.pk}"
    assert AuditEvent.objects.filter(verb="training_job.scheduling", target_id=str(first.pk)).exists()


def test_when_the_running_job_ends_the_next_in_line_gets_the_cluster(
    alice: Any, vision: Any, gpu_box: Any, t0: Any
) -> None:
    first = _job(vision, alice, t0, cluster=gpu_box)
    second = _job(vision, alice, t0 + timedelta(seconds=1), cluster=gpu_box)
    third = _job(vision, alice, t0 + timedelta(seconds=2), cluster=gpu_box)
    schedule_jobs(now=t0)
    start_job(job=first, now=t0)
    finish_job(job=first, exit_code=0, now=t0 + timedelta(minutes=10))

    moved = schedule_jobs(now=t0 + timedelta(minutes=11))

    third.refresh_from_db()
    assert moved == [second.pk]
    assert third.state_reason == f"waiting: cluster gpu-box runs job #{second.pk}"


def test_a_job_over_the_remaining_quota_waits_and_holds_its_place_in_line(
    alice: Any, vision: Any, gpu_box: Any, quota_of: Any, t0: Any
) -> None:
    quota_of(8)
    other_box = ClusterFactory(team=vision, owner=alice, name="other", state=ClusterState.RUNNING, gpus_per_node=8)
    busy = _job(vision, alice, t0, cluster=other_box, gpus_per_node=6)
    big = _job(vision, alice, t0 + timedelta(seconds=1), cluster=gpu_box, gpus_per_node=4)
    small = _job(vision, alice, t0 + timedelta(seconds=2), cluster=gpu_box, gpus_per_node=1)

    moved = schedule_jobs(now=t0)

    big.refresh_from_db()
    small.refresh_from_db()
    assert moved == [busy.pk]
    assert big.state == JobState.QUEUED
    assert big.state_reason == "over the team's GPU quota: needs 4 GPUs, 6 of 8 held by the team's running jobs"
    # Strict FIFO: the smaller job behind it would fit the quota, but does not jump the queue.
    assert small.state_reason == f"waiting: job #{big.pk} is ahead of it on cluster gpu-box"

    cancel_job(actor=alice, job=busy)
    assert schedule_jobs(now=t0 + timedelta(minutes=1)) == [big.pk]


def test_a_job_waits_for_a_stopped_cluster(alice: Any, vision: Any, t0: Any) -> None:
    stopped = ClusterFactory(team=vision, owner=alice, name="parked", state=ClusterState.STOPPED)
    job = _job(vision, alice, t0, cluster=stopped)

    assert schedule_jobs(now=t0) == []

    job.refresh_from_db()
    assert (job.state, job.state_reason) == (JobState.QUEUED, "waiting: cluster parked is stopped")


def test_a_job_without_a_cluster_takes_the_first_free_one_that_fits(alice: Any, vision: Any, t0: Any) -> None:
    ClusterFactory(team=vision, owner=alice, name="small", state=ClusterState.RUNNING, gpus_per_node=1)
    big = ClusterFactory(team=vision, owner=alice, name="big", state=ClusterState.RUNNING, gpus_per_node=4)
    job = _job(vision, alice, t0, gpus_per_node=4)
    waiting = _job(vision, alice, t0 + timedelta(seconds=1), gpus_per_node=4)

    assert schedule_jobs(now=t0) == [job.pk]

    job.refresh_from_db()
    waiting.refresh_from_db()
    assert job.cluster == big
    assert waiting.state_reason == "waiting: no running cluster of team vision with 1 x 4 GPUs is free"


def test_another_teams_jobs_do_not_hold_this_teams_quota(
    alice: Any, vision: Any, bob: Any, nlp: Any, gpu_box: Any, quota_of: Any, t0: Any
) -> None:
    quota_of(4)
    theirs = ClusterFactory(team=nlp, owner=bob, state=ClusterState.RUNNING, gpus_per_node=8)
    _job(nlp, bob, t0, cluster=theirs, gpus_per_node=8)
    mine = _job(vision, alice, t0 + timedelta(seconds=1), cluster=gpu_box, gpus_per_node=4)

    assert mine.pk in schedule_jobs(now=t0)


def test_a_scheduled_job_whose_cluster_stopped_goes_back_to_the_queue(
    alice: Any, vision: Any, gpu_box: Any, t0: Any
) -> None:
    job = _job(vision, alice, t0, cluster=gpu_box)
    schedule_jobs(now=t0)
    Cluster.objects.filter(pk=gpu_box.pk).update(state=ClusterState.STOPPED)

    assert schedule_jobs(now=t0 + timedelta(minutes=1)) == []

    job.refresh_from_db()
    assert (job.state, job.state_reason) == (JobState.QUEUED, "waiting: cluster gpu-box is stopped")


def test_a_job_running_past_its_max_run_time_times_out(alice: Any, vision: Any, gpu_box: Any, t0: Any) -> None:
    job = _job(vision, alice, t0, cluster=gpu_box, max_run_minutes=30)
    schedule_jobs(now=t0)
    start_job(job=job, now=t0)

    assert expire_jobs(now=t0 + timedelta(minutes=29, seconds=59)) == []
    assert expire_jobs(now=t0 + timedelta(minutes=30)) == [job.pk]

    job.refresh_from_db()
    assert (job.state, job.finished_at, job.run_seconds) == (JobState.TIMED_OUT, t0 + timedelta(minutes=30), 1800)
    assert job.state_reason == "ran past its max run time of 30 minutes"
    assert AuditEvent.objects.filter(verb="training_job.timed_out", target_id=str(job.pk)).exists()
    assert expire_jobs(now=t0 + timedelta(hours=2)) == []


def test_cancelling_a_queued_job_ends_it_and_is_audited(alice: Any, vision: Any, gpu_box: Any, t0: Any) -> None:
    job = _job(vision, alice, t0, cluster=gpu_box)

    cancel_job(actor=alice, job=job, now=t0 + timedelta(minutes=1))

    job.refresh_from_db()
    assert (job.state, job.state_reason, job.finished_at) == (
        JobState.CANCELLED,
        "cancelled by alice",
        t0 + timedelta(minutes=1),
    )
    event = AuditEvent.objects.get(verb="training_job.cancelled", target_id=str(job.pk))
    assert event.actor == alice
    assert schedule_jobs(now=t0 + timedelta(minutes=2)) == []


def test_cancelling_a_running_job_frees_its_cluster_for_the_next(
    alice: Any, vision: Any, gpu_box: Any, t0: Any
) -> None:
    first = _job(vision, alice, t0, cluster=gpu_box)
    second = _job(vision, alice, t0 + timedelta(seconds=1), cluster=gpu_box)
    schedule_jobs(now=t0)
    start_job(job=first, now=t0)

    cancel_job(actor=alice, job=first)

    assert schedule_jobs(now=t0 + timedelta(minutes=1)) == [second.pk]


def test_a_placed_job_no_agent_claims_is_lost_after_the_claim_timeout_and_retried(
    alice: Any, vision: Any, gpu_box: Any, t0: Any, settings: Any
) -> None:
    settings.TRAINING_CLAIM_TIMEOUT_SECONDS = 600
    job = _job(vision, alice, t0, cluster=gpu_box, max_retries=1)
    schedule_jobs(now=t0)

    assert lose_silent_jobs(now=t0 + timedelta(seconds=600)) == []  # not yet: agents poll about every second
    assert lose_silent_jobs(now=t0 + timedelta(seconds=601)) == [job.pk]

    job.refresh_from_db()
    assert (job.state, job.retries) == (JobState.QUEUED, 1)
    assert job.state_reason == "retry 1 of 1 after: 0 of 1 node(s) claimed it within 600 s of its placement"
    schedule_jobs(now=t0 + timedelta(seconds=602))
    assert lose_silent_jobs(now=t0 + timedelta(seconds=1203)) == [job.pk]
    job.refresh_from_db()
    assert job.state == JobState.LOST  # no retries left: it ends lost and frees the cluster
