"""Template filters of the catalog pages: sanitized Markdown and the template icons."""

from __future__ import annotations

import markdown as markdown_lib
import nh3
from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

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
