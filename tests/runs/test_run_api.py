"""The runs and workspaces API keeps its contract on odd input: regressions found by the contract fuzzer
(tests/contract), each a 500 or an answer the schema did not declare before it was fixed."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.runs.models import Run, RunState
from tests.factories import RunFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def applied_run(vision: Team, alice: Any) -> Run:
    """A run whose plan never needed approval (no Approval row)."""
    return RunFactory(workspace=WorkspaceFactory(team=vision, created_by=alice), state=RunState.APPLIED)


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_deciding_a_run_that_never_needed_approval_is_a_409(
    applied_run: Run, mark: Any, api: APIClient, decision: str
) -> None:
    api.force_authenticate(mark)

    response = api.post(f"/api/v1/runs/{applied_run.pk}/{decision}", {"comment": "go"})

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "approval_not_required"
    applied_run.refresh_from_db()
    assert applied_run.state == RunState.APPLIED
    assert not AuditEvent.objects.filter(verb__startswith="approval.").exists()


def test_a_member_deciding_such_a_run_is_refused_as_not_an_approver(
    applied_run: Run, alice: Any, api: APIClient
) -> None:
    api.force_authenticate(alice)

    response = api.post(f"/api/v1/runs/{applied_run.pk}/approve", {})

    assert response.status_code == 403
    assert response.json()["code"] == "not_an_approver"


@pytest.mark.parametrize("workspace", ["99999999999999999999", "-99999999999999999999", "1.5", "abc"])
def test_a_workspace_filter_no_id_can_match_is_a_400_problem(
    applied_run: Run, alice: Any, api: APIClient, workspace: str
) -> None:
    api.force_authenticate(alice)

    response = api.get("/api/v1/runs/", {"workspace": workspace})

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_query"
    assert set(response.json()["errors"]) == {"workspace"}


def test_the_workspace_filter_still_filters(applied_run: Run, vision: Team, alice: Any, api: APIClient) -> None:
    RunFactory(workspace=WorkspaceFactory(team=vision, created_by=alice))
    api.force_authenticate(alice)

    response = api.get("/api/v1/runs/", {"workspace": applied_run.workspace_id})

    assert [run["id"] for run in response.json()["results"]] == [applied_run.pk]


@pytest.mark.parametrize(("query", "parameter"), [({"state": "exploded"}, "state"), ({"status": "x"}, "status")])
def test_an_unknown_choice_is_an_invalid_query(
    alice: Any, api: APIClient, query: dict[str, str], parameter: str
) -> None:
    api.force_authenticate(alice)
    path = "/api/v1/runs/" if parameter == "state" else "/api/v1/workspaces/"

    response = api.get(path, query)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_query"
    assert set(response.json()["errors"]) == {parameter}


@pytest.mark.parametrize("after", ["-1", "abc", "99999999999999999999"])
def test_a_bad_log_offset_is_refused_instead_of_read_as_zero(
    applied_run: Run, alice: Any, api: APIClient, after: str
) -> None:
    api.force_authenticate(alice)

    response = api.get(f"/api/v1/runs/{applied_run.pk}/log", {"after": after})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"after"}


def test_run_request_refuses_a_number_where_the_schema_says_string(
    applied_run: Run, alice: Any, api: APIClient
) -> None:
    api.force_authenticate(alice)

    response = api.post(f"/api/v1/workspaces/{applied_run.workspace_id}/runs", {"kind": "apply", "confirm": 0})

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"confirm"}
    assert Run.objects.count() == 1


def test_extending_past_any_sane_ttl_is_a_400_even_without_a_template_maximum(
    vision: Team, alice: Any, api: APIClient
) -> None:
    """Without a template maximum, 10**12 hours used to reach `timedelta` and overflow (a 500)."""
    workspace = WorkspaceFactory(team=vision, created_by=alice, template_version__max_ttl_hours=None)
    api.force_authenticate(alice)

    response = api.post(f"/api/v1/workspaces/{workspace.pk}/extend", {"hours": 10**12})
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]["ExtendRequest"]

    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == {"hours"}
    assert schema["properties"]["hours"]["maximum"] == 24 * 365 * 10
