"""Launching a `deployment` template (the shipped model-rollout golden path) starts a rollout of a registered model
version onto the team's endpoint named like the launch, through the same service, API and browser form as every
other template; bad input (an unknown model or version, an unapproved version, a busy endpoint) is refused with
the deployments' problem codes and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.manifests import load_manifest
from apps.catalog.models import Lifecycle
from apps.catalog.services import launch_template
from apps.deployments.errors import EndpointBusy, InvalidDeployment
from apps.deployments.models import Deployment, DeploymentState, Endpoint, Strategy
from apps.deployments.plan import DEFAULT_CANARY_STEPS
from apps.deployments.services.rollouts import VersionNotApproved
from apps.registry.models import Model
from tests.catalog.test_golden_paths import TEMPLATES
from tests.factories import ModelVersionFactory, RegisteredModelFactory, TemplateVersionFactory

pytestmark = pytest.mark.django_db

SLUG = "model-rollout"
GOOD = {"model": "iris-classifier", "model_version": 2, "strategy": "canary", "bake_seconds": 5}


@pytest.fixture
def version(db: None) -> Any:
    shipped = load_manifest(TEMPLATES / SLUG / "template.yaml")
    return TemplateVersionFactory(
        template__slug=SLUG,
        template__kind="deployment",
        lifecycle=Lifecycle.PUBLISHED,
        module_path="",
        parameters_schema=shipped.parameters,
        price_model=shipped.price,
    )


@pytest.fixture
def iris(vision: Team, alice: Any) -> Model:
    model = RegisteredModelFactory(team=vision, name="iris-classifier", created_by=alice)
    ModelVersionFactory(model=model, version=1, approved=True)
    ModelVersionFactory(model=model, version=2, approved=True)
    ModelVersionFactory(model=model, version=3)  # registered, not approved
    return model


def nothing_created() -> bool:
    return not Endpoint.objects.exists() and not Deployment.objects.exists()


def test_launch_creates_the_endpoint_and_a_canary_with_the_bake_time(
    alice: Any, vision: Team, version: Any, iris: Model
) -> None:
    result = launch_template(actor=alice, team=vision, version=version, params=GOOD, name="iris")

    deployment = Deployment.objects.get()
    assert result.deployment == deployment
    assert (deployment.endpoint.name, deployment.endpoint.team, deployment.version.version) == ("iris", vision, 2)
    assert deployment.strategy == Strategy.CANARY
    assert deployment.state == DeploymentState.PENDING
    weights = [step.get("weight") for step in deployment.steps]
    assert weights == [step.get("weight") for step in DEFAULT_CANARY_STEPS]
    assert all(step["bake_seconds"] == 5 for step in deployment.steps if step.get("weight", 100) < 100)
    assert result.estimate.hourly == 0
    assert AuditEvent.objects.filter(verb="deployment.requested").count() == 1


def test_a_second_launch_reuses_the_endpoint_and_is_refused_while_it_is_busy(
    alice: Any, vision: Team, version: Any, iris: Model
) -> None:
    launch_template(actor=alice, team=vision, version=version, params=GOOD, name="iris")
    with pytest.raises(EndpointBusy):
        launch_template(actor=alice, team=vision, version=version, params={**GOOD, "model_version": 1}, name="iris")
    assert Endpoint.objects.count() == 1
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(
    ("params", "error", "field"),
    [
        ({**GOOD, "model": "no-such-model"}, InvalidDeployment, "model"),
        ({**GOOD, "model_version": 9}, InvalidDeployment, "model_version"),
        ({**GOOD, "model_version": 3}, VersionNotApproved, None),
    ],
    ids=["unknown model", "unknown version", "unapproved version"],
)
def test_bad_launches_are_refused_and_leave_nothing(
    alice: Any, vision: Team, version: Any, iris: Model, params: dict[str, Any], error: type[Exception], field: Any
) -> None:
    with pytest.raises(error) as caught:
        launch_template(actor=alice, team=vision, version=version, params=params, name="iris")
    if field:
        assert caught.value.field == field
    assert nothing_created()


def test_another_teams_model_is_not_found(bob: Any, nlp: Team, version: Any, iris: Model) -> None:
    with pytest.raises(InvalidDeployment, match="no model named"):
        launch_template(actor=bob, team=nlp, version=version, params=GOOD, name="iris")
    assert nothing_created()


# --- API and form ---------------------------------------------------------------------------------------------


def test_api_launch_returns_201_with_the_deployment(api: Any, alice: Any, version: Any, iris: Model) -> None:
    api.force_authenticate(alice)
    url = reverse("api:template-launch", args=[SLUG])
    response = api.post(url, {"team": "vision", "name": "iris", "parameters": GOOD}, format="json")

    assert response.status_code == 201, response.content
    deployment = Deployment.objects.get()
    assert response.json()["deployment"] == {"id": deployment.pk, "endpoint": "iris", "version": 2, "state": "pending"}

    again = api.post(url, {"team": "vision", "name": "iris", "parameters": GOOD}, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "endpoint_busy"


def test_api_unapproved_version_is_a_problem(api: Any, alice: Any, version: Any, iris: Model) -> None:
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "iris", "parameters": {**GOOD, "model_version": 3}}
    response = api.post(reverse("api:template-launch", args=[SLUG]), payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "version_not_approved"
    assert nothing_created()


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "iris",
        "team": "vision",
        "p-model": "iris-classifier",
        "p-model_version": "2",
        "p-strategy": "blue_green",
        "p-bake_seconds": "30",
    }
    data.update(overrides)
    return data


def test_form_launch_lands_on_the_deployment_page(client: Client, alice: Any, version: Any, iris: Model) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=[SLUG]), form_data())

    assert response.status_code == 302, response.content.decode()[:2000]
    deployment = Deployment.objects.get()
    assert response["Location"] == reverse("deployments:detail", args=[deployment.pk])
    assert deployment.strategy == Strategy.BLUE_GREEN


def test_form_unknown_version_re_renders_with_the_error(client: Client, alice: Any, version: Any, iris: Model) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=[SLUG]), form_data(**{"p-model_version": "9"}))

    assert response.status_code == 422
    assert "iris-classifier has no version 9" in response.content.decode()
    assert nothing_created()
