"""The one way Paved prints money: `1,234.57 USD` (the amount rounded half-up, thousands separated, the ISO
code after it), on every page, in the CLI and in exports. Pages use the `money` template tag
(`{% load money %}{% money amount currency %}`); `apps.costs.money.Money` prints itself through it too."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

DEFAULT_CURRENCY = "USD"


def format_money(amount: object, currency: str | None = DEFAULT_CURRENCY, *, places: int = 2) -> str:
    """`amount` (a Decimal, int, str or float) as `1,234.57 USD`; `places` for rates finer than cents (a price
    line of 0.0055 an hour). An amount that is not a number prints as an em dash rather than raising on a page."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return "—"
    if not value.is_finite():
        return "—"
    rounded = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{rounded:,} {currency or DEFAULT_CURRENCY}"
