"""Catalog writes: curation (drafts, validation, lifecycle), syncing shipped golden paths, and launching.

Every write checks who may do it, runs in one transaction and records an audit event.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import re
import shutil
import tarfile
import zipfile
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.selectors import team_ids_for
from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.backstage import BackstageImport
from apps.catalog.manifests import TemplateManifest
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
from apps.catalog.schema import check_schema, schema_warnings, validate_parameters
from apps.catalog.selectors import can_curate, launch_teams, module_dir
from apps.costs.estimates import Estimate, check_price_model, estimate_hourly
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services import dispatch_run

SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
SLUG = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
WORKSPACE_NAME = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
LIFECYCLE_MOVES = {
    Lifecycle.DRAFT: {Lifecycle.PUBLISHED},
    Lifecycle.PUBLISHED: {Lifecycle.DEPRECATED},
    Lifecycle.DEPRECATED: {Lifecycle.PUBLISHED, Lifecycle.RETIRED},
    Lifecycle.RETIRED: set(),
}


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
    """Everything that must hold before a version may be published: schema, module, variables, price, TTLs."""
    report = VersionReport()
    schema = version.parameters_schema
    report.errors += [f"Parameters schema: {problem}" for problem in check_schema(schema)]
    if not report.errors:
        report.warnings += [f"Parameters schema: {warning}" for warning in schema_warnings(schema)]
    report.errors += [f"Price model: {problem}" for problem in check_price_model(version.price_model, schema)]
    if not SEMVER.match(version.version):
        report.errors.append(f"Version {version.version!r} is not a semantic version such as 1.2.0.")
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
    if version.default_ttl_hours and version.max_ttl_hours and version.default_ttl_hours > version.max_ttl_hours:
        report.errors.append("The default TTL is longer than the maximum TTL.")
    if version.approval_policy == ApprovalPolicy.COST_ABOVE and version.approval_threshold is None:
        report.errors.append("Approval 'when the estimate exceeds a threshold' needs a threshold.")
    return report


# --- Curation -----------------------------------------------------------------------------------------------


def _require_curator(actor: User, template: Template | None) -> None:
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


def _apply_template_data(template: Template, data: TemplateData) -> None:
    template.name, template.summary, template.description = data.name, data.summary, data.description
    template.kind, template.icon, template.owner_team = data.kind, data.icon, data.owner_team
    template.visible_to_all = data.visible_to is None
    template.save()
    _set_tags(template, data.tags)
    template.visible_to.set(data.visible_to or [])


def _apply_version_data(version: TemplateVersion, data: VersionData) -> None:
    semver_key(data.version)
    for name in VERSION_CONTENT_FIELDS:
        setattr(version, name, getattr(data, name))


@transaction.atomic
def create_template(
    actor: User, *, template: TemplateData, version: VersionData, request: HttpRequest | None = None, **extra: Any
) -> TemplateVersion:
    """Create a template together with its first draft version."""
    _check_template_data(template)
    if template.owner_team is not None and not getattr(actor, "is_superuser", False):
        if template.owner_team.pk not in team_ids_for(actor, roles=["admin"]):
            raise errors.CurationDenied("You can only create templates owned by a team you administer.")
    elif template.owner_team is None:
        _require_curator(actor, None)
    if Template.objects.filter(slug=template.slug).exists():
        raise errors.InvalidTemplate(f"A template with slug '{template.slug}' already exists; add a version to it.")
    created = Template(slug=template.slug)
    _apply_template_data(created, template)
    draft = TemplateVersion(template=created, created_by=actor, **extra)
    _apply_version_data(draft, version)
    draft.save()
    record(actor, created.owner_team, "template.created", draft, {"version": draft.version}, request)
    return draft


@transaction.atomic
def update_template(
    actor: User, template: Template, data: TemplateData, request: HttpRequest | None = None
) -> Template:
    _require_curator(actor, template)
    data.slug = template.slug
    _check_template_data(data)
    _apply_template_data(template, data)
    record(actor, template.owner_team, "template.updated", template, {"name": data.name}, request)
    return template


@transaction.atomic
def create_draft_version(
    actor: User, template: Template, *, version: str | None = None, request: HttpRequest | None = None
) -> TemplateVersion:
    """A new draft that starts as a copy of the newest version, with the patch number bumped."""
    _require_curator(actor, template)
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
    _require_curator(actor, version.template)
    version = TemplateVersion.objects.select_for_update().get(pk=version.pk)
    if version.lifecycle != Lifecycle.DRAFT:
        raise errors.LifecycleError(
            f"{version} is {version.lifecycle}: only drafts can be edited. Create a new version."
        )
    before = version.content()
    if data.version != version.version and version.template.versions.filter(version=data.version).exists():
        raise errors.InvalidTemplate(f"Version {data.version} of {version.template.slug} already exists.")
    _apply_version_data(version, data)
    version.save()
    changed = sorted(name for name, value in version.content().items() if before[name] != value)
    record(actor, version.template.owner_team, "template.draft_updated", version, {"changed": changed}, request)
    return version


def _move(actor: User, version: TemplateVersion, to: str, verb: str, request: HttpRequest | None) -> TemplateVersion:
    _require_curator(actor, version.template)
    version = TemplateVersion.objects.select_for_update().select_related("template").get(pk=version.pk)
    if to not in LIFECYCLE_MOVES[Lifecycle(version.lifecycle)]:
        raise errors.LifecycleError(f"{version} is {version.lifecycle}; it cannot become {to}.")
    previous = version.lifecycle
    version.lifecycle = to
    now = timezone.now()
    stamp = {
        Lifecycle.PUBLISHED: "published_at",
        Lifecycle.DEPRECATED: "deprecated_at",
        Lifecycle.RETIRED: "retired_at",
    }
    setattr(version, stamp[Lifecycle(to)], now)
    version.save(update_fields=["lifecycle", stamp[Lifecycle(to)], "updated_at"])
    record(actor, version.template.owner_team, verb, version, {"from": previous, "to": to}, request)
    return version


@transaction.atomic
def publish_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Publish a valid draft (or re-publish a deprecated version). Existing workspaces keep their version."""
    if version.lifecycle == Lifecycle.DRAFT:
        report = validate_version(version)
        if not report.ok:
            raise errors.VersionValidationFailed(
                f"{version} cannot be published: " + " ".join(report.errors), extra={"errors": report.errors}
            )
    return _move(actor, version, Lifecycle.PUBLISHED, "template.published", request)


@transaction.atomic
def deprecate_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Hide a version from new launches; workspaces created from it keep working and keep showing it."""
    return _move(actor, version, Lifecycle.DEPRECATED, "template.deprecated", request)


@transaction.atomic
def retire_version(actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    return _move(actor, version, Lifecycle.RETIRED, "template.retired", request)


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


# --- Shipped golden paths ----------------------------------------------------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    updated_metadata: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _manifest_version_data(manifest: TemplateManifest) -> VersionData:
    module_path = manifest.module_dir
    with contextlib.suppress(ValueError):
        module_path = module_path.relative_to(settings.BASE_DIR)
    return VersionData(
        version=manifest.version,
        parameters_schema=manifest.parameters,
        ui_schema=manifest.ui,
        module_path=str(module_path),
        price_model=manifest.price,
        default_ttl_hours=manifest.default_ttl_hours,
        max_ttl_hours=manifest.max_ttl_hours,
        approval_policy=manifest.approval_policy,
        approval_threshold=manifest.approval_threshold,
        changelog=manifest.changelog,
    )


@transaction.atomic
def sync_manifest(manifest: TemplateManifest, report: SyncReport) -> None:
    """Make the catalog match one shipped template.yaml: metadata follows the file; a version is created
    published the first time it is seen, and never rewritten afterwards (bump the version to change it)."""
    owner = Team.objects.filter(slug=manifest.owner_team).first() if manifest.owner_team else None
    visible = list(Team.objects.filter(slug__in=manifest.visibility)) if manifest.visibility is not None else None
    data = TemplateData(
        slug=manifest.slug,
        name=manifest.name,
        summary=manifest.summary,
        description=manifest.description,
        kind=manifest.kind,
        icon=manifest.icon,
        tags=list(manifest.tags),
        owner_team=owner,
        visible_to=visible,
    )
    template = Template.objects.filter(slug=manifest.slug).first()
    if template is None:
        template = Template(slug=manifest.slug)
        _apply_template_data(template, data)
    elif (template.name, template.summary, template.description, template.kind, template.icon) != (
        data.name, data.summary, data.description, data.kind, data.icon
    ) or sorted(template.tags.values_list("name", flat=True)) != sorted(data.tags):  # fmt: skip
        _apply_template_data(template, data)
        report.updated_metadata.append(manifest.slug)
    wanted = _manifest_version_data(manifest)
    existing = template.versions.filter(version=manifest.version).first()
    label = f"{manifest.slug}@{manifest.version}"
    if existing is None:
        version = TemplateVersion(template=template, source="infra", lifecycle=Lifecycle.PUBLISHED)
        _apply_version_data(version, wanted)
        version.published_at = timezone.now()
        version.save()
        record(None, owner, "template.synced", version, {"path": str(manifest.path)})
        report.created.append(label)
        return
    probe = TemplateVersion()
    _apply_version_data(probe, wanted)
    if json.dumps(probe.content(), sort_keys=True, default=str) == json.dumps(
        existing.content(), sort_keys=True, default=str
    ):
        report.unchanged.append(label)
    else:
        report.conflicts.append(
            f"{label} differs from the catalog's copy; bump `version` in {manifest.path} to ship it."
        )


def sync_templates(manifests: list[TemplateManifest]) -> SyncReport:
    report = SyncReport()
    for manifest in manifests:
        sync_manifest(manifest, report)
    return report


# --- Launch -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchResult:
    workspace: Workspace
    run: Run
    estimate: Estimate


def estimate_launch(version: TemplateVersion, params: Any) -> Estimate:
    """Validate `params` as a launch would and price them."""
    return estimate_hourly(version.price_model, validate_parameters(version.parameters_schema, params))


def _check_launchable(version: TemplateVersion) -> None:
    if version.lifecycle == Lifecycle.PUBLISHED:
        return
    newer = version.template.versions.filter(lifecycle=Lifecycle.PUBLISHED).order_by("-published_at").first()
    hint = f" Launch version {newer.version} instead." if newer else ""
    raise errors.VersionNotLaunchable(f"{version} is {version.lifecycle} and cannot be launched.{hint}")


def _expiry(version: TemplateVersion, ttl_hours: int | None) -> Any:
    hours = ttl_hours if ttl_hours is not None else version.default_ttl_hours
    if hours is None:
        return None
    if hours < 1:
        raise errors.InvalidTtl("The TTL must be at least 1 hour.")
    if version.max_ttl_hours is not None and hours > version.max_ttl_hours:
        raise errors.InvalidTtl(f"The TTL may be at most {version.max_ttl_hours} hours for this template.")
    return timezone.now() + timedelta(hours=hours)


@transaction.atomic
def launch_template(
    actor: User,
    team: Team,
    version: TemplateVersion,
    params: Any,
    name: str,
    *,
    reason: str = "",
    ttl_hours: int | None = None,
    request: HttpRequest | None = None,
) -> LaunchResult:
    """Validate everything, then create the Workspace and its first Run (queued) together, or nothing at all."""
    _check_launchable(version)
    if not launch_teams(actor, version.template).filter(pk=team.pk).exists():
        raise errors.TemplateNotVisible(
            f"Team '{team.slug}' cannot launch {version.template.slug}: you are not a member, "
            "or the template is not shared with that team."
        )
    if not WORKSPACE_NAME.match(name or ""):
        raise errors.InvalidWorkspaceName(
            "Workspace names are 3-40 lowercase letters, digits or dashes, starting with a letter "
            "(e.g. 'bert-finetune')."
        )
    parameters = validate_parameters(version.parameters_schema, params)
    expires_at = _expiry(version, ttl_hours)
    estimate = estimate_hourly(version.price_model, parameters)
    if Workspace.objects.filter(team=team, name=name).exists():
        raise errors.WorkspaceNameTaken(
            f"Team '{team.slug}' already has a workspace named '{name}'. Pick another name."
        )
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(
                team=team,
                name=name,
                template_version=version,
                parameters=parameters,
                status=WorkspaceStatus.PROVISIONING,
                created_by=actor,
                expires_at=expires_at,
                estimated_hourly_cost=estimate.hourly,
                currency=estimate.currency,
            )
    except IntegrityError as exc:  # a concurrent launch took the name between the check and the insert
        raise errors.WorkspaceNameTaken(f"Team '{team.slug}' already has a workspace named '{name}'.") from exc
    run = Run.objects.create(
        workspace=workspace,
        team=team,
        kind=RunKind.APPLY,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=version,
        parameters=parameters,
        reason=reason[:300],
        created_by=actor,
        estimated_hourly_cost=estimate.hourly,
    )
    dispatch_run(run)
    record(
        actor,
        team,
        "workspace.launched",
        workspace,
        {"template": version.template.slug, "version": version.version, "run": run.pk, "hourly": estimate.hourly},
        request,
    )
    return LaunchResult(workspace=workspace, run=run, estimate=estimate)


# --- Module archives ----------------------------------------------------------------------------------------

MAX_ARCHIVE_BYTES = 5 * 1024 * 1024
MAX_ARCHIVE_FILES = 200
ARCHIVE_SUFFIXES = {".tf", ".tfvars", ".json", ".md", ".tpl", ".tftpl", ".yaml", ".yml", ".txt", ".sh", ".py"}


def _archive_members(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """(relative path, content) of the regular files in a .zip or .tar.gz, refusing anything that could
    escape the target folder (absolute paths, '..', links) or blow up (too many or too large files)."""
    members: list[tuple[str, bytes]] = []
    buffer = io.BytesIO(data)
    if name.endswith(".zip"):
        with zipfile.ZipFile(buffer) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    members.append((info.filename, archive.read(info)))
    elif name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(fileobj=buffer, mode="r:gz") as archive:
            for member in archive.getmembers():
                if member.issym() or member.islnk() or member.isdev():
                    raise errors.ModuleArchiveRejected(
                        f"{member.name} is a link or device; only plain files are allowed."
                    )
                if member.isfile():
                    extracted = archive.extractfile(member)
                    members.append((member.name, extracted.read() if extracted else b""))
    else:
        raise errors.ModuleArchiveRejected("Upload a .zip or .tar.gz archive.")
    if len(members) > MAX_ARCHIVE_FILES:
        raise errors.ModuleArchiveRejected(f"The archive holds more than {MAX_ARCHIVE_FILES} files.")
    if sum(len(content) for _, content in members) > 4 * MAX_ARCHIVE_BYTES:
        raise errors.ModuleArchiveRejected("The archive expands to more than 20 MB.")
    for path, _ in members:
        parts = Path(path).parts
        if Path(path).is_absolute() or ".." in parts:
            raise errors.ModuleArchiveRejected(f"{path} points outside the archive.")
    return members


@transaction.atomic
def attach_module_archive(
    actor: User, version: TemplateVersion, *, name: str, data: bytes, request: HttpRequest | None = None
) -> TemplateVersion:
    """Unpack an uploaded Terraform module for a draft into the data dir and point the draft at it."""
    _require_curator(actor, version.template)
    if version.lifecycle != Lifecycle.DRAFT:
        raise errors.LifecycleError("Modules can only be attached to drafts.")
    if len(data) > MAX_ARCHIVE_BYTES:
        raise errors.ModuleArchiveRejected("The archive is larger than 5 MB.")
    try:
        members = _archive_members(name.lower(), data)
    except (OSError, ValueError, EOFError) as exc:
        raise errors.ModuleArchiveRejected(f"The archive could not be read: {exc}") from exc
    members = [(path, content) for path, content in members if Path(path).suffix in ARCHIVE_SUFFIXES]
    roots = {Path(path).parts[0] for path, _ in members if len(Path(path).parts) > 1}
    if members and len(roots) == 1 and all(len(Path(path).parts) > 1 for path, _ in members):
        members = [(str(Path(*Path(path).parts[1:])), content) for path, content in members]  # strip one top folder
    if not any(Path(path).suffix == ".tf" and len(Path(path).parts) == 1 for path, _ in members):
        raise errors.ModuleArchiveRejected("The archive has no .tf files at its top level.")
    target = Path(settings.DATA_DIR) / "modules" / version.template.slug / version.version
    staging = target.with_name(target.name + ".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    for path, content in members:
        destination = staging / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
    try:
        inspect_module(staging)
    except ModuleError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise errors.ModuleArchiveRejected(f"The module does not parse: {exc}") from exc
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    version.module_path = str(target)
    version.save(update_fields=["module_path", "updated_at"])
    record(actor, version.template.owner_team, "template.module_uploaded", version, {"files": len(members)}, request)
    return version


# --- Backstage import ---------------------------------------------------------------------------------------


@transaction.atomic
def create_template_from_backstage(
    actor: User, imported: BackstageImport, *, owner_team: Team | None, request: HttpRequest | None = None
) -> TemplateVersion:
    """A draft from a Backstage software template. What could not be carried over (steps, custom fields)
    is kept on the draft as its import report; the admin attaches a Terraform module before publishing."""
    existing = Template.objects.filter(slug=imported.slug).first()
    data = VersionData(
        version="0.1.0",
        parameters_schema=imported.parameters,
        ui_schema=imported.ui,
        changelog=f"Imported from Backstage template '{imported.slug}'.",
    )
    if existing is not None:
        _require_curator(actor, existing)
        draft = create_draft_version(actor, existing, request=request)
        _apply_version_data(draft, VersionData(**{**data.__dict__, "version": draft.version}))
    else:
        template = TemplateData(
            slug=imported.slug,
            name=imported.name,
            summary=imported.summary or imported.name,
            description=imported.description,
            tags=list(imported.tags),
            owner_team=owner_team,
        )
        draft = create_template(actor, template=template, version=data, request=request)
    draft.source = "backstage"
    draft.import_report = list(imported.unsupported)
    draft.save()
    record(
        actor,
        draft.template.owner_team,
        "template.imported",
        draft,
        {"unsupported": len(imported.unsupported)},
        request,
    )
    return draft
