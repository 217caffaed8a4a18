"""The template list of the API reads a fixed number of queries however many templates it lists (the load test's
slowest API page was one query per template for its latest version, and one for its teams)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.catalog.models import Lifecycle, Tag, Template
from tests.factories import TemplateFactory, TemplateVersionFactory

pytestmark = pytest.mark.django_db


def add_templates(count: int, team: Team) -> list[Template]:
    """Templates shaped like the shipped ones: tags, a team they are shared with, a few versions each."""
    tag, _ = Tag.objects.get_or_create(name="gpu")
    made = []
    for _ in range(count):
        template = TemplateFactory(visible_to_all=False)
        template.visible_to.set([team])
        template.tags.set([tag])
        earlier = timezone.now() - timedelta(days=2)
        TemplateVersionFactory(template=template, version="1.0.0", published_at=earlier)
        TemplateVersionFactory(template=template, version="1.1.0")
        TemplateVersionFactory(template=template, version="2.0.0", lifecycle=Lifecycle.DRAFT, published_at=None)
        made.append(template)
    return made


def list_queries(api: APIClient) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/templates")
    assert response.status_code == 200
    return len(queries)


def test_template_list_queries_do_not_grow_with_the_templates(
    api: APIClient, alice: Any, vision: Team, django_assert_max_num_queries: Any
) -> None:
    api.force_authenticate(alice)
    add_templates(1, vision)
    one = list_queries(api)
    add_templates(9, vision)

    with django_assert_max_num_queries(one):
        response = api.get("/api/v1/templates")

    listed = response.json()["results"]
    assert len(listed) == 10
    assert {row["latest_version"] for row in listed} == {"1.1.0"}  # the newest published, never the draft
    assert {tuple(row["visible_to"]) for row in listed} == {("vision",)}
    assert {tuple(row["tags"]) for row in listed} == {("gpu",)}


def test_template_detail_keeps_its_latest_version(api: APIClient, alice: Any, vision: Team) -> None:
    api.force_authenticate(alice)
    (template,) = add_templates(1, vision)

    body = api.get(f"/api/v1/templates/{template.slug}").json()

    assert body["latest_version"] == "1.1.0"
    assert body["visible_to"] == ["vision"]
