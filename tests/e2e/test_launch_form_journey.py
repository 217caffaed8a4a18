"""Alice fills the sandbox launch form badly: every field says what is wrong as she leaves it (the workspace name
and the TTL too), the submit shows every error at once, the estimate follows what she typed, and the experiment
name follows the workspace name so she types it once."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from apps.runs.models import Workspace
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAME_RULE = "3-40 lowercase letters, digits or dashes"
HUMAN_PATTERN = "Use lowercase letters, digits and dashes, starting with a letter"


@pytest.fixture
def catalog(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


def leave(page: Any, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.locator(selector).blur()


def test_every_error_shows_inline_and_at_once_and_the_estimate_follows_the_values(
    live_server: Any, page: Any, alice: Any, catalog: None, screenshot: Any
) -> None:
    log_in(page, live_server, "alice")
    page.goto(f"{live_server.url}/catalog/sandbox-experiment/launch/")
    estimate = page.locator("[data-testid=estimate]")
    estimate.get_by_text("0.28 USD").wait_for()  # the defaults it shows: 0.02 + 1 GPU x 0.25 + 50 GB scratch

    leave(page, "#id_name", "Bad Name")
    page.locator("#meta-name-errors").get_by_text(NAME_RULE).wait_for()
    # The experiment name followed the workspace name, and says in words (not a regex) what is wrong with it.
    assert page.input_value("#id_p-experiment_name") == "Bad Name"
    page.locator("#p-experiment_name-errors").get_by_text(HUMAN_PATTERN).wait_for()
    leave(page, "#id_ttl_hours", "500")
    page.locator("#meta-ttl_hours-errors").get_by_text("at most 168 hours").wait_for()
    leave(page, "#id_p-gpu_count", "99")
    page.locator("#p-gpu_count-errors").get_by_text("Must be at most 8.").wait_for()
    estimate.get_by_text("Fix the highlighted fields").wait_for()
    assert "^[a-z]" not in page.locator("[data-testid=launch-form]").inner_text()
    screenshot("launch-form-every-error-inline")

    with page.expect_navigation():
        page.click("[data-testid=submit-launch]")
    for slot, words in [
        ("#meta-name-errors", NAME_RULE),
        ("#meta-ttl_hours-errors", "at most 168 hours"),
        ("#p-gpu_count-errors", "Must be at most 8."),
        ("#p-experiment_name-errors", HUMAN_PATTERN),
    ]:
        assert words in page.locator(slot).inner_text(), slot
    screenshot("launch-form-every-error-on-submit")

    leave(page, "#id_p-gpu_count", "3")
    leave(page, "#id_name", "alice-typed-once")
    page.wait_for_function("() => document.querySelector('#meta-name-errors').innerText.trim() === ''")
    assert page.input_value("#id_p-experiment_name") == "alice-typed-once"  # it still follows the name
    estimate.get_by_text("0.78 USD").wait_for()  # 0.02 + 3 x 0.25 + 0.0055
    with page.expect_navigation():
        page.click("[data-testid=submit-launch]")  # the TTL is still wrong
    assert "at most 168 hours" in page.locator("#meta-ttl_hours-errors").inner_text()
    assert page.input_value("#id_p-gpu_count") == "3"
    assert "0.78 USD" in estimate.inner_text()  # what is on screen, not the 1-GPU default
    screenshot("launch-form-estimate-after-failed-submit")

    leave(page, "#id_ttl_hours", "24")
    page.wait_for_function("() => document.querySelector('#meta-ttl_hours-errors').innerText.trim() === ''")
    page.click("[data-testid=submit-launch]")
    page.wait_for_selector("[data-testid=workspace-name]")
    workspace = Workspace.objects.get(name="alice-typed-once")
    assert workspace.parameters["experiment_name"] == "alice-typed-once"
    assert workspace.parameters["gpu_count"] == 3
    page.get_by_text("Experiment name").first.wait_for()  # the parameters listed by title
    screenshot("launch-form-workspace-by-title")
