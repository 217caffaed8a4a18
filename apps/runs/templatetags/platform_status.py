"""Platform status for the admin index: the Terraform the engine runs and the change freeze."""

from __future__ import annotations

from typing import Any

from django import template

from apps.runs.selectors import active_freeze
from apps.runs.terraform import TerraformError, terraform_binary, terraform_version

register = template.Library()


@register.inclusion_tag("admin/partials/platform_status.html", takes_context=True)
def platform_status(context: Any) -> dict[str, Any]:
    try:
        version, binary, problem = terraform_version(), terraform_binary(), ""
    except TerraformError as exc:
        version, binary, problem = "", "", str(exc)
    return {"terraform_version": version, "terraform_binary": binary, "terraform_problem": problem,
            "freeze": active_freeze(), "request": context.get("request")}  # fmt: skip
