from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.accounts.selectors import default_team_for, is_team_overseer, role_in, teams_for
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY


def current_team(request: HttpRequest) -> Any:
    """The team the browser session works in (picked in the switcher, else the user's first team)."""
    if not request.user.is_authenticated:
        return None
    return default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))


def teams(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    team = current_team(request)
    return {
        "my_teams": list(teams_for(request.user)),
        "current_team": team,
        "current_role": role_in(request.user, team) if team else None,
        "is_overseer": is_team_overseer(request.user),
    }
