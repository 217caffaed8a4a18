"""Browser journeys of the home page by role (issue 16, acceptance 3): each persona signs in and lands on home.

- alice (a member of vision) sees her workspace with its status and expiry, her run in flight, her cluster and
  what waits on her, then follows the catalog link of an empty block;
- mark (manager of vision and nlp) sees the approvals waiting for him and the badge in the navigation, and
  follows the badge to the Runs page's approvals;
- a platform admin sees platform health: the worker heartbeat, the queue, the change freeze, today's failures.
Screenshots go to test-artifacts/screenshots/home-*.png."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.clusters.models import ClusterState
from apps.ops.services import record_worker_heartbeat
from apps.runs.models import Approval, RunState, WorkspaceStatus
from apps.runs.services import set_change_freeze
from tests.factories import ClusterFactory, RunFactory, UserFactory, WorkspaceFactory
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _awaiting(workspace: Any) -> Any:
    run: Any = RunFactory(workspace=workspace, state=RunState.AWAITING_APPROVAL)
    Approval.objects.create(run=run, team=workspace.team, why_needed="Estimate over the team's threshold",
                            expires_at=timezone.now() + timedelta(hours=24))  # fmt: skip
    return run


def test_alice_lands_on_her_own_work(live_server: Any, page: Any, alice: Any, vision: Team, screenshot: Any) -> None:
    now = timezone.now()
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="resnet", status=WorkspaceStatus.READY,
                                 expires_at=now + timedelta(hours=3))  # fmt: skip
    RunFactory(workspace=workspace, state=RunState.APPLYING)
    waiting = _awaiting(WorkspaceFactory(team=vision, created_by=alice, name="bigger", status=WorkspaceStatus.READY))
    log_in(page, live_server, "alice")
    expect(page.get_by_test_id(f"my-workspace-{workspace.pk}")).to_contain_text("Ready")
    expect(page.get_by_test_id(f"expiring-workspace-{workspace.pk}")).to_contain_text("time to live ends in 2")
    expect(page.get_by_test_id(f"waiting-run-{waiting.pk}")).to_contain_text("awaits a manager's approval")
    expect(page.get_by_test_id("home-runs")).to_contain_text("Applying")
    expect(page.get_by_test_id("spend-USD")).to_have_text("0.00 USD")
    expect(page.get_by_test_id("nav-badge")).to_have_count(0)
    screenshot("home-data-scientist")
    page.get_by_test_id("clusters-empty").get_by_role("link", name="request one").click()
    expect(page).to_have_url(f"{live_server.url}/clusters/new/")


def test_mark_sees_the_approvals_waiting_for_him_and_follows_the_badge(
    live_server: Any, page: Any, mark: Any, alice: Any, bob: Any, vision: Team, nlp: Team, screenshot: Any
) -> None:
    first = _awaiting(WorkspaceFactory(team=vision, created_by=alice, name="resnet"))
    second = _awaiting(WorkspaceFactory(team=nlp, created_by=bob, name="bert"))
    log_in(page, live_server, "mark")
    expect(page.get_by_test_id("nav-badge")).to_have_text("2")
    expect(page.get_by_test_id(f"approval-{first.pk}")).to_contain_text("vision/resnet")
    expect(page.get_by_test_id(f"approval-{second.pk}")).to_contain_text("nlp/bert")
    expect(page.get_by_test_id("home-mine")).to_have_count(0)
    screenshot("home-manager")
    page.get_by_test_id("nav-badge").click()
    expect(page.get_by_test_id("pending-approvals")).to_contain_text(f"#{first.pk}")


def test_a_platform_admin_lands_on_platform_health(live_server: Any, page: Any, vision: Team, screenshot: Any) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    record_worker_heartbeat(hostname="celery@paved-worker")
    workspace = WorkspaceFactory(team=vision)
    RunFactory(workspace=workspace, state=RunState.QUEUED)
    RunFactory(workspace=workspace, state=RunState.FAILED, finished_at=timezone.now())
    ClusterFactory(team=vision, state=ClusterState.RUNNING)
    set_change_freeze(actor=admin, active=True, reason="Quarter-end close")
    log_in(page, live_server, "root")
    expect(page.get_by_test_id("health-workers")).to_contain_text("celery@paved-worker")
    expect(page.get_by_test_id("health-queued-runs")).to_have_text("1")
    expect(page.get_by_test_id("health-freeze")).to_contain_text("Quarter-end close")
    expect(page.get_by_test_id("health-failed")).to_contain_text("1")
    screenshot("home-platform-admin")
