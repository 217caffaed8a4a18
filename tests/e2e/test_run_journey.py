"""Browser journeys of the run pages, against the real worker, broker, database and Terraform: alice launches a
sandbox, follows its run live to "Applied", reads the outputs, then destroys the workspace and follows that too.

The worker is paused (Celery's cancel_consumer: it stops taking tasks from the queue, and the task waits in the
broker) while a page is opened, and resumed once the page is showing the queued run. Every later change then
has to reach the open page through htmx polling, which is what these tests are about: the runs are over in a
second or two, so without the pause the pages would usually load already finished and prove nothing."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.runs.models import Approval, Run, RunKind, RunLogChunk, RunState, Workspace, WorkspaceStatus
from apps.runs.services.logs import RunLogWriter
from tests.factories import RunFactory, WorkspaceFactory
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

QUEUE = "celery"  # Celery's default queue: the run engine does not route its tasks elsewhere
RUN_TIMEOUT_MS = 60_000
PARAMS = {"experiment_name": "live-pages", "gpu_count": 1}


class WorkerTap:
    """Stop and restart the real worker's consumption of the task queue (Celery remote control). `limit=1`:
    there is one worker, so stop listening at its reply instead of waiting out the timeout."""

    def __init__(self) -> None:
        from portal.celery import app

        self.control = app.control
        self.paused = False

    def pause(self) -> None:
        replies = self.control.cancel_consumer(QUEUE, reply=True, limit=1, timeout=10)
        assert replies, "the worker did not answer cancel_consumer"
        self.paused = True

    def resume(self) -> None:
        replies = self.control.add_consumer(QUEUE, reply=True, limit=1, timeout=10)
        assert replies, "the worker did not answer add_consumer"
        self.paused = False


@pytest.fixture
def worker(celery_worker: Any) -> Iterator[WorkerTap]:
    tap = WorkerTap()
    yield tap
    if tap.paused:  # never leave the session-wide worker deaf for the tests that follow
        tap.resume()


@pytest.fixture
def catalog(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


def mark_page(page: Any) -> None:
    """Tag the loaded document; the tag survives htmx swaps but not a reload or a navigation."""
    page.evaluate("() => { window.__pavedSamePage = true }")


def still_the_same_page(page: Any) -> bool:
    return bool(page.evaluate("() => window.__pavedSamePage === true"))


def stored_log(run: Run) -> str:
    return "".join(
        f"{text}\n" for text in RunLogChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True)
    )


@pytest.mark.integration
def test_alice_follows_her_sandbox_live_from_launch_to_destroy(
    live_server: Any, page: Any, alice: Any, catalog: None, worker: WorkerTap, screenshot: Any
) -> None:
    log_in(page, live_server, "alice")
    worker.pause()

    # Launch from the catalog; the run waits in the broker while the worker is paused.
    page.goto(f"{live_server.url}/catalog/")
    page.click("[data-testid=template-card-sandbox-experiment]")
    page.click("[data-testid=launch]")
    page.fill("#id_name", "alice-live-sweep")
    page.fill("#id_p-experiment_name", "resnet-live")
    page.click("[data-testid=submit-launch]")
    page.wait_for_selector("[data-testid=workspace-name]")
    workspace = Workspace.objects.get(name="alice-live-sweep")
    run = Run.objects.get(workspace=workspace)
    expect(page.locator("[data-testid=workspace-status]")).to_have_text("Provisioning")
    expect(page.locator("[data-testid=runs] .badge-queued")).to_have_text("Queued")
    screenshot("run-journey-01-workspace-queued")

    # The run page, opened while the run is still queued, follows it to the end without a reload.
    page.click("[data-testid=runs] [data-testid=run-link]")
    page.wait_for_url(f"**/runs/{run.pk}/")
    expect(page.locator("[data-testid=run-state]")).to_have_text("Queued")
    expect(page.locator("#log-poller")).to_have_count(1)
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED
    screenshot("run-journey-02-run-queued")
    mark_page(page)
    worker.resume()

    expect(page.locator("[data-testid=run-state]")).to_have_text("Applied", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("[data-testid=run-log]")).to_contain_text("Apply complete", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#log-poller")).to_have_count(0, timeout=10_000)  # polling stopped
    assert still_the_same_page(page)
    run.refresh_from_db()
    assert run.state == RunState.APPLIED, run.state_reason
    # Every stored line arrived exactly once, in order, through the poller's out-of-band appends.
    assert page.locator("[data-testid=run-log]").text_content() == stored_log(run)
    expect(page.locator("[data-testid=plan-summary]")).to_contain_text("+2")
    screenshot("run-journey-03-run-applied")

    # Back on the workspace page: outputs, the sensitive one masked.
    page.click(f".crumbs a[href='/workspaces/{workspace.pk}/']")
    page.wait_for_selector("[data-testid=outputs]")
    expect(page.locator("[data-testid=workspace-status]")).to_have_text("Ready")
    outputs = page.locator("[data-testid=outputs]")
    expect(outputs).to_contain_text("run_id")
    expect(outputs).to_contain_text("tracking_token")
    expect(outputs.locator("tr", has_text="tracking_token")).to_contain_text("sensitive")
    workspace.refresh_from_db()
    assert workspace.outputs["tracking_token"]["value"] not in page.content()
    screenshot("run-journey-04-workspace-outputs")

    # Destroy: type the name, follow the destroy run live on its page.
    worker.pause()
    page.fill("[data-testid=destroy-confirm]", "alice-live-sweep")
    screenshot("run-journey-05-destroy-confirm")
    page.click("[data-testid=destroy]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    destroy = Run.objects.get(workspace=workspace, kind=RunKind.DESTROY)
    assert page.url.endswith(f"/runs/{destroy.pk}/")
    expect(page.locator("[data-testid=run-state]")).to_have_text("Queued")
    screenshot("run-journey-06-destroy-queued")
    mark_page(page)
    worker.resume()

    expect(page.locator("[data-testid=run-state]")).to_have_text("Applied", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("[data-testid=run-log]")).to_contain_text("destroyed", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("#log-poller")).to_have_count(0, timeout=10_000)
    assert still_the_same_page(page)
    screenshot("run-journey-07-destroy-applied")

    page.click(f".crumbs a[href='/workspaces/{workspace.pk}/']")
    expect(page.locator("[data-testid=workspace-status]")).to_have_text("Destroyed")
    # A destroyed workspace shows how it ended, not live-looking outputs.
    expect(page.locator("[data-testid=outputs]")).to_have_count(0)
    expect(page.locator("[data-testid=ending]")).to_contain_text("Destroyed")
    expect(page.locator("[data-testid=destroy]")).to_have_count(0)
    assert Workspace.objects.get(pk=workspace.pk).status == WorkspaceStatus.DESTROYED
    screenshot("run-journey-08-workspace-destroyed")


@pytest.mark.integration
def test_workspace_page_follows_its_first_run_to_ready_without_a_reload(
    live_server: Any, page: Any, alice: Any, vision: Team, catalog: None, worker: WorkerTap, screenshot: Any
) -> None:
    sandbox = TemplateVersion.objects.get(template__slug="sandbox-experiment")
    log_in(page, live_server, "alice")
    worker.pause()
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="alice-watched")
    page.goto(f"{live_server.url}/workspaces/{result.workspace.pk}/")
    expect(page.locator("[data-testid=workspace-status]")).to_have_text("Provisioning")
    mark_page(page)
    worker.resume()

    expect(page.locator("[data-testid=workspace-status]")).to_have_text("Ready", timeout=RUN_TIMEOUT_MS)
    expect(page.locator("[data-testid=runs] .badge-applied")).to_have_text("Applied")
    expect(page.locator("[data-testid=outputs]")).to_contain_text("run_id")
    expect(page.locator("#workspace-poller[hx-trigger]")).to_have_count(0)  # polling stopped
    assert still_the_same_page(page)
    screenshot("run-journey-workspace-live-ready")


def test_earlier_lines_of_a_long_log_load_on_demand_in_order(
    live_server: Any, page: Any, alice: Any, vision: Team, screenshot: Any
) -> None:
    run = RunFactory(workspace=WorkspaceFactory(team=vision, created_by=alice), state=RunState.APPLIED)
    writer = RunLogWriter(run)
    for n in range(1, 2_301):
        writer.write(f"line {n:05d}")
    writer.flush()
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    log = page.locator("[data-testid=run-log]")
    assert not log.text_content().startswith("line 00001\n")

    page.click("[data-testid=load-earlier]")

    expect(log).to_contain_text("line 00001")
    expect(page.locator("[data-testid=load-earlier]")).to_have_count(0)
    assert log.text_content() == "".join(f"line {n:05d}\n" for n in range(1, 2_301))
    screenshot("run-journey-long-log-loaded")


def test_mark_rejects_a_run_with_a_comment_typed_while_the_page_refreshes(
    live_server: Any, page: Any, alice: Any, mark: Any, vision: Team, screenshot: Any
) -> None:
    run: Run = RunFactory(
        workspace=WorkspaceFactory(team=vision, created_by=alice, name="alice-big-sweep"),
        state=RunState.AWAITING_APPROVAL,
        needs_approval=True,
    )
    Approval.objects.create(
        run=run, team=vision, why_needed="8 GPUs is above the team's limit.", expires_at=timezone.now() + timedelta(1)
    )
    log_in(page, live_server, "mark")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    page.fill("#comment", "Too big for a sandbox: use 2 GPUs")

    # The header (approval box included) refreshes itself every 2 s while the run waits; what mark typed stays.
    with page.expect_response(lambda response: response.url.endswith(f"/runs/{run.pk}/status/")):
        pass
    with page.expect_response(lambda response: response.url.endswith(f"/runs/{run.pk}/status/")):
        pass
    expect(page.locator("#comment")).to_have_value("Too big for a sandbox: use 2 GPUs")
    screenshot("run-journey-approval-comment")
    page.click("[data-testid=reject]")

    expect(page.locator("[data-testid=run-state]")).to_have_text("Rejected")
    expect(page.locator("[data-testid=approval]")).to_contain_text("Too big for a sandbox: use 2 GPUs")
    expect(page.locator("[data-testid=reject]")).to_have_count(0)
    assert Run.objects.get(pk=run.pk).state == RunState.REJECTED
    screenshot("run-journey-approval-rejected")
