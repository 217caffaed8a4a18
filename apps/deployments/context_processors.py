"""What base.html shows about deployments on every page: the navigation's badge (`portal.navigation`) of the
rollouts waiting for the user's approval; the home page lists them and repeats the same count."""

from __future__ import annotations

from django.http import HttpRequest

from apps.accounts.permissions import can
from apps.core.memo import once_per_request
from apps.deployments.selectors import rollouts_awaiting_approval_for


def rollouts_waiting_count(request: HttpRequest) -> int:
    user = request.user
    return once_per_request(
        request,
        "rollouts_waiting",
        lambda: rollouts_awaiting_approval_for(user).count() if can(user, "audit.oversee") else 0,
    )
