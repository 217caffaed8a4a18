"""What start_deployment refuses before anything reaches a target: a version that is not approved for production,
archived, of another model or team, already serving; a second rollout on a busy endpoint; bad plans. And the
people's actions: only from the states the transition table allows, audited, scoped to the team."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.deployments.errors import EndpointBusy, InvalidDeployment
from apps.deployments.models import Deployment, DeploymentState, Endpoint, Environment
from apps.deployments.services import rollouts
from apps.deployments.services.endpoints import create_endpoint
from apps.registry.errors import VersionArchived
from apps.registry.models import ModelVersion
from apps.registry.services import archive_version
from tests.factories import ModelVersionFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def endpoint(vision: Team, alice: Any) -> Endpoint:
    model = RegisteredModelFactory(team=vision, name="iris", created_by=alice)
    return create_endpoint(actor=alice, team=vision, model=model, name="iris")


def _version(endpoint: Endpoint, **fields: Any) -> ModelVersion:
    return ModelVersionFactory(model=endpoint.model, **fields)


def test_an_unapproved_version_cannot_serve_production(endpoint: Endpoint, alice: Any) -> None:
    with pytest.raises(rollouts.VersionNotApproved, match="no production approval"):
        rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint))
    assert not Deployment.objects.exists()


def test_staging_endpoints_take_unapproved_versions(vision: Team, alice: Any) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    staging = create_endpoint(
        actor=alice, team=vision, model=model, name="iris-staging", environment=Environment.STAGING
    )
    deployment = rollouts.start_deployment(actor=alice, endpoint=staging, version=ModelVersionFactory(model=model))
    assert deployment.state == DeploymentState.PENDING
    assert AuditEvent.objects.filter(verb="deployment.requested").count() == 1
    assert list(deployment.events.values_list("kind", flat=True)) == ["requested"]


def test_archived_or_foreign_versions_are_refused(endpoint: Endpoint, alice: Any, nlp: Team, bob: Any) -> None:
    archived = _version(endpoint, approved=True)
    archive_version(actor=alice, version=archived)
    with pytest.raises(VersionArchived):
        rollouts.start_deployment(actor=alice, endpoint=endpoint, version=archived)
    theirs = ModelVersionFactory(model=RegisteredModelFactory(team=nlp, created_by=bob), approved=True)
    with pytest.raises(InvalidDeployment, match="not a version of iris") as caught:
        rollouts.start_deployment(actor=alice, endpoint=endpoint, version=theirs)
    assert caught.value.field == "version"


def test_one_active_rollout_per_endpoint(endpoint: Endpoint, alice: Any) -> None:
    rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint, approved=True))
    with pytest.raises(EndpointBusy, match=r"deployment #\d+, pending"):
        rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint, approved=True))
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"weight": 50}, {"weight": 10}, {"weight": 100}], "steps"),
        ([{"weight": 10}], "steps"),
        ([{"weight": 0}, {"weight": 100}], "steps[0].weight"),
        ([{"weight": 10, "bake_seconds": -1}, {"weight": 100}], "steps[0].bake_seconds"),
        ([{"weight": 10, "colour": "red"}, {"weight": 100}], "steps[0]"),
    ],
)
def test_bad_plans_are_refused_with_the_step(endpoint: Endpoint, alice: Any, steps: list[Any], field: str) -> None:
    with pytest.raises(InvalidDeployment) as caught:
        rollouts.start_deployment(
            actor=alice, endpoint=endpoint, version=_version(endpoint, approved=True), steps=steps
        )
    assert caught.value.field == field


def test_people_act_only_from_allowed_states(endpoint: Endpoint, alice: Any, mark: Any) -> None:
    deployment = rollouts.start_deployment(actor=alice, endpoint=endpoint, version=_version(endpoint, approved=True))
    with pytest.raises(InvalidDeployment, match="Only a paused rollout"):
        rollouts.resume(actor=alice, deployment=deployment)
    aborted = rollouts.abort(actor=alice, deployment=deployment)
    assert aborted.state == DeploymentState.ABORTED
    assert aborted.dora.outcome == "aborted"
    assert AuditEvent.objects.filter(verb="deployment.aborted", actor=alice).exists()


def test_a_rollout_needing_approval_waits_for_another_manager(vision: Team, alice: Any, mark: Any) -> None:
    model = RegisteredModelFactory(team=vision, created_by=alice)
    gated = create_endpoint(actor=alice, team=vision, model=model, name="gated", require_approval=True)
    deployment = rollouts.start_deployment(
        actor=alice, endpoint=gated, version=ModelVersionFactory(model=model, approved=True)
    )
    rollouts.advance(deployment_id=deployment.pk)
    deployment.refresh_from_db()
    assert deployment.state == DeploymentState.AWAITING_APPROVAL
    with pytest.raises(Exception, match="manager"):
        rollouts.approve(actor=alice, deployment=deployment)
    approved = rollouts.approve(actor=mark, deployment=deployment)
    assert approved.state == DeploymentState.PROVISIONING
    assert approved.approved_by == mark


def test_the_api_starts_a_rollout_and_hides_other_teams(endpoint: Endpoint, alice: Any, bob: Any) -> None:
    version = _version(endpoint, approved=True)
    api = APIClient()
    api.force_authenticate(alice)
    answer = api.post("/api/v1/deployments", {"endpoint": endpoint.pk, "version": version.pk}, format="json")
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["state"] == "pending"
    assert body["steps"][0] == {"weight": 10, "bake_seconds": 30}
    busy = api.post("/api/v1/deployments", {"endpoint": endpoint.pk, "version": version.pk}, format="json")
    assert busy.status_code == 409
    assert busy.json()["code"] == "endpoint_busy"
    bad = api.post(
        "/api/v1/deployments",
        {"endpoint": endpoint.pk, "version": version.pk, "steps": [{"weight": 200}]},
        format="json",
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_deployment"
    outsider = APIClient()
    outsider.force_authenticate(bob)
    assert outsider.get(f"/api/v1/deployments/{body['id']}").status_code == 404
    assert outsider.post(f"/api/v1/deployments/{body['id']}/abort").status_code == 404
    refused = outsider.post("/api/v1/deployments", {"endpoint": endpoint.pk, "version": version.pk}, format="json")
    assert refused.status_code == 404
