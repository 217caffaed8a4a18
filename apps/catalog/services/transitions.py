"""The one way a template version's lifecycle moves (through `apps.core.transitions`): legal moves only,
stamped and audited."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest

from apps.catalog import errors
from apps.catalog.models import Lifecycle, TemplateVersion
from apps.core.transitions import Machine, transition

LIFECYCLE_MOVES: dict[str, frozenset[str]] = {
    Lifecycle.DRAFT: frozenset({Lifecycle.PUBLISHED}),
    Lifecycle.PUBLISHED: frozenset({Lifecycle.DEPRECATED}),
    Lifecycle.DEPRECATED: frozenset({Lifecycle.PUBLISHED, Lifecycle.RETIRED}),
    Lifecycle.RETIRED: frozenset(),
}

VERSION_MACHINE: Machine[TemplateVersion] = Machine(
    model=TemplateVersion,
    field="lifecycle",
    edges=LIFECYCLE_MOVES,
    illegal=lambda version, previous, to: errors.LifecycleError(f"{version} is {previous}; it cannot become {to}."),
    stamps={
        Lifecycle.PUBLISHED: "published_at",
        Lifecycle.DEPRECATED: "deprecated_at",
        Lifecycle.RETIRED: "retired_at",
    },
    related=("template__owner_team",),
    audit_verb=lambda to: f"template.{to}",
    audit_data=lambda change: {"from": change.previous, "to": change.to},
    team=lambda version: version.template.owner_team,
)


def version_transition(
    *, version: TemplateVersion, to: str, actor: User | None, request: HttpRequest | None = None
) -> TemplateVersion:
    """Publish, deprecate or retire a version (audited as `template.<to>`); who may is the caller's check."""
    return transition(VERSION_MACHINE, obj=version, to=to, actor=actor, request=request)
