"""The workspace page's own actions and what it shows: plan, re-apply and change variables (validated like a
launch, through approval when the policy says so), the ending of a destroyed workspace, the change-freeze banner,
list filters, and audit targets that say what they are and link to them. No worker runs here: queued runs stay
queued, which is what these tests read."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.errors import NotAMember
from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.catalog.schema import InvalidParameters
from apps.catalog.services import change_workspace_variables
from apps.runs.errors import NothingChanged
from apps.runs.models import ChangeFreeze, Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services.execution import approval_reason
from tests.factories import RunFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory
from tests.runs.test_run_pages import must

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready(vision: Team, alice: Any) -> Workspace:
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="alice-ready", status=WorkspaceStatus.READY)
    RunFactory(workspace=workspace, state=RunState.APPLIED)
    return workspace


@pytest.fixture
def alice_client(client: Client, alice: Any) -> Client:
    client.force_login(alice)
    return client


# --- plan, re-apply, change variables -------------------------------------------------------------------------


def test_a_ready_workspace_offers_plan_reapply_and_change_variables(alice_client: Client, ready: Workspace) -> None:
    html = alice_client.get(f"/workspaces/{ready.pk}/").content.decode()

    actions = must(html, "workspace-actions", attr="data-testid")[1]
    assert "Plan" in actions
    assert "Re-apply" in actions
    assert "Change variables" in actions


def test_a_busy_workspace_offers_its_actions_when_the_run_ends(alice_client: Client, ready: Workspace) -> None:
    RunFactory(workspace=ready, state=RunState.APPLYING)

    html = alice_client.get(f"/workspaces/{ready.pk}/").content.decode()

    assert element_missing(html, "reapply")
    assert must(html, "actions-wait", attr="data-testid")


def element_missing(html: str, testid: str) -> bool:
    return f'data-testid="{testid}"' not in html


@pytest.mark.parametrize(("action", "kind"), [("plan", RunKind.PLAN), ("apply", RunKind.APPLY)])
def test_plan_and_reapply_queue_a_run_of_their_kind(
    alice_client: Client, ready: Workspace, action: str, kind: str
) -> None:
    response = alice_client.post(f"/workspaces/{ready.pk}/{action}/")

    run = Run.objects.filter(workspace=ready).order_by("-pk").first()
    assert run is not None
    assert (run.kind, run.state, run.parameters) == (kind, RunState.QUEUED, ready.parameters)
    assert response.url == f"/runs/{run.pk}/"
    assert AuditEvent.objects.filter(verb=f"run.requested_{kind}", target_id=str(run.pk)).exists()


def test_change_variables_queues_a_run_with_the_new_parameters_audited(ready: Workspace, alice: Any) -> None:
    params = {**ready.parameters, "gpu_count": 3}

    change = change_workspace_variables(actor=alice, workspace=ready, params=params)

    assert change.run.parameters["gpu_count"] == 3
    assert change.run.kind == RunKind.APPLY
    assert change.estimate.hourly == Decimal("4.60")  # 0.10 + 3 x 1.50
    ready.refresh_from_db()
    assert ready.parameters["gpu_count"] == 1  # until the run is applied
    event = AuditEvent.objects.get(verb="workspace.variables_changed")
    assert event.data["changes"] == {"gpu_count": {"from": 1, "to": 3}}


def test_change_variables_rejects_bad_values_like_a_launch_and_queues_nothing(ready: Workspace, alice: Any) -> None:
    with pytest.raises(InvalidParameters) as raised:
        change_workspace_variables(actor=alice, workspace=ready, params={**ready.parameters, "gpu_count": 99})

    assert "gpu_count" in raised.value.extra["errors"]
    assert Run.objects.filter(workspace=ready).count() == 1


def test_change_variables_without_a_change_is_refused(ready: Workspace, alice: Any) -> None:
    with pytest.raises(NothingChanged):
        change_workspace_variables(actor=alice, workspace=ready, params=dict(ready.parameters))


def test_only_the_workspace_team_changes_its_variables(ready: Workspace, bob: Any) -> None:
    with pytest.raises(NotAMember):
        change_workspace_variables(actor=bob, workspace=ready, params={**ready.parameters, "gpu_count": 2})


def test_a_change_goes_through_approval_when_the_template_policy_says_so(vision: Team, alice: Any) -> None:
    version = TemplateVersionFactory(approval_policy="always")
    ready = WorkspaceFactory(team=vision, created_by=alice, template_version=version, status=WorkspaceStatus.READY)

    run = change_workspace_variables(actor=alice, workspace=ready, params={**ready.parameters, "gpu_count": 2}).run

    assert "always needs a manager's approval" in approval_reason(run=run)


def test_the_variables_page_is_prefilled_and_shows_every_error_then_queues_a_run(
    alice_client: Client, ready: Workspace
) -> None:
    url = f"/catalog/workspaces/{ready.pk}/variables/"
    html = alice_client.get(url).content.decode()
    assert must(html, "id_p-experiment_name")[0]["value"] == "exp-one"

    bad = alice_client.post(url, {"p-experiment_name": "Bad Name", "p-framework": "pytorch", "p-gpu_count": "99"})
    assert bad.status_code == 422
    assert Run.objects.filter(workspace=ready).count() == 1

    good = alice_client.post(url, {"p-experiment_name": "exp-two", "p-framework": "pytorch", "p-gpu_count": "2"})
    run = Run.objects.filter(workspace=ready).order_by("-pk").first()
    assert run is not None
    assert good.url == f"/runs/{run.pk}/"
    assert run.parameters["experiment_name"] == "exp-two"


def test_api_changes_variables_or_answers_a_problem(ready: Workspace, alice: Any, bob: Any) -> None:
    api = APIClient()
    api.force_authenticate(alice)
    url = f"/api/v1/workspaces/{ready.pk}/variables"

    bad = api.post(url, {"parameters": {**ready.parameters, "gpu_count": 99}}, format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_parameters"
    good = api.post(url, {"parameters": {**ready.parameters, "gpu_count": 2}}, format="json")
    assert good.status_code == 201, good.content
    assert good.json()["run"]["parameters"]["gpu_count"] == 2

    api.force_authenticate(bob)
    assert api.post(url, {"parameters": ready.parameters}, format="json").status_code == 404


def test_api_queues_a_speculative_plan(ready: Workspace, alice: Any) -> None:
    api = APIClient()
    api.force_authenticate(alice)

    response = api.post(f"/api/v1/workspaces/{ready.pk}/runs", {"kind": "plan"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "plan"


# --- a destroyed workspace ------------------------------------------------------------------------------------


def test_a_destroyed_workspace_shows_its_ending_not_live_data(
    alice_client: Client, ready: Workspace, alice: Any
) -> None:
    destroy = RunFactory(workspace=ready, kind=RunKind.DESTROY, state=RunState.QUEUED)
    record(actor=alice, team=ready.team, verb="run.requested_destroy", target=destroy, data={})
    Run.objects.filter(pk=destroy.pk).update(state=RunState.APPLIED, finished_at=destroy.created_at)
    Workspace.objects.filter(pk=ready.pk).update(status=WorkspaceStatus.DESTROYED)

    html = alice_client.get(f"/workspaces/{ready.pk}/").content.decode()

    assert must(html, "ended-by", attr="data-testid")[1].strip().startswith("alice")
    assert "No outputs yet" not in html
    assert 'data-testid="expires"' not in html
    assert 'data-testid="estimate-vs-actual"' not in html
    assert 'data-testid="workspace-actions"' not in html
    assert 'data-testid="runs"' in html


# --- the change-freeze banner ---------------------------------------------------------------------------------


def test_every_page_shows_the_freeze_and_the_held_runs_while_it_holds(alice_client: Client, ready: Workspace) -> None:
    admin: Any = UserFactory(is_superuser=True, is_staff=True)
    RunFactory(workspace=ready, state=RunState.QUEUED)
    assert 'data-testid="freeze-banner"' not in alice_client.get("/workspaces/").content.decode()

    ChangeFreeze.objects.create(active=True, reason="Release weekend.", set_by=admin)

    for url in ("/workspaces/", "/catalog/", f"/workspaces/{ready.pk}/"):
        banner = must(alice_client.get(url).content.decode(), "freeze-banner", attr="data-testid")[1]
        assert "Release weekend." in banner
        assert "held" in banner
        assert "1 queued run of your teams" in banner
    ChangeFreeze.objects.create(active=False, reason="Lifted.", set_by=admin)
    assert 'data-testid="freeze-banner"' not in alice_client.get("/workspaces/").content.decode()


# --- list filters ---------------------------------------------------------------------------------------------


def test_workspace_list_searches_by_name_and_labels_empty_choices(alice_client: Client, ready: Workspace) -> None:
    WorkspaceFactory(team=ready.team, name="other-thing", created_by=ready.created_by)

    html = alice_client.get("/workspaces/?q=ready").content.decode()

    table = must(html, "workspace-table", attr="data-testid")[1]
    assert "alice-ready" in table
    assert "other-thing" not in table
    assert "---------" not in html
    assert "Any status" in html
    assert "Any template" in html
    assert "Any of my teams" in html


def test_run_list_filters_by_state_and_keeps_filters_in_pagination(alice_client: Client, ready: Workspace) -> None:
    for _ in range(51):
        RunFactory(workspace=ready, state=RunState.FAILED)

    html = alice_client.get("/runs/?state=applied").content.decode()
    table = must(html, "run-table", attr="data-testid")[1]
    assert "Applied" in table
    assert "Failed" not in table
    failed = alice_client.get("/runs/?state=failed").content.decode()
    assert must(failed, "next-page", attr="data-testid")[0]["href"] == "?state=failed&page=2"


# --- audit targets --------------------------------------------------------------------------------------------


def test_audit_rows_name_the_target_type_and_link_to_it(client: Client, mark: Any, ready: Workspace) -> None:
    record(actor=mark, team=ready.team, verb="workspace.extended", target=ready, data={})
    client.force_login(mark)

    html = client.get("/audit/").content.decode()

    assert must(html, "target-kind", attr="data-testid")[1] == "Workspace"
    assert must(html, "target-link", attr="data-testid")[0]["href"] == f"/workspaces/{ready.pk}/"
    assert "runs.workspace" not in html
