"""Formatting of KPI values and a server-side SVG sparkline (no script needed for the overview)."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.core.money import format_money

register = template.Library()

UNITS = {"percent": "{:.1f}%", "minutes": "{:.1f} min", "hours": "{:.1f} h", "count": "{:,.0f}", "score": "{:.2f} / 5"}
MONEY_UNITS = {"usd": "USD"}  # printed by apps.core.money, like money on every other page


def _format(value: float, unit: str) -> str:
    if unit in MONEY_UNITS:
        return format_money(value, MONEY_UNITS[unit])
    return UNITS.get(unit, "{:.2f}").format(value)


@register.filter
def kpi_value(value: float | None, unit: str) -> str:
    return "—" if value is None else _format(value, unit)


@register.filter
def kpi_trend(delta: float | None, unit: str) -> str:
    if delta is None:
        return ""
    sign = "+" if delta >= 0 else "-"
    return sign + _format(abs(delta), unit)


@register.simple_tag
def sparkline(series: list[float | None], width: int = 120, height: int = 24) -> SafeString:
    points = [(i, v) for i, v in enumerate(series) if v is not None]
    if len(points) < 2:
        return SafeString("")
    values = [v for _, v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / max(1, len(series) - 1)
    path = " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in points)
    return format_html(
        '<svg class="sparkline" width="{}" height="{}" viewBox="0 0 {} {}" aria-hidden="true">'
        '<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/></svg>',
        width, height, width, height, path,
    )  # fmt: skip


@register.simple_tag
def query_with(request: HttpRequest, **changes: Any) -> str:
    """The request's query string with `changes` applied (None removes a key)."""
    query = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return query.urlencode()


@register.filter
def split_label(split: str) -> str:
    """ "instance_type" -> "instance type"."""
    return split.replace("_", " ")
