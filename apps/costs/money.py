"""Money, done once: a Decimal amount with an ISO 4217 currency code; never a float, never a bare number.

Costs are stored with ten decimal places (CUR prices fractions of a cent per line) and shown rounded to cents.
Adding amounts of different currencies is an error, not a conversion: Paved reports each currency on its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import models

from apps.core.errors import ValidationFailed
from apps.core.money import format_money

# The currencies CUR bills in (AWS invoices in USD and, for some accounts, these); others are refused on import.
CURRENCIES = frozenset(
    {
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "AUD",
        "CAD",
        "CHF",
        "CNY",
        "DKK",
        "HKD",
        "INR",
        "KRW",
        "NOK",
        "NZD",
        "SEK",
        "SGD",
        "ZAR",
        "BRL",
    }
)
DEFAULT_CURRENCY = "USD"
CENTS = Decimal("0.01")
STORED_PLACES = 10
STORED_DIGITS = 28


class UnknownCurrency(ValidationFailed):
    code = "unknown_currency"
    field = "currency"


class CurrencyMismatch(ValidationFailed):
    code = "currency_mismatch"


def amount_field(**kwargs: Any) -> models.DecimalField[Decimal, Decimal]:
    """The one column type for an amount of money (a currency code lives in a column beside it)."""
    return models.DecimalField(max_digits=STORED_DIGITS, decimal_places=STORED_PLACES, default=Decimal(0), **kwargs)


def currency_field(**kwargs: Any) -> models.CharField[str, str]:
    return models.CharField(max_length=3, default=DEFAULT_CURRENCY, **kwargs)


def parse_amount(value: Any) -> Decimal:
    """A Decimal from CUR text or a JSON number; raises ValueError with the offending text."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not an amount")
    try:
        amount = Decimal(str(value).strip() or "0")
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not an amount") from exc
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount")
    return amount


def check_currency(code: str) -> str:
    code = (code or "").strip().upper()
    if code not in CURRENCIES:
        raise UnknownCurrency(f"Unknown currency code {code!r}.")
    return code


@dataclass(frozen=True, order=True)
class Money:
    amount: Decimal
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(Decimal(0), currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * Decimal(factor), self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot combine {self.currency} with {other.currency}.")

    def rounded(self) -> Decimal:
        return self.amount.quantize(CENTS, rounding=ROUND_HALF_UP)

    def __str__(self) -> str:
        """`1,234.57 USD`: one way to print money on every page, the CLI and CSV exports."""
        return format_money(self.amount, self.currency)


def total(amounts: Iterable[Money], currency: str = DEFAULT_CURRENCY) -> Money:
    result = Money.zero(currency)
    for amount in amounts:
        result = result + amount
    return result
