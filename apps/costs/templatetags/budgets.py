"""`{% team_budget_left team hourly currency %}`: what is left of a team's budget, for pages of other apps (the
run's approval box) that must not import the costs app."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template
from django.utils import timezone

from apps.costs.selectors import team_budget_status

register = template.Library()


@register.inclusion_tag("costs/partials/budget_left.html")
def team_budget_left(team_id: int, hourly: Decimal, currency: str) -> dict[str, Any]:
    status = team_budget_status(team_id=team_id, now=timezone.now())
    return {"status": status, "hourly": hourly, "currency": currency}
