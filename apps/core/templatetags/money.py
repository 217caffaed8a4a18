"""`{% money amount currency %}` (and `places=4` for fine rates): `apps.core.money.format_money` in templates."""

from __future__ import annotations

from django import template

from apps.core.money import DEFAULT_CURRENCY, format_money

register = template.Library()


@register.simple_tag
def money(amount: object, currency: str | None = DEFAULT_CURRENCY, places: int = 2) -> str:
    return format_money(amount, currency, places=places)
