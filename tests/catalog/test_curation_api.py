"""Curation with no browser: import a Backstage template, edit the draft, attach a module, validate and publish,
all over the API, through the same services (and the same checks) as the browser editor."""

from __future__ import annotations

import io
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.test.client import encode_multipart

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog.models import Lifecycle, Template, TemplateVersion
from tests.core.test_problem_details import assert_problem
from tests.factories import UserFactory, member

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "infra" / "templates" / "sandbox-experiment"
IMPORT = "/api/v1/templates/import-backstage"

# A Backstage template whose parameters are the sandbox module's variables; its second page has a condition.
SANDBOX_BACKSTAGE = textwrap.dedent(
    """\
    apiVersion: scaffolder.backstage.io/v1beta3
    kind: Template
    metadata:
      name: api-sandbox
      title: API sandbox
      description: A sandbox imported over the API.
    spec:
      owner: ml-platform
      type: experiment
      parameters:
        - title: Experiment
          required: [experimentName]
          properties:
            experimentName:
              type: string
              pattern: '^[a-z][a-z0-9-]{2,39}$'
            framework:
              type: string
              enum: [pytorch, jax]
              default: pytorch
            gpuCount: {type: integer, minimum: 0, maximum: 8, default: 1}
        - title: Scratch space
          when: ${{ parameters.framework === 'pytorch' }}
          properties:
            datasetSizeGb: {type: integer, minimum: 1, maximum: 2000}
    """
)
PRICE = {
    "currency": "USD",
    "base_hourly": "0.02",
    "components": [{"label": "Reserved GPUs", "parameter": "gpu_count", "hourly_per_unit": "0.25"}],
}


@pytest.fixture
def ada(vision: Team, nlp: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")


@pytest.fixture
def nlp_admin(nlp: Team) -> Any:
    return member(nlp, Role.ADMIN, username="nadia")


def imported(api: Any, user: Any, content: str = SANDBOX_BACKSTAGE) -> dict[str, Any]:
    api.force_authenticate(user)
    response = api.post(IMPORT, {"content": content}, format="json")
    assert response.status_code == 201, response.content
    return dict(response.json())


def version_url(slug: str = "api-sandbox", version: str = "0.1.0", tail: str = "") -> str:
    return f"/api/v1/templates/{slug}/versions/{version}{tail}"


def test_imported_template_is_edited_given_a_module_validated_and_published_over_the_api(api: Any, ada: Any) -> None:
    draft = imported(api, ada)
    assert draft["lifecycle"] == "draft"
    assert api.get(version_url(tail="/validation")).json()["ok"] is False  # no module yet

    patched = api.patch(
        version_url(),
        {
            "price_model": PRICE,
            "default_ttl_hours": 24,
            "max_ttl_hours": 168,
            "approval_policy": "cost_above",
            "approval_threshold": "5.00",
            "ui_schema": {**draft["ui_schema"], "experiment_name": {"ui:placeholder": "resnet50-baseline"}},
            "changelog": "First import.",
        },
        format="json",
    )
    assert patched.status_code == 200, patched.content
    body = patched.json()
    assert (body["default_ttl_hours"], body["max_ttl_hours"], body["approval_policy"]) == (24, 168, "cost_above")
    assert body["parameters_schema"] == draft["parameters_schema"]  # what the PATCH did not name is kept

    attached = api.post(version_url(tail="/module"), {"module_path": "infra/templates/sandbox-experiment"})
    assert attached.status_code == 200, attached.content
    report = api.get(version_url(tail="/validation")).json()
    assert report["errors"] == []
    assert report["ok"] is True

    published = api.post(version_url(tail="/publish"))
    assert published.status_code == 200, published.content
    assert published.json()["lifecycle"] == "published"
    verbs = set(AuditEvent.objects.filter(target_label__startswith="api-sandbox").values_list("verb", flat=True))
    assert {"template.imported", "template.draft_updated", "template.module_attached", "template.published"} <= verbs


def test_patch_refuses_what_the_browser_editor_refuses(api: Any, ada: Any) -> None:
    imported(api, ada)

    response = api.patch(version_url(), {"default_ttl_hours": 0, "approval_policy": "sometimes"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"default_ttl_hours", "approval_policy"}


def test_patch_of_a_published_version_is_a_conflict(api: Any, ada: Any) -> None:
    imported(api, ada)
    publish(api)

    response = api.patch(version_url(), {"changelog": "too late"}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_lifecycle_transition"


def publish(api: Any) -> None:
    api.patch(version_url(), {"price_model": PRICE}, format="json")
    api.post(version_url(tail="/module"), {"module_path": "infra/templates/sandbox-experiment"})
    assert api.post(version_url(tail="/publish")).status_code == 200


def test_drafts_are_404_and_other_versions_403_to_non_curators_before_the_body_is_read(
    api: Any, ada: Any, alice: Any, nlp_admin: Any
) -> None:
    imported(api, ada)
    publish(api)
    imported(api, ada)  # the next draft, 0.1.1
    not_json = "{" * 50_000

    for user in (alice, nlp_admin):
        api.force_authenticate(user)
        hidden = api.generic("PATCH", version_url(version="0.1.1"), not_json, content_type="application/json")
        assert hidden.status_code == 404
        denied = api.generic("PATCH", version_url(), not_json, content_type="application/json")
        assert denied.status_code == 403
        assert denied.json()["code"] == "curation_denied"
        module = api.generic("POST", version_url(tail="/module"), not_json, content_type="application/json")
        assert module.status_code == 403
        assert api.get(version_url(tail="/validation")).status_code == 403


def test_module_archive_is_uploaded_through_its_own_endpoint(api: Any, ada: Any, settings: Any, tmp_path: Path) -> None:
    settings.DATA_DIR = tmp_path
    imported(api, ada)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in SANDBOX.glob("*.tf"):
            archive.writestr(f"module/{path.name}", path.read_text())
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "module.zip"

    response = api.post(version_url(tail="/module"), {"archive": upload}, format="multipart")

    assert response.status_code == 200, response.content
    assert Path(response.json()["module_path"]).is_relative_to(tmp_path)


def test_module_folder_must_be_a_shipped_one(api: Any, ada: Any) -> None:
    imported(api, ada)

    response = api.post(version_url(tail="/module"), {"module_path": "/etc"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "module_archive_rejected"
    assert "infra/templates/sandbox-experiment" in response.json()["detail"]


def test_reimporting_updates_the_open_draft_instead_of_adding_one(api: Any, ada: Any) -> None:
    imported(api, ada)
    api.patch(version_url(), {"price_model": PRICE, "max_ttl_hours": 48}, format="json")
    api.post(version_url(tail="/module"), {"module_path": "infra/templates/sandbox-experiment"})
    changed = SANDBOX_BACKSTAGE.replace("enum: [pytorch, jax]", "enum: [pytorch, jax, tensorflow]")

    again = imported(api, ada, changed)

    template = Template.objects.get(slug="api-sandbox")
    assert list(template.versions.values_list("version", "lifecycle")) == [("0.1.0", Lifecycle.DRAFT)]
    assert again["parameters_schema"]["properties"]["framework"]["enum"] == ["pytorch", "jax", "tensorflow"]
    assert (again["max_ttl_hours"], again["module_path"]) == (48, "infra/templates/sandbox-experiment")


def test_reimporting_after_publishing_starts_the_next_draft(api: Any, ada: Any) -> None:
    imported(api, ada)
    publish(api)

    again = imported(api, ada)

    assert again["version"] == "0.1.1"
    versions = TemplateVersion.objects.filter(template__slug="api-sandbox")
    assert sorted(versions.values_list("version", "lifecycle")) == [
        ("0.1.0", Lifecycle.PUBLISHED),
        ("0.1.1", Lifecycle.DRAFT),
    ]


# --- YAML bounds and authorization before parsing ------------------------------------------------------------


def deep_yaml(depth: int = 10_000) -> str:
    """A 20 KB YAML document nested `depth` levels deep."""
    return "[" * depth + "]" * depth


def test_non_curator_posting_a_hostile_yaml_is_refused_with_403(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)

    response = api.post(IMPORT, {"content": deep_yaml()}, format="json")

    assert response.status_code == 403
    assert response.json()["code"] == "curation_denied"


def test_curator_posting_a_deeply_nested_yaml_gets_a_400_problem(api: Any, ada: Any) -> None:
    api.force_authenticate(ada)

    response = api.post(IMPORT, {"content": deep_yaml()}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "yaml_too_complex"
    assert "deeper than 64 levels" in response.json()["detail"]


def test_oversize_yaml_is_a_413_problem(api: Any, ada: Any) -> None:
    api.force_authenticate(ada)

    response = api.post(IMPORT, {"content": SANDBOX_BACKSTAGE + "#" * 300_000}, format="json")

    assert response.status_code == 413
    assert response.json()["code"] == "yaml_too_large"


def test_yaml_with_control_characters_is_a_400_problem_not_a_server_error(api: Any, ada: Any) -> None:
    api.force_authenticate(ada)

    response = api.post(IMPORT, {"content": "apiVersion: x\x07\x1b[2J\n"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_backstage_template"
    assert "control character #x0007" in response.json()["detail"]


@pytest.mark.parametrize("name", ["module.zip", "module.tar.gz"])
def test_corrupt_module_archive_is_a_400_problem(api: Any, ada: Any, name: str) -> None:
    imported(api, ada)
    upload = io.BytesIO(b"PK\x03\x04 this is not an archive")
    upload.name = name

    response = api.post(version_url(tail="/module"), {"archive": upload}, format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "module_archive_rejected"
    assert "could not be read" in response.json()["detail"]


def test_archive_that_declares_too_much_content_is_refused_before_unpacking(
    api: Any, ada: Any, settings: Any, tmp_path: Path
) -> None:
    settings.DATA_DIR = tmp_path
    imported(api, ada)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.tf", b"\n" * (21 * 1024 * 1024))  # 21 MB of newlines deflate to ~20 KB
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "bomb.zip"

    response = api.post(version_url(tail="/module"), {"archive": upload}, format="multipart")

    assert response.status_code == 400
    assert "expands to more than 20 MB" in response.json()["detail"]


def test_non_curator_creating_a_template_is_refused_before_the_body_is_read(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)

    response = api.generic("POST", "/api/v1/templates/", "{" * 50_000, content_type="application/json")

    assert response.status_code == 403
    assert response.json()["code"] == "curation_denied"


# The API reads JSON only; the module upload is its one multipart endpoint, so the multipart limits are shown there.
def test_oversized_multipart_field_on_the_module_upload_is_a_413_problem(api: Any, ada: Any, settings: Any) -> None:
    imported(api, ada)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = api.post(version_url(tail="/module"), {"module_path": "x" * 10_000}, format="multipart")

    assert_problem(response, 413, "payload_too_large")


def test_module_upload_over_the_upload_limit_is_a_413_problem(api: Any, ada: Any, settings: Any) -> None:
    imported(api, ada)
    settings.MAX_UPLOAD_BYTES = 20_000
    body = encode_multipart("BoUnDaRy", {"module_path": "x" * 25_000})

    response = api.generic(
        "POST", version_url(tail="/module"), body, content_type="multipart/form-data; boundary=BoUnDaRy"
    )

    assert_problem(response, 413, "payload_too_large")
