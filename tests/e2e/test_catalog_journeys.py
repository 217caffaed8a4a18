"""Browser journeys of the catalog: a data scientist launches a golden path; an admin imports and publishes
a Backstage template that the data scientist then sees."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from apps.accounts.models import Role, Team
from apps.catalog import services
from apps.catalog.backstage import import_backstage_template
from apps.runs.models import Run, Workspace
from tests.factories import UserFactory, member
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = Path(__file__).parent / "fixtures" / "quick-experiment.yaml"


@pytest.fixture
def catalog(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


def test_alice_finds_fills_fixes_and_launches_a_sandbox(
    live_server: Any, page: Any, alice: Any, catalog: None, screenshot: Any
) -> None:
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/catalog/")
    page.fill("[data-testid=catalog-search]", "sandbox")
    page.wait_for_function("() => !document.querySelector('[data-testid=template-card-model-endpoint]')")
    page.click("[data-testid=template-card-sandbox-experiment]")
    page.click("[data-testid=launch]")

    page.fill("#id_name", "alice-first-sweep")
    page.fill("#id_p-experiment_name", "resnet-baseline")
    page.fill("#id_p-gpu_count", "99")
    page.locator("#id_p-gpu_count").blur()
    errors = page.locator("#p-gpu_count-errors")
    errors.get_by_text("Must be at most 8.").wait_for()
    screenshot("alice-launch-inline-error")

    page.fill("#id_p-gpu_count", "2")
    page.locator("#id_p-gpu_count").blur()
    page.wait_for_function("() => document.querySelector('#p-gpu_count-errors').innerText.trim() === ''")
    estimate = page.locator("[data-testid=estimate]")
    estimate.get_by_text(re.compile(r"0\.5\d USD")).wait_for()
    screenshot("alice-launch-estimate")

    page.click("[data-testid=submit-launch]")
    page.wait_for_selector("[data-testid=workspace-name]")
    assert "alice-first-sweep" in page.locator("[data-testid=workspace-name]").inner_text()
    # The first run is shown whatever stage a worker (if one is running in this session) has taken it to.
    state = page.locator("[data-testid=runs] .badge").first.inner_text()
    assert state in {"Queued", "Planning", "Planned", "Applying", "Applied"}
    workspace = Workspace.objects.get(name="alice-first-sweep")
    assert workspace.parameters["gpu_count"] == 2
    assert Run.objects.filter(workspace=workspace).count() == 1
    screenshot("alice-workspace")


def test_ada_imports_a_backstage_template_publishes_it_and_alice_sees_it(
    live_server: Any, page: Any, alice: Any, vision: Team, catalog: None, screenshot: Any
) -> None:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    member(vision, Role.ADMIN, username="ada")
    log_in(page, live_server, "ada")
    page.goto(f"{live_server.url}/catalog/import/")
    page.fill("#id_content", FIXTURE.read_text())
    page.click("main button:has-text('Import as draft')")

    page.wait_for_selector("[data-testid=import-report]")
    report = page.locator("[data-testid=import-report]").inner_text()
    assert "fetch:template" in report
    assert "experiment_name" in report
    assert "Draft" in page.locator("[data-testid=lifecycle]").inner_text()
    screenshot("ada-imported-draft")

    page.click("text=Edit draft")
    page.select_option("#id_v-module_path", label="sandbox-experiment")
    page.click("main button:has-text('Save draft')")
    page.wait_for_selector("[data-testid=validation] .ok")
    page.click("[data-testid=action-publish]")
    page.wait_for_selector("[data-testid=confirm-publish]")
    page.click("[data-testid=confirm-button]")
    page.wait_for_function("() => document.querySelector('[data-testid=lifecycle]').innerText.includes('Published')")
    screenshot("ada-published")

    page.click("text=Sign out")
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/catalog/?q=quick")
    page.wait_for_selector("[data-testid=template-card-quick-experiment]")
    page.click("[data-testid=template-card-quick-experiment]")
    page.wait_for_selector("[data-testid=launch]")
    screenshot("alice-sees-imported")


def test_alice_toggles_a_backstage_page_condition_and_its_fields_appear_and_disappear(
    live_server: Any, page: Any, alice: Any, vision: Team, screenshot: Any
) -> None:
    ada = UserFactory(username="ada", is_superuser=True, is_staff=True)
    imported = import_backstage_template((Path(__file__).parent / "fixtures" / "conditional-sandbox.yaml").read_text())
    draft = services.create_template_from_backstage(actor=ada, imported=imported, owner_team=None)
    services.attach_module_folder(actor=ada, version=draft, folder="infra/templates/sandbox-experiment")
    services.publish_version(actor=ada, version=draft)
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/catalog/conditional-sandbox/launch/")
    scratch = page.locator("#p-dataset_size_gb-field")

    scratch.wait_for(state="hidden")
    assert page.locator("#id_p-dataset_size_gb").is_disabled()
    page.select_option("#id_p-framework", "pytorch")
    scratch.wait_for(state="visible")
    assert scratch.locator(".required").count() == 1
    screenshot("alice-condition-shown")

    notes = page.locator("#p-notes-field")
    notes.wait_for(state="hidden")
    page.fill("#id_p-gpu_count", "2")
    notes.wait_for(state="visible")
    page.fill("#id_p-gpu_count", "0")
    notes.wait_for(state="hidden")

    page.fill("#id_name", "alice-conditional")
    page.fill("#id_p-experiment_name", "cond-run")
    page.click("[data-testid=submit-launch]")
    page.locator("#p-dataset_size_gb-errors").get_by_text("This parameter is required.").wait_for()

    page.select_option("#id_p-framework", "jax")
    scratch.wait_for(state="hidden")
    page.click("[data-testid=submit-launch]")
    page.wait_for_selector("[data-testid=workspace-name]")
    workspace = Workspace.objects.get(name="alice-conditional")
    assert "dataset_size_gb" not in workspace.parameters
    assert workspace.parameters["framework"] == "jax"
    screenshot("alice-condition-hidden-launched")
