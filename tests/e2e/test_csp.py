"""The Content-Security-Policy holds in a real browser: pages run no inline script or style, and the shared `page`
fixture (tests/fixtures/browser.py) fails any browser test whose pages trip the policy."""

from __future__ import annotations

from typing import Any

import pytest

from apps.accounts.models import ApiToken
from tests.factories import ApiTokenFactory, TemplateFactory, TemplateVersionFactory
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/",
    "/catalog/",
    "/workspaces/",
    "/runs/",
    "/clusters/",
    "/audit/",
    "/accounts/profile/",
    "/accounts/tokens/",
    "/admin/",
    "/admin/accounts/team/",
    "/admin/accounts/team/add/",
    "/admin/accounts/membership/add/",
    "/admin/audit/auditevent/",
    "/api/docs/",
    "/catalog/new/",
    "/catalog/import/",
    "/catalog/sandbox/",
    "/catalog/sandbox/launch/",
    "/catalog/sandbox/versions/1.0.0/",
    "/clusters/new/",
    "/clusters/quotas/",
    "/no-such-page/",
]


def test_the_fixture_reports_an_inline_script_and_style_on_our_origin(
    live_server: Any, page: Any, csp_violations: list[str]
) -> None:
    hostile = '<html><body><p style="color: red">x</p><script>document.title = "ran"</script></body></html>'
    page.route(
        f"{live_server.url}/hostile",
        lambda route: route.fulfill(
            body=hostile, content_type="text/html", headers={"Content-Security-Policy": "default-src 'self'"}
        ),
    )

    page.goto(f"{live_server.url}/hostile")
    page.wait_for_function("() => document.readyState === 'complete'")
    page.wait_for_timeout(200)  # violation events are dispatched as tasks after the parser meets them

    assert page.title() != "ran"
    assert any("script-src" in violation for violation in csp_violations), csp_violations
    assert any("style-src" in violation for violation in csp_violations), csp_violations
    csp_violations.clear()  # seen and proven; the fixture would fail this test otherwise


def test_every_main_page_renders_without_a_csp_violation(
    live_server: Any, page: Any, mark: Any, csp_violations: list[str]
) -> None:
    mark.is_staff = mark.is_superuser = True  # a platform admin sees every page, the admin and curation ones too
    mark.save()
    TemplateVersionFactory(template=TemplateFactory(slug="sandbox"))
    log_in(page, live_server, "mark")

    for path in PAGES:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
        assert not csp_violations, (path, csp_violations)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector("#swagger-ui .opblock")  # the split-out init script ran and rendered the schema


def test_moved_inline_handlers_still_work(live_server: Any, page: Any, mark: Any) -> None:
    token = ApiTokenFactory(user=mark, name="laptop")
    log_in(page, live_server, "mark")

    page.select_option("[data-testid=team-switcher]", label="NLP")
    page.wait_for_selector("text=Now working in team NLP")
    assert page.locator("[data-testid=team-switcher] option:checked").inner_text() == "NLP"

    page.goto(f"{live_server.url}/accounts/tokens/")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("form[data-confirm] button[type=submit]")
    token.refresh_from_db()
    assert token.revoked_at is None
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button[type=submit]")
    page.wait_for_selector("text=Token 'laptop' revoked.")
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
