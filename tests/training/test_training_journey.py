"""The paved road from training to serving, every part real: the node agent (dev mode) runs a real scikit-learn
script as alice's job; the script logs params and a loss curve with the unchanged mlflow client and its accuracy
through agent metric lines, reads its dataset from and writes its model to moto S3; alice registers the output as a
model version with its lineage; a manager approves it; the worker deploys it on the local target (MLServer behind
HAProxy, the artifact fetched from S3) and it answers predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.deployments.models import Deployment, DeploymentState
from apps.deployments.predictions import predict
from apps.deployments.services import rollouts
from apps.deployments.services.endpoints import create_endpoint
from apps.registry.models import ModelVersion
from apps.registry.services import approve_version
from apps.tracking.models import TrackingRun
from apps.training.models import JobState, TrainingJob
from apps.training.selectors import iter_job_log
from tests.fixtures.moto import DUMMY_AWS_ENV
from tests.training.conftest import ML_PYTHON, SCRIPT
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

COMMIT = "4f1c2d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


def test_a_real_sklearn_job_is_tracked_registered_deployed_and_answers_predictions(
    celery_worker: Any,
    worker_serving_root: Path,
    live_server: Any,
    settings: Any,
    agent: Any,
    node: Any,
    buckets: Any,
    moto_server: str,
    vision: Team,
    alice: Any,
    mark: Any,
    api: Any,
) -> None:
    settings.PAVED_NODE_PORTAL_URL = live_server.url  # where the job's mlflow client logs
    api.force_authenticate(alice)
    submitted = api.post(
        "/api/v1/training-jobs/",
        {
            "team": "vision",
            "cluster": node[0].cluster_id,
            "image": "ghcr.io/acme/sklearn-trainer:1.9",
            "command": [str(ML_PYTHON), str(SCRIPT), "--epochs", "5"],
            "framework": "sklearn",
            "environment": {**DUMMY_AWS_ENV, "AWS_ENDPOINT_URL": moto_server, "GIT_COMMIT": COMMIT},
            "dataset_uri": "s3://vision-data/iris/iris.csv",
            "output_uri": "s3://vision-models/iris/job/model.joblib",
            "hyperparameters": {"C": 1.0},
            "gpus_per_node": 1,
            "max_run_minutes": 10,
        },
        format="json",
    )
    assert submitted.status_code == 201, submitted.content
    job = TrainingJob.objects.get(pk=submitted.json()["id"])  # the worker places it at once (no beat here)

    def ended() -> bool:
        job.refresh_from_db()
        return job.state not in (JobState.QUEUED, JobState.SCHEDULING, JobState.RUNNING)

    wait_for(ended, timeout=120, message=lambda: f"the job to end (it is {job.state}; log {iter_job_log(job)[-5:]})")
    assert job.state == JobState.SUCCEEDED, iter_job_log(job)
    assert iter_job_log(job)[-1] == "model written to s3://vision-models/iris/job/model.joblib"

    run = TrackingRun.objects.get(training_job=job)
    params = dict(run.params.values_list("key", "value"))
    assert params == {"C": "1.0", "epochs": "5", "model": "LogisticRegression"}  # the job's and the script's
    losses = list(run.metrics.filter(key="loss").order_by("step").values_list("step", "value"))
    assert [step for step, _ in losses] == [1, 2, 3, 4, 5]  # through the mlflow client
    assert losses[-1][1] < losses[0][1]  # it learned
    assert run.metrics.filter(key="accuracy").count() == 5  # through the agent's metric lines

    registered = api.post(f"/api/v1/training-jobs/{job.pk}/register-model/", {"model": "iris"}, format="json")
    assert registered.status_code == 201, registered.content
    version = ModelVersion.objects.get(pk=registered.json()["id"])
    etag = buckets.head_object(Bucket="vision-data", Key="iris/iris.csv")["ETag"].strip('"')
    assert (version.training_job, version.cluster_id, version.image) == (job, job.cluster_id, job.image)
    assert (version.dataset_uri, version.dataset_hash, version.code_commit) == (job.dataset_uri, f"etag:{etag}", COMMIT)
    assert version.metrics == {
        "accuracy": pytest.approx(run.metrics.get(key="accuracy", step=5).value),
        "loss": losses[-1][1],
    }

    approve_version(actor=mark, version=version)
    endpoint = create_endpoint(actor=alice, team=vision, model=version.model, name="iris-trained")
    deployment = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=version, strategy="all_at_once")
    wait_for(
        lambda: Deployment.objects.filter(
            pk=deployment.pk, state__in=[DeploymentState.SUCCEEDED, DeploymentState.FAILED]
        ).exists(),
        timeout=90,
        message="the deployment of the trained model to end",
    )
    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.SUCCEEDED, deployment.state_reason
    endpoint.refresh_from_db()
    status, body = predict(endpoint.url, "iris")
    assert status == 200, body
    assert b'"outputs"' in body  # the model the job trained answers
