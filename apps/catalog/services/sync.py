"""Syncing the golden paths shipped in infra/templates/ into the catalog (idempotent)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from apps.accounts.models import Team
from apps.audit.services import record
from apps.catalog import errors
from apps.catalog.manifests import TemplateManifest
from apps.catalog.models import (
    Lifecycle,
    Template,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.services.curation import (
    TemplateData,
    apply_template_data,
    apply_version_data,
    publish_shipped_version,
)
from apps.catalog.services.providers import check_providers

# --- Shipped golden paths ----------------------------------------------------------------------------------


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    updated_metadata: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # "slug@version: why its providers cannot be installed"
    invalid: list[str] = field(default_factory=list)  # "slug@version: why publishing refused it" (nothing stored)
    warnings: list[str] = field(default_factory=list)  # "slug@version: what the template contract warns about"


def _module_path(manifest: TemplateManifest) -> str:
    """The module folder as stored (relative to the repository when inside it); empty for module-less kinds."""
    if manifest.module_dir is None:
        return ""
    module_path = manifest.module_dir
    with contextlib.suppress(ValueError):
        module_path = module_path.relative_to(settings.BASE_DIR)
    return str(module_path)


@transaction.atomic
def sync_manifest(*, manifest: TemplateManifest, report: SyncReport) -> None:
    """Make the catalog match one shipped template.yaml: metadata follows the file; a version is published the
    first time it is seen, and never rewritten afterwards (bump the version to change it).

    A new version is stored as a draft and published through the admin's validate-and-publish path
    (`publish_shipped_version`): the same template contract, module checks included. A version that fails it
    raises VersionValidationFailed, which undoes everything this call stored."""
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
        apply_template_data(template=template, data=data)
    elif (template.name, template.summary, template.description, template.kind, template.icon) != (
        data.name, data.summary, data.description, data.kind, data.icon
    ) or sorted(template.tags.values_list("name", flat=True)) != sorted(data.tags):  # fmt: skip
        apply_template_data(template=template, data=data)
        report.updated_metadata.append(manifest.slug)
    wanted = manifest.version_data(_module_path(manifest))
    existing = template.versions.filter(version=manifest.version).first()
    label = f"{manifest.slug}@{manifest.version}"
    if existing is None:
        version = TemplateVersion(template=template, source="infra", lifecycle=Lifecycle.DRAFT)
        apply_version_data(version=version, data=wanted)
        version.save()
        publish_shipped_version(version=version)
        record(actor=None, team=owner, verb="template.synced", target=version, data={"path": str(manifest.path)})
        report.created.append(label)
        report.warnings += [f"{label}: {warning}" for warning in manifest.warnings]
        return
    probe = TemplateVersion()
    apply_version_data(version=probe, data=wanted)
    if json.dumps(probe.content(), sort_keys=True, default=str) == json.dumps(
        existing.content(), sort_keys=True, default=str
    ):
        report.unchanged.append(label)
    else:
        report.conflicts.append(
            f"{label} differs from the catalog's copy; bump `version` in {manifest.path} to ship it."
        )


def sync_templates(*, manifests: list[TemplateManifest]) -> SyncReport:
    """Sync every manifest, then check that each shipped version's Terraform providers can be installed here
    (one `terraform init` per provider set, cached), so a version that cannot is shown unavailable."""
    report = SyncReport()
    for manifest in manifests:
        try:
            sync_manifest(manifest=manifest, report=report)
        except errors.VersionValidationFailed as exc:
            label = f"{manifest.slug}@{manifest.version}"
            report.invalid.append(f"{label} ({manifest.path}): " + " ".join(exc.extra.get("errors", [exc.message])))
    shipped = TemplateVersion.objects.select_related("template", "providers_check").filter(
        template__slug__in=[m.slug for m in manifests], source="infra", template__kind=TemplateKind.TERRAFORM
    )
    for version in shipped:
        if check_providers(version=version).providers_problem:
            report.unavailable.append(f"{version}: {version.providers_problem}")
    return report
