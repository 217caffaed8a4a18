"""Reads of the catalog, already scoped to what the caller may see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, can, restrict
from apps.catalog.models import Lifecycle, Tag, Template, TemplateVersion
from apps.catalog.schema import apply_defaults, conditional_properties
from apps.runs.models import GONE_STATUSES, WorkspaceStatus

SORTS = {"popular": ("-launch_count", "name"), "name": ("name",), "newest": ("-created_at",)}


def is_catalog_admin(user: AnyUser) -> bool:
    """Platform admins and team admins curate templates."""
    return can(user, "catalog.curate_any")


def can_curate(user: AnyUser, template: Template | None) -> bool:
    """Platform admins curate everything; a team admin curates the templates their team owns."""
    return can(user, "template.curate", template)


def _visible_template_ids(user: AnyUser) -> QuerySet[Template, Any]:
    """A subquery: ids of the templates shared with all teams or with one of the user's teams."""
    return restrict(Template.objects.all(), user, field="visible_to", also=Q(visible_to_all=True)).values("pk")


def visible_templates(user: AnyUser) -> QuerySet[Template]:
    """Templates shared with all teams or with one of the user's teams. Their `launch_count` is a column the
    database keeps current (runs migration 0009), so listing them never reads the workspace table."""
    return Template.objects.filter(pk__in=_visible_template_ids(user))


def catalog_templates(
    user: AnyUser,
    *,
    query: str = "",
    kind: str = "",
    tag: str = "",
    sort: str = "popular",
    include_drafts: bool = False,
) -> QuerySet[Template]:
    """What the catalog page lists: launchable templates (curators may include drafts), searched and sorted."""
    templates = visible_templates(user).prefetch_related("tags")
    if not include_drafts:
        published = TemplateVersion.objects.filter(template=OuterRef("pk"), lifecycle=Lifecycle.PUBLISHED)
        templates = templates.filter(Exists(published))
    # The newest published version's provider verdict: False when this installation cannot install its providers.
    newest = TemplateVersion.objects.filter(template=OuterRef("pk"), lifecycle=Lifecycle.PUBLISHED).order_by(
        "-published_at", "-created_at"
    )
    templates = templates.annotate(
        providers_installable=Subquery(newest.values("providers_check__installable")[:1]),
        providers_reason=Subquery(newest.values("providers_check__reason")[:1]),
        # What `latest_published(template).version` would say, in the list's one query instead of one per row.
        latest_published_version=Subquery(newest.values("version")[:1]),
    )
    if query:
        templates = templates.filter(
            Q(name__icontains=query)
            | Q(summary__icontains=query)
            | Q(description__icontains=query)
            | Q(slug__icontains=query)
            | Q(tags__name__iexact=query)
        ).distinct()
    if kind:
        templates = templates.filter(kind=kind)
    if tag:
        templates = templates.filter(tags__name=tag)
    return templates.order_by(*SORTS.get(sort, SORTS["popular"]))


def template_for(user: AnyUser, slug: str) -> Template | None:
    return visible_templates(user).filter(slug=slug).select_related("owner_team").first()


def versions_for(user: AnyUser, template: Template) -> QuerySet[TemplateVersion]:
    """Curators see every version; everyone else sees published and deprecated ones."""
    versions = template.versions.select_related("template", "created_by").order_by("-created_at")
    if can_curate(user, template):
        return versions
    return versions.filter(lifecycle__in=[Lifecycle.PUBLISHED, Lifecycle.DEPRECATED])


def module_dir(version: TemplateVersion) -> Path | None:
    """Absolute folder of a version's Terraform module (shipped paths are relative to the repository)."""
    if not version.module_path:
        return None
    path = Path(version.module_path)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def shipped_module_folders() -> list[str]:
    """Folders under infra/templates/ that hold a Terraform module, relative to the repository (a gpu_cluster
    golden path's folder holds none). The browser's module picker and the API's module endpoint offer these."""
    root = Path(settings.BASE_DIR) / "infra" / "templates"
    folders = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
    return [str(path.relative_to(settings.BASE_DIR)) for path in folders if any(path.glob("*.tf"))]


def latest_published(template: Template) -> TemplateVersion | None:
    return template.versions.filter(lifecycle=Lifecycle.PUBLISHED).order_by("-published_at", "-created_at").first()


def version_for(user: AnyUser, template: Template, version: str) -> TemplateVersion | None:
    return versions_for(user, template).filter(version=version).first()


def previous_version(version: TemplateVersion) -> TemplateVersion | None:
    """The version created just before this one, for diffs."""
    return version.template.versions.filter(created_at__lt=version.created_at).order_by("-created_at").first()


def launch_teams(user: AnyUser, template: Template) -> QuerySet[Team]:
    """The user's teams that may launch this template."""
    teams = restrict(Team.objects.all(), user, field="pk")
    if template.visible_to_all:
        return teams
    return teams.filter(pk__in=template.visible_to.values("pk"))


def schema_defaults(version: TemplateVersion) -> dict[str, Any]:
    """The parameters a launch gets when the user changes nothing (for the default estimate)."""
    return apply_defaults(version.parameters_schema, {})


def parameter_rows(version: TemplateVersion) -> list[dict[str, Any]]:
    """The parameters table of a template page: name, title, type, required, default, allowed values."""
    schema = version.parameters_schema
    required = set(schema.get("required", []))
    conditional = conditional_properties(schema)
    specs = {**schema.get("properties", {}), **{name: prop.schema for name, prop in conditional.items()}}
    rows = []
    for name, spec in specs.items():
        allowed = spec.get("enum") or spec.get("items", {}).get("enum")
        bounds = [f"{label} {spec[key]}" for key, label in (("minimum", "≥"), ("maximum", "≤")) if key in spec]
        rows.append(
            {
                "name": name,
                "title": spec.get("title", name.replace("_", " ").capitalize()),
                "type": spec.get("type", ""),
                "required": name in required or (name in conditional and conditional[name].required),
                "default": spec.get("default"),
                "description": " ".join(
                    part
                    for part in (conditional[name].describe() if name in conditional else "", spec.get("description"))
                    if part
                ),
                "allowed": ", ".join(str(value) for value in allowed) if allowed else " ".join(bounds),
            }
        )
    return rows


def all_tags(user: AnyUser) -> list[str]:
    """The tags of the templates the user can see, by name: one query over the tag and template tables."""
    tags = Tag.objects.filter(templates__in=_visible_template_ids(user)).order_by("name")
    return list(tags.values_list("name", flat=True).distinct())


def workspaces_on_version(version: TemplateVersion) -> list[tuple[str, int]]:
    """(team slug, count) of the live workspaces created from `version`, every team's: what a curator's
    deprecate or retire touches (they keep working on it), for the confirmation step."""
    live = version.workspaces.exclude(status__in=[WorkspaceStatus.DESTROYED, *GONE_STATUSES])
    rows = live.values_list("team__slug").annotate(count=Count("pk")).order_by("team__slug")
    return [(slug, count) for slug, count in rows]
