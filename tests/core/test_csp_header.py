"""Every page answers with the Content-Security-Policy: our own origin only, no inline script, eval or style."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import TemplateFactory, TemplateVersionFactory

POLICY = {
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
    "font-src 'self'", "object-src 'none'", "base-uri 'self'", "form-action 'self'", "frame-ancestors 'none'",
}  # fmt: skip


def policy(response: Any) -> set[str]:
    return {directive.strip() for directive in response["Content-Security-Policy"].split(";")}


def plain_paths(patterns: list[Any], prefix: str = "") -> list[str]:
    """Every routed path that takes no argument (admin's own pages aside): the pages a GET can reach as is."""
    found: list[str] = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if "<" in route or "(?P" in route or (route.startswith("admin/") and route != "admin/"):
            continue
        if isinstance(entry, URLResolver):
            found += plain_paths(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            found.append("/" + route.lstrip("^").rstrip("$").replace("\\Z", ""))
    return sorted(set(found))


@pytest.fixture
def admin_client(client: Client, mark: Any) -> Client:
    mark.is_staff = mark.is_superuser = True
    mark.save()
    client.force_login(mark)
    return client


def test_every_page_without_arguments_carries_the_policy(admin_client: Client) -> None:
    paths = plain_paths(get_resolver().url_patterns)
    assert {"/", "/catalog/", "/workspaces/", "/admin/", "/api/docs/", "/accounts/login/"} <= set(paths)

    for path in paths:
        if path != "/api/docs/":  # its own test below
            assert policy(admin_client.get(path)) == POLICY, path


def test_pages_with_arguments_and_error_pages_carry_the_policy(admin_client: Client, settings: Any) -> None:
    TemplateVersionFactory(template=TemplateFactory(slug="sandbox"))
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    responses = {
        "template": admin_client.get("/catalog/sandbox/"),
        "launch": admin_client.get("/catalog/sandbox/launch/"),
        "404": admin_client.get("/no-such-page/"),
        "413": admin_client.post("/catalog/new/", {"name": "x" * 200}),
        "api 404": admin_client.get("/api/v1/nope"),
    }

    assert {name: r.status_code for name, r in responses.items()} == {
        "template": 200, "launch": 200, "404": 404, "413": 413, "api 404": 404,
    }  # fmt: skip
    assert {name: policy(r) for name, r in responses.items()} == dict.fromkeys(responses, POLICY)


def test_swagger_ui_alone_may_style_inline_and_still_runs_no_inline_script(client: Client, alice: Any) -> None:
    client.force_login(alice)

    page = client.get("/api/docs/")
    script = client.get("/api/docs/?script=")

    assert policy(page) == POLICY - {"style-src 'self'"} | {"style-src 'self' 'unsafe-inline'"}
    assert "<script>" not in page.content.decode()
    assert script["Content-Type"].startswith("application/javascript")
