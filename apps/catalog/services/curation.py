"""Curating templates: drafts, validation, lifecycle moves and diffs. Only curators; all audited."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.models import (
    VERSION_CONTENT_FIELDS,
    Lifecycle,
    Tag,
    Template,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.selectors import can_curate, module_dir
from apps.catalog.services.transitions import version_transition
from apps.catalog.spec import VersionData, VersionReport, validate_version_data
from apps.catalog.spec.limits import ICONS, SEMVER, SLUG


def semver_key(version: str) -> tuple[int, int, int]:
    match = SEMVER.match(version)
    if not match:
        raise errors.InvalidTemplate(f"Version {version!r} is not a semantic version such as 1.2.0.")
    return int(match[1]), int(match[2]), int(match[3])


# --- Validation ---------------------------------------------------------------------------------------------


def validate_version(*, version: TemplateVersion) -> VersionReport:
    """Everything that must hold before a version may be published: the template contract
    (`apps.catalog.spec.validate_version_data`) on its content, with its module or, for a GPU cluster template,
    the cluster settings its launch hands to request_cluster."""
    return validate_version_data(
        version_data_of(version=version), kind=version.template.kind, module_dir=module_dir(version)
    )


# --- Curation -----------------------------------------------------------------------------------------------


def require_curator(*, actor: User, template: Template | None) -> None:
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


def apply_template_data(*, template: Template, data: TemplateData) -> None:
    template.name, template.summary, template.description = data.name, data.summary, data.description
    template.kind, template.icon, template.owner_team = data.kind, data.icon, data.owner_team
    template.visible_to_all = data.visible_to is None
    template.save()
    _set_tags(template, data.tags)
    template.visible_to.set(data.visible_to or [])


def version_data_of(*, version: TemplateVersion) -> VersionData:
    """A version's current content as VersionData, so a partial edit (API PATCH, re-import) changes only what
    it names."""
    return VersionData(**{name: getattr(version, name) for name in VERSION_CONTENT_FIELDS})


def apply_version_data(*, version: TemplateVersion, data: VersionData) -> None:
    semver_key(data.version)
    for name in VERSION_CONTENT_FIELDS:
        setattr(version, name, getattr(data, name))


@transaction.atomic
def create_template(
    *, actor: User, template: TemplateData, version: VersionData, request: HttpRequest | None = None, **extra: Any
) -> TemplateVersion:
    """Create a template together with its first draft version."""
    _check_template_data(template)
    if template.owner_team is not None:
        if not can(actor, "team.administer", template.owner_team):
            raise errors.CurationDenied("You can only create templates owned by a team you administer.")
    else:
        require_curator(actor=actor, template=None)
    if Template.objects.filter(slug=template.slug).exists():
        raise errors.InvalidTemplate(f"A template with slug '{template.slug}' already exists; add a version to it.")
    created = Template(slug=template.slug)
    apply_template_data(template=created, data=template)
    draft = TemplateVersion(template=created, created_by=actor, **extra)
    apply_version_data(version=draft, data=version)
    draft.save()
    record(
        actor=actor,
        team=created.owner_team,
        verb="template.created",
        target=draft,
        data={"version": draft.version},
        request=request,
    )
    return draft


@transaction.atomic
def update_template(
    *, actor: User, template: Template, data: TemplateData, request: HttpRequest | None = None
) -> Template:
    require_curator(actor=actor, template=template)
    data.slug = template.slug
    _check_template_data(data)
    apply_template_data(template=template, data=data)
    record(
        actor=actor,
        team=template.owner_team,
        verb="template.updated",
        target=template,
        data={"name": data.name},
        request=request,
    )
    return template


@transaction.atomic
def create_draft_version(
    *, actor: User, template: Template, version: str | None = None, request: HttpRequest | None = None
) -> TemplateVersion:
    """A new draft that starts as a copy of the newest version, with the patch number bumped."""
    require_curator(actor=actor, template=template)
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
    record(
        actor=actor,
        team=template.owner_team,
        verb="template.version_created",
        target=draft,
        data={"version": draft.version},
        request=request,
    )
    return draft


@transaction.atomic
def update_draft(
    *, actor: User, version: TemplateVersion, data: VersionData, request: HttpRequest | None = None
) -> TemplateVersion:
    require_curator(actor=actor, template=version.template)
    version = TemplateVersion.objects.select_for_update().get(pk=version.pk)
    if version.lifecycle != Lifecycle.DRAFT:
        raise errors.LifecycleError(
            f"{version} is {version.lifecycle}: only drafts can be edited. Create a new version."
        )
    before = version.content()
    if data.version != version.version and version.template.versions.filter(version=data.version).exists():
        raise errors.InvalidTemplate(f"Version {data.version} of {version.template.slug} already exists.")
    apply_version_data(version=version, data=data)
    version.save()
    changed = sorted(name for name, value in version.content().items() if before[name] != value)
    record(
        actor=actor,
        team=version.template.owner_team,
        verb="template.draft_updated",
        target=version,
        data={"changed": changed},
        request=request,
    )
    return version


def _move(actor: User | None, version: TemplateVersion, to: str, request: HttpRequest | None) -> TemplateVersion:
    """Move `version` to `to`; `actor` None only for the platform itself (`publish_shipped_version`)."""
    if actor is not None:
        require_curator(actor=actor, template=version.template)
    return version_transition(version=version, to=to, actor=actor, request=request)


def _validate_and_publish(actor: User | None, version: TemplateVersion, request: HttpRequest | None) -> TemplateVersion:
    if version.lifecycle == Lifecycle.DRAFT:
        report = validate_version(version=version)
        if not report.ok:
            raise errors.VersionValidationFailed(
                f"{version} cannot be published: " + " ".join(report.errors), extra={"errors": report.errors}
            )
    return _move(actor, version, Lifecycle.PUBLISHED, request)


@transaction.atomic
def publish_version(*, actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Publish a valid draft (or re-publish a deprecated version). Existing workspaces keep their version."""
    require_curator(actor=actor, template=version.template)
    return _validate_and_publish(actor, version, request)


@transaction.atomic
def publish_shipped_version(*, version: TemplateVersion) -> TemplateVersion:
    """`sync_templates`'s publish of a shipped golden path's draft: the same validation and move as an admin's
    publish, by the platform (audited with no actor)."""
    return _validate_and_publish(None, version, None)


@transaction.atomic
def deprecate_version(*, actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    """Hide a version from new launches; workspaces created from it keep working and keep showing it."""
    return _move(actor, version, Lifecycle.DEPRECATED, request)


@transaction.atomic
def retire_version(*, actor: User, version: TemplateVersion, request: HttpRequest | None = None) -> TemplateVersion:
    return _move(actor, version, Lifecycle.RETIRED, request)


def diff_versions(*, old: TemplateVersion | None, new: TemplateVersion) -> list[str]:
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
