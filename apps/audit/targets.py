"""What an audit row's target is, for people: a human type ("Workspace", not `runs.workspace`) and a link to its
page while it still exists. One resolver for every page that lists audit events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model
from django.urls import reverse
from django.utils.text import capfirst

from apps.audit.models import AuditEvent

# target_type -> the page of such an object. Types missing here (tokens, freezes, rules) have no page of their own.
TARGET_PAGES: dict[str, Callable[[Any], str]] = {
    "runs.workspace": lambda obj: reverse("runs:workspace-detail", args=[obj.pk]),
    "runs.run": lambda obj: reverse("runs:run-detail", args=[obj.pk]),
    "runs.approval": lambda obj: reverse("runs:run-detail", args=[obj.run_id]),
    "clusters.cluster": lambda obj: reverse("clusters:detail", args=[obj.pk]),
    "training.trainingjob": lambda obj: reverse("training:detail", args=[obj.pk]),
    "training.jobdefinition": lambda obj: reverse("training:definition", args=[obj.pk]),
    "deployments.deployment": lambda obj: reverse("deployments:detail", args=[obj.pk]),
    "deployments.endpoint": lambda obj: reverse("deployments:endpoint", args=[obj.pk]),
    "deployments.experiment": lambda obj: reverse("deployments:experiment", args=[obj.pk]),
    "registry.model": lambda obj: reverse("registry:detail", args=[obj.pk]),
    "registry.modelversion": lambda obj: reverse("registry:detail", args=[obj.model_id]),
    "catalog.template": lambda obj: reverse("catalog:detail", args=[obj.slug]),
    "catalog.templateversion": lambda obj: reverse("catalog:version-detail", args=[obj.template.slug, obj.version]),
    "costs.budget": lambda obj: reverse("costs:budget-edit", args=[obj.pk]),
}


@dataclass(frozen=True)
class Target:
    kind: str
    url: str | None


def target_kind(target_type: str) -> str:
    """The model's verbose name ("Workspace", "Training job"); the raw label's last part for a removed model."""
    if not target_type:
        return ""
    try:
        model = apps.get_model(target_type)
    except (LookupError, ValueError):
        return capfirst(target_type.rpartition(".")[2])
    return str(capfirst(model._meta.verbose_name))


def _existing(target_type: str, ids: set[str]) -> dict[str, Model]:
    model = apps.get_model(target_type)
    try:
        model._meta.get_field("template")
        objects = model._default_manager.select_related("template")
    except FieldDoesNotExist:
        objects = model._default_manager.all()
    keys = [int(pk) for pk in ids if pk.isdigit()]
    return {str(pk): obj for pk, obj in objects.in_bulk(keys).items()}


def resolve_targets(events: Iterable[AuditEvent]) -> dict[int, Target]:
    """event id -> its target's kind and page (None when it has no page or no longer exists): one query per
    linked target type on the page, not one per row."""
    events = list(events)
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.target_type in TARGET_PAGES and event.target_id:
            wanted[event.target_type].add(event.target_id)
    found = {target_type: _existing(target_type, ids) for target_type, ids in wanted.items()}
    resolved = {}
    for event in events:
        obj = found.get(event.target_type, {}).get(event.target_id)
        url = TARGET_PAGES[event.target_type](obj) if obj is not None else None
        resolved[event.pk] = Target(kind=target_kind(event.target_type), url=url)
    return resolved


def with_targets(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """The events, each with `.target` (a Target) set for templates."""
    events = list(events)
    targets = resolve_targets(events)
    for event in events:
        event.target = targets[event.pk]  # type: ignore[attr-defined]
    return events
