"""A training job on a cluster made for it (`submit_job(new_cluster=...)`): requested with the job through the
clusters app, waited for, used by that job only, terminated when the job ends (by the release task its terminal
transition queues, or by the safety pass), never another cluster. EC2 is the moto server; provisioning and the
worker's tasks are called directly."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clusters.cloud import Ec2Provider
from apps.clusters.errors import QuotaExceeded, UnknownClusterInstanceType
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services import provision_cluster
from apps.training import tasks
from apps.training.errors import ClusterChoiceConflict, ClusterUnavailable, JobDoesNotFitCluster
from apps.training.models import JobState, TrainingJob
from apps.training.services.job_clusters import NewCluster, release_leftover_clusters
from apps.training.services.jobs import cancel_job, finish_job, lose_job, start_job, submit_job
from apps.training.services.scheduling import schedule_jobs
from tests.clusters.test_ec2 import aws_error, inject

JOB = {"image": "ghcr.io/acme/trainer:1.0", "command": ["python", "train.py"], "max_run_minutes": 60}


@pytest.fixture
def aws(settings: Any, moto_endpoint: str) -> str:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    settings.AWS_REGION = "us-east-1"
    return moto_endpoint


@pytest.fixture
def provider(aws: str) -> Ec2Provider:
    return Ec2Provider("us-east-1", endpoint_url=aws, base_delay=0.001, max_attempts=2, sleep=lambda _: None)


def submit(alice: Any, vision: Any, instance_type: str = "g5.xlarge", **fields: Any) -> TrainingJob:
    return submit_job(
        actor=alice,
        team=vision,
        cluster=fields.pop("cluster", None),
        new_cluster=NewCluster(instance_type=instance_type),
        **{"gpus_per_node": 1, **JOB, **fields},
    )


def instance_states(ec2_client: Any, cluster: Cluster) -> set[str]:
    reservations = ec2_client.describe_instances(Filters=[{"Name": "tag:paved:cluster", "Values": [str(cluster.pk)]}])
    return {i["State"]["Name"] for r in reservations["Reservations"] for i in r["Instances"]}


def release_queued(callbacks: list[Any], job: TrainingJob) -> None:
    """What the worker does with the release its terminal transition queued after commit."""
    assert callbacks, "the job's end queued no work for the worker"
    tasks.release_job_cluster(job.pk)


def test_a_job_with_a_new_cluster_waits_for_it_runs_on_it_and_terminates_it_when_done(
    alice: Any, vision: Any, gpu_box: Cluster, provider: Ec2Provider, ec2_client: Any,
    django_capture_on_commit_callbacks: Any, t0: Any,
) -> None:  # fmt: skip
    job = submit(alice, vision, node_count=2)

    cluster = job.cluster
    assert cluster is not None
    assert job.owns_cluster
    assert (cluster.state, cluster.instance_type, cluster.node_count, cluster.owner) == (
        ClusterState.REQUESTED, "g5.xlarge", 2, alice,
    )  # fmt: skip
    assert job.state_reason == f"waiting: cluster {cluster.name} is provisioning"
    assert AuditEvent.objects.filter(verb="cluster.requested", target_id=str(cluster.pk)).exists()
    submitted = AuditEvent.objects.get(verb="training_job.submitted", target_id=str(job.pk))
    assert submitted.data["owns_cluster"] is True

    assert schedule_jobs(now=t0) == []  # gpu-box is free and fits, but the job waits for its own cluster
    job.refresh_from_db()
    assert (job.state, job.state_reason) == (JobState.QUEUED, f"waiting: cluster {cluster.name} is provisioning")

    assert provision_cluster(cluster_pk=cluster.pk, provider=provider).state == ClusterState.RUNNING
    assert schedule_jobs(now=t0 + timedelta(minutes=5)) == [job.pk]
    job.refresh_from_db()
    assert (job.state, job.cluster_id) == (JobState.SCHEDULING, cluster.pk)
    start_job(job=job, now=t0 + timedelta(minutes=6))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        finish_job(job=job, exit_code=0, now=t0 + timedelta(minutes=30))
    release_queued(callbacks, job)

    cluster.refresh_from_db()
    gpu_box.refresh_from_db()
    assert cluster.state == ClusterState.TERMINATED
    assert cluster.state_reason == f"Training job #{job.pk} is succeeded; the cluster made for it ends with it."
    assert instance_states(ec2_client, cluster) == {"terminated"}
    assert gpu_box.state == ClusterState.RUNNING  # the team's other cluster is not the job's


def test_cancelling_a_queued_job_terminates_its_still_provisioning_cluster(
    alice: Any, vision: Any, provider: Ec2Provider, django_capture_on_commit_callbacks: Any
) -> None:
    job = submit(alice, vision)
    cluster = job.cluster
    assert cluster is not None
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cancel_job(actor=alice, job=job)
    release_queued(callbacks, job)

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.TERMINATED  # never launched: the provisioning task will do nothing
    assert provision_cluster(cluster_pk=cluster.pk, provider=provider).state == ClusterState.TERMINATED


def test_a_job_lost_with_a_retry_left_keeps_its_cluster(
    alice: Any, vision: Any, provider: Ec2Provider, t0: Any
) -> None:
    job = submit(alice, vision, max_retries=1)
    assert job.cluster is not None
    provision_cluster(cluster_pk=job.cluster.pk, provider=provider)
    schedule_jobs(now=t0)
    start_job(job=job, now=t0)

    cluster = job.cluster
    job = lose_job(job=job, reason="spot reclaim", now=t0 + timedelta(minutes=1))
    tasks.release_job_cluster(job.pk)

    cluster.refresh_from_db()
    assert job.state == JobState.QUEUED
    assert cluster.state == ClusterState.RUNNING


def test_a_cluster_that_fails_to_provision_fails_its_job(
    alice: Any, vision: Any, provider: Ec2Provider, t0: Any
) -> None:
    job = submit(alice, vision)
    cluster = job.cluster
    assert cluster is not None
    inject(provider, "RunInstances", lambda **_: aws_error("InsufficientInstanceCapacity", "No g5.xlarge capacity."))
    provision_cluster(cluster_pk=cluster.pk, provider=provider)
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.FAILED

    schedule_jobs(now=t0)

    job.refresh_from_db()
    assert job.state == JobState.FAILED
    assert job.state_reason.startswith(f"cluster {cluster.name}, requested for this job, is failed: ")


def test_the_safety_pass_terminates_a_cluster_whose_job_ended_without_its_release(
    alice: Any, vision: Any, gpu_box: Cluster, provider: Ec2Provider, ec2_client: Any, t0: Any
) -> None:
    job = submit(alice, vision)
    assert job.cluster is not None
    provision_cluster(cluster_pk=job.cluster.pk, provider=provider)
    schedule_jobs(now=t0)
    start_job(job=job, now=t0)
    finish_job(job=job, exit_code=1, now=t0 + timedelta(minutes=3))  # its release message never ran
    other = submit(alice, vision).cluster  # a queued job's cluster is not a leftover
    assert other is not None

    assert release_leftover_clusters(provider=provider) == [job.cluster.pk]
    assert release_leftover_clusters(provider=provider) == []

    job.cluster.refresh_from_db()
    assert job.cluster.state == ClusterState.TERMINATED
    assert instance_states(ec2_client, job.cluster) == {"terminated"}
    assert Cluster.objects.get(pk=other.pk).state == ClusterState.REQUESTED
    assert Cluster.objects.get(pk=gpu_box.pk).state == ClusterState.RUNNING


def test_no_other_job_is_placed_on_a_cluster_made_for_a_job(
    alice: Any, vision: Any, provider: Ec2Provider, t0: Any
) -> None:
    job = submit(alice, vision)
    assert job.cluster is not None
    provision_cluster(cluster_pk=job.cluster.pk, provider=provider)
    cancel_job(actor=alice, job=job)  # (its release is not run here: the cluster is still running)
    anywhere = submit_job(actor=alice, team=vision, cluster=None, gpus_per_node=1, **JOB)

    assert schedule_jobs(now=t0) == []
    anywhere.refresh_from_db()
    assert anywhere.state_reason.startswith("waiting: no running cluster of team vision")
    with pytest.raises(ClusterUnavailable, match="was made for training job"):
        submit_job(actor=alice, team=vision, cluster=job.cluster, gpus_per_node=1, **JOB)


# --- refusals: nothing is created ---


def nothing_created() -> bool:
    return not TrainingJob.objects.exists() and not Cluster.objects.exclude(name="gpu-box").exists()


def test_an_instance_type_with_too_few_gpus_is_refused(alice: Any, vision: Any, aws: str) -> None:
    with pytest.raises(JobDoesNotFitCluster, match=r"a g5\.xlarge has 1") as refused:
        submit(alice, vision, gpus_per_node=4)
    assert refused.value.field == "new_cluster"
    assert nothing_created()


def test_an_unknown_instance_type_is_refused_by_the_cluster_request(alice: Any, vision: Any, aws: str) -> None:
    with pytest.raises(UnknownClusterInstanceType):
        submit(alice, vision, instance_type="x9.huge")
    assert nothing_created()


def test_a_cluster_over_the_team_quota_is_refused(alice: Any, vision: Any, gpu_box: Cluster, quota_of: Any) -> None:
    quota_of(8)  # gpu-box holds all 8
    with pytest.raises(QuotaExceeded):
        submit(alice, vision)
    assert nothing_created()
    assert not AuditEvent.objects.filter(verb__in=["cluster.requested", "training_job.submitted"]).exists()


def test_cluster_and_new_cluster_together_are_refused(alice: Any, vision: Any, gpu_box: Cluster) -> None:
    with pytest.raises(ClusterChoiceConflict):
        submit(alice, vision, cluster=gpu_box)
    assert nothing_created()


# --- API ---


def test_the_api_submits_a_job_on_a_new_cluster(api: APIClient, alice: Any, vision: Any, aws: str) -> None:
    api.force_authenticate(alice)
    body = {"team": "vision", "gpus_per_node": 1, "new_cluster": {"instance_type": "g5.xlarge"}, **JOB}

    response = api.post("/api/v1/training-jobs/", body, format="json")

    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["owns_cluster"] is True
    assert data["cluster_name"] == f"job-{data['id']}"
    assert data["state_reason"] == f"waiting: cluster job-{data['id']} is provisioning"


def test_a_new_cluster_from_a_gpu_cluster_template_takes_its_settings(
    api: APIClient, alice: Any, vision: Any, aws: str
) -> None:
    call_command("sync_templates", stdout=io.StringIO())
    api.force_authenticate(alice)
    new_cluster = {"instance_type": "g5.12xlarge", "template": "gpu-cluster"}
    body = {"team": "vision", "gpus_per_node": 4, "node_count": 2, "new_cluster": new_cluster, **JOB}

    response = api.post("/api/v1/training-jobs/", body, format="json")

    assert response.status_code == 201, response.json()
    cluster = Cluster.objects.get(pk=response.json()["cluster"])
    assert (cluster.instance_type, cluster.node_count, cluster.gpus_per_node) == ("g5.12xlarge", 2, 4)
    assert (cluster.purchase_option, cluster.max_hours) == ("spot_with_fallback", 8)  # the template's defaults


def test_a_new_cluster_from_an_unknown_template_is_refused(api: APIClient, alice: Any, vision: Any) -> None:
    api.force_authenticate(alice)
    new_cluster = {"instance_type": "g5.xlarge", "template": "no-such-template"}
    body = {"team": "vision", "gpus_per_node": 1, "new_cluster": new_cluster, **JOB}

    response = api.post("/api/v1/training-jobs/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cluster_template"
    assert nothing_created()


def test_the_api_refuses_cluster_and_new_cluster_together(
    api: APIClient, alice: Any, vision: Any, gpu_box: Cluster
) -> None:
    api.force_authenticate(alice)
    body = {
        "team": "vision", "gpus_per_node": 1, "cluster": gpu_box.pk, "new_cluster": {"instance_type": "g5.xlarge"},
        **JOB,
    }  # fmt: skip

    response = api.post("/api/v1/training-jobs/", body, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "cluster_and_new_cluster"
    assert nothing_created()


def test_the_schema_documents_new_cluster_and_owns_cluster(db: None) -> None:
    from drf_spectacular.generators import SchemaGenerator

    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]
    assert "new_cluster" in schemas["TrainingJobCreateRequest"]["properties"]
    assert set(schemas["NewClusterRequest"]["properties"]) == {"instance_type", "template", "version"}
    assert "owns_cluster" in schemas["TrainingJob"]["properties"]
