"""Ways out of a dead end: forgetting a workspace that never applied anything, and a platform admin's
force-delete of one whose destroy keeps failing. State is real Terraform state in the pg backend, written by the
engine's own work dir and runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from apps.accounts.errors import NotAMember
from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.errors import WorkspaceBusy
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services.execution import prepare_workdir
from apps.runs.services.state import managed_resources, read_state
from apps.runs.terraform import TerraformRunner
from tests.factories import PASSWORD, RunFactory, WorkspaceFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def failed(alice: Any, vision: Team) -> Workspace:
    """A workspace whose only run failed at plan: nothing was ever applied."""
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="never-applied", status=WorkspaceStatus.FAILED)
    RunFactory(workspace=workspace, created_by=alice, state=RunState.FAILED, state_reason="terraform plan failed")
    return workspace


@pytest.fixture
def ada(vision: Team) -> Any:
    """A platform admin: a superuser who is an admin of the team."""
    return member(vision, Role.ADMIN, username="ada", is_superuser=True, is_staff=True)


def as_user(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def apply_out_of_band(workspace: Workspace, settings: Any, tmp_path: Path) -> None:
    """Apply the workspace's module into its own state with the engine's work dir and runner, as a run that
    failed half way would have: the state holds resources although no run of the workspace applied."""
    settings.RUNS_DIR = tmp_path / "runs"
    run = RunFactory(workspace=workspace, created_by=workspace.created_by, state=RunState.ERRORED)
    workdir, config = prepare_workdir(run=run)
    runner = TerraformRunner(workdir, on_line=lambda line: None, timeout=120)
    runner.init(backend_config=config)
    assert runner.plan() is True
    runner.apply()


# --- Forget -------------------------------------------------------------------------------------------------------


def test_forget_hides_a_never_applied_workspace_keeps_its_history_and_frees_its_name(
    alice: Any, vision: Team, failed: Workspace
) -> None:
    response = as_user(alice).post(f"/api/v1/workspaces/{failed.pk}/forget/")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "forgotten"
    event = AuditEvent.objects.get(verb="workspace.forgotten")
    assert (event.actor, event.team, event.target_id, event.data["from"]) == (alice, vision, str(failed.pk), "failed")
    listed = as_user(alice).get("/api/v1/workspaces/").json()["results"]
    assert failed.pk not in [row["id"] for row in listed]
    asked_for = as_user(alice).get("/api/v1/workspaces/?status=forgotten").json()["results"]
    assert [row["id"] for row in asked_for] == [failed.pk]
    assert as_user(alice).get(f"/api/v1/workspaces/{failed.pk}/").status_code == 200
    assert Run.objects.filter(workspace=failed).count() == 1
    with pytest.raises(WorkspaceBusy):  # nothing more runs on a forgotten workspace
        services.queue_run(actor=alice, workspace=Workspace.objects.get(pk=failed.pk), kind=RunKind.APPLY)
    again = launch_template(
        actor=alice,
        team=vision,
        version=failed.template_version,
        params={"experiment_name": "second-try"},
        name=failed.name,
    )
    assert again.workspace.pk != failed.pk


def test_forget_refuses_a_workspace_whose_run_applied(alice: Any, vision: Team) -> None:
    workspace = WorkspaceFactory(team=vision, created_by=alice, status=WorkspaceStatus.FAILED)
    applied = RunFactory(workspace=workspace, created_by=alice, state=RunState.APPLIED)
    RunFactory(workspace=workspace, created_by=alice, state=RunState.FAILED)

    response = as_user(alice).post(f"/api/v1/workspaces/{workspace.pk}/forget/")

    assert response.status_code == 409
    assert response.json()["code"] == "workspace_has_resources"
    assert f"run #{applied.pk} applied" in response.json()["detail"]
    assert Workspace.objects.get(pk=workspace.pk).status == WorkspaceStatus.FAILED
    assert not AuditEvent.objects.filter(verb="workspace.forgotten").exists()


@pytest.mark.integration
def test_forget_refuses_when_the_state_holds_resources_though_no_run_applied(
    alice: Any, failed: Workspace, settings: Any, tmp_path: Path
) -> None:
    apply_out_of_band(failed, settings, tmp_path)

    response = as_user(alice).post(f"/api/v1/workspaces/{failed.pk}/forget/")

    assert response.status_code == 409
    assert response.json()["code"] == "workspace_has_resources"
    assert "terraform_data.sandbox" in response.json()["detail"]
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


@pytest.mark.parametrize("state", [RunState.QUEUED, RunState.PLANNING, RunState.AWAITING_APPROVAL])
def test_forget_refuses_while_a_run_is_in_flight(alice: Any, failed: Workspace, state: str) -> None:
    busy = RunFactory(workspace=failed, created_by=alice, state=state)

    response = as_user(alice).post(f"/api/v1/workspaces/{failed.pk}/forget/")

    assert response.status_code == 409
    assert response.json()["code"] == "runs_in_flight"
    assert f"Run #{busy.pk}" in response.json()["detail"]
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


def test_forget_is_refused_outside_the_team(bob: Any, failed: Workspace) -> None:
    assert as_user(bob).post(f"/api/v1/workspaces/{failed.pk}/forget/").status_code == 404
    with pytest.raises(NotAMember) as refused:
        services.forget_workspace(actor=bob, workspace=failed)
    assert refused.value.code == "not_a_member"
    assert refused.value.status == 403
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


def test_forgetting_twice_is_a_conflict(alice: Any, failed: Workspace) -> None:
    services.forget_workspace(actor=alice, workspace=failed)

    response = as_user(alice).post(f"/api/v1/workspaces/{failed.pk}/forget/")

    assert response.status_code == 409
    assert response.json()["code"] == "illegal_workspace_transition"


def test_the_workspace_page_forgets_only_once_the_box_is_ticked(client: Client, alice: Any, failed: Workspace) -> None:
    client.login(username=alice.username, password=PASSWORD)
    page = client.get(reverse("runs:workspace-detail", args=[failed.pk])).content.decode()
    assert 'data-testid="forget"' in page
    assert 'data-testid="force-delete"' not in page  # platform admins only
    url = reverse("runs:workspace-action", args=[failed.pk, "forget"])

    unticked = client.post(url, follow=True)
    assert "Tick the box" in unticked.content.decode()
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED

    ticked = client.post(url, {"confirm": "yes"}, follow=True)
    assert ticked.redirect_chain[-1][0] == reverse("runs:workspace-list")
    assert "is forgotten" in ticked.content.decode()
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FORGOTTEN
    assert "never-applied" not in client.get(reverse("runs:workspace-list")).content.decode()


def test_the_workspace_page_offers_no_forget_while_a_run_is_in_flight(
    client: Client, alice: Any, failed: Workspace
) -> None:
    RunFactory(workspace=failed, created_by=alice, state=RunState.QUEUED)
    client.login(username=alice.username, password=PASSWORD)

    page = client.get(reverse("runs:workspace-detail", args=[failed.pk])).content.decode()

    assert 'data-testid="forget"' not in page


# --- Force-delete ---------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_force_delete_keeps_the_redacted_state_in_the_audit_discards_waiting_runs_and_frees_the_lock(
    ada: Any, alice: Any, vision: Team, failed: Workspace, settings: Any, tmp_path: Path
) -> None:
    apply_out_of_band(failed, settings, tmp_path)
    waiting = RunFactory(workspace=failed, created_by=alice, state=RunState.AWAITING_APPROVAL)
    Workspace.objects.filter(pk=failed.pk).update(locked_by=waiting)

    response = as_user(ada).post(
        f"/api/v1/workspaces/{failed.pk}/force-delete/", {"confirm": failed.name, "reason": "destroy keeps failing"}
    )

    assert response.status_code == 200, response.content
    workspace = Workspace.objects.get(pk=failed.pk)
    assert (workspace.status, workspace.locked_by) == (WorkspaceStatus.DELETED, None)
    assert Run.objects.get(pk=waiting.pk).state == RunState.DISCARDED
    event = AuditEvent.objects.get(verb="workspace.deleted")
    assert (event.actor, event.team, event.data["reason"]) == (ada, vision, "destroy keeps failing")
    assert sorted(event.data["left_behind"]) == ["terraform_data.sandbox", "terraform_data.tracking"]
    kept = event.data["state"]
    assert {r["name"] for r in kept["resources"]} == {"sandbox", "tracking"}
    assert kept["outputs"]["tracking_token"]["value"] == "(sensitive, redacted)"
    assert kept["outputs"]["sandbox_id"]["value"]  # what is not sensitive is kept as it was
    assert event.data["discarded_runs"] == [waiting.pk]
    assert event.data["lock_held_by"] == waiting.pk
    assert read_state(workspace=workspace) is None  # the state schema and its lock are gone with it


@pytest.mark.integration
def test_force_delete_of_a_local_state_file_keeps_it_in_the_audit_and_removes_it(
    ada: Any, failed: Workspace, settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.USING_POSTGRES = False  # the state backend of a portal on SQLite (`make run`): a local file
    settings.TERRAFORM_STATE_DIR = tmp_path / "state"
    apply_out_of_band(failed, settings, tmp_path)
    assert managed_resources(state=read_state(workspace=failed)) == [
        "terraform_data.sandbox",
        "terraform_data.tracking",
    ]

    with django_capture_on_commit_callbacks(execute=True):
        services.force_delete_workspace(actor=ada, workspace=failed, confirm_name=failed.name)

    event = AuditEvent.objects.get(verb="workspace.deleted")
    assert {r["name"] for r in event.data["state"]["resources"]} == {"sandbox", "tracking"}
    assert read_state(workspace=failed) is None
    assert not any((tmp_path / "state").rglob("terraform.tfstate"))


def test_force_delete_refuses_a_wrong_confirmation(ada: Any, failed: Workspace) -> None:
    response = as_user(ada).post(f"/api/v1/workspaces/{failed.pk}/force-delete/", {"confirm": "never-applie"})

    assert response.status_code == 400
    assert response.json()["code"] == "confirmation_mismatch"
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


def test_force_delete_is_for_platform_admins_only(failed: Workspace, vision: Team) -> None:
    team_admin = member(vision, Role.ADMIN, username="tina")

    response = as_user(team_admin).post(f"/api/v1/workspaces/{failed.pk}/force-delete/", {"confirm": failed.name})

    assert response.status_code == 403
    assert response.json()["code"] == "not_a_platform_admin"
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


@pytest.mark.parametrize("state", [RunState.PLANNING, RunState.APPLYING])
def test_force_delete_refuses_while_terraform_is_running(ada: Any, failed: Workspace, state: str) -> None:
    running = RunFactory(workspace=failed, created_by=ada, state=state)

    response = as_user(ada).post(f"/api/v1/workspaces/{failed.pk}/force-delete/", {"confirm": failed.name})

    assert response.status_code == 409
    assert response.json()["code"] == "runs_in_flight"
    assert Run.objects.get(pk=running.pk).state == state
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED


def test_the_workspace_page_force_deletes_with_the_typed_name(client: Client, ada: Any, failed: Workspace) -> None:
    client.login(username="ada", password=PASSWORD)
    assert (
        'data-testid="force-delete"' in client.get(reverse("runs:workspace-detail", args=[failed.pk])).content.decode()
    )
    url = reverse("runs:workspace-action", args=[failed.pk, "force-delete"])

    wrong = client.post(url, {"confirm": "nope"}, follow=True)
    assert "exactly to confirm the force-delete" in wrong.content.decode()
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.FAILED

    client.post(url, {"confirm": failed.name, "reason": "stuck"})
    assert Workspace.objects.get(pk=failed.pk).status == WorkspaceStatus.DELETED
    gone = client.get(reverse("runs:workspace-detail", args=[failed.pk])).content.decode()
    assert 'data-testid="gone"' in gone
    assert 'data-testid="destroy"' not in gone
