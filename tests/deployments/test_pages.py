"""The deployment pages: scoped to the caller's teams, the deploy form's errors on the form (422, nothing
created), the deployment page saying why each gate passed or failed, its live part served alone to htmx, and the
endpoint page's one-click rollback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team
from apps.deployments.models import Deployment, DeploymentState, Endpoint, Measurement, MeasurementPhase
from apps.deployments.services.endpoints import create_endpoint
from apps.registry.models import ModelVersion
from tests.factories import ModelVersionFactory, RegisteredModelFactory, experiment_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(vision: Team, alice: Any) -> Endpoint:
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    return create_endpoint(actor=alice, team=vision, model=model, name="iris")


def _served(endpoint: Endpoint, alice: Any, *numbers: int) -> list[Deployment]:
    """Versions `numbers` rolled out one after another (written directly; the engine is not under test here)."""
    done: list[Deployment] = []
    previous: ModelVersion | None = None
    for number in numbers:
        version: ModelVersion = ModelVersionFactory(model=endpoint.model, version=number, approved=True)
        done.append(
            Deployment.objects.create(
                team=endpoint.team, endpoint=endpoint, version=version, baseline_version=previous, requested_by=alice,
                state=DeploymentState.SUCCEEDED, steps=[{"weight": 100}], finished_at=timezone.now(),
            )
        )  # fmt: skip
        previous = version
    endpoint.stable_version = previous
    endpoint.traffic = {f"v{numbers[-1]}": 100}
    endpoint.save(update_fields=["stable_version", "traffic"])
    return done


def test_other_teams_see_none_of_it(client: Client, endpoint: Endpoint, alice: Any, bob: Any) -> None:
    (deployment,) = _served(endpoint, alice, 1)
    experiment = experiment_for(endpoint.team, alice)
    client.force_login(alice)
    assert "iris" in client.get(reverse("deployments:list")).content.decode()
    client.force_login(bob)
    assert "iris" not in client.get(reverse("deployments:list")).content.decode()
    for url in (
        reverse("deployments:endpoint", args=[endpoint.pk]),
        reverse("deployments:detail", args=[deployment.pk]),
        reverse("deployments:experiment", args=[experiment.pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("deployments:action", args=[deployment.pk, "rollback"])).status_code == 404
    assert client.post(reverse("deployments:endpoint-rollback", args=[endpoint.pk])).status_code == 404


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": "[{"}, "Not valid JSON"),
        ({"steps": '[{"weight": 150}]'}, "weight"),
        ({"analysis": '{"checks": [{"name": "x", "metric": "nonsense"}]}'}, "nonsense"),
        ({"approved": False}, "no production approval"),
    ],
    ids=["bad json", "bad weight", "bad analysis", "unapproved"],
)
def test_the_deploy_form_puts_errors_on_the_form(
    client: Client, endpoint: Endpoint, alice: Any, fields: dict[str, Any], message: str
) -> None:
    version = ModelVersionFactory(model=endpoint.model, approved=fields.pop("approved", True))
    client.force_login(alice)
    data = {"version": version.pk, "strategy": "canary", "steps": "", "analysis": "", **fields}
    response = client.post(reverse("deployments:endpoint", args=[endpoint.pk]), data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Deployment.objects.exists()


def test_the_deploy_form_starts_a_rollout(client: Client, endpoint: Endpoint, alice: Any) -> None:
    version = ModelVersionFactory(model=endpoint.model, approved=True)
    client.force_login(alice)
    data = {"version": version.pk, "strategy": "canary", "steps": '[{"weight": 25}, {"weight": 100}]'}
    response = client.post(reverse("deployments:endpoint", args=[endpoint.pk]), data)
    deployment = Deployment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("deployments:detail", args=[deployment.pk])
    assert [step["weight"] for step in deployment.steps] == [25, 100]


def test_the_deployment_page_says_why_a_gate_failed_and_htmx_gets_the_live_part(
    client: Client, endpoint: Endpoint, alice: Any
) -> None:
    (deployment,) = _served(endpoint, alice, 1)
    now = timezone.now()
    Measurement.objects.create(
        deployment=deployment, step_index=0, check_name="error-rate", metric="error_rate",
        phase=MeasurementPhase.FAILED, value=0.2963, baseline_value=0.0, threshold="pass <= 0.05", count=27,
        baseline_count=117, message="error rate 29.63% (27 requests): not <= 0.05",
        window_start=now - timedelta(seconds=30), window_end=now, measured_at=now,
    )  # fmt: skip
    client.force_login(alice)
    url = reverse("deployments:detail", args=[deployment.pk])
    page = client.get(url).content.decode()
    assert "<html" in page
    for shown in ("error-rate", "0.2963", "pass &lt;= 0.05", "27 / 117", "error rate 29.63% (27 requests)"):
        assert shown in page, shown
    live = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in live
    assert 'data-testid="deployment-live"' in live
    assert "hx-trigger" not in live  # finished: the page stops polling


def test_the_endpoint_page_rolls_back_in_one_click(client: Client, endpoint: Endpoint, alice: Any) -> None:
    first, second = _served(endpoint, alice, 1, 2)
    client.force_login(alice)
    page = client.get(reverse("deployments:endpoint", args=[endpoint.pk])).content.decode()
    assert "Roll back to v1" in page
    response = client.post(reverse("deployments:endpoint-rollback", args=[endpoint.pk]))
    rollback = Deployment.objects.get(reverts=second)
    assert response["Location"] == reverse("deployments:detail", args=[rollback.pk])
    assert (rollback.version, rollback.strategy, rollback.state) == (first.version, "all_at_once", "pending")
    again = client.get(reverse("deployments:endpoint", args=[endpoint.pk])).content.decode()
    assert "Roll back to v1" not in again  # a rollout is in progress


def test_the_api_rolls_an_endpoint_back(api: Any, endpoint: Endpoint, alice: Any, bob: Any) -> None:
    _, second = _served(endpoint, alice, 1, 2)
    url = f"/api/v1/endpoints/{endpoint.pk}/rollback/"
    api.force_authenticate(bob)
    assert api.post(url).status_code == 404
    api.force_authenticate(alice)
    response = api.post(url)
    assert response.status_code == 201, response.content
    assert (response.json()["version"], response.json()["reverts"]) == (1, second.pk)
    busy = api.post(url)
    assert busy.status_code == 409
    assert busy.json()["code"] == "endpoint_busy"


def test_a_first_version_has_nothing_to_roll_back_to(api: Any, endpoint: Endpoint, alice: Any) -> None:
    _served(endpoint, alice, 1)
    api.force_authenticate(alice)
    response = api.post(f"/api/v1/endpoints/{endpoint.pk}/rollback/")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_deployment"
    assert ModelVersion.objects.count() == 1
    assert Deployment.objects.count() == 1
