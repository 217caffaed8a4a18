"""A template's launch count is a column the database keeps (runs migration 0009), so the catalog page reads a
fixed number of queries however many workspaces the platform holds, and its tag list never reads workspaces."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import Team
from apps.catalog import selectors
from apps.catalog.models import Tag, Template, TemplateVersion
from apps.runs.models import Workspace
from tests.factories import TemplateFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

triggers = importlib.import_module("apps.runs.migrations.0009_workspace_launch_count_triggers")


def count_of(template: Template) -> int:
    template.refresh_from_db(fields=["launch_count"])
    return template.launch_count


def tagged_version(slug: str, tag: str) -> TemplateVersion:
    version = TemplateVersionFactory(template=TemplateFactory(slug=slug))
    version.template.tags.set([Tag.objects.get_or_create(name=tag)[0]])
    return version


def add_workspaces(count: int, version: TemplateVersion, team: Team) -> None:
    owner: User = UserFactory()
    Workspace.objects.bulk_create(
        [
            Workspace(team=team, name=f"bulk-{version.pk}-{n}", template_version=version, created_by=owner)
            for n in range(count)
        ]
    )


def test_inserting_deleting_and_repinning_workspaces_keeps_the_count(vision: Team) -> None:
    first: TemplateVersion = TemplateVersionFactory()
    other: TemplateVersion = TemplateVersionFactory()
    later: TemplateVersion = TemplateVersionFactory(template=first.template, version="2.0.0")
    workspace = WorkspaceFactory(template_version=first, team=vision)
    WorkspaceFactory(template_version=later, team=vision)
    add_workspaces(3, first, vision)  # bulk_create sends no signals: the trigger still counts them
    assert (count_of(first.template), count_of(other.template)) == (5, 0)

    workspace.status = "ready"
    workspace.save()  # a save that leaves the version alone changes nothing
    assert count_of(first.template) == 5

    workspace.template_version = other
    workspace.save()
    assert (count_of(first.template), count_of(other.template)) == (4, 1)

    Workspace.objects.filter(template_version=later).delete()
    assert count_of(first.template) == 3


def test_the_backfill_counts_existing_workspaces(vision: Team) -> None:
    version = TemplateVersionFactory()
    add_workspaces(4, version, vision)
    Template.objects.update(launch_count=0)  # as the column stood just after it was added

    with connection.cursor() as cursor:
        cursor.execute(triggers.BACKFILL)

    assert count_of(version.template) == 4


def test_the_api_lists_and_orders_by_the_kept_count(api: Any, alice: Any, vision: Team) -> None:
    quiet, busy = TemplateVersionFactory(), TemplateVersionFactory()
    add_workspaces(2, busy, vision)
    api.force_authenticate(alice)

    rows = api.get("/api/v1/templates", {"ordering": "-launch_count"}).json()["results"]

    assert [(row["slug"], row["launch_count"]) for row in rows] == [
        (busy.template.slug, 2),
        (quiet.template.slug, 0),
    ]


def catalog_queries(client: Client) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse("catalog:list"))
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries]


def test_catalog_page_queries_do_not_grow_with_the_workspaces(
    client: Client, alice: Any, vision: Team, nlp: Team, django_assert_max_num_queries: Any
) -> None:
    gpu, bucket = tagged_version("gpu-box", "gpu"), tagged_version("bucket", "storage")
    client.force_login(alice)
    before = catalog_queries(client)
    add_workspaces(50, gpu, vision)
    add_workspaces(50, bucket, nlp)

    with django_assert_max_num_queries(len(before)):
        response = client.get(reverse("catalog:list"))

    assert [template.launch_count for template in response.context["templates"]] == [50, 50]
    assert response.context["tags"] == ["gpu", "storage"]
    assert not [sql for sql in catalog_queries(client) if '"runs_workspace"' in sql]  # no query reads workspaces


def test_tag_list_is_one_query_over_the_visible_templates(alice: Any, vision: Team, nlp: Team) -> None:
    tagged_version("gpu-box", "gpu")
    secret = tagged_version("nlp-secret", "secret")
    secret.template.visible_to_all = False
    secret.template.save()
    secret.template.visible_to.set([nlp])
    tagged_version("bucket", "storage").template.tags.add(Tag.objects.get(name="gpu"))
    add_workspaces(5, secret, nlp)

    with CaptureQueriesContext(connection) as queries:
        tags = selectors.all_tags(alice)

    assert tags == ["gpu", "storage"]  # sorted, each once, nothing from a template alice cannot see
    tag_queries = [query["sql"] for query in queries.captured_queries if '"catalog_tag"' in query["sql"]]
    assert len(tag_queries) == 1
    assert '"runs_workspace"' not in tag_queries[0]
