"""Drafts from Backstage software templates."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.audit.services import record
from apps.catalog.backstage import BackstageImport
from apps.catalog.models import (
    Template,
    TemplateVersion,
)
from apps.catalog.services.curation import (
    TemplateData,
    VersionData,
    apply_version_data,
    create_draft_version,
    create_template,
    require_curator,
)

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
        require_curator(actor, existing)
        draft = create_draft_version(actor, existing, request=request)
        apply_version_data(draft, VersionData(**{**data.__dict__, "version": draft.version}))
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
