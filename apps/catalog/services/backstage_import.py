"""Drafts from Backstage software templates."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.audit.services import record
from apps.catalog.backstage import BackstageImport
from apps.catalog.models import Lifecycle, Template, TemplateVersion
from apps.catalog.services.curation import (
    TemplateData,
    apply_version_data,
    create_draft_version,
    create_template,
    require_curator,
    update_draft,
    version_data_of,
)
from apps.catalog.spec import VersionData

# --- Backstage import ---------------------------------------------------------------------------------------


@transaction.atomic
def create_template_from_backstage(
    *, actor: User, imported: BackstageImport, owner_team: Team | None, request: HttpRequest | None = None
) -> TemplateVersion:
    """A draft from a Backstage software template. What could not be carried over (steps, custom fields)
    is kept on the draft as its import report; the admin attaches a Terraform module before publishing.

    Importing a template again (the same metadata.name) updates the template's open draft, keeping its version,
    module, price and policies, instead of adding a parallel draft."""
    existing = Template.objects.filter(slug=imported.slug).first()
    changelog = f"Imported from Backstage template '{imported.slug}'."
    data = VersionData(
        version="0.1.0", parameters_schema=imported.parameters, ui_schema=imported.ui, changelog=changelog
    )
    reimported = False
    if existing is not None:
        require_curator(actor=actor, template=existing)
        open_draft = existing.versions.filter(lifecycle=Lifecycle.DRAFT).order_by("-created_at").first()
        if open_draft is not None:
            kept = version_data_of(version=open_draft)
            kept.parameters_schema, kept.ui_schema, kept.changelog = imported.parameters, imported.ui, changelog
            draft = update_draft(actor=actor, version=open_draft, data=kept, request=request)
            reimported = True
        else:
            draft = create_draft_version(actor=actor, template=existing, request=request)
            apply_version_data(version=draft, data=VersionData(**{**data.__dict__, "version": draft.version}))
    else:
        template = TemplateData(
            slug=imported.slug,
            name=imported.name,
            summary=imported.summary or imported.name,
            description=imported.description,
            tags=list(imported.tags),
            owner_team=owner_team,
        )
        draft = create_template(actor=actor, template=template, version=data, request=request)
    draft.source = "backstage"
    draft.import_report = list(imported.unsupported)
    draft.save()
    record(
        actor=actor,
        team=draft.template.owner_team,
        verb="template.imported",
        target=draft,
        data={"unsupported": len(imported.unsupported), "updated_open_draft": reimported},
        request=request,
    )
    return draft
