from __future__ import annotations

from typing import Any

import pytest

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_alice_logs_in_and_sees_navigation_and_her_team(
    live_server: Any, page: Any, alice: Any, screenshot: Any
) -> None:
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url

    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_selector("[data-testid=current-user]")
    nav = page.locator("nav.mainnav")
    for section in [
        "Catalog",
        "Workspaces",
        "Runs",
        "Clusters",
        "Training",
        "Models",
        "Deployments",
        "Costs",
        "Dashboards",
        "Audit",
        "Admin",
    ]:
        assert nav.get_by_text(section, exact=True).count() == 1, section
    assert page.locator("[data-testid=current-user]").inner_text() == "alice"
    assert page.locator("[data-testid=team-switcher] option:checked").inner_text() == "Vision"
    assert "Vision" in page.locator("[data-testid=my-teams]").inner_text()
    assert "NLP" not in page.locator("[data-testid=my-teams]").inner_text()
    shot = screenshot("alice-home")
    assert shot.stat().st_size > 10_000

    page.click("text=Sign out")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert page.locator(".flash").inner_text() == "You are signed out."


def test_wrong_password_shows_an_error_in_the_form(live_server: Any, page: Any, alice: Any) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "correct username and password" in page.locator(".form-error").inner_text()
