from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def output_value(value: Any) -> str:
    """Terraform outputs as the user would write them: strings as-is, maps and lists as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
