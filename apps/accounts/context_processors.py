from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.accounts.models import OVERSIGHT_ROLES
from apps.accounts.selectors import memberships_for, pick_current_membership
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY


def teams(request: HttpRequest) -> dict[str, Any]:
    """Header data for every page, from a single membership query: teams, the current team and role."""
    if not request.user.is_authenticated:
        return {}
    memberships = list(memberships_for(request.user))
    current = pick_current_membership(memberships, request.session.get(CURRENT_TEAM_SESSION_KEY))
    return {
        "my_teams": [membership.team for membership in memberships],
        "current_team": current.team if current else None,
        "current_role": current.role if current else None,
        "is_overseer": any(membership.role in OVERSIGHT_ROLES for membership in memberships),
    }
