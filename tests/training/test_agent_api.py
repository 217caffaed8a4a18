"""The node agent's training endpoints: claiming starts the job with torchrun's variables, the log is appended
in order (a resend is a no-op, a hole is refused) and says `stop` once the job was cancelled, the exit code ends
it; a missing or unknown token and another cluster's (or node's) job are refused with problem JSON, nothing
changed."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts.tokens import digest
from apps.clusters.models import ClusterState, Node
from apps.tracking.models import TrackingRun
from apps.training.models import JobLogChunk, JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.jobs import cancel_job
from apps.training.services.scheduling import schedule_jobs
from tests.factories import ClusterFactory, TrainingJobFactory, node_with_token

CLAIM = "/api/v1/training/agent/claim"


def logs_url(job: TrainingJob) -> str:
    return f"/api/v1/training/agent/jobs/{job.pk}/logs"


def finish_url(job: TrainingJob) -> str:
    return f"/api/v1/training/agent/jobs/{job.pk}/finish"


def as_node(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {raw}")
    return client


@pytest.fixture(autouse=True)
def fresh_throttle_cache() -> None:
    cache.clear()


@pytest.fixture
def box(vision: Any, alice: Any) -> Any:
    return ClusterFactory(team=vision, owner=alice, name="box", state=ClusterState.RUNNING, gpus_per_node=4)


@pytest.fixture
def node(box: Any) -> tuple[Node, str]:
    return node_with_token(cluster=box, gpu_count=4, private_ip="10.0.0.7")


@pytest.fixture
def scheduled(vision: Any, alice: Any, box: Any) -> TrainingJob:
    job = TrainingJobFactory(
        team=vision, owner=alice, cluster=box, environment={"EPOCHS": "2", "RANK": "9"}, max_run_minutes=30,
        command=["python", "train.py", "--epochs", "2"],
    )  # fmt: skip
    assert schedule_jobs() == [job.pk]
    job.refresh_from_db()
    return job


def claimed(node: tuple[Node, str], job: TrainingJob) -> APIClient:
    client = as_node(node[1])
    assert client.post(CLAIM).status_code == 200
    return client


def test_claiming_starts_the_scheduled_job_on_this_node_with_torchrun_variables(
    node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    response = as_node(node[1]).post(CLAIM)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == scheduled.pk
    assert body["image"] == "ghcr.io/acme/trainer:1.0"
    assert body["command"] == ["python", "train.py", "--epochs", "2"]
    assert body["max_run_seconds"] == 30 * 60
    assert body["next_log_line"] == 1
    assert (body["rank"], body["gpus_per_node"], body["gpu_ids"]) == (0, 1, [0])
    environment = body["environment"]
    token = environment.pop("MLFLOW_TRACKING_TOKEN")
    run = TrackingRun.objects.get(training_job=scheduled)
    assert environment == {
        "EPOCHS": "2", "RANK": "0", "LOCAL_RANK": "0", "NODE_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "10.0.0.7", "MASTER_PORT": "29500", "PET_NNODES": "1", "PET_NODE_RANK": "0",
        "PET_MASTER_ADDR": "10.0.0.7", "PET_MASTER_PORT": "29500", "PAVED_JOB_ID": str(scheduled.pk), "PAVED_NODE_RANK": "0",
        "PAVED_DATASET_URI": "", "PAVED_OUTPUT_URI": "", "PAVED_HYPERPARAMETERS": "{}",
        "MLFLOW_TRACKING_URI": settings.PAVED_NODE_PORTAL_URL, "MLFLOW_RUN_ID": run.run_uuid,
        "MLFLOW_EXPERIMENT_ID": str(run.experiment_id),
    }  # fmt: skip
    assert token.startswith("pvj_")
    assert run.token_digest == digest(token)
    scheduled.refresh_from_db()
    assert scheduled.state == JobState.RUNNING
    assert scheduled.started_at is not None
    assert scheduled.node == node[0]
    assert scheduled.state_reason == f"running on cluster box, node {node[0].instance_id}"
    assert as_node(node[1]).post(CLAIM).status_code == 204  # one job at a time: nothing else is scheduled


def test_no_token_or_an_unknown_one_is_refused_and_the_job_stays_scheduled(scheduled: TrainingJob) -> None:
    for client in (APIClient(), as_node("pvn_not-a-token")):
        response = client.post(CLAIM)
        assert response.status_code == 401
        assert response["Content-Type"].startswith("application/problem+json")
    scheduled.refresh_from_db()
    assert (scheduled.state, scheduled.started_at) == (JobState.SCHEDULING, None)


def test_a_node_of_another_cluster_gets_nothing_and_cannot_touch_the_job(
    vision: Any, node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    other_cluster = ClusterFactory(team=vision, name="other", state=ClusterState.RUNNING, gpus_per_node=4)
    _other, raw = node_with_token(cluster=other_cluster)
    foreign = as_node(raw)

    assert foreign.post(CLAIM).status_code == 204
    claimed(node, scheduled)
    refused = [
        foreign.post(logs_url(scheduled), {"first_line": 1, "lines": ["forged"]}, format="json"),
        foreign.post(finish_url(scheduled), {"exit_code": 0}, format="json"),
    ]

    for response in refused:
        assert response.status_code == 404
        assert response["Content-Type"].startswith("application/problem+json")
        assert response.json()["code"] == "unknown_training_job"
    scheduled.refresh_from_db()
    assert scheduled.state == JobState.RUNNING
    assert not JobLogChunk.objects.filter(job=scheduled).exists()


def test_another_node_of_the_same_cluster_cannot_report_the_job(
    box: Any, node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    claimed(node, scheduled)
    _sibling, raw = node_with_token(cluster=box)
    response = as_node(raw).post(finish_url(scheduled), {"exit_code": 0}, format="json")
    assert response.status_code == 404
    scheduled.refresh_from_db()
    assert scheduled.state == JobState.RUNNING


def test_a_job_not_claimed_yet_has_no_log_and_no_exit(node: tuple[Node, str], scheduled: TrainingJob) -> None:
    response = as_node(node[1]).post(logs_url(scheduled), {"first_line": 1, "lines": ["x"]}, format="json")
    assert response.status_code == 404  # not this node's job until it claims it
    scheduled.refresh_from_db()
    assert scheduled.state == JobState.SCHEDULING


def test_log_batches_are_appended_in_order_a_resend_is_a_no_op_and_a_hole_is_refused(
    node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    client = claimed(node, scheduled)
    post = lambda first, lines: client.post(logs_url(scheduled), {"first_line": first, "lines": lines}, format="json")  # noqa: E731

    assert post(1, ["epoch 1 loss 0.5", ""]).json() == {
        "accepted": 2,
        "next_line": 3,
        "state": "running",
        "stop": False,
    }
    assert post(1, ["epoch 1 loss 0.5", ""]).json()["accepted"] == 0  # the agent resent after a timeout
    assert post(2, ["", "epoch 2 loss 0.25"]).json() == {"accepted": 1, "next_line": 4, "state": "running",
                                                        "stop": False}  # fmt: skip
    assert post(3, []).json()["accepted"] == 0  # a heartbeat that starts mid-log changes nothing
    hole = post(9, ["late"])

    assert hole.status_code == 409
    assert hole.json()["code"] == "log_lines_out_of_order"
    assert iter_job_log(scheduled) == ["epoch 1 loss 0.5", "", "epoch 2 loss 0.25"]


def test_log_batches_are_bounded(node: tuple[Node, str], scheduled: TrainingJob) -> None:
    client = claimed(node, scheduled)
    too_many = client.post(logs_url(scheduled), {"first_line": 1, "lines": ["x"] * 1001}, format="json")
    too_long = client.post(logs_url(scheduled), {"first_line": 1, "lines": ["x" * 4097]}, format="json")
    not_lines = client.post(logs_url(scheduled), {"first_line": 0, "lines": "x"}, format="json")

    for response in (too_many, too_long, not_lines):
        assert response.status_code == 400
        assert response["Content-Type"].startswith("application/problem+json")
    assert not JobLogChunk.objects.filter(job=scheduled).exists()


def test_the_log_answer_says_stop_once_the_job_was_cancelled(
    alice: Any, node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    client = claimed(node, scheduled)
    cancel_job(actor=alice, job=scheduled)

    answer = client.post(logs_url(scheduled), {"first_line": 1, "lines": ["Terminated"]}, format="json").json()
    finished = client.post(finish_url(scheduled), {"exit_code": -15}, format="json").json()

    assert answer == {"accepted": 1, "next_line": 2, "state": "cancelled", "stop": True}
    assert finished == {"id": scheduled.pk, "state": "cancelled", "exit_code": None}  # the cancel stands


@pytest.mark.parametrize(
    ("report", "state", "exit_code"),
    [
        ({"exit_code": 0}, JobState.SUCCEEDED, 0),
        ({"exit_code": 3}, JobState.FAILED, 3),
        ({"exit_code": -15, "timed_out": True}, JobState.TIMED_OUT, None),
    ],
)
def test_the_exit_report_ends_the_job_and_a_resend_changes_nothing(
    node: tuple[Node, str], scheduled: TrainingJob, report: dict[str, Any], state: str, exit_code: int | None
) -> None:
    client = claimed(node, scheduled)

    first = client.post(finish_url(scheduled), report, format="json")
    again = client.post(finish_url(scheduled), {"exit_code": 1}, format="json")

    assert first.status_code == 200, first.content
    assert first.json() == {"id": scheduled.pk, "state": state, "exit_code": exit_code}
    assert again.json() == first.json()
    scheduled.refresh_from_db()
    assert scheduled.finished_at is not None


def test_a_restarted_agent_loses_the_job_it_left_running_before_claiming_again(
    node: tuple[Node, str], scheduled: TrainingJob
) -> None:
    TrainingJob.objects.filter(pk=scheduled.pk).update(max_retries=1)
    client = claimed(node, scheduled)
    client.post(logs_url(scheduled), {"first_line": 1, "lines": ["attempt 1"]}, format="json")

    assert client.post(CLAIM).status_code == 204  # lost, queued again: the scheduler places it next
    scheduled.refresh_from_db()
    assert (scheduled.state, scheduled.retries) == (JobState.QUEUED, 1)
    assert "restarted while it ran" in scheduled.state_reason
    schedule_jobs()
    again = client.post(CLAIM).json()
    assert (again["id"], again["next_log_line"]) == (scheduled.pk, 2)  # the retry's log continues the first
