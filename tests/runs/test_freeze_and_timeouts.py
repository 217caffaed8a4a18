"""Change freeze (held, not lost) and per-template timeouts, with the real worker and Terraform."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from apps.accounts.errors import NotAPlatformAdmin
from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.models import Run, RunState
from tests.factories import UserFactory, member
from tests.waiting import wait_for, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SLOW_MODULE = """
variable "paved_team" { type = string }
variable "paved_workspace" { type = string }
variable "paved_template" { type = string }
resource "terraform_data" "slow" {
  input = var.paved_workspace
  provisioner "local-exec" { command = "sleep 30" }
}
"""


@pytest.fixture
def sandbox(db: None) -> TemplateVersion:
    call_command("sync_templates", stdout=io.StringIO())
    return TemplateVersion.objects.get(template__slug="sandbox-experiment")


@pytest.fixture
def ada(vision: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")  # the saved user, with its final password hash


def test_only_platform_admins_start_a_change_freeze(alice: Any, mark: Any, ada: Any) -> None:
    for user in (alice, mark):
        with pytest.raises(NotAPlatformAdmin):
            services.set_change_freeze(actor=user, active=True, reason="nope")
    services.set_change_freeze(actor=ada, active=True, reason="Release weekend")
    assert AuditEvent.objects.filter(verb="platform.change_freeze_started", actor=ada).exists()


def test_frozen_runs_wait_queued_and_run_when_the_freeze_lifts(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team, ada: Any
) -> None:
    services.set_change_freeze(actor=ada, active=True, reason="Release weekend")
    run = launch_template(
        actor=alice, team=vision, version=sandbox, params={"experiment_name": "frozen-one"}, name="frozen-one"
    ).run
    held = wait_for(
        lambda: Run.objects.filter(pk=run.pk, state_reason__startswith="Held by the change freeze").first(),
        timeout=30,
        message="the worker to hold the run for the freeze",
    )
    assert held.state == RunState.QUEUED
    assert "change freeze: Release weekend" in held.state_reason

    services.set_change_freeze(actor=ada, active=False)

    assert wait_state(run, RunState.APPLIED, RunState.FAILED, RunState.ERRORED).state == RunState.APPLIED


def test_apply_longer_than_the_templates_timeout_fails_and_frees_the_workspace(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team, tmp_path: Path
) -> None:
    (tmp_path / "main.tf").write_text(SLOW_MODULE)
    slow = TemplateVersion.objects.create(
        template=sandbox.template, version="7.0.0", lifecycle="published",
        parameters_schema={"type": "object", "properties": {}, "additionalProperties": False},
        price_model={"currency": "USD", "base_hourly": "0", "components": []},
        module_path=str(tmp_path), apply_timeout_seconds=3,
    )  # fmt: skip
    run = launch_template(actor=alice, team=vision, version=slow, params={}, name="too-slow").run

    failed = wait_state(run, RunState.FAILED, RunState.APPLIED, RunState.ERRORED, timeout=45)

    assert failed.state == RunState.FAILED
    assert failed.state_reason.startswith("Timed out")
    assert failed.workspace.locked_by is None


def test_admin_index_shows_the_terraform_version_and_freeze_switch(client: Client, ada: Any) -> None:
    client.force_login(ada)
    body = client.get("/admin/").content.decode()
    assert "Terraform v1." in body
    assert "Start a change freeze" in body
