"""Catalog pages: browse with search, filters and popularity; detail; curation pages for admins only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Role, Team
from apps.catalog.models import Lifecycle, Tag, TemplateKind
from tests.factories import TemplateFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory, member

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(vision: Team) -> dict[str, Any]:
    gpu = TemplateVersionFactory(template=TemplateFactory(slug="gpu-box", name="GPU box", kind=TemplateKind.TERRAFORM))
    gpu.template.tags.set([Tag.objects.create(name="gpu")])
    bucket = TemplateVersionFactory(template=TemplateFactory(slug="bucket", name="Bucket", summary="Data storage"))
    bucket.template.tags.set([Tag.objects.create(name="storage")])
    endpoint = TemplateVersionFactory(
        template=TemplateFactory(slug="endpoint", name="Endpoint", kind=TemplateKind.DEPLOYMENT)
    )
    TemplateVersionFactory(template=TemplateFactory(slug="draft-only"), lifecycle=Lifecycle.DRAFT)
    for _ in range(3):
        WorkspaceFactory(template_version=bucket, team=vision)
    WorkspaceFactory(template_version=endpoint, team=vision)
    return {"gpu": gpu, "bucket": bucket, "endpoint": endpoint}


def slugs(response: Any) -> list[str]:
    return [template.slug for template in response.context["templates"]]


def test_catalog_lists_launchable_templates_by_popularity(client: Client, alice: Any, catalog: dict[str, Any]) -> None:
    client.force_login(alice)
    response = client.get(reverse("catalog:list"))
    assert slugs(response) == ["bucket", "endpoint", "gpu-box"]
    assert "draft-only" not in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "storage"}, ["bucket"]),
        ({"q": "GPU"}, ["gpu-box"]),
        ({"kind": "deployment"}, ["endpoint"]),
        ({"tag": "gpu"}, ["gpu-box"]),
        ({"sort": "name"}, ["bucket", "endpoint", "gpu-box"]),
    ],
)
def test_catalog_search_and_filters(
    client: Client, alice: Any, catalog: dict[str, Any], query: dict[str, str], expected: list[str]
) -> None:
    client.force_login(alice)
    assert slugs(client.get(reverse("catalog:list"), query)) == expected


def test_catalog_search_answers_htmx_with_the_grid_only(client: Client, alice: Any, catalog: dict[str, Any]) -> None:
    client.force_login(alice)
    response = client.get(reverse("catalog:list"), {"q": "bucket"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert "<html" not in body
    assert 'data-testid="template-card-bucket"' in body


def test_templates_shared_with_another_team_are_invisible(client: Client, alice: Any, nlp: Team) -> None:
    template = TemplateFactory(slug="nlp-secret", visible_to_all=False)
    template.visible_to.set([nlp])
    TemplateVersionFactory(template=template)
    client.force_login(alice)
    assert "nlp-secret" not in slugs(client.get(reverse("catalog:list")))
    assert client.get(reverse("catalog:detail", args=["nlp-secret"])).status_code == 404
    assert client.get(reverse("catalog:launch", args=["nlp-secret"])).status_code == 404


def test_detail_renders_sanitized_markdown_parameters_versions_and_estimate(client: Client, alice: Any) -> None:
    template = TemplateFactory(slug="md", description="## Usage\n\n<script>alert(1)</script>**bold**")
    TemplateVersionFactory(template=template, changelog="First cut.")
    client.force_login(alice)
    body = client.get(reverse("catalog:detail", args=["md"])).content.decode()
    assert "<h2>Usage</h2>" in body
    assert "<strong>bold</strong>" in body
    assert "<script>alert(1)</script>" not in body
    assert "experiment_name" in body
    assert "First cut." in body
    assert "1.60 USD" in body  # default estimate: 0.10 base + 1 GPU x 1.50


def test_launch_page_renders_the_generated_form(client: Client, alice: Any) -> None:
    TemplateVersionFactory(template=TemplateFactory(slug="form-me"))
    client.force_login(alice)
    body = client.get(reverse("catalog:launch", args=["form-me"])).content.decode()
    for name in ["p-experiment_name", "p-framework", "p-gpu_count", "p-notes"]:
        assert f'name="{name}"' in body
    assert 'hx-post="/catalog/form-me/launch/validate/"' in body
    assert "/static/js/paved-forms.js" in body


@pytest.mark.parametrize("url_name", ["catalog:create", "catalog:import"])
def test_curation_pages_are_for_admins_only(client: Client, alice: Any, mark: Any, url_name: str) -> None:
    for user in (alice, mark):
        client.force_login(user)
        assert client.get(reverse(url_name)).status_code == 403
    admin = UserFactory(is_superuser=True, is_staff=True)
    client.force_login(admin)
    assert client.get(reverse(url_name)).status_code == 200


def test_admin_sees_drafts_and_validation_on_the_version_page(client: Client, vision: Team) -> None:
    admin = member(vision, Role.ADMIN, is_superuser=True)
    version = TemplateVersionFactory(template=TemplateFactory(slug="wip"), lifecycle=Lifecycle.DRAFT, module_path="")
    client.force_login(admin)
    body = client.get(reverse("catalog:version-detail", args=["wip", version.version])).content.decode()
    assert "No Terraform module" in body
    assert "Publish" in body


def test_members_do_not_see_draft_versions(client: Client, alice: Any) -> None:
    version = TemplateVersionFactory(template=TemplateFactory(slug="half"), version="2.0.0", lifecycle=Lifecycle.DRAFT)
    TemplateVersionFactory(template=version.template, version="1.0.0")
    client.force_login(alice)
    assert client.get(reverse("catalog:version-detail", args=["half", "2.0.0"])).status_code == 404
    assert client.get(reverse("catalog:version-detail", args=["half", "1.0.0"])).status_code == 200
