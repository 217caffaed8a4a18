"""Reads of the model registry, always scoped to the caller's teams."""

from __future__ import annotations

from django.db.models import Count, QuerySet

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, restrict
from apps.registry.models import Model, ModelAlias, ModelVersion


def models_for(user: AnyUser) -> QuerySet[Model]:
    return (
        restrict(Model.objects.select_related("team", "created_by"), user, "view")
        .annotate(version_count=Count("versions", distinct=True))
        .order_by("team__slug", "name")
    )


def versions_for(user: AnyUser) -> QuerySet[ModelVersion]:
    return restrict(
        ModelVersion.objects.select_related(
            "model", "team", "registered_by", "production_approved_by", "workspace", "cluster"
        ),
        user,
        "view",
    )


def aliases_of(model: Model) -> QuerySet[ModelAlias]:
    return model.aliases.select_related("version").order_by("name")


def version_by_alias(*, model: Model, alias: str) -> ModelVersion | None:
    found = model.aliases.select_related("version").filter(name=alias).first()
    return found.version if found is not None else None


def model_names(team: Team) -> list[str]:
    """The team's model names, for the pickers that register a new version of one."""
    return list(Model.objects.filter(team=team).order_by("name").values_list("name", flat=True))
