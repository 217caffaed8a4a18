"""Multi-node training jobs: the nodes of the job's cluster claim its ranks as a gang (it starts once the last
rank is claimed; earlier claimants are answered 204 and get the same rank on their next claim), every node gets
torchrun's variables with rank 0's address, each node's log is numbered on its own and stored prefixed with its
rank, any rank's failure or time-out ends the job and the others are told to stop, cancel stops every node, a
silent node loses the job and the retry forms a new gang. Services with an explicit clock, plus the real agents of
two nodes running a job end to end."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.clusters.models import Cluster, ClusterState, Node
from apps.tracking.models import RunMetric
from apps.training.errors import UnknownAgentJob
from apps.training.models import JobNode, JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.agent import append_log, claim_job, job_environment, report_exit
from apps.training.services.jobs import cancel_job
from apps.training.services.scheduling import expire_jobs, lose_silent_jobs, schedule_jobs
from tests.factories import TrainingJobFactory, node_with_token
from tests.training.conftest import start_agent
from tests.waiting import wait_for

CLAIM = "/api/v1/training/agent/claim"
LOST_AFTER = timedelta(seconds=settings.TRAINING_LOST_AFTER_SECONDS + 1)


@pytest.fixture(autouse=True)
def fresh_throttle_cache() -> None:
    cache.clear()


@pytest.fixture
def nodes(gpu_box: Cluster) -> tuple[tuple[Node, str], tuple[Node, str]]:
    """The two registered nodes of vision's running 2 x 4-GPU cluster."""
    return (
        node_with_token(cluster=gpu_box, gpu_count=4, private_ip="10.0.0.1"),
        node_with_token(cluster=gpu_box, gpu_count=4, private_ip="10.0.0.2"),
    )


def two_node_job(cluster: Cluster, t0: datetime, **fields: Any) -> TrainingJob:
    job: TrainingJob = TrainingJobFactory(
        team=cluster.team, owner=cluster.owner, cluster=cluster, node_count=2, gpus_per_node=4, **fields
    )
    assert schedule_jobs(now=t0) == [job.pk]
    return job


def ganged(job: TrainingJob, a: Node, b: Node, t0: datetime) -> tuple[JobNode, JobNode]:
    """`a` claims rank 0 (and waits), `b` rank 1 (which starts the job), `a` picks up its rank."""
    assert claim_job(node=a, now=t0) is None
    second = claim_job(node=b, now=t0)
    first = claim_job(node=a, now=t0)
    assert first is not None
    assert second is not None
    return first, second


def fresh(job: TrainingJob) -> TrainingJob:
    return TrainingJob.objects.get(pk=job.pk)


def as_node(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {raw}")
    return client


def test_the_gang_starts_only_once_every_rank_is_claimed_and_each_node_gets_its_rank(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, raw_a), (_b, raw_b) = nodes
    job = two_node_job(gpu_box, t0)

    assert as_node(raw_a).post(CLAIM).status_code == 204  # rank 0 taken; the gang is not complete
    assert as_node(raw_a).post(CLAIM).status_code == 204  # polling again changes nothing
    assert fresh(job).state == JobState.SCHEDULING
    assert list(JobNode.objects.filter(job=job).values_list("node", "rank", "started_at")) == [(a.pk, 0, None)]

    second = as_node(raw_b).post(CLAIM)
    first = as_node(raw_a).post(CLAIM)

    assert second.status_code == first.status_code == 200
    job = fresh(job)
    assert (job.state, job.node) == (JobState.RUNNING, a)  # the job's node is rank 0, the rendezvous
    assert (first.json()["rank"], second.json()["rank"]) == (0, 1)
    for body in (first.json(), second.json()):
        assert body["id"] == job.pk
        assert (body["gpus_per_node"], body["gpu_ids"]) == (4, [0, 1, 2, 3])
    env_a, env_b = first.json()["environment"], second.json()["environment"]
    for rank, env in ((0, env_a), (1, env_b)):
        assert {name: env[name] for name in (
            "RANK", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
            "PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT", "PAVED_NODE_RANK",
        )} == {
            "RANK": str(rank), "NODE_RANK": str(rank), "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "PET_NNODES": "2", "PET_NODE_RANK": str(rank),
            "PET_MASTER_ADDR": "10.0.0.1", "PET_MASTER_PORT": "29500", "PAVED_NODE_RANK": str(rank),
        }  # fmt: skip
    assert "MLFLOW_TRACKING_TOKEN" in env_a  # rank 0 logs to the job's tracking run
    assert not any(name.startswith("MLFLOW_") for name in env_b)


def test_a_node_of_another_attempt_or_cluster_takes_no_rank_and_a_third_node_finds_the_gang_full(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    third, _raw = node_with_token(cluster=gpu_box, gpu_count=4, private_ip="10.0.0.3")
    job = two_node_job(gpu_box, t0)
    ganged(job, a, b, t0)

    assert claim_job(node=third, now=t0) is None
    assert JobNode.objects.filter(job=job).count() == 2
    with pytest.raises(UnknownAgentJob):
        append_log(node=third, job_id=job.pk, first_line=1, lines=["forged"], now=t0)


def test_each_node_numbers_its_own_lines_and_the_log_keeps_arrival_order_with_rank_prefixes(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    first, second = ganged(job, a, b, t0)
    assert first.next_line == second.next_line == 1

    metric = 'paved:metric {"key": "loss", "value": 0.5, "step": 1}'
    assert append_log(node=a, job_id=job.pk, first_line=1, lines=["a1", metric], now=t0).next_line == 3
    assert append_log(node=b, job_id=job.pk, first_line=1, lines=["b1"], now=t0).next_line == 2
    resent = append_log(node=b, job_id=job.pk, first_line=1, lines=["b1", "b2"], now=t0)  # half resent
    other_metric = 'paved:metric {"key": "loss", "value": 9, "step": 1}'
    append_log(node=b, job_id=job.pk, first_line=3, lines=[other_metric], now=t0)

    assert (resent.accepted, resent.next_line, resent.stop) == (1, 3, False)
    assert iter_job_log(job) == [
        "[rank 0] a1", f"[rank 0] {metric}", "[rank 1] b1", "[rank 1] b2", f"[rank 1] {other_metric}",
    ]  # fmt: skip
    assert list(RunMetric.objects.filter(run__training_job=job).values_list("key", "value")) == [("loss", 0.5)]
    assert list(JobNode.objects.filter(job=job).values_list("rank", "next_line")) == [(0, 3), (1, 4)]


def test_the_job_succeeds_once_every_rank_exited_zero(gpu_box: Cluster, nodes: Any, t0: datetime) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    ganged(job, a, b, t0)

    assert report_exit(node=a, job_id=job.pk, exit_code=0, now=t0).state == JobState.RUNNING
    assert claim_job(node=a, now=t0) is None  # a rank that exited is no orphan: claiming again loses nothing
    assert fresh(job).state == JobState.RUNNING
    later = t0 + LOST_AFTER
    append_log(node=b, job_id=job.pk, first_line=1, lines=["still training"], now=later)
    assert lose_silent_jobs(now=later) == []  # rank 0 is silent because it ended, not lost

    done = report_exit(node=b, job_id=job.pk, exit_code=0, now=later)

    assert (done.state, done.exit_code, done.state_reason) == (JobState.SUCCEEDED, 0, "all 2 ranks exited with code 0")
    assert list(JobNode.objects.filter(job=job).values_list("rank", "exit_code")) == [(0, 0), (1, 0)]


def test_a_failing_rank_fails_the_job_and_the_other_rank_is_told_to_stop(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    ganged(job, a, b, t0)

    failed = report_exit(node=b, job_id=job.pk, exit_code=1, now=t0)
    answer = append_log(node=a, job_id=job.pk, first_line=1, lines=["Terminated"], now=t0)
    after = report_exit(node=a, job_id=job.pk, exit_code=-15, now=t0)

    assert (failed.state, failed.exit_code, failed.state_reason) == (JobState.FAILED, 1, "rank 1 exited with code 1")
    assert (answer.state, answer.stop) == (JobState.FAILED, True)
    assert (after.state, after.exit_code) == (JobState.FAILED, 1)  # the first outcome stands
    assert list(JobNode.objects.filter(job=job).values_list("rank", "exit_code")) == [(0, -15), (1, 1)]


def test_any_rank_timing_out_times_the_job_out_and_the_timeout_pass_stops_every_node(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0, max_run_minutes=10)
    ganged(job, a, b, t0)
    assert report_exit(node=b, job_id=job.pk, exit_code=-15, timed_out=True, now=t0).state == JobState.TIMED_OUT

    other = two_node_job(gpu_box, t0, max_run_minutes=10)
    ganged(other, a, b, t0)
    assert expire_jobs(now=t0 + timedelta(minutes=10)) == [other.pk]
    for node in (a, b):
        assert append_log(node=node, job_id=other.pk, first_line=1, lines=[], now=t0).stop


def test_cancelling_stops_every_node(gpu_box: Cluster, nodes: Any, alice: Any, t0: datetime) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    ganged(job, a, b, t0)

    cancel_job(actor=alice, job=fresh(job))

    for node in (a, b):
        answer = append_log(node=node, job_id=job.pk, first_line=1, lines=["Terminated"], now=t0)
        assert (answer.state, answer.stop) == (JobState.CANCELLED, True)
        assert report_exit(node=node, job_id=job.pk, exit_code=-15, now=t0).state == JobState.CANCELLED


def test_cancelling_while_the_gang_gathers_frees_the_waiting_node(
    gpu_box: Cluster, nodes: Any, alice: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    assert claim_job(node=a, now=t0) is None

    cancel_job(actor=alice, job=fresh(job))

    assert claim_job(node=a, now=t0) is None
    assert claim_job(node=b, now=t0) is None
    assert fresh(job).state == JobState.CANCELLED


def test_a_gang_given_up_when_its_cluster_stopped_forms_afresh_once_placed_again(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    assert claim_job(node=a, now=t0) is None
    Cluster.objects.filter(pk=gpu_box.pk).update(state=ClusterState.STOPPED)
    schedule_jobs(now=t0)
    assert fresh(job).state == JobState.QUEUED
    assert not JobNode.objects.filter(job=job).exists()

    Cluster.objects.filter(pk=gpu_box.pk).update(state=ClusterState.RUNNING)
    assert schedule_jobs(now=t0) == [job.pk]
    assert claim_job(node=b, now=t0) is None
    assert claim_job(node=a, now=t0) is not None
    assert fresh(job).node == b


def test_one_silent_node_loses_the_job_and_the_retry_forms_a_new_gang(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0, max_retries=1)
    ganged(job, a, b, t0)
    append_log(node=a, job_id=job.pk, first_line=1, lines=["attempt 1"], now=t0)
    later = t0 + LOST_AFTER
    append_log(node=a, job_id=job.pk, first_line=2, lines=[], now=later)  # rank 0 keeps heartbeating; rank 1 not

    assert lose_silent_jobs(now=t0 + timedelta(seconds=30)) == []
    assert lose_silent_jobs(now=later) == [job.pk]

    job = fresh(job)
    assert (job.state, job.retries) == (JobState.QUEUED, 1)
    assert job.state_reason.startswith(f"retry 1 of 1 after: node {b.instance_id} sent nothing for over")
    with pytest.raises(UnknownAgentJob):  # the first attempt's nodes are told to stop by a 404
        append_log(node=a, job_id=job.pk, first_line=2, lines=["late"], now=later)
    assert schedule_jobs(now=later) == [job.pk]
    assert claim_job(node=b, now=later) is None  # the new gang forms in the new claim order
    rank_1 = claim_job(node=a, now=later)
    rank_0 = claim_job(node=b, now=later)

    assert rank_0 is not None
    assert rank_1 is not None
    assert (rank_0.node, rank_0.rank, rank_0.attempt, rank_1.node, rank_1.rank) == (b, 0, 1, a, 1)
    assert rank_0.next_line == rank_1.next_line == 2  # the retry's log continues the first attempt's
    assert job_environment(fresh(job), a)["MASTER_ADDR"] == "10.0.0.2"
    assert fresh(job).node == b
    assert JobNode.objects.filter(job=job).count() == 4


def test_a_node_that_goes_silent_while_the_gang_gathers_loses_the_job(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), _b = nodes
    job = two_node_job(gpu_box, t0)
    assert claim_job(node=a, now=t0) is None
    assert claim_job(node=a, now=t0 + timedelta(seconds=60)) is None  # a waiting node's poll is its heartbeat

    assert lose_silent_jobs(now=t0 + timedelta(seconds=100)) == []
    assert lose_silent_jobs(now=t0 + timedelta(seconds=60) + LOST_AFTER) == [job.pk]
    assert fresh(job).state == JobState.LOST


def test_an_agent_that_restarts_while_its_rank_runs_loses_the_job_for_every_node(
    gpu_box: Cluster, nodes: Any, t0: datetime
) -> None:
    (a, _), (b, _) = nodes
    job = two_node_job(gpu_box, t0)
    ganged(job, a, b, t0)

    assert claim_job(node=b, now=t0) is None

    job = fresh(job)
    assert job.state == JobState.LOST
    assert f"the agent on node {b.instance_id} restarted while it ran" in job.state_reason
    assert append_log(node=a, job_id=job.pk, first_line=1, lines=[], now=t0).stop


RANKED = """
import os, signal, sys
print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'at', os.environ['MASTER_ADDR'], flush=True)
if os.environ['RANK'] == sys.argv[1]:
    sys.exit(1)
if sys.argv[1] != '-':
    signal.pause()  # the healthy rank of a failing job runs until it is stopped
"""


def run_on_two_agents(live_server: Any, nodes: Any, job: TrainingJob, *states: str) -> TrainingJob:
    agents = [start_agent(live_server.url, node) for node in nodes]
    try:

        def ended() -> TrainingJob | None:
            current = fresh(job)
            return current if current.state in states else None

        ended_job = wait_for(ended, timeout=60, message=lambda: f"job #{job.pk} to end ({fresh(job).state})")
        wait_for(
            lambda: not JobNode.objects.filter(job=job, exit_code__isnull=True).exists(),
            timeout=60,
            message="every node to report its exit",
        )
    finally:
        for proc in agents:
            proc.terminate()
    for proc in agents:
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err, err
    return ended_job


@pytest.mark.django_db(transaction=True)
def test_two_real_agents_run_both_ranks_of_a_job_and_a_failing_rank_stops_the_other(
    live_server: Any, gpu_box: Cluster, nodes: Any
) -> None:
    job: TrainingJob = TrainingJobFactory(
        team=gpu_box.team, owner=gpu_box.owner, cluster=gpu_box, node_count=2, gpus_per_node=4,
        command=[sys.executable, "-c", RANKED, "-"],
    )  # fmt: skip
    assert schedule_jobs() == [job.pk]

    done = run_on_two_agents(live_server, nodes, job, JobState.SUCCEEDED, JobState.FAILED)

    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0)
    master = JobNode.objects.get(job=job, rank=0).node
    assert sorted(iter_job_log(job)) == [
        f"[rank 0] rank 0 of 2 at {master.private_ip}",
        f"[rank 1] rank 1 of 2 at {master.private_ip}",
    ]

    failing: TrainingJob = TrainingJobFactory(
        team=gpu_box.team, owner=gpu_box.owner, cluster=gpu_box, node_count=2, gpus_per_node=4,
        command=[sys.executable, "-c", RANKED, "1"],
    )  # fmt: skip
    assert schedule_jobs() == [failing.pk]

    failed = run_on_two_agents(live_server, nodes, failing, JobState.SUCCEEDED, JobState.FAILED)

    assert (failed.state, failed.exit_code, failed.state_reason) == (JobState.FAILED, 1, "rank 1 exited with code 1")
    stopped = JobNode.objects.get(job=failing, rank=0)
    assert stopped.exit_code == -15  # the agent stopped rank 0's process (SIGTERM) once told to
    assert len(iter_job_log(failing)) == 2
