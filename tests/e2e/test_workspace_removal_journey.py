"""Browser journey out of a dead end: alice's first launch failed at plan, so she forgets the workspace from its
page (no script: a disclosure and a required checkbox) and finds it gone from the list."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Team
from apps.runs.models import RunState, Workspace, WorkspaceStatus
from tests.factories import PASSWORD, RunFactory, WorkspaceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alice_forgets_a_workspace_whose_first_run_failed(
    live_server: Any, page: Any, alice: Any, vision: Team, screenshot: Any
) -> None:
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="failed-sweep", status=WorkspaceStatus.FAILED)
    RunFactory(workspace=workspace, created_by=alice, state=RunState.FAILED, state_reason="terraform plan failed")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=current-user]")

    page.goto(f"{live_server.url}/workspaces/{workspace.pk}/")
    page.get_by_text("Forget this workspace…").click()
    page.click("[data-testid=forget]")  # the browser refuses: the confirmation box is required
    assert page.locator("[data-testid=forget-confirm]:invalid").count() == 1
    assert page.url.rstrip("/").endswith(f"/workspaces/{workspace.pk}")
    page.check("[data-testid=forget-confirm]")
    screenshot("forget-confirm")
    page.click("[data-testid=forget]")

    page.get_by_text("failed-sweep is forgotten").wait_for()
    assert page.url.rstrip("/").endswith("/workspaces")
    assert page.locator("text=failed-sweep").count() == 1  # only in the message, not in the list
    assert Workspace.objects.get(pk=workspace.pk).status == WorkspaceStatus.FORGOTTEN
