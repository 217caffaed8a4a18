"""The team filter every list page shares: a choice of the user's own teams by slug, labelled "Any of my teams"
when empty (never `---------`), so a page's `?team=` is the same slug its API takes."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.accounts.selectors import teams_for


def my_teams(request: HttpRequest | None) -> QuerySet[Team]:
    return teams_for(request.user).order_by("name") if request is not None else Team.objects.none()


def team_choice(field_name: str = "team") -> Any:
    return django_filters.ModelChoiceFilter(
        field_name=field_name, to_field_name="slug", queryset=my_teams, empty_label="Any of my teams", label="Team"
    )
