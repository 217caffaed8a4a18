"""Curation pages fit an admin (issue 16, acceptance 5): the schema editor starts from a working example and never
shows `null`, its live preview renders the launch form and the template contract's findings with JSON pointers,
publish/deprecate/retire go through a confirmation naming the version and the workspaces on it, and the quota
form shows the team's current quota."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.catalog.forms import EXAMPLE_SCHEMA, EXAMPLE_UI
from apps.catalog.models import Lifecycle, TemplateVersion
from apps.catalog.spec import VersionData, validate_version_data
from apps.clusters.models import TeamQuota
from apps.runs.models import WorkspaceStatus
from tests.factories import TemplateFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client: Client) -> Client:
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    return client


def _preview(client: Client, schema: Any, ui: Any = None, kind: str = "terraform") -> str:
    body = {"v-parameters_schema": schema if isinstance(schema, str) else json.dumps(schema), "kind": kind}
    if ui is not None:
        body["v-ui_schema"] = json.dumps(ui)
    response = client.post(reverse("catalog:schema-preview"), body)
    assert response.status_code == 200
    return response.content.decode()


def test_the_example_schema_passes_the_template_contract() -> None:
    data = VersionData(parameters_schema=EXAMPLE_SCHEMA, ui_schema=EXAMPLE_UI)
    report = validate_version_data(data, kind="terraform", check_module=False)
    assert report.errors == []


def test_a_new_template_starts_from_the_example_and_no_field_says_null(admin_client: Client) -> None:
    page = admin_client.get(reverse("catalog:create")).content.decode()
    assert json.dumps(EXAMPLE_SCHEMA, indent=2).replace('"', "&quot;") in page
    assert "null" not in page.split('data-testid="template-form"')[1].split("</form>")[0]
    assert 'hx-post="/catalog/schema-preview/"' in page


def test_editing_a_draft_shows_its_current_values_and_no_null(admin_client: Client) -> None:
    version = TemplateVersionFactory(template=TemplateFactory(slug="wip", name="Work in progress"),
                                     lifecycle=Lifecycle.DRAFT, ui_schema={}, approval_threshold=None)  # fmt: skip
    page = admin_client.get(reverse("catalog:version-edit", args=["wip", version.version])).content.decode()
    form = page.split('data-testid="version-form"')[1].split("</form>")[0]
    assert 'value="Work in progress"' in form
    assert "&quot;experiment_name&quot;" in form.split('name="v-parameters_schema"')[1].split("</textarea>")[0]
    assert 'name="v-default_ttl_hours" value="24"' in form
    assert "null" not in form


def test_the_preview_renders_the_launch_form_of_the_schema(admin_client: Client) -> None:
    page = _preview(admin_client, EXAMPLE_SCHEMA, EXAMPLE_UI)
    assert 'data-testid="schema-ok"' in page
    for name in ("size", "replicas", "public"):
        assert f'id="p-{name}-field"' in page
    assert ">Reachable from the internet<" in page
    assert page.index('id="p-size-field"') < page.index('id="p-replicas-field"') < page.index('id="p-public-field"')
    assert 'hx-swap-oob="true"' in page


def test_the_preview_shows_each_finding_with_its_json_pointer(admin_client: Client) -> None:
    schema = json.loads(json.dumps(EXAMPLE_SCHEMA))
    schema["properties"]["size"]["default"] = "huge"
    page = _preview(admin_client, schema, {"ui:order": ["size", "nope", "*"]})
    assert "Parameters /properties/size/default</code> Default of &#x27;size&#x27; is invalid" in page
    assert "UI hints /ui:order</code>" in page
    assert 'data-testid="schema-preview-stale"' in page  # no form from a schema with errors


def test_the_preview_says_where_the_json_is_broken(admin_client: Client) -> None:
    page = _preview(admin_client, '{"type": "object",\n  "properties": }')
    assert "Parameters schema: Not valid JSON: Expecting value (line 2, column 17)." in page


def test_only_curators_may_preview(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.post(reverse("catalog:schema-preview"), {"v-parameters_schema": "{}"}).status_code == 403


def _draft(slug: str = "wip") -> TemplateVersion:
    return TemplateVersionFactory(template=TemplateFactory(slug=slug, name="Sandbox"), version="1.1.0",
                                  lifecycle=Lifecycle.DRAFT)  # fmt: skip


def test_publish_asks_for_confirmation_first(admin_client: Client) -> None:
    draft = _draft()
    url = reverse("catalog:version-action", args=["wip", "1.1.0", "publish"])
    page = admin_client.get(url).content.decode()
    assert "Publish Sandbox 1.1.0?" in page
    assert "New launches of Sandbox will use version 1.1.0." in page
    assert 'name="confirmed" value="1"' in page
    # A single click (a POST without the confirmation) changes nothing; it shows the same step.
    assert 'data-testid="confirm-publish"' in admin_client.post(url).content.decode()
    draft.refresh_from_db()
    assert draft.lifecycle == Lifecycle.DRAFT
    assert admin_client.post(url, {"confirmed": "1"}).status_code == 302
    draft.refresh_from_db()
    assert draft.lifecycle == Lifecycle.PUBLISHED


def test_deprecate_and_retire_name_the_workspaces_on_the_version(admin_client: Client, vision: Team,
                                                                 nlp: Team) -> None:  # fmt: skip
    version = TemplateVersionFactory(template=TemplateFactory(slug="old", name="Old one"), version="1.0.0")
    for team, status in ((vision, WorkspaceStatus.READY), (vision, WorkspaceStatus.READY),
                         (nlp, WorkspaceStatus.FAILED), (nlp, WorkspaceStatus.DESTROYED)):  # fmt: skip
        WorkspaceFactory(team=team, template_version=version, status=status)
    deprecate = reverse("catalog:version-action", args=["old", "1.0.0", "deprecate"])
    page = admin_client.get(deprecate).content.decode()
    assert "Version 1.0.0 is hidden from new launches. Workspaces created from it keep working" in page
    assert "<li>Team nlp: 1 workspace</li>" in page
    assert "<li>Team vision: 2 workspaces</li>" in page
    admin_client.post(deprecate, {"confirmed": "1"})
    version.refresh_from_db()
    assert version.lifecycle == Lifecycle.DEPRECATED
    retire = reverse("catalog:version-action", args=["old", "1.0.0", "retire"])
    page = admin_client.get(retire).content.decode()
    assert "can never be launched again" in page
    assert 'class="btn btn-danger" data-testid="confirm-button"' in page
    admin_client.post(retire, {"confirmed": "1"})
    version.refresh_from_db()
    assert version.lifecycle == Lifecycle.RETIRED


def test_the_version_page_links_to_the_confirmation_instead_of_posting(admin_client: Client) -> None:
    TemplateVersionFactory(template=TemplateFactory(slug="live"), version="1.0.0")
    page = admin_client.get(reverse("catalog:version-detail", args=["live", "1.0.0"])).content.decode()
    assert f'href="{reverse("catalog:version-action", args=["live", "1.0.0", "deprecate"])}"' in page
    assert 'action="/catalog/live/versions/1.0.0/deprecate/"' not in page


def test_the_quota_form_shows_the_teams_current_quota(admin_client: Client, vision: Team, nlp: Team,
                                                      settings: Any) -> None:  # fmt: skip
    TeamQuota.objects.create(team=vision, max_gpus=12, max_cluster_hours=48, idle_window_minutes=20,
                             idle_threshold_pct=7.5)  # fmt: skip
    form = admin_client.get(reverse("clusters:quotas"), {"team": "vision"}).content.decode()
    form = form.split('data-testid="quota-form"')[1].split("</form>")[0]
    for field, value in (("max_gpus", "12"), ("max_cluster_hours", "48"), ("idle_window_minutes", "20"),
                         ("idle_threshold_pct", "7.5")):  # fmt: skip
        assert f'name="{field}" value="{value}"' in form, field
    assert '<option value="vision" selected>' in form
    defaults = admin_client.get(reverse("clusters:quotas"), {"team": "nlp"}).content.decode()
    defaults = defaults.split('data-testid="quota-form"')[1].split("</form>")[0]
    assert f'name="max_gpus" value="{settings.DEFAULT_GPU_QUOTA}"' in defaults
    assert '<option value="nlp" selected>' in defaults
    assert 'name="idle_window_minutes" value=' not in defaults  # empty: the platform default
