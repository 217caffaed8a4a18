"""From job to model: a succeeded job's output registered as a model version with its lineage (job, cluster,
image, dataset and its hash from moto S3, code commit, final metrics), by API and by the job page's button;
refused with nothing registered for a job that did not succeed, declared no output, or belongs to another team."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster
from apps.registry.models import Model, ModelVersion
from apps.tracking.services import log_job_metrics
from apps.training.models import JobState, TrainingJob
from apps.training.services.outputs import dataset_fingerprint, register_job_output
from tests.factories import TrainingJobFactory

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def s3(moto_endpoint: str, settings: Any) -> Any:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    client = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    client.create_bucket(Bucket="vision-data")
    client.put_object(Bucket="vision-data", Key="iris/train.csv", Body=b"sepal,petal,label\n5.1,1.4,0\n")
    return client


def succeeded_job(cluster: Cluster, **fields: Any) -> TrainingJob:
    now = timezone.now()
    values: dict[str, Any] = {
        "team": cluster.team,
        "owner": cluster.owner,
        "cluster": cluster,
        "framework": "sklearn",
        "state": JobState.SUCCEEDED,
        "dataset_uri": "s3://vision-data/iris/train.csv",
        "output_uri": "s3://vision-models/iris/model.joblib",
        "environment": {"GIT_COMMIT": COMMIT},
        "started_at": now - timedelta(minutes=3),
        "finished_at": now,
        "exit_code": 0,
        **fields,
    }
    return TrainingJobFactory(**values)


def test_the_api_registers_a_succeeded_jobs_output_with_its_lineage(
    api: Any, alice: Any, gpu_box: Cluster, s3: Any
) -> None:
    job = succeeded_job(gpu_box)
    log_job_metrics(
        job=job, metrics=[{"key": "accuracy", "value": 0.9, "step": 1}, {"key": "accuracy", "value": 0.97, "step": 2}]
    )
    etag = s3.head_object(Bucket="vision-data", Key="iris/train.csv")["ETag"].strip('"')
    api.force_authenticate(alice)

    answer = api.post(f"/api/v1/training-jobs/{job.pk}/register-model/", {"model": "iris"}, format="json")

    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert (body["version"], body["framework"], body["artifact_uri"]) == (1, "sklearn", job.output_uri)
    assert body["training_job"] == job.pk
    assert body["cluster"] == gpu_box.pk
    assert body["image"] == job.image
    assert body["dataset_uri"] == job.dataset_uri
    assert body["dataset_hash"] == f"etag:{etag}"
    assert body["code_commit"] == COMMIT
    assert body["metrics"] == {"accuracy": 0.97}  # the final value, not the first
    assert AuditEvent.objects.filter(verb="model_version.registered", team=job.team).count() == 1


def test_a_second_job_adds_the_next_version_of_the_same_model(alice: Any, gpu_box: Cluster, s3: Any) -> None:
    first = register_job_output(actor=alice, job=succeeded_job(gpu_box), model_name="iris")
    second = register_job_output(actor=alice, job=succeeded_job(gpu_box), model_name="iris")

    assert (first.version, second.version) == (1, 2)
    assert Model.objects.filter(team=gpu_box.team).count() == 1


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"state": JobState.RUNNING, "finished_at": None, "exit_code": None}, "job_output_not_registrable"),
        ({"state": JobState.FAILED, "exit_code": 1}, "job_output_not_registrable"),
        ({"output_uri": ""}, "job_output_not_registrable"),
        ({"output_uri": "ftp://somewhere/model"}, "invalid_model_version"),
        ({"framework": "custom"}, "job_output_not_registrable"),
    ],
)
def test_what_cannot_be_registered_is_refused_with_nothing_registered(
    api: Any, alice: Any, gpu_box: Cluster, fields: dict[str, Any], code: str
) -> None:
    job = succeeded_job(gpu_box, dataset_uri="", **fields)
    api.force_authenticate(alice)

    answer = api.post(f"/api/v1/training-jobs/{job.pk}/register-model/", {"model": "iris"}, format="json")

    assert answer.status_code == 400, answer.content
    assert answer.json()["code"] == code
    assert not ModelVersion.objects.exists()
    assert not Model.objects.exists()


def test_a_bad_model_name_registers_nothing(api: Any, alice: Any, gpu_box: Cluster) -> None:
    job = succeeded_job(gpu_box, dataset_uri="")
    api.force_authenticate(alice)

    answer = api.post(f"/api/v1/training-jobs/{job.pk}/register-model/", {"model": "Iris Model!"}, format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_model_version"
    assert not Model.objects.exists()


def test_another_teams_job_is_not_found(api: Any, bob: Any, gpu_box: Cluster) -> None:
    job = succeeded_job(gpu_box, dataset_uri="")
    api.force_authenticate(bob)

    answer = api.post(f"/api/v1/training-jobs/{job.pk}/register-model/", {"model": "iris"}, format="json")

    assert answer.status_code == 404
    assert not Model.objects.exists()


def test_the_job_page_registers_in_one_click_and_then_links_the_version(
    client: Any, alice: Any, gpu_box: Cluster
) -> None:
    job = succeeded_job(gpu_box, dataset_uri="")
    client.force_login(alice)
    page = client.get(f"/training/{job.pk}/").content.decode()
    assert 'data-testid="job-register-form"' in page

    answer = client.post(f"/training/{job.pk}/register-model/", {"model": "iris", "framework": "sklearn"}, follow=True)

    version = ModelVersion.objects.get()
    assert (version.training_job_id, version.model.name) == (job.pk, "iris")
    page = answer.content.decode()
    assert "Registered as" in page
    assert f'href="/models/{version.model_id}/"' in page


def test_a_running_job_page_offers_no_register_button(client: Any, alice: Any, gpu_box: Cluster) -> None:
    job = succeeded_job(gpu_box, state=JobState.RUNNING, finished_at=None, exit_code=None)
    client.force_login(alice)

    assert 'data-testid="job-register-form"' not in client.get(f"/training/{job.pk}/").content.decode()


def test_a_local_dataset_is_fingerprinted_by_its_sha256(tmp_path: Any) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"a,b\n1,2\n")

    assert dataset_fingerprint(f"file://{data}") == "sha256:" + hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert dataset_fingerprint(f"file://{tmp_path}/missing.csv") == ""
    assert dataset_fingerprint("https://example.com/data.csv") == ""
