"""The template contract (apps.catalog.spec): one checker per thing, and every way in goes through it.

A `template.yaml`, a Backstage import and the curation editor/API all produce a `VersionData` and get the same
findings from `validate_version_data`; `sync_templates` publishes through the admin's validate-and-publish path;
the engine and module validation add the same platform variables file.
"""

from __future__ import annotations

import copy
import io
import json
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog import services
from apps.catalog.backstage import import_backstage_template
from apps.catalog.manifests import ManifestError, discover_manifests, load_manifest
from apps.catalog.models import ApprovalPolicy, Lifecycle, TemplateKind, TemplateVersion
from apps.catalog.spec import (
    PLATFORM_FILE,
    PLATFORM_VARIABLES,
    VersionData,
    check_price_model,
    check_schema,
    schema_warnings,
    validate_version_data,
)
from apps.catalog.spec.limits import APPROVAL_POLICIES, KINDS
from apps.catalog.spec.platform import PLATFORM_VARIABLES_TF
from apps.runs.models import RunState
from tests.factories import RunFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory, member

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra" / "templates"
SANDBOX = TEMPLATES / "sandbox-experiment"


def sandbox_manifest_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((SANDBOX / "template.yaml").read_text())
    return data


def write_template(root: Path, data: dict[str, Any], module_from: Path | None = SANDBOX) -> Path:
    """A templates folder holding one template (`data["slug"]`) with a copy of the sandbox module."""
    folder = root / data["slug"]
    folder.mkdir(parents=True)
    (folder / "template.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    for tf in module_from.glob("*.tf") if module_from else []:
        (folder / tf.name).write_text(tf.read_text())
    return folder / "template.yaml"


@pytest.fixture
def ada(vision: Team) -> Any:
    UserFactory(username="ada", is_superuser=True, is_staff=True)
    return member(vision, Role.ADMIN, username="ada")


# --- One checker, one set of choices -------------------------------------------------------------------------


def test_the_models_choices_are_the_contracts() -> None:
    assert tuple(TemplateKind.values) == KINDS
    assert tuple(ApprovalPolicy.values) == APPROVAL_POLICIES


def test_a_free_text_string_is_a_warning_everywhere() -> None:
    """Resolved as a warning: Backstage imports keep free-text fields (capped at 1,024 characters), and the
    guards refuse template sequences and control characters in every string at launch anyway."""
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"notes": {"type": "string", "maxLength": 500}},
    }
    warning = "'notes' is free text (no enum, pattern or format): it reaches Terraform as-is; add a pattern if you can."
    assert check_schema(schema) == []
    assert schema_warnings(schema) == [warning]
    report = validate_version_data(VersionData(parameters_schema=schema), kind="terraform", check_module=False)
    assert report.ok
    assert report.warnings == [f"Parameters schema: {warning}"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("paved_team", "Parameter 'paved_team' is a platform variable"),
        ("count", "Parameter name 'count' is reserved by Terraform"),
        ("locals", "Parameter name 'locals' is reserved by Terraform"),
    ],
)
def test_parameter_names_terraform_or_paved_take_are_refused(name: str, message: str) -> None:
    schema = {"type": "object", "additionalProperties": False, "properties": {name: {"type": "integer"}}}
    assert [problem for problem in check_schema(schema) if problem.startswith(message)]


def test_examples_must_fit_their_parameter() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"size": {"type": "integer", "maximum": 8, "examples": [4, 16]}},
    }
    assert check_schema(schema) == ["Example 16 of 'size' is invalid: Must be at most 8."]


def test_a_schema_must_declare_its_properties() -> None:
    assert check_schema({"type": "object", "additionalProperties": False}) == [
        'Declare the parameters in "properties" (an empty object when the template takes none).'
    ]


SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "size": {"type": "string", "enum": ["small", "large"]},
        "disk_gb": {"type": "integer", "minimum": 1},
        "public": {"type": "boolean"},
    },
}


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (
            {"label": "Size", "parameter": "size", "hourly_by_value": {"small": "0.10"}},
            "Component 1 has no price for large (allowed values of 'size').",
        ),
        (
            {"label": "Size", "parameter": "size", "hourly_by_value": {"small": 0.1, "large": "0.20"}},
            "Component 1's price for 'small' must be a decimal string such as \"1.006\" (quote it in YAML), "
            "not a number.",
        ),
        (
            {"label": "Disk", "parameter": "public", "hourly_per_unit": "0.01"},
            "Component 1: hourly_per_unit needs a number parameter; 'public' is not.",
        ),
        (
            {"label": "IP", "parameter": "disk_gb", "hourly_if_true": "0.01"},
            "Component 1: hourly_if_true needs a boolean parameter; 'disk_gb' is not.",
        ),
        (
            {"label": "Disk", "parameter": "disk_gb", "hourly_per_unit": "0.01", "multiply_by": ["size"]},
            "Component 1 multiplies by 'size', which is not a number parameter of the parameters schema.",
        ),
        (
            {"parameter": "disk_gb", "hourly_per_unit": "0.01"},
            "Component 1 needs a label of one line and at most 100 characters.",
        ),
        (
            {"label": "Disk", "parameter": "disk_gb", "hourly_per_unit": "0.01", "monthly": "7"},
            "Component 1: 'monthly' is not a component key (label, parameter, multiply_by, hourly_by_value, "
            "hourly_per_unit, hourly_if_true, hourly_from_instance_catalog).",
        ),
    ],
    ids=[
        "unpriced choice",
        "float price",
        "per unit of a boolean",
        "if true of a number",
        "times a string",
        "label",
        "key",
    ],
)
def test_the_one_price_model_checker(component: dict[str, Any], message: str) -> None:
    """What template.yaml refused and the curation editor let through (and priced at zero) is refused by both."""
    price = {"currency": "USD", "base_hourly": "0", "components": [component]}
    assert check_price_model(price, SCHEMA) == [message]


def test_prices_are_decimal_strings_and_the_currency_is_required() -> None:
    assert check_price_model({"base_hourly": 0.5, "components": []}, SCHEMA) == [
        "Currency None is not a three-letter ISO code such as USD.",
        'base_hourly must be a decimal string such as "1.006" (quote it in YAML), not a number.',
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_ttl_hours": 48}, "Set a default TTL when there is a maximum TTL"),
        ({"default_ttl_hours": 72, "max_ttl_hours": 48}, "The default TTL is longer than the maximum TTL."),
        ({"approval_policy": "cost_above"}, "Approval 'when the estimate exceeds a threshold' needs a threshold."),
        (
            {"approval_policy": "cost_above", "approval_threshold": Decimal("0")},
            "The approval threshold must be a positive amount with at most two decimals.",
        ),
        ({"version": "v1"}, "Version 'v1' is not a semantic version such as 1.2.0."),
        ({"plan_timeout_seconds": 5}, "plan_timeout_seconds must be from 10 to 604800 seconds, or empty."),
        ({"ui_schema": {"ui:order": ["nope"]}}, "UI hints: ui:order names nope, which are not parameters."),
    ],
)
def test_policies_and_ui_hints_are_checked_for_every_version(change: dict[str, Any], message: str) -> None:
    report = validate_version_data(VersionData(**change), kind="terraform", check_module=False)
    assert any(error.startswith(message) for error in report.errors), report.errors


# --- Every way in: the same data, the same findings ----------------------------------------------------------


def test_a_manifest_and_the_catalogs_copy_are_the_same_version_data(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())
    for manifest in discover_manifests(TEMPLATES):
        stored = TemplateVersion.objects.get(template__slug=manifest.slug, version=manifest.version)
        module_path = "" if manifest.module_dir is None else str(manifest.module_dir.relative_to(ROOT))
        assert services.version_data_of(version=stored) == manifest.version_data(module_path), manifest.slug
        assert services.validate_version(version=stored).errors == []


FREE_TEXT_BACKSTAGE = textwrap.dedent(
    """\
    apiVersion: scaffolder.backstage.io/v1beta3
    kind: Template
    metadata: {name: contract-demo, title: Contract demo}
    spec:
      parameters:
        - title: Experiment
          required: [experimentName]
          properties:
            experimentName: {title: Experiment name, type: string, pattern: '^[a-z][a-z0-9-]{2,39}$'}
            framework: {title: Framework, type: string, enum: [pytorch, jax], default: pytorch}
            gpuCount: {title: GPUs, type: integer, minimum: 0, maximum: 8, default: 1}
            notes: {title: Notes, type: string}
    """
)


def test_a_backstage_import_a_manifest_and_the_editor_get_the_same_findings(
    ada: Any, tmp_path: Path, settings: Any
) -> None:
    imported = import_backstage_template(FREE_TEXT_BACKSTAGE)
    draft = services.create_template_from_backstage(actor=ada, imported=imported, owner_team=None)
    services.attach_module_folder(actor=ada, version=draft, folder="infra/templates/sandbox-experiment")
    from_import = services.validate_version(version=TemplateVersion.objects.get(pk=draft.pk))

    data = sandbox_manifest_data()
    data.update(slug="contract-demo", version="0.1.0", parameters=imported.parameters, ui=imported.ui)
    data.update(default_ttl_hours=None, max_ttl_hours=None, changelog=draft.changelog, price=draft.price_model)
    manifest = load_manifest(write_template(tmp_path, data))

    edited = services.create_template(
        actor=ada,
        template=services.TemplateData(slug="contract-edit", name="Edited", summary="By hand."),
        version=manifest.version_data("infra/templates/sandbox-experiment"),
    )
    from_editor = services.validate_version(version=edited)

    notes = "Parameters schema: 'notes' is free text (no enum, pattern or format): it reaches Terraform as-is; "
    assert from_import.errors == from_editor.errors == []
    assert notes + "add a pattern if you can." in from_import.warnings
    assert list(manifest.warnings) == from_import.warnings
    assert from_import.warnings == from_editor.warnings


def test_a_bad_parameter_is_refused_with_the_same_sentence_by_the_loader_and_by_publish(
    ada: Any, tmp_path: Path
) -> None:
    data = sandbox_manifest_data()
    data["slug"] = "contract-bad"
    data["parameters"] = copy.deepcopy(data["parameters"])
    data["parameters"]["properties"]["framework"]["default"] = "cobol"
    with pytest.raises(ManifestError) as refused:
        load_manifest(write_template(tmp_path, data))
    assert refused.value.key == "parameters.properties.framework.default"

    version = services.VersionData(
        parameters_schema=data["parameters"], ui_schema=data["ui"], module_path="infra/templates/sandbox-experiment"
    )
    draft = services.create_template(
        actor=ada, template=services.TemplateData(slug="contract-bad", name="Bad", summary="s."), version=version
    )
    assert (
        f"Parameters schema: {str(refused.value).split(': ', 2)[2]}" in services.validate_version(version=draft).errors
    )


def test_the_backstage_import_renames_a_field_the_contract_reserves() -> None:
    imported = import_backstage_template(
        FREE_TEXT_BACKSTAGE.replace("gpuCount:", "pavedTeam: {type: string, enum: [a]}\n        gpuCount:")
    )
    assert "paved_team_value" in imported.parameters["properties"]
    assert "Renamed parameter 'pavedTeam' to 'paved_team_value' ('paved_team' is set by Paved on every run)." in (
        imported.unsupported
    )
    assert check_schema(imported.parameters) == []


# --- sync_templates publishes through the admin's path ---------------------------------------------------------


def test_sync_publishes_through_validation_and_audits_the_publish(db: None) -> None:
    call_command("sync_templates", stdout=io.StringIO())
    published = AuditEvent.objects.filter(verb="template.published", target_label="sandbox-experiment@1.1.0").get()
    assert published.actor is None
    assert published.data == {"from": "draft", "to": "published"}
    assert TemplateVersion.objects.get(template__slug="sandbox-experiment").lifecycle == Lifecycle.PUBLISHED


def test_sync_refuses_a_shipped_version_whose_module_does_not_fit_and_stores_nothing(db: None, tmp_path: Path) -> None:
    data = sandbox_manifest_data()
    data["slug"] = "contract-unfit"
    data["parameters"] = copy.deepcopy(data["parameters"])
    data["parameters"]["properties"]["extra_flag"] = {"type": "boolean", "title": "Extra", "default": False}
    data["ui"] = {**data["ui"], "ui:order": [*data["ui"]["ui:order"], "extra_flag"]}
    write_template(tmp_path, data)  # the module has no variable extra_flag: only the module check can tell

    err = io.StringIO()
    with pytest.raises(CommandError, match="1 shipped template version"):
        call_command("sync_templates", "--root", str(tmp_path), stdout=io.StringIO(), stderr=err)

    assert "contract-unfit@1.1.0" in err.getvalue()
    assert "Schema property 'extra_flag' has no Terraform variable of that name in the module." in err.getvalue()
    assert not TemplateVersion.objects.filter(template__slug="contract-unfit").exists()


# --- The platform variables file --------------------------------------------------------------------------------


def test_the_platform_file_declares_exactly_the_platform_variables() -> None:
    declared = [line.split('"')[1] for line in PLATFORM_VARIABLES_TF.splitlines() if line.startswith("variable ")]
    assert tuple(declared) == PLATFORM_VARIABLES


def test_the_engine_lays_out_the_module_with_the_platform_file_and_the_values(
    db: None, settings: Any, tmp_path: Path
) -> None:
    from apps.runs.services.execution import VAR_FILE, prepare_workdir, run_dir, work_dir

    settings.RUNS_DIR = tmp_path / "runs"
    version = TemplateVersionFactory(template__slug="sandbox-copy", module_path="infra/templates/sandbox-experiment")
    run = RunFactory(workspace=WorkspaceFactory(template_version=version, name="ws-7"), state=RunState.QUEUED)

    workdir, _ = prepare_workdir(run=run)

    assert workdir == work_dir(run=run) == run_dir(run=run) / "templates" / "module"
    assert (workdir / PLATFORM_FILE).read_text() == PLATFORM_VARIABLES_TF
    assert (run_dir(run=run) / "modules" / "default-vpc" / "main.tf").is_file()
    assert not (SANDBOX / PLATFORM_FILE).exists()  # the module itself is never modified
    values = json.loads((workdir / VAR_FILE).read_text())
    assert {name: values[name] for name in PLATFORM_VARIABLES} == {
        "paved_team": run.workspace.team.slug,
        "paved_workspace": "ws-7",
        "paved_template": "sandbox-copy@1.0.0",
    }
