"""Single sign-on in the browser, against the real test provider (tests/fixtures/oidc_provider.py): the button on
the login page, the provider's own login form, memberships from the groups claim, a sign-out that ends the
provider's session too, and the local login beside it."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import Membership
from apps.audit.models import AuditEvent
from tests.factories import PASSWORD, TeamFactory
from tests.fixtures.oidc_provider import PROVIDER_NAME, PROVIDER_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_at_the_provider(page: Any, provider: Any, username: str) -> None:
    page.wait_for_selector("[data-testid=provider-login]")
    assert page.url.startswith(f"{provider.url}/login/")
    page.fill("#provider_username", username)
    page.fill("#provider_password", PROVIDER_PASSWORD)
    page.click("button[type=submit]")


def memberships_on_profile(page: Any, live_server: Any) -> list[str]:
    page.goto(f"{live_server.url}/accounts/profile/")
    rows = page.locator("[data-testid=memberships] tr")
    return sorted(" ".join(rows.nth(i).inner_text().split()) for i in range(rows.count()))


def test_dana_signs_in_with_sso_her_groups_change_and_sign_out_ends_the_provider_session(
    live_server: Any, page: Any, sso: Any, vision: Any, nlp: Any, screenshot: Any
) -> None:
    TeamFactory(slug="research", name="Research")
    sso.person("dana", name="Dana Scully", groups=["paved:vision:manager", "paved:nlp:member", "mail-users"])

    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.click(f"text=Sign in with {PROVIDER_NAME}")
    sign_in_at_the_provider(page, sso, "dana")

    page.wait_for_selector("[data-testid=current-user]")
    assert page.url == f"{live_server.url}/"
    assert page.locator("[data-testid=current-user]").inner_text() == "dana"
    assert memberships_on_profile(page, live_server) == ["NLP Member", "Vision Manager"]
    assert page.locator("[data-testid=sso-managed]").is_visible()
    screenshot("sso-first-sign-in-profile")

    provider_sign_outs: list[str] = []
    page.on("request", lambda request: provider_sign_outs.append(request.url) if "/logout/" in request.url else None)
    sso.person("dana", name="Dana Scully", groups=["paved:vision:member", "paved:research:admin"])
    page.click("text=Sign out")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert page.locator(".flash").inner_text() == "You are signed out."
    ends = [url for url in provider_sign_outs if url.startswith(f"{sso.url}/logout/")]
    assert len(ends) == 1, provider_sign_outs
    assert "id_token_hint=" in ends[0]

    # The provider's session ended with Paved's: signing in again asks for the password at the provider.
    page.click("[data-testid=sso-sign-in]")
    sign_in_at_the_provider(page, sso, "dana")
    page.wait_for_selector("[data-testid=current-user]")
    assert memberships_on_profile(page, live_server) == ["Research Admin", "Vision Member"]
    dana = Membership.objects.get(team__slug="research").user
    changes = AuditEvent.objects.filter(actor=dana, verb__startswith="membership.").order_by("id")
    assert list(changes.values_list("verb", "team__slug")) == [
        ("membership.added", "vision"),
        ("membership.added", "nlp"),
        ("membership.role_changed", "vision"),
        ("membership.added", "research"),
        ("membership.removed", "nlp"),
    ]


def test_a_provider_that_sends_no_groups_claim_gets_a_clear_refusal(
    live_server: Any, page: Any, sso: Any, vision: Any
) -> None:
    sso.person("erin")

    page.goto(f"{live_server.url}/accounts/login/")
    page.click("[data-testid=sso-sign-in]")
    sign_in_at_the_provider(page, sso, "erin")

    page.wait_for_url(f"{live_server.url}/accounts/login/")
    error = page.locator(".flash-error").inner_text()
    assert "Your identity provider sent no 'groups' claim" in error
    assert page.locator("[data-testid=current-user]").count() == 0


def test_local_accounts_sign_in_beside_sso(live_server: Any, page: Any, sso: Any, alice: Any, screenshot: Any) -> None:
    page.goto(f"{live_server.url}/accounts/login/")
    assert page.locator("[data-testid=sso-sign-in]").inner_text() == f"Sign in with {PROVIDER_NAME}"
    screenshot("sso-login-page")

    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_selector("[data-testid=current-user]")
    assert page.locator("[data-testid=current-user]").inner_text() == "alice"
    page.click("text=Sign out")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
