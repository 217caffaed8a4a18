"""`{% cost_tabs %}`: the Costs section's page links, offering only the pages the user may open."""

from __future__ import annotations

from typing import Any

from django import template

from apps.accounts.permissions import can

register = template.Library()


@register.inclusion_tag("costs/partials/tabs.html", takes_context=True)
def cost_tabs(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    return {"request": request, "can_manage_shared_rules": can(request.user, "costs.manage_shared_rules")}
