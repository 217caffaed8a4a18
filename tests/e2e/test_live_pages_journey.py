"""Browser checks of what the live pages show as state changes, with no reload: a cluster that turns Running
offers Stop; the run log follows new output until the reader scrolls up, and again once they scroll back down;
changing a workspace's variables shows a bad value's error in the form, then a good value makes a run. The state
changes are made by the services a worker would call (no worker runs here), while the page is open."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.clusters.models import ClusterState
from apps.clusters.services.states import cluster_transition
from apps.runs.models import Run, RunState, Workspace, WorkspaceStatus
from apps.runs.services.logs import RunLogWriter
from tests.factories import ClusterFactory, RunFactory, WorkspaceFactory
from tests.fixtures.browser import log_in
from tests.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CLUSTER_POLL_MS = 30_000  # the cluster page polls every 10 s


def mark_page(page: Any) -> None:
    page.evaluate("() => { window.__pavedSamePage = true }")


def still_the_same_page(page: Any) -> bool:
    return bool(page.evaluate("() => window.__pavedSamePage === true"))


def test_a_cluster_turning_running_shows_stop_without_a_reload(
    live_server: Any, page: Any, vision: Team, alice: Any, screenshot: Any
) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.PROVISIONING)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/clusters/{cluster.pk}/")
    expect(page.locator("[data-testid=cluster-state]")).to_have_text("Provisioning")
    expect(page.locator("[data-testid=stop]")).to_have_count(0)
    page.fill("[data-testid=terminate-confirm]", "half-typ")
    mark_page(page)

    cluster_transition(cluster=cluster, to=ClusterState.RUNNING, reason="Every node is up.")

    expect(page.locator("[data-testid=cluster-state]")).to_have_text("Running", timeout=CLUSTER_POLL_MS)
    expect(page.locator("[data-testid=stop]")).to_be_visible(timeout=CLUSTER_POLL_MS)
    expect(page.locator("[data-testid=terminate-confirm]")).to_have_value("half-typ")  # typed text survives
    assert still_the_same_page(page)
    screenshot("live-pages-01-cluster-running-stop")


def _write(run: Run, first: int, count: int) -> None:
    run.refresh_from_db()  # the writer numbers on from the run's stored line count
    writer = RunLogWriter(run)
    for number in range(first, first + count):
        writer.write(f"[{number:05d}] terraform_data.sandbox: Still creating...")
    writer.flush()


def _log_position(page: Any) -> dict[str, float]:
    return page.evaluate(
        "() => { const l = document.getElementById('log');"
        " return {top: l.scrollTop, gap: l.scrollHeight - l.scrollTop - l.clientHeight}; }"
    )


def test_the_run_log_follows_new_output_until_the_reader_scrolls_up(
    live_server: Any, page: Any, vision: Team, alice: Any, screenshot: Any
) -> None:
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="alice-follow")
    run = RunFactory(workspace=workspace, state=RunState.APPLYING)
    _write(run, 1, 200)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/runs/{run.pk}/")
    log = page.locator("[data-testid=run-log]")
    expect(log).to_contain_text("[00200]")
    wait_for(lambda: _log_position(page)["gap"] < 30, timeout=10, message="the log to open at its end")

    _write(run, 201, 100)  # following: the newest line comes into view
    expect(log).to_contain_text("[00300]")
    wait_for(lambda: _log_position(page)["gap"] < 30, timeout=10, message="the log to follow new lines")

    page.evaluate("() => { const l = document.getElementById('log'); l.scrollTop = 100; }")
    wait_for(lambda: _log_position(page)["top"] == 100, timeout=5, message="the reader's scroll")
    _write(run, 301, 100)  # reading further up: the view stays where the reader put it
    expect(log).to_contain_text("[00400]")
    assert _log_position(page)["top"] == 100

    page.evaluate("() => { const l = document.getElementById('log'); l.scrollTop = l.scrollHeight; }")
    _write(run, 401, 100)  # back at the bottom: following again
    expect(log).to_contain_text("[00500]")
    wait_for(lambda: _log_position(page)["gap"] < 30, timeout=10, message="the log to follow again")
    screenshot("live-pages-02-log-follows")


@pytest.mark.integration
def test_change_variables_shows_a_bad_value_then_a_good_one_makes_a_run(
    live_server: Any, page: Any, vision: Team, alice: Any, screenshot: Any, celery_worker: Any
) -> None:
    """The new run goes to the real worker (a session-wide one takes it whichever way the test asks), so the test
    follows it to the end: the workspace takes the edited value only once the run is applied."""
    workspace: Workspace = WorkspaceFactory(
        team=vision, created_by=alice, name="alice-vars", status=WorkspaceStatus.READY
    )
    RunFactory(workspace=workspace, state=RunState.APPLIED)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/workspaces/{workspace.pk}/")
    page.click("[data-testid=change-variables]")
    expect(page.locator("#id_p-experiment_name")).to_have_value("exp-one")  # prefilled with the current values

    page.fill("#id_p-gpu_count", "99")
    page.click("[data-testid=submit-variables]")
    expect(page.locator("#p-gpu_count-field, .has-error").first).to_contain_text("8")
    assert Run.objects.filter(workspace=workspace).count() == 1
    screenshot("live-pages-03-variables-error")

    page.fill("#id_p-gpu_count", "2")
    page.click("[data-testid=submit-variables]")
    page.wait_for_url("**/runs/*/")
    run = Run.objects.filter(workspace=workspace).order_by("-pk").first()
    assert run is not None
    assert run.parameters["gpu_count"] == 2
    expect(page.locator("[data-testid=run-state]")).to_have_text("Applied", timeout=60_000)
    run.refresh_from_db()
    assert run.state == RunState.APPLIED, run.state_reason
    assert Workspace.objects.get(pk=workspace.pk).parameters["gpu_count"] == 2
    screenshot("live-pages-04-variables-run")
