"""Launching a `training_job` template (the shipped training-job golden path) submits a job through
`training.services.submit_job`, from the service, the API and the generated form alike: one queued job tracked in
the experiment named like the launch, linked to the template version, priced as GPU-hours for its max run time;
bad input (a shell string, an image from a registry not allowed, over quota, an unknown cluster) leaves nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.catalog.manifests import load_manifest
from apps.catalog.models import Lifecycle
from apps.catalog.services import launch_template
from apps.catalog.training_parameters import check_training_schema
from apps.clusters.models import TeamQuota
from apps.core.errors import ApplicationError
from apps.training.models import JobState, TrainingJob
from tests.catalog.test_golden_paths import TEMPLATES
from tests.factories import ClusterFactory, TemplateVersionFactory

pytestmark = pytest.mark.django_db

SLUG = "training-job"
SHIPPED = load_manifest(TEMPLATES / SLUG / "template.yaml")
GOOD = {
    "image": "ghcr.io/acme/trainer:2.0",
    "command": ["python", "train.py", "--epochs", "3"],
    "gpus_per_node": 2,
    "max_run_minutes": 90,
}


@pytest.fixture
def version(db: None) -> Any:
    return TemplateVersionFactory(
        template__slug=SLUG,
        template__kind="training_job",
        lifecycle=Lifecycle.PUBLISHED,
        module_path="",
        parameters_schema=SHIPPED.parameters,
        price_model=SHIPPED.price,
    )


@pytest.fixture
def box(vision: Team, alice: Any) -> Any:
    return ClusterFactory(team=vision, owner=alice, name="box", state="running", gpus_per_node=4)


def test_launch_queues_one_job_in_the_experiment_named_like_the_launch(
    alice: Any, vision: Team, version: Any, box: Any
) -> None:
    result = launch_template(actor=alice, team=vision, version=version, params={**GOOD, "cluster": "box"}, name="sweep")

    job = TrainingJob.objects.get()
    assert result.training_job == job
    assert (job.state, job.cluster, job.template_version) == (JobState.QUEUED, box, version)
    assert (job.image, job.command, job.gpus_per_node, job.max_run_minutes) == (
        "ghcr.io/acme/trainer:2.0", ["python", "train.py", "--epochs", "3"], 2, 90,
    )  # fmt: skip
    assert job.environment == {"MLFLOW_EXPERIMENT_NAME": "sweep"}
    assert job.dataset_uri == SHIPPED.parameters["properties"]["dataset_uri"]["default"]
    assert result.estimate.hourly == Decimal("2.0120")  # 2 GPUs x 1.006
    assert result.estimate.max_total == Decimal("3.02")  # for at most 90 minutes


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"command": "python train.py; rm -rf /"}, "invalid_parameters"),  # a shell string is not a list
        ({"command": ["python", "train.py\nrm -rf /"]}, "invalid_parameters"),  # no line breaks in arguments
        ({"image": "evil.example.com/miner:1"}, "image_not_allowed"),
        ({"gpus_per_node": 8}, "job_over_quota"),
        ({"cluster": "nope"}, "unknown_cluster"),
    ],
)
def test_bad_launches_are_refused_and_leave_nothing(
    alice: Any, vision: Team, version: Any, box: Any, params: dict[str, Any], code: str
) -> None:
    TeamQuota.objects.update_or_create(team=vision, defaults={"max_gpus": 4, "max_cluster_hours": 72})
    with pytest.raises(ApplicationError) as refused:
        launch_template(actor=alice, team=vision, version=version, params={**GOOD, **params}, name="sweep")

    assert refused.value.code == code
    assert not TrainingJob.objects.exists()


def test_api_launch_and_estimate(api: Any, alice: Any, version: Any, box: Any) -> None:
    api.force_authenticate(alice)

    estimate = api.post(reverse("api:template-estimate", args=[SLUG]), {"parameters": GOOD}, format="json")
    launched = api.post(
        reverse("api:template-launch", args=[SLUG]),
        {"team": "vision", "name": "sweep", "parameters": GOOD},
        format="json",
    )

    assert estimate.status_code == 200, estimate.content
    assert (estimate.json()["hourly"], estimate.json()["max_total"]) == ("2.0120", "3.02")
    assert launched.status_code == 201, launched.content
    job = TrainingJob.objects.get()
    assert launched.json()["training_job"]["id"] == job.pk
    assert launched.json()["estimate"]["max_total"] == "3.02"


def test_form_launch_lands_on_the_job_page(client: Client, alice: Any, version: Any, box: Any) -> None:
    client.force_login(alice)
    page = client.get(reverse("catalog:launch", args=[SLUG])).content.decode()
    assert "Experiment name" in page

    response = client.post(
        reverse("catalog:launch", args=[SLUG]),
        {
            "name": "sweep",
            "team": "vision",
            "p-framework": "sklearn",
            "p-image": "ghcr.io/acme/trainer:2.0",
            "p-command": "python\ntrain.py\n--epochs\n3",
            "p-gpus_per_node": "1",
            "p-node_count": "1",
            "p-max_run_minutes": "30",
            "p-dataset_uri": "s3://vision-data/iris.csv",
            "p-output_uri": "s3://vision-models/iris/model.joblib",
            "p-cluster": "",
            "p-max_retries": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    job = TrainingJob.objects.get()
    assert response["Location"] == reverse("training:detail", args=[job.pk])
    assert job.command == ["python", "train.py", "--epochs", "3"]


def test_a_curator_is_told_what_a_training_schema_cannot_declare() -> None:
    schema = {
        "type": "object",
        "properties": {
            "image": {"type": "string", "default": "ghcr.io/a/b:1"},
            "command": {"type": "string", "default": "python train.py"},
            "gpus_per_node": {"type": "integer", "default": 1},
            "max_run_minutes": {"type": "integer", "default": 10},
            "framework": {"type": "string", "enum": ["caffe"], "default": "caffe"},
            "instance_type": {"type": "string", "default": "g5.xlarge"},
        },
    }

    problems = check_training_schema(schema)

    assert "Schema property 'command' must be of type array, not 'string'." in problems
    assert any("'framework' needs an enum of" in p for p in problems)
    assert any(p.startswith("Schema property 'instance_type' is not a training job setting") for p in problems)
