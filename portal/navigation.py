"""The main navigation. Sections whose app has not shipped yet are shown disabled rather than linking nowhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from apps.accounts.selectors import is_team_overseer
from apps.deployments.context_processors import rollouts_waiting_count
from apps.runs.context_processors import approvals_waiting_count


def _everyone(request: HttpRequest) -> bool:
    return True


def _overseers(request: HttpRequest) -> bool:
    return is_team_overseer(request.user)


def _staff(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_staff", False))


# The sections whose item carries a count badge, and what it counts (memoized per request): one and several.
BADGES: dict[str, tuple[Callable[[HttpRequest], int], str, str]] = {
    "runs:run-list": (approvals_waiting_count, "approval waiting for you", "approvals waiting for you"),
    "deployments:list": (
        rollouts_waiting_count,
        "rollout waiting for your approval",
        "rollouts waiting for your approval",
    ),
}

# (label, url name, who may open it, why not)
SECTIONS: list[tuple[str, str, Callable[[HttpRequest], bool], str]] = [
    ("Catalog", "catalog:list", _everyone, ""),
    ("Workspaces", "runs:workspace-list", _everyone, ""),
    ("Runs", "runs:run-list", _everyone, ""),
    ("Clusters", "clusters:list", _everyone, ""),
    ("Training", "training:list", _everyone, ""),
    ("Models", "registry:list", _everyone, ""),
    ("Deployments", "deployments:list", _everyone, ""),
    ("Costs", "costs:overview", _everyone, ""),
    ("Dashboards", "dashboards:overview", _everyone, ""),
    ("Audit", "audit:list", _overseers, "Team managers and admins only"),
    ("Admin", "admin:index", _staff, "Platform admins only"),
]


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def navigation(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {"nav_items": []}
    items = []
    for label, url_name, allowed, why_not in SECTIONS:
        url = _url(url_name)
        reason = "Arrives in a coming release" if url is None else why_not
        if url is not None and not allowed(request):
            url = None
        count, what = (0, "")
        if url is not None and url_name in BADGES:
            counter, one, several = BADGES[url_name]
            count = counter(request)
            what = one if count == 1 else several
        items.append(
            {
                "label": label,
                "url": url,
                "reason": reason,
                "active": url is not None and request.path.startswith(url),
                "badge": count,
                "badge_label": f"{count} {what}" if count else "",
            }
        )
    return {"nav_items": items}
