"""The run engine when things break: a worker dies mid-apply, the broker is down when a run is queued, a task is
delivered twice. Real Celery workers, a real redis-server of the test's own, PostgreSQL and Terraform.

Every test here has a broker and data dir of its own, so the session-wide worker (on the shared Redis) never
picks up these runs: the workers are ones the test started, and may kill.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.models import Approval, ApprovalStatus, Run, RunState, Workspace, WorkspaceStatus
from tests.runs.fixtures import (
    PrivateRedis,
    Workers,
    approval_version,
    kill_like_a_crash,
    private_broker,
    sandbox_version,
    sleeper_version,
    state_resources,
)
from tests.waiting import wait_for, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = (RunState.APPLIED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED)


@pytest.fixture
def broker(settings: Any, tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, and a data dir for the work this process does itself."""
    settings.RUNS_DIR = tmp_path / "data" / "runs"
    with private_broker() as private:
        yield private


@pytest.fixture
def workers(broker: PrivateRedis, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(broker.url, tmp_path / "data")
    yield started
    started.stop_all()


def test_run_whose_worker_is_killed_mid_apply_is_errored_by_the_sweeper_and_its_retry_applies(
    broker: PrivateRedis, workers: Workers, settings: Any, alice: Any, vision: Team
) -> None:
    sleeper = sleeper_version()
    worker = workers.start("reliability-doomed")
    result = launch_template(
        actor=alice, team=vision, version=sleeper, params={"sleep_seconds": 8}, name="killed-mid-apply"
    )
    run = wait_state(result.run, RunState.APPLYING, *FINISHED)
    assert run.state == RunState.APPLYING, run.state_reason
    wait_for(lambda: Run.objects.get(pk=run.pk).heartbeat_at is not None, timeout=10, message="a heartbeat")

    workers.stragglers = kill_like_a_crash(worker)
    last_beat = Run.objects.get(pk=run.pk).heartbeat_at
    assert last_beat is not None
    stale = timedelta(seconds=settings.RUN_HEARTBEAT_STALE_SECONDS)

    # the sweeper's clock just before and just after the last heartbeat goes stale
    assert services.sweep_runs(now=last_beat + stale - timedelta(seconds=1)).errored == []  # not dead yet
    report = services.sweep_runs(now=last_beat + stale + timedelta(seconds=1))

    assert report.errored == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.ERRORED
    assert "stopped responding" in run.state_reason
    assert run.finished_at is not None
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    assert workspace.locked_by is None
    assert workspace.status == WorkspaceStatus.FAILED
    assert services.sweep_runs().errored == []  # sweeping again changes nothing

    workers.start("reliability-rescuer")
    retry = services.retry_run(actor=alice, run=run)

    # The orphaned Terraform of the dead worker may still hold the state lock until its sleep ends; the
    # retry's plan waits for it (-lock-timeout), so only success is asserted, not speed.
    retry = wait_state(retry, *FINISHED, timeout=90)
    assert retry.state == RunState.APPLIED, retry.state_reason
    assert retry.retry_of_id == run.pk
    workspace.refresh_from_db()
    assert workspace.status == WorkspaceStatus.READY
    assert workspace.locked_by is None
    assert workspace.outputs["slept_seconds"]["value"] == 8
    assert state_resources(workspace) == ["terraform_data.sleeper"]


def test_launch_while_the_broker_is_down_stays_queued_and_the_sweeper_dispatches_it_once_the_broker_is_back(
    broker: PrivateRedis, workers: Workers, alice: Any, vision: Team
) -> None:
    sandbox = sandbox_version()
    workers.start("reliability-outage")
    broker.stop()

    started = time.monotonic()
    result = launch_template(
        actor=alice, team=vision, version=sandbox, params={"experiment_name": "outage-test"}, name="broker-outage"
    )
    assert time.monotonic() - started < 30  # the launch gives up on the broker instead of hanging

    run = Run.objects.get(pk=result.run.pk)
    assert run.state == RunState.QUEUED
    assert run.celery_task_id == ""  # never reached a broker
    assert Workspace.objects.filter(pk=result.workspace.pk, status=WorkspaceStatus.PROVISIONING).exists()

    broker.start()
    assert services.sweep_runs().redispatched == []  # too recent: a worker may still be about to claim it
    Run.objects.filter(pk=run.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    report = services.sweep_runs()

    assert report.redispatched == [run.pk]
    run = wait_state(run, *FINISHED)
    assert run.state == RunState.APPLIED, run.state_reason
    assert run.celery_task_id != ""
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    assert workspace.status == WorkspaceStatus.READY
    assert len(state_resources(workspace)) == 2


def test_a_run_delivered_twice_at_once_is_planned_and_applied_exactly_once(
    broker: PrivateRedis, alice: Any, vision: Team
) -> None:
    sandbox: TemplateVersion = sandbox_version()
    result = launch_template(
        actor=alice, team=vision, version=sandbox, params={"experiment_name": "twice-test"}, name="delivered-twice"
    )
    run_pk = result.run.pk  # queued on the private broker, where no worker listens
    errors: list[BaseException] = []
    go = threading.Barrier(2)

    def deliver() -> None:
        try:
            go.wait(timeout=10)
            services.execute_run(run_pk=run_pk)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    deliveries = [threading.Thread(target=deliver) for _ in range(2)]
    for delivery in deliveries:
        delivery.start()
    for delivery in deliveries:
        delivery.join(timeout=120)
    assert not any(delivery.is_alive() for delivery in deliveries)
    services.execute_run(run_pk=run_pk)  # and a late redelivery after it finished

    assert errors == []
    run = Run.objects.get(pk=run_pk)
    assert run.state == RunState.APPLIED, run.state_reason
    verbs = list(
        AuditEvent.objects.filter(target_type="runs.run", target_id=str(run_pk)).values_list("verb", flat=True)
    )
    assert verbs.count("run.planning") == 1
    assert verbs.count("run.applying") == 1
    assert verbs.count("run.applied") == 1
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    assert workspace.locked_by is None
    assert len(state_resources(workspace)) == 2


def test_approval_given_while_the_broker_is_down_is_applied_once_the_sweeper_sends_it_again(
    broker: PrivateRedis, workers: Workers, alice: Any, mark: Any, vision: Team
) -> None:
    gated = approval_version(sandbox_version())
    workers.start("reliability-approval-outage")
    result = launch_template(
        actor=alice, team=vision, version=gated, params={"experiment_name": "gated-test"}, name="approved-in-outage"
    )
    run = wait_state(result.run, RunState.AWAITING_APPROVAL, *FINISHED)
    assert run.state == RunState.AWAITING_APPROVAL, run.state_reason
    broker.stop()

    services.approve_run(actor=mark, run=run, comment="ship it")  # recorded, though the apply cannot be sent yet

    run.refresh_from_db()
    assert run.state == RunState.AWAITING_APPROVAL
    assert run.approval.status == ApprovalStatus.APPROVED
    broker.start()
    assert run.pk not in services.sweep_runs().redispatched  # just decided: the apply may still be on its way
    Approval.objects.filter(run=run).update(decided_at=timezone.now() - timedelta(minutes=5))
    report = services.sweep_runs()

    assert report.redispatched == [run.pk]
    run = wait_state(run, *FINISHED)
    assert run.state == RunState.APPLIED, run.state_reason
    assert len(state_resources(result.workspace)) == 2
    assert services.sweep_runs().redispatched == []
