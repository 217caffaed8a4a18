"""Template filters of the catalog pages: sanitized Markdown, the template icons and titled parameters."""

from __future__ import annotations

from typing import Any

import markdown as markdown_lib
import nh3
from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.catalog.schema import titled_parameters

register = template.Library()

ICON_GLYPHS = {"gpu": "▦", "notebook": "✎", "endpoint": "⇄", "bucket": "◫", "flask": "⚗", "pipeline": "⇶"}


@register.filter
def markdown(text: str) -> SafeString:
    """Render an admin-written description. Sanitized with nh3 because descriptions also arrive by import."""
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables", "sane_lists"])
    return mark_safe(nh3.clean(html))  # noqa: S308 - nh3 has just sanitized it


@register.filter
def template_icon(name: str) -> SafeString:
    return format_html(
        '<span class="tpl-icon tpl-icon-{}" aria-hidden="true">{}</span>', name, ICON_GLYPHS.get(name, "◆")
    )


@register.filter
def parameter_rows(launched: Any) -> list[tuple[str, str, Any]]:
    """`(key, title, value)` of a workspace's or a run's parameters, titled by its template version's schema."""
    version = getattr(launched, "template_version", None)
    return titled_parameters(getattr(version, "parameters_schema", {}), getattr(launched, "parameters", {}))
