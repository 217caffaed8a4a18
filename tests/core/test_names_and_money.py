"""One name rule and one money format, used everywhere a user names a thing or a page prints money."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from apps.core.money import format_money
from apps.core.names import NAME_RULE, name_problem
from apps.costs.money import Money

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.parametrize("name", ["abc", "bert-finetune", "a1-b2", "x" * 40])
def test_good_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["ab", "x" * 41, "Upper", "1starts-with-digit", "-dash", "has space", "semi;colon", "", None]
)
def test_bad_names_say_the_rule(name: object) -> None:
    problem = name_problem(name, what="A cluster name")
    assert problem is not None
    assert problem.startswith(f"A cluster name is {NAME_RULE}")


def test_money_is_amount_then_code_rounded_half_up() -> None:
    assert format_money(Decimal("1234.565"), "USD") == "1,234.57 USD"
    assert format_money(0.43, "EUR") == "0.43 EUR"
    assert format_money("0.00551", "USD", places=4) == "0.0055 USD"
    assert format_money(2263, "USD", places=0) == "2,263 USD"
    assert format_money("not a number") == "—"


def test_the_costs_money_type_prints_through_the_same_formatter() -> None:
    assert str(Money(Decimal("1234.565"), "USD")) == format_money(Decimal("1234.565"), "USD")


def test_no_template_prints_money_its_own_way() -> None:
    """A dollar sign before a value, or a floatformat followed by a currency, is a second money format."""
    own_way = re.compile(r"\$\{\{|\|floatformat:\d \}\} \{\{ [\w.]*currency")
    offenders = [
        str(path.relative_to(TEMPLATES)) for path in TEMPLATES.rglob("*.html") if own_way.search(path.read_text())
    ]
    assert offenders == []
