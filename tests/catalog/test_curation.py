"""Admins curate templates: drafts, validation, publish/deprecate/retire, diffs, uploads and syncing."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog import errors, services
from apps.catalog.manifests import discover_manifests, load_manifest
from apps.catalog.models import Lifecycle, Template, TemplateVersion, VersionFrozenError
from apps.runs.models import Workspace
from tests.factories import TemplateVersionFactory, UserFactory, WorkspaceFactory, member

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "infra" / "templates" / "sandbox-experiment"


@pytest.fixture
def ada(vision: Team, nlp: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")  # the saved user, with its final password hash


@pytest.fixture
def synced(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())


def sandbox_version_data(version: str = "0.1.0") -> services.VersionData:
    manifest = load_manifest(SANDBOX / "template.yaml")
    return services.VersionData(
        version=version,
        parameters_schema=manifest.parameters,
        ui_schema=manifest.ui,
        module_path="infra/templates/sandbox-experiment",
        price_model=manifest.price,
        default_ttl_hours=8,
        max_ttl_hours=48,
    )


def new_template(ada: Any, slug: str = "my-sandbox", **version: Any) -> TemplateVersion:
    data = services.TemplateData(slug=slug, name="My sandbox", summary="A sandbox.", tags=["sandbox"])
    return services.create_template(actor=ada, template=data, version=version.get("data") or sandbox_version_data())


def test_sync_templates_loads_every_shipped_golden_path_published(synced: None) -> None:
    slugs = {manifest.slug for manifest in discover_manifests(ROOT / "infra" / "templates")}
    assert {"gpu-training-cluster", "notebook-workspace", "model-endpoint", "dataset-bucket"} <= slugs
    assert {"sandbox-experiment", "feature-pipeline"} <= slugs
    assert set(Template.objects.values_list("slug", flat=True)) == slugs
    assert all(v.lifecycle == Lifecycle.PUBLISHED for v in TemplateVersion.objects.all())


def test_sync_templates_is_idempotent(synced: None) -> None:
    before = list(TemplateVersion.objects.order_by("pk").values_list("pk", "updated_at"))
    out = io.StringIO()
    call_command("sync_templates", stdout=out)
    assert list(TemplateVersion.objects.order_by("pk").values_list("pk", "updated_at")) == before
    assert "0 new" in out.getvalue()


def test_sync_reports_a_changed_module_that_kept_its_version(synced: None) -> None:
    manifest = load_manifest(SANDBOX / "template.yaml")
    changed = manifest.__class__(**{**manifest.__dict__, "changelog": "edited without a version bump"})
    report = services.sync_templates(manifests=[changed])
    assert report.conflicts
    assert "bump `version`" in report.conflicts[0]
    assert TemplateVersion.objects.get(template__slug="sandbox-experiment").changelog == manifest.changelog


def test_every_shipped_version_passes_validation(synced: None) -> None:
    for version in TemplateVersion.objects.all():
        report = services.validate_version(version=version)
        assert report.errors == [], (str(version), report.errors)


def test_admin_creates_a_draft_and_it_is_audited(ada: Any) -> None:
    draft = new_template(ada)
    assert draft.lifecycle == Lifecycle.DRAFT
    assert AuditEvent.objects.filter(verb="template.created", actor=ada).count() == 1


def test_members_and_managers_cannot_curate(alice: Any, mark: Any) -> None:
    for user in (alice, mark):
        with pytest.raises(errors.CurationDenied):
            new_template(user, slug=f"by-{user.username}")
    assert not Template.objects.exists()


def test_team_admin_curates_only_their_teams_templates(vision: Team, nlp: Team) -> None:
    team_admin = member(vision, Role.ADMIN)
    data = services.TemplateData(slug="vision-only", name="V", summary="s", owner_team=vision)
    draft = services.create_template(actor=team_admin, template=data, version=sandbox_version_data())
    other = services.TemplateData(slug="nlp-only", name="N", summary="s", owner_team=nlp)
    with pytest.raises(errors.CurationDenied):
        services.create_template(actor=team_admin, template=other, version=sandbox_version_data())
    assert draft.template.owner_team == vision


def test_publish_deprecate_retire_and_illegal_moves(ada: Any) -> None:
    draft = new_template(ada)
    published = services.publish_version(actor=ada, version=draft)
    assert published.lifecycle == Lifecycle.PUBLISHED
    assert published.published_at
    with pytest.raises(errors.LifecycleError):
        services.retire_version(actor=ada, version=published)
    deprecated = services.deprecate_version(actor=ada, version=published)
    retired = services.retire_version(actor=ada, version=deprecated)
    assert retired.lifecycle == Lifecycle.RETIRED
    with pytest.raises(errors.LifecycleError):
        services.publish_version(actor=ada, version=retired)
    verbs = list(AuditEvent.objects.filter(actor=ada).values_list("verb", flat=True).order_by("id"))
    assert verbs == ["template.created", "template.published", "template.deprecated", "template.retired"]


def test_publish_refuses_an_invalid_draft_and_says_why(ada: Any) -> None:
    data = sandbox_version_data()
    data.module_path = ""
    data.parameters_schema = {
        **data.parameters_schema,
        "properties": {**data.parameters_schema["properties"], "ghost": {"type": "integer"}},
    }
    draft = new_template(ada, data=data)
    with pytest.raises(errors.VersionValidationFailed, match="No Terraform module"):
        services.publish_version(actor=ada, version=draft)
    assert TemplateVersion.objects.get(pk=draft.pk).lifecycle == Lifecycle.DRAFT


def test_validation_reports_a_schema_property_without_a_terraform_variable(ada: Any) -> None:
    data = sandbox_version_data()
    data.parameters_schema = {
        **data.parameters_schema,
        "properties": {**data.parameters_schema["properties"], "ghost": {"type": "integer"}},
    }
    report = services.validate_version(version=new_template(ada, data=data))
    assert any("ghost" in problem for problem in report.errors)


def test_published_content_is_frozen(ada: Any) -> None:
    version = services.publish_version(actor=ada, version=new_template(ada))
    with pytest.raises(errors.LifecycleError):
        services.update_draft(actor=ada, version=version, data=sandbox_version_data())
    version.changelog = "sneaky edit"
    with pytest.raises(VersionFrozenError):
        version.save()


def test_new_version_copies_the_newest_and_bumps_the_patch(ada: Any) -> None:
    published = services.publish_version(actor=ada, version=new_template(ada))
    draft = services.create_draft_version(actor=ada, template=published.template)
    assert draft.version == "0.1.1"
    assert draft.parameters_schema == published.parameters_schema
    assert draft.lifecycle == Lifecycle.DRAFT


def test_diff_shows_what_changed_between_versions(ada: Any) -> None:
    published = services.publish_version(actor=ada, version=new_template(ada))
    draft = services.create_draft_version(actor=ada, template=published.template)
    data = sandbox_version_data(version=draft.version)
    data.max_ttl_hours = 12
    services.update_draft(actor=ada, version=draft, data=data)
    diff = "\n".join(services.diff_versions(old=published, new=TemplateVersion.objects.get(pk=draft.pk)))
    assert '-  "max_ttl_hours": 48' in diff
    assert '+  "max_ttl_hours": 12' in diff


def test_deprecated_version_hides_from_launch_but_workspaces_keep_it(ada: Any, alice: Any, vision: Team) -> None:
    version = services.publish_version(actor=ada, version=new_template(ada))
    workspace = WorkspaceFactory(team=vision, template_version=version)
    services.deprecate_version(actor=ada, version=version)
    workspace.refresh_from_db()
    assert workspace.template_version.lifecycle == Lifecycle.DEPRECATED
    with pytest.raises(errors.VersionNotLaunchable):
        services.launch_template(
            actor=alice, team=vision, version=TemplateVersion.objects.get(pk=version.pk), params={}, name="too-late"
        )
    assert Workspace.objects.count() == 1


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_uploaded_module_archive_becomes_the_drafts_module(ada: Any, settings: Any, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    files = {f"module/{path.name}": path.read_text() for path in SANDBOX.glob("*.tf")}
    draft = services.attach_module_archive(actor=ada, version=new_template(ada), name="module.zip", data=_zip(files))
    assert Path(draft.module_path).is_dir()
    assert Path(draft.module_path).is_relative_to(tmp_path)
    assert services.validate_version(version=draft).errors == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../evil.tf": "x"}, "outside the archive"),
        ({"README.md": "no terraform"}, "no .tf files"),
        ({"main.tf": 'resource "terraform_data" "x" {'}, "does not parse"),
    ],
)
def test_bad_module_archives_are_rejected(
    ada: Any, settings: Any, tmp_path: Path, files: dict[str, str], message: str
) -> None:
    settings.DATA_DIR = tmp_path
    draft = new_template(ada)
    with pytest.raises(errors.ModuleArchiveRejected, match=message):
        services.attach_module_archive(actor=ada, version=draft, name="m.zip", data=_zip(files))
    assert TemplateVersion.objects.get(pk=draft.pk).module_path == "infra/templates/sandbox-experiment"


def test_tar_archives_with_links_are_rejected(ada: Any, settings: Any, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("main.tf")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(errors.ModuleArchiveRejected, match="link"):
        services.attach_module_archive(actor=ada, version=new_template(ada), name="m.tar.gz", data=buffer.getvalue())


# --- API ----------------------------------------------------------------------------------------------------


def test_api_admin_creates_and_publishes_a_template(api: Any, ada: Any, alice: Any) -> None:
    manifest = load_manifest(SANDBOX / "template.yaml")
    payload = {
        "slug": "api-sandbox",
        "name": "API sandbox",
        "summary": "From the API.",
        "tags": ["sandbox"],
        "parameters_schema": manifest.parameters,
        "module_path": "infra/templates/sandbox-experiment",
        "price_model": json.loads(json.dumps(manifest.price)),
    }
    api.force_authenticate(ada)
    created = api.post(reverse("api:template-list"), payload, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["lifecycle"] == "draft"

    api.force_authenticate(alice)
    assert api.get(reverse("api:template-detail", args=["api-sandbox"])).status_code == 404  # drafts are hidden
    denied = api.post("/api/v1/templates/api-sandbox/versions/0.1.0/publish")
    assert denied.status_code in {403, 404}

    api.force_authenticate(ada)
    published = api.post("/api/v1/templates/api-sandbox/versions/0.1.0/publish")
    assert published.status_code == 200, published.content
    assert published.json()["lifecycle"] == "published"

    api.force_authenticate(alice)
    listed = api.get(reverse("api:template-list"), {"search": "api-sandbox"}).json()["results"]
    assert [t["slug"] for t in listed] == ["api-sandbox"]
    versions = api.get("/api/v1/templates/api-sandbox/versions").json()
    assert [v["version"] for v in versions] == ["0.1.0"]


def test_api_member_cannot_create_templates(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)
    payload = {"slug": "nope", "name": "N", "summary": "s", "parameters_schema": {"type": "object"}}
    response = api.post(reverse("api:template-list"), payload, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "curation_denied"


def test_api_publishing_an_invalid_draft_lists_the_problems(api: Any, ada: Any) -> None:
    payload = {"slug": "broken", "name": "Broken", "summary": "s", "parameters_schema": {"type": "object"}}
    api.force_authenticate(ada)
    api.post(reverse("api:template-list"), payload, format="json")
    response = api.post("/api/v1/templates/broken/versions/0.1.0/publish")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "version_validation_failed"
    assert any("module" in problem for problem in body["errors"])


def test_versions_of_a_template_are_listed_for_admins_including_drafts(api: Any, ada: Any) -> None:
    TemplateVersionFactory(template__slug="multi", version="1.0.0")
    TemplateVersionFactory(template__slug="multi", version="1.1.0", lifecycle=Lifecycle.DRAFT)
    api.force_authenticate(ada)
    versions = {v["version"] for v in api.get("/api/v1/templates/multi/versions").json()}
    assert versions == {"1.0.0", "1.1.0"}


def test_templates_of_no_team_list_a_null_owner_team_as_the_schema_says(api: Any, alice: Any) -> None:
    """Regression (contract fuzzer): `owner_team` was declared non-null but answered null."""
    TemplateVersionFactory(template__slug="platform-wide")
    api.force_authenticate(alice)

    listed = api.get("/api/v1/templates/").json()["results"]
    schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]["Template"]

    assert [template["owner_team"] for template in listed if template["slug"] == "platform-wide"] == [None]
    assert schema["properties"]["owner_team"]["nullable"] is True


def test_versions_are_a_plain_list_and_the_schema_says_so(api: Any, alice: Any) -> None:
    """Regression (contract fuzzer): versions were declared paginated (with filters) but answered a plain list."""
    TemplateVersionFactory(template__slug="listed")
    api.force_authenticate(alice)

    versions = api.get("/api/v1/templates/listed/versions", {"limit": "1"}).json()
    operation = api.get("/api/schema/?format=json").json()["paths"]["/api/v1/templates/{slug}/versions/"]["get"]

    assert [version["version"] for version in versions] == ["1.0.0"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert [parameter["in"] for parameter in operation["parameters"]] == ["path"]
