"""Submitting a job: the contract, the cluster and the quota are checked first, and a refusal creates nothing."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.errors import NotAMember
from apps.audit.models import AuditEvent
from apps.clusters.models import ClusterState
from apps.core.errors import ApplicationError
from apps.training.models import JobState, TrainingJob
from apps.training.services.jobs import submit_job
from tests.factories import ClusterFactory

GOOD: dict[str, Any] = {
    "image": "ghcr.io/vision/trainer:2.1",
    "command": ["python", "train.py", "--epochs", "3"],
    "environment": {"WANDB_MODE": "offline"},
    "dataset_uri": "s3://vision-data/imagenet",
    "hyperparameters": {"lr": 0.001, "batch_size": 64},
    "output_uri": "s3://vision-artifacts/run-1",
    "gpus_per_node": 4,
    "node_count": 2,
    "max_run_minutes": 120,
    "max_retries": 1,
}


def test_a_valid_job_is_queued_and_audited(alice: Any, vision: Any, gpu_box: Any) -> None:
    job = submit_job(actor=alice, team=vision, cluster=gpu_box, **GOOD)

    job.refresh_from_db()
    assert (job.state, job.team, job.owner, job.cluster, job.gpus) == (JobState.QUEUED, vision, alice, gpu_box, 8)
    assert job.command == GOOD["command"]
    event = AuditEvent.objects.get(verb="training_job.submitted")
    assert (event.actor, event.team, event.target_id) == (alice, vision, str(job.pk))
    assert event.data["gpus"] == 8


def test_a_job_without_a_cluster_is_accepted(alice: Any, vision: Any) -> None:
    job = submit_job(actor=alice, team=vision, cluster=None, **GOOD)

    assert job.cluster is None


def test_only_members_of_the_team_may_submit(bob: Any, vision: Any) -> None:
    with pytest.raises(NotAMember):
        submit_job(actor=bob, team=vision, cluster=None, **GOOD)

    assert not TrainingJob.objects.exists()


REFUSALS = [
    ("image_not_allowed", {"image": "quay.io/someone/miner:latest"}),
    ("image_not_allowed", {"image": "docker.io/evil/trainer:1"}),
    ("invalid_image", {"image": "ghcr.io/a b"}),
    ("invalid_image", {"image": ""}),
    ("invalid_command", {"command": "python train.py; rm -rf /"}),
    ("invalid_command", {"command": []}),
    ("invalid_command", {"command": ["python", 3]}),
    ("invalid_command", {"command": [""]}),
    ("invalid_command", {"command": ["python", "x" * 5000]}),
    ("invalid_command", {"command": ["python", "a\x00b"]}),
    ("invalid_command", {"command": ["python"] * 300}),
    ("invalid_environment", {"environment": {"lower_case": "x"}}),
    ("invalid_environment", {"environment": {"1ABC": "x"}}),
    ("invalid_environment", {"environment": {"TOKEN": "a\nb"}}),
    ("invalid_environment", {"environment": {"TOKEN": "a\x00b"}}),
    ("invalid_environment", {"environment": {"COUNT": 3}}),
    ("invalid_environment", {"environment": ["A=1"]}),
    ("invalid_environment", {"environment": {f"V{i}": "x" for i in range(101)}}),
    ("reserved_environment_key", {"environment": {"PAVED_NODE_TOKEN": "stolen"}}),
    ("invalid_uri", {"dataset_uri": "not a uri"}),
    ("invalid_uri", {"output_uri": "s3://bucket/\npath"}),
    ("invalid_hyperparameters", {"hyperparameters": ["lr", 0.1]}),
    ("invalid_hyperparameters", {"hyperparameters": {"nested": {"a": 1}}}),
    ("invalid_hyperparameters", {"hyperparameters": {"lr": float("nan")}}),
    ("invalid_framework", {"framework": "caffe"}),
    ("invalid_job_size", {"gpus_per_node": 0}),
    ("invalid_job_size", {"gpus_per_node": 17}),
    ("invalid_job_size", {"gpus_per_node": True}),
    ("invalid_job_size", {"gpus_per_node": "4"}),
    ("invalid_job_size", {"node_count": 0}),
    ("invalid_job_size", {"node_count": 65}),
    ("invalid_job_size", {"max_run_minutes": 0}),
    ("invalid_job_size", {"max_run_minutes": 30 * 24 * 60 + 1}),
    ("invalid_job_size", {"max_retries": -1}),
    ("invalid_job_size", {"max_retries": 11}),
    ("job_does_not_fit_cluster", {"gpus_per_node": 8}),
    ("job_does_not_fit_cluster", {"node_count": 3, "gpus_per_node": 1}),
]


@pytest.mark.parametrize(("code", "change"), REFUSALS, ids=[f"{code}-{i}" for i, (code, _) in enumerate(REFUSALS)])
def test_each_refusal_has_a_stable_code_and_leaves_nothing(
    alice: Any, vision: Any, gpu_box: Any, code: str, change: dict[str, Any]
) -> None:
    with pytest.raises(ApplicationError) as refused:
        submit_job(actor=alice, team=vision, cluster=gpu_box, **{**GOOD, **change})

    assert refused.value.code == code
    assert refused.value.status == 400
    assert not TrainingJob.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="training_job").exists()


def test_another_teams_cluster_is_unknown(alice: Any, vision: Any, nlp: Any, bob: Any) -> None:
    theirs = ClusterFactory(team=nlp, owner=bob, state=ClusterState.RUNNING, node_count=2, gpus_per_node=4)

    with pytest.raises(ApplicationError) as refused:
        submit_job(actor=alice, team=vision, cluster=theirs, **GOOD)

    assert (refused.value.code, refused.value.field) == ("unknown_cluster", "cluster")
    assert not TrainingJob.objects.exists()


def test_a_terminated_cluster_is_refused(alice: Any, vision: Any) -> None:
    gone = ClusterFactory(team=vision, owner=alice, state=ClusterState.TERMINATED, node_count=2, gpus_per_node=4)

    with pytest.raises(ApplicationError) as refused:
        submit_job(actor=alice, team=vision, cluster=gone, **GOOD)

    assert refused.value.code == "cluster_unavailable"
    assert not TrainingJob.objects.exists()


def test_a_job_bigger_than_the_teams_whole_quota_is_refused(
    alice: Any, vision: Any, gpu_box: Any, quota_of: Any
) -> None:
    quota_of(4)

    with pytest.raises(ApplicationError) as refused:
        submit_job(actor=alice, team=vision, cluster=gpu_box, **GOOD)

    assert (refused.value.code, refused.value.status) == ("job_over_quota", 409)
    assert refused.value.extra == {"requested_gpus": 8, "max_gpus": 4}
    assert not TrainingJob.objects.exists()


def test_the_allowed_images_are_the_admins_setting(alice: Any, vision: Any, settings: Any) -> None:
    settings.TRAINING_ALLOWED_IMAGES = ["registry.internal/*"]

    job = submit_job(actor=alice, team=vision, cluster=None, **{**GOOD, "image": "registry.internal/ml/trainer:1"})
    with pytest.raises(ApplicationError) as refused:
        submit_job(actor=alice, team=vision, cluster=None, **GOOD)

    assert job.pk is not None
    assert refused.value.code == "image_not_allowed"
    assert "registry.internal/*" in refused.value.message
