"""The model registry: versions numbered per model and immutable, aliases unique per model, production approval
by a team manager only, all audited, scoped to the team, and the same over the API and the pages."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.errors import NotAMember
from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.registry import services
from apps.registry.errors import ApprovalDenied, InvalidModelVersion, ModelNameTaken, VersionArchived
from apps.registry.models import ModelAlias, VersionStatus
from tests.factories import ClusterFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

ARTIFACT = "file:///var/models/iris/model.joblib"


def test_versions_are_numbered_per_model_with_lineage_and_audited(vision: Team, alice: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn", description="Churn scorer")
    workspace = WorkspaceFactory(team=vision, created_by=alice)
    cluster = ClusterFactory(team=vision, owner=alice)
    first = services.register_version(
        actor=alice,
        model=model,
        artifact_uri=ARTIFACT,
        framework="sklearn",
        metrics={"accuracy": 0.93, "auc": 0.97},
        workspace=workspace,
        cluster=cluster,
        dataset_uri="s3://vision-data/churn/2026-11.parquet",
        dataset_hash="sha256:abc",
        code_commit="0123abc",
    )
    second = services.register_version(actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn")
    assert (first.version, second.version) == (1, 2)
    assert first.workspace == workspace
    assert first.cluster == cluster
    verbs = list(AuditEvent.objects.order_by("pk").values_list("verb", flat=True))
    assert verbs == ["model.registered", "model_version.registered", "model_version.registered"]


def test_a_registered_version_is_immutable(vision: Team, alice: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    version = services.register_version(actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn")
    version.artifact_uri = "file:///elsewhere/model.joblib"
    with pytest.raises(ValueError, match="immutable"):
        version.save()
    version.refresh_from_db()
    assert version.artifact_uri == ARTIFACT
    services.set_version_tags(actor=alice, version=version, tags={"owner": "alice"})  # tags are not lineage
    version.refresh_from_db()
    assert version.tags == {"owner": "alice"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"artifact_uri": "http://example.com/model"}, "artifact_uri"),
        ({"framework": "caffe"}, "framework"),
        ({"code_commit": "not-a-sha"}, "code_commit"),
        ({"metrics": {"accuracy": "high"}}, "metrics"),
        ({"metrics": [1, 2]}, "metrics"),
    ],
)
def test_bad_versions_are_refused_with_the_field(vision: Team, alice: Any, fields: dict[str, Any], field: str) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    values = {"artifact_uri": ARTIFACT, "framework": "sklearn", **fields}
    with pytest.raises(InvalidModelVersion) as caught:
        services.register_version(actor=alice, model=model, **values)
    assert caught.value.field == field
    assert not model.versions.exists()


def test_lineage_from_another_team_is_refused(vision: Team, nlp: Team, alice: Any, bob: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    theirs = WorkspaceFactory(team=nlp, created_by=bob)
    with pytest.raises(InvalidModelVersion) as caught:
        services.register_version(
            actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn", workspace=theirs
        )
    assert caught.value.field == "workspace"


def test_names_are_unique_per_team_and_outsiders_cannot_register(vision: Team, alice: Any, bob: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    with pytest.raises(ModelNameTaken):
        services.register_model(actor=alice, team=vision, name="churn")
    with pytest.raises(NotAMember):
        services.register_version(actor=bob, model=model, artifact_uri=ARTIFACT, framework="sklearn")


def test_aliases_are_unique_per_model_and_move(vision: Team, alice: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    v1 = services.register_version(actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn")
    v2 = services.register_version(actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn")
    services.set_alias(actor=alice, model=model, name="champion", version=v1)
    services.set_alias(actor=alice, model=model, name="champion", version=v2)
    assert list(ModelAlias.objects.values_list("name", "version__version")) == [("champion", 2)]
    with pytest.raises(InvalidModelVersion):  # an aliased version cannot be archived
        services.archive_version(actor=alice, version=v2)
    archived = services.archive_version(actor=alice, version=v1)
    assert archived.status == VersionStatus.ARCHIVED
    assert archived.archived_at is not None
    with pytest.raises(VersionArchived):
        services.set_alias(actor=alice, model=model, name="challenger", version=archived)


def test_only_a_team_manager_approves_for_production(vision: Team, alice: Any, mark: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    version = services.register_version(actor=alice, model=model, artifact_uri=ARTIFACT, framework="sklearn")
    with pytest.raises(ApprovalDenied):
        services.approve_version(actor=alice, version=version)
    approved = services.approve_version(actor=mark, version=version)
    assert approved.approved
    assert approved.production_approved_by == mark
    assert AuditEvent.objects.filter(verb="model_version.approved", actor=mark).count() == 1


def test_the_api_registers_and_approves_and_hides_other_teams(
    vision: Team, nlp: Team, alice: Any, bob: Any, mark: Any
) -> None:
    api = APIClient()
    api.force_authenticate(alice)
    created = api.post("/api/v1/models", {"team": "vision", "name": "churn"}, format="json")
    assert created.status_code == 201, created.content
    model_id = created.json()["id"]
    version = api.post(
        f"/api/v1/models/{model_id}/versions",
        {"artifact_uri": ARTIFACT, "framework": "sklearn", "metrics": {"accuracy": 0.9}},
        format="json",
    )
    assert version.status_code == 201, version.content
    assert version.json()["version"] == 1
    bad = api.post(
        f"/api/v1/models/{model_id}/versions", {"artifact_uri": "ftp://x", "framework": "sklearn"}, format="json"
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_model_version"
    assert "artifact_uri" in bad.json()["errors"]
    refused = api.post(f"/api/v1/model-versions/{version.json()['id']}/approve")
    assert refused.status_code == 403
    assert refused.json()["code"] == "approval_denied"
    alias = api.post(f"/api/v1/models/{model_id}/aliases", {"name": "champion", "version": 1}, format="json")
    assert alias.status_code == 200
    assert alias.json()["aliases"] == [{"name": "champion", "version": 1}]
    manager = APIClient()
    manager.force_authenticate(mark)
    approved = manager.post(f"/api/v1/model-versions/{version.json()['id']}/approve")
    assert approved.status_code == 200
    assert approved.json()["production_approved_by"] == "mark"
    outsider = APIClient()
    outsider.force_authenticate(bob)
    assert outsider.get(f"/api/v1/models/{model_id}").status_code == 404
    assert outsider.post(f"/api/v1/models/{model_id}/versions", {}, format="json").status_code == 404


def test_the_model_page_registers_a_version_and_shows_lineage(client: Client, vision: Team, alice: Any) -> None:
    model = services.register_model(actor=alice, team=vision, name="churn")
    client.force_login(alice)
    answer = client.post(
        f"/models/{model.pk}/",
        {"artifact_uri": ARTIFACT, "framework": "sklearn", "metrics": '{"accuracy": 0.91}', "code_commit": "abc1234"},
    )
    assert answer.status_code == 302
    page = client.get(f"/models/{model.pk}/").content.decode()
    assert "v1" in page
    assert "accuracy 0.91" in page
    assert "abc1234" in page
    bad = client.post(f"/models/{model.pk}/", {"artifact_uri": ARTIFACT, "framework": "sklearn", "metrics": "[1]"})
    assert bad.status_code == 422
    assert "JSON object" in bad.content.decode()
