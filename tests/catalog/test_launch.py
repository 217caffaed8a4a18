"""launch_template through the service, the API and the browser form: same validation, same errors, and
nothing created when anything is wrong."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog import errors
from apps.catalog.models import Lifecycle
from apps.catalog.schema import InvalidParameters
from apps.catalog.services import launch_template
from apps.runs.models import Run, RunState, Workspace, WorkspaceStatus
from tests.factories import TemplateFactory, TemplateVersionFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

GOOD = {"experiment_name": "resnet-sweep", "gpu_count": 2}


@pytest.fixture
def version(db: None) -> Any:
    return TemplateVersionFactory(template=TemplateFactory(slug="sandbox-test"))


def nothing_created() -> bool:
    return not Workspace.objects.exists() and not Run.objects.exists()


def test_launch_creates_workspace_and_queued_run_with_snapshot(alice: Any, vision: Team, version: Any) -> None:
    result = launch_template(actor=alice, team=vision, version=version, params=GOOD, name="my-sweep")

    workspace = Workspace.objects.get()
    run = Run.objects.get()
    assert workspace == result.workspace
    assert (workspace.team, workspace.name, workspace.status) == (vision, "my-sweep", WorkspaceStatus.PROVISIONING)
    assert workspace.parameters == {"experiment_name": "resnet-sweep", "gpu_count": 2, "framework": "pytorch"}
    assert run.state == RunState.QUEUED
    assert run.parameters == workspace.parameters
    assert run.template_version == version
    assert workspace.estimated_hourly_cost == Decimal("3.1000")
    assert workspace.expires_at is not None
    event = AuditEvent.objects.get(verb="workspace.launched")
    assert (event.actor, event.team, event.target_id) == (alice, vision, str(workspace.pk))


def test_publishing_a_new_version_leaves_existing_workspaces_pinned(alice: Any, vision: Team, version: Any) -> None:
    launch_template(actor=alice, team=vision, version=version, params=GOOD, name="pinned")
    TemplateVersionFactory(template=version.template, version="2.0.0")
    assert Workspace.objects.get().template_version == version


def test_duplicate_workspace_name_in_a_team_is_refused(alice: Any, vision: Team, version: Any) -> None:
    launch_template(actor=alice, team=vision, version=version, params=GOOD, name="taken")
    with pytest.raises(errors.WorkspaceNameTaken, match="already has a workspace named 'taken'"):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name="taken")
    assert Workspace.objects.count() == 1
    assert Run.objects.count() == 1


def test_same_name_in_another_team_is_fine(alice: Any, bob: Any, vision: Team, nlp: Team, version: Any) -> None:
    launch_template(actor=alice, team=vision, version=version, params=GOOD, name="shared-name")
    launch_template(actor=bob, team=nlp, version=version, params=GOOD, name="shared-name")
    assert Workspace.objects.count() == 2


@pytest.mark.parametrize("lifecycle", [Lifecycle.DRAFT, Lifecycle.DEPRECATED, Lifecycle.RETIRED])
def test_only_published_versions_launch(alice: Any, vision: Team, lifecycle: str) -> None:
    version = TemplateVersionFactory(lifecycle=lifecycle)
    with pytest.raises(errors.VersionNotLaunchable, match=lifecycle):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name="nope")
    assert nothing_created()


def test_member_cannot_launch_into_another_team(alice: Any, nlp: Team, version: Any) -> None:
    with pytest.raises(errors.TemplateNotVisible):
        launch_template(actor=alice, team=nlp, version=version, params=GOOD, name="sneaky")
    assert nothing_created()


def test_template_shared_with_other_teams_only_cannot_be_launched(alice: Any, vision: Team, nlp: Team) -> None:
    template = TemplateFactory(visible_to_all=False)
    template.visible_to.set([nlp])
    version = TemplateVersionFactory(template=template)
    with pytest.raises(errors.TemplateNotVisible):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name="hidden")


@pytest.mark.parametrize("name", ["ab", "UPPER", "has space", "-dash-first", "x" * 41, "semi;colon"])
def test_bad_workspace_names_are_refused(alice: Any, vision: Team, version: Any, name: str) -> None:
    with pytest.raises(errors.InvalidWorkspaceName):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name=name)
    assert nothing_created()


def test_ttl_above_the_template_maximum_is_refused(alice: Any, vision: Team, version: Any) -> None:
    with pytest.raises(errors.InvalidTtl, match="at most 72 hours"):
        launch_template(actor=alice, team=vision, version=version, params=GOOD, name="long-lived", ttl_hours=73)
    assert nothing_created()


BAD_PARAMETERS = [
    pytest.param({"gpu_count": 2}, "experiment_name", id="missing-required"),
    pytest.param({**GOOD, "gpu_count": "two"}, "gpu_count", id="wrong-type"),
    pytest.param({**GOOD, "gpu_count": 99}, "gpu_count", id="above-maximum"),
    pytest.param({**GOOD, "framework": "tensorflow"}, "framework", id="not-in-enum"),
    pytest.param({**GOOD, "surprise": 1}, "surprise", id="extra-property"),
    pytest.param({**GOOD, "notes": "x" * 5000}, "notes", id="huge-string"),
    pytest.param({**GOOD, "notes": '${file("/etc/passwd")}'}, "notes", id="hcl-interpolation"),
    pytest.param({**GOOD, "experiment_name": "; rm -rf /"}, "experiment_name", id="shell-injection"),
    pytest.param({**GOOD, "notes": "%{ if true }x%{ endif }"}, "notes", id="hcl-directive"),
]


@pytest.mark.parametrize(("params", "field"), BAD_PARAMETERS)
def test_bad_parameters_are_refused_and_nothing_is_created(
    alice: Any, vision: Team, version: Any, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParameters) as caught:
        launch_template(actor=alice, team=vision, version=version, params=params, name="bad-params")
    assert field in caught.value.extra["errors"]
    assert nothing_created()
    assert not AuditEvent.objects.filter(verb="workspace.launched").exists()


# --- API --------------------------------------------------------------------------------------------------


def launch_url(slug: str = "sandbox-test") -> str:
    return reverse("api:template-launch", args=[slug])


def test_api_launch_returns_workspace_run_and_estimate(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "api-sweep", "parameters": GOOD}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["workspace"]["name"] == "api-sweep"
    assert body["run"]["state"] == "queued"
    assert body["estimate"] == {
        "currency": "USD",
        "hourly": "3.1000",
        "monthly": "2263.00",
        "max_total": None,  # a workspace runs until destroyed: no bounded total
        "lines": [{"label": "Base", "hourly": "0.1000"}, {"label": "GPUs", "hourly": "3.0000"}],
    }


@pytest.mark.parametrize(("params", "field"), BAD_PARAMETERS)
def test_api_refuses_bad_parameters_with_field_errors(
    api: Any, alice: Any, vision: Team, version: Any, params: dict[str, Any], field: str
) -> None:
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "bad-api", "parameters": params}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_parameters"
    assert field in body["errors"]
    assert nothing_created()


def test_api_unknown_template_is_a_404_problem(api: Any, alice: Any, vision: Team) -> None:
    api.force_authenticate(alice)
    response = api.post(launch_url("no-such"), {"team": "vision", "name": "x-y-z", "parameters": {}}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "template_not_found"


def test_api_retired_version_is_refused(api: Any, alice: Any, vision: Team, version: Any) -> None:
    TemplateVersionFactory(template=version.template, version="0.9.0", lifecycle=Lifecycle.RETIRED)
    api.force_authenticate(alice)
    payload = {"team": "vision", "name": "old-one", "parameters": GOOD, "version": "0.9.0"}
    response = api.post(launch_url(), payload, format="json")
    assert response.status_code in {400, 404}
    assert response.json()["code"] in {"version_not_launchable", "version_not_found"}
    assert nothing_created()


def test_api_duplicate_name_is_a_409_problem(api: Any, alice: Any, vision: Team, version: Any) -> None:
    WorkspaceFactory(team=vision, name="dupe")
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "dupe", "parameters": GOOD}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "workspace_name_taken"


def test_api_parameters_must_be_an_object(api: Any, alice: Any, vision: Team, version: Any) -> None:
    api.force_authenticate(alice)
    response = api.post(launch_url(), {"team": "vision", "name": "list-params", "parameters": [1]}, format="json")
    assert response.status_code == 400
    assert "__all__" in response.json()["errors"]


def test_api_estimate_prices_parameters(api: Any, alice: Any, version: Any) -> None:
    api.force_authenticate(alice)
    url = reverse("api:template-estimate", args=["sandbox-test"])
    response = api.post(url, {"parameters": {"experiment_name": "abc", "gpu_count": 4}}, format="json")
    assert response.status_code == 200
    assert response.json()["hourly"] == "6.1000"


# --- Browser form (server side) -----------------------------------------------------------------------------


def form_data(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "form-sweep",
        "team": "vision",
        "p-experiment_name": "resnet-sweep",
        "p-framework": "pytorch",
        "p-gpu_count": "2",
        "p-notes": "",
    }
    data.update(overrides)
    return data


def test_form_launch_lands_on_the_workspace_page(client: Client, alice: Any, vision: Team, version: Any) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=["sandbox-test"]), form_data())
    workspace = Workspace.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:workspace-detail", args=[workspace.pk])
    assert workspace.parameters == {"experiment_name": "resnet-sweep", "framework": "pytorch", "gpu_count": 2}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"p-gpu_count": "99"}, "at most 8"),
        ({"p-experiment_name": "; rm -rf /"}, "pattern"),
        ({"p-notes": '${file("/etc/passwd")}'}, "Terraform template sequences"),
        ({"name": "Bad Name"}, "lowercase"),
    ],
)
def test_form_errors_re_render_with_422_and_create_nothing(
    client: Client, alice: Any, vision: Team, version: Any, overrides: dict[str, str], message: str
) -> None:
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=["sandbox-test"]), form_data(**overrides))
    assert response.status_code == 422
    assert message in response.content.decode()
    assert nothing_created()


def test_form_duplicate_name_shows_the_error_on_the_name_field(
    client: Client, alice: Any, vision: Team, version: Any
) -> None:
    WorkspaceFactory(team=vision, name="form-sweep")
    client.force_login(alice)
    response = client.post(reverse("catalog:launch", args=["sandbox-test"]), form_data())
    assert response.status_code == 422
    assert response.context["meta"].errors["name"]


def test_inline_validation_returns_the_fields_errors(client: Client, alice: Any, version: Any) -> None:
    client.force_login(alice)
    url = reverse("catalog:launch-validate", args=["sandbox-test"])
    bad = client.post(url, form_data(**{"p-gpu_count": "12", "_field": "gpu_count"}), HTTP_HX_REQUEST="true")
    good = client.post(url, form_data(**{"_field": "gpu_count"}), HTTP_HX_REQUEST="true")
    assert "at most 8" in bad.content.decode()
    assert "at most 8" not in good.content.decode()
    assert "3.10 USD" in good.content.decode()
