"""Curating templates: drafts, validation, lifecycle moves and diffs. Only curators; all audited."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.cluster_parameters import check_cluster_schema, cluster_schema_warnings
from apps.catalog.models import (
    ICONS,
    VERSION_CONTENT_FIELDS,
    ApprovalPolicy,
    Lifecycle,
    Tag,
    Template,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.modules import ModuleError, check_module_against_schema, inspect_module
from apps.catalog.schema import check_schema, schema_warnings
from apps.catalog.selectors import can_curate, module_dir
from apps.catalog.services.transitions import version_transition
from apps.costs.estimates import check_price_model

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def semver_key(version: str) -> tuple[int, int, int]:
    match = SEMVER.match(version)
    if not match:
        raise errors.InvalidTemplate(f"Version {version!r} is not a semantic version such as 1.2.0.")
    return int(match[1]), int(match[2]), int(match[3])


# --- Validation ---------------------------------------------------------------------------------------------


@dataclass
class VersionReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def validate_version(version: TemplateVersion) -> VersionReport:
    """Everything that must hold before a version may be published: schema, module (or, for a GPU cluster
    template, the cluster settings its launch hands to request_cluster), price, TTLs."""
    report = VersionReport()
    schema = version.parameters_schema
    report.errors += [f"Parameters schema: {problem}" for problem in check_schema(schema)]
    if not report.errors:
        report.warnings += [f"Parameters schema: {warning}" for warning in schema_warnings(schema)]
    report.errors += [f"Price model: {problem}" for problem in check_price_model(version.price_model, schema)]
    if not SEMVER.match(version.version):
        report.errors.append(f"Version {version.version!r} is not a semantic version such as 1.2.0.")
    if version.template.kind == TemplateKind.GPU_CLUSTER:
        _validate_cluster_settings(version, report)
    else:
        _validate_module(version, report)
    if version.default_ttl_hours and version.max_ttl_hours and version.default_ttl_hours > version.max_ttl_hours:
        report.errors.append("The default TTL is longer than the maximum TTL.")
    if version.approval_policy == ApprovalPolicy.COST_ABOVE and version.approval_threshold is None:
        report.errors.append("Approval 'when the estimate exceeds a threshold' needs a threshold.")
    return report


def _validate_module(version: TemplateVersion, report: VersionReport) -> None:
    schema = version.parameters_schema
    path = module_dir(version)
    if path is None:
        report.errors.append("No Terraform module: pick a module folder or upload a module archive.")
    elif not path.is_dir():
        report.errors.append(f"Module folder {version.module_path} does not exist.")
    else:
        try:
            info = inspect_module(path)
        except ModuleError as exc:
            report.errors.append(f"Module does not parse: {exc}")
        else:
            if isinstance(schema, dict):
                report.errors += [f"Module: {problem}" for problem in check_module_against_schema(info, schema)]


def _validate_cluster_settings(version: TemplateVersion, report: VersionReport) -> None:
    """A GPU cluster template has no module: its parameters must be exactly what request_cluster takes."""
    if version.module_path:
        report.errors.append(
            f"A GPU cluster template has no Terraform module, but this version points at {version.module_path}: "
            "set the module to none (its parameters go straight to the cluster request)."
        )
    problems = check_cluster_schema(version.parameters_schema)
    report.errors += [f"Cluster settings: {problem}" for problem in problems]
    if not problems:
        report.warnings += [f"Cluster settings: {w}" for w in cluster_schema_warnings(version.parameters_schema)]
    if version.approval_policy != ApprovalPolicy.NEVER:
        report.warnings.append(
            "Cluster launches skip run approval (the team's GPU quota bounds them), so the approval policy has no "
            "effect; set it to never."
        )
    if version.default_ttl_hours or version.max_ttl_hours:
        report.warnings.append(
            "A cluster's life is bounded by its max_hours parameter, not by the version's TTL; clear the TTLs."
        )


# --- Curation -----------------------------------------------------------------------------------------------


def require_curator(actor: User, template: Template | None) -> None:
    if not can_curate(actor, template):
        raise errors.CurationDenied("Only platform admins and admins of the owning team may curate templates.")


def _set_tags(template: Template, tags: list[str]) -> None:
    template.tags.set([Tag.objects.get_or_create(name=name.strip().lower())[0] for name in tags if name.strip()])


@dataclass
class TemplateData:
    slug: str
    name: str
    summary: str
    description: str = ""
    kind: str = TemplateKind.TERRAFORM
    icon: str = "flask"
    tags: list[str] = field(default_factory=list)
    owner_team: Team | None = None
    visible_to: list[Team] | None = None  # None: every team


@dataclass
class VersionData:
    version: str = "0.1.0"
    parameters_schema: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False}
    )
    ui_schema: dict[str, Any] = field(default_factory=dict)
    module_path: str = ""
    price_model: dict[str, Any] = field(
        default_factory=lambda: {"currency": "USD", "base_hourly": "0", "components": []}
    )
    default_ttl_hours: int | None = None
    max_ttl_hours: int | None = None
    approval_policy: str = ApprovalPolicy.NEVER
    approval_threshold: Decimal | None = None
    plan_timeout_seconds: int | None = None
    apply_timeout_seconds: int | None = None
    changelog: str = ""


def _check_template_data(data: TemplateData) -> None:
    if not SLUG.match(data.slug):
        raise errors.InvalidTemplate(
            "The slug must be 2-63 lowercase letters, digits or dashes, starting with a letter."
        )
    if data.kind not in TemplateKind.values:
        raise errors.InvalidTemplate(f"Kind must be one of {', '.join(TemplateKind.values)}.")
    if data.icon not in ICONS:
        raise errors.InvalidTemplate(f"Icon must be one of {', '.join(ICONS)}.")
    if not data.name.strip() or not data.summary.strip():
        raise errors.InvalidTemplate("A template needs a name and a one-line summary.")


def apply_template_data(template: Template, data: TemplateData) -> None:
    template.name, template.summary, template.description = data.name, data.summary, data.description
    template.kind, template.icon, template.owner_team = data.kind, data.icon, data.owner_team
    template.visible_to_all = data.visible_to is None
    template.save()
    _set_tags(template, data.tags)
    template.visible_to.set(data.visible_to or [])


def version_data_of(version: TemplateVersion) -> VersionData:
    """A version's current content as VersionData, so a partial edit (API PATCH, re-import) changes only what
    it names."""
    return VersionData(**{name: getattr(version, name) for name in VERSION_CONTENT_FIELDS})


def apply_version_data(version: TemplateVersion, data: VersionData) -> None:
    semver_key(data.version)
    for name in VERSION_CONTENT_FIELDS:
        setattr(version, name, getattr(data, name))


@transaction.atomic
def create_template(
    actor: User, *, template: TemplateData, version: VersionData, request: HttpRequest | None = None, **extra: Any
) -> TemplateVersion:
    """Create a template together with its first draft version."""
    _check_template_data(template)
    if template.owner_team is not None:
        if not can(actor, "team.administer", template.owner_team):
            raise errors.CurationDenied("You can only create templates owned by a team you administer.")
    else:
        require_curator(actor, None)
    if Template.objects.filter(slug=template.slug).exists():
        raise errors.InvalidTemplate(f"A template with slug '{template.slug}' already exists; add a version to it.")
    created = Template(slug=template.slug)
    apply_template_data(created, template)
    draft = TemplateVersion(template=created, created_by=actor, **extra)
    apply_version_data(draft, version)
    draft.save()
    record(actor, created.owner_team, "template.created", draft, {"version": draft.version}, request)
    return draft


@transaction.atomic
def update_template(
    actor: User, template: Template, data: TemplateData, request: HttpRequest | None = None
) -> Template:
    require_curator(actor, template)
    data.slug = template.slug
    _check_template_data(data)
    apply_template_data(template, data)
    record(actor, template.owner_team, "template.updated", template, {"name": data.name}, request)
    return template


@transaction.atomic
def create_draft_version(
    actor: User, template: Template, *, version: str | None = None, request: HttpRequest | None = None
) -> TemplateVersion:
    """A new draft that starts as a copy of the newest version, with the patch number bumped."""
    require_curator(actor, template)
    newest = template.versions.order_by("-created_at").first()
    draft = TemplateVersion(template=template, created_by=actor)
    if newest is not None:
        for name in VERSION_CONTENT_FIELDS:
            setattr(draft, name, getattr(newest, name))
        major, minor, patch = semver_key(newest.version)
        draft.version = version or f"{major}.{minor}.{patch + 1}"
        draft.changelog = ""
    else:
        draft.version = version or "0.1.0"
    semver_key(draft.version)
    if template.versions.filter(version=draft.version).exists():
        raise errors.InvalidTemplate(f"Version {draft.version} of {template.slug} already exists.")
    draft.save()
    record(actor, template.owner_team, "template.version_created", draft, {"version": draft.version}, request)
    return draft


@transaction.atomic
def update_draft(
    actor: User, version: TemplateVersion, data: VersionData, request: HttpRequest | None = None
) -> TemplateVersion:
    require_curator(actor, version.template)
    version = TemplateVersion.objects.select_for_update().get(pk=version.pk)
    if version.lifecycle != Lifecycle.DRAFT:
        raise errors.LifecycleError(
            f"{version} is {version.lifecycle}: only drafts can be edited. Create a new version."
        )
    before = version.content()
    if data.version != version.version and version.template.versions.filter(version=data.version).exists():
        raise errors.InvalidTemplate(f"Version {data.version} of {version.template.slug} already exists.")
    apply_version_data(version, data)
    version.save()
    changed = sorted(name for name, value in version.content().items() if before[name] != value)
    record(actor, version.template.owner_team, "template.draft_updated", version, {"changed": changed}, request)
    return version


def _move(actor: User, version: TemplateVersion, to: str, request: HttpRequest | None) -> TemplateVersion:
    require_curator(actor, version.template)
    return version_transition(version=version, to=to, actor=actor, request=request)


@transaction.atomic
def publish_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Publish a valid draft (or re-publish a deprecated version). Existing workspaces keep their version."""
    if version.lifecycle == Lifecycle.DRAFT:
        report = validate_version(version)
        if not report.ok:
            raise errors.VersionValidationFailed(
                f"{version} cannot be published: " + " ".join(report.errors), extra={"errors": report.errors}
            )
    return _move(actor, version, Lifecycle.PUBLISHED, request)


@transaction.atomic
def deprecate_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Hide a version from new launches; workspaces created from it keep working and keep showing it."""
    return _move(actor, version, Lifecycle.DEPRECATED, request)


@transaction.atomic
def retire_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    return _move(actor, version, Lifecycle.RETIRED, request)


def diff_versions(old: TemplateVersion | None, new: TemplateVersion) -> list[str]:
    """Unified diff of two versions' content and module files, for review before publishing."""

    def lines(version: TemplateVersion | None) -> list[str]:
        if version is None:
            return []
        content = json.dumps(version.content(), indent=2, sort_keys=True, default=str).splitlines()
        path = module_dir(version)
        if path is not None and path.is_dir():
            for tf in sorted(path.glob("*.tf")):
                content += [f"--- {tf.name} ---", *tf.read_text(errors="replace").splitlines()]
        return content

    label_old = str(old) if old else "(nothing)"
    return list(difflib.unified_diff(lines(old), lines(new), label_old, str(new), lineterm=""))


# The lifecycle moves curators may request by name (browser actions and the API share this table).
LIFECYCLE_ACTIONS = {"publish": publish_version, "deprecate": deprecate_version, "retire": retire_version}
