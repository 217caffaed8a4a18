"""Cost estimates before apply, from a template version's price model.

Price model (JSON, all prices decimal strings per hour):
    {"currency": "USD", "base_hourly": "0.00",
     "components": [{"label": "GPU nodes", "parameter": "instance_type",
                     "hourly_by_value": {"g5.xlarge": "1.006"}, "multiply_by": ["node_count"]},
                    {"label": "Storage", "parameter": "volume_size_gb", "hourly_per_unit": "0.00011"},
                    {"label": "Public IP", "parameter": "public", "hourly_if_true": "0.005"}]}
Money is always Decimal with a currency code; never float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.0001")
PRICE_KINDS = ("hourly_by_value", "hourly_per_unit", "hourly_if_true")


@dataclass(frozen=True)
class EstimateLine:
    label: str
    hourly: Decimal


@dataclass(frozen=True)
class Estimate:
    currency: str
    hourly: Decimal
    lines: list[EstimateLine] = field(default_factory=list)

    @property
    def monthly(self) -> Decimal:
        """730 hours: the average month, as cloud price lists use."""
        return (self.hourly * 730).quantize(Decimal("0.01"))


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return Decimal("0")
    return _decimal(value)


def _component_hourly(component: dict[str, Any], params: dict[str, Any]) -> Decimal:
    value = params.get(component.get("parameter", ""))
    if "hourly_by_value" in component:
        hourly = _decimal(component["hourly_by_value"].get(str(value), "0"))
    elif "hourly_per_unit" in component:
        hourly = _decimal(component["hourly_per_unit"]) * _number(value)
    elif "hourly_if_true" in component:
        hourly = _decimal(component["hourly_if_true"]) if value is True else Decimal("0")
    else:
        hourly = Decimal("0")
    for name in component.get("multiply_by", []):
        hourly *= _number(params.get(name, 0))
    return hourly


def estimate_hourly(price_model: dict[str, Any], params: dict[str, Any]) -> Estimate:
    """Hourly estimate for `params` (already validated and with defaults applied)."""
    lines = []
    base = _decimal(price_model.get("base_hourly", "0"))
    if base:
        lines.append(EstimateLine("Base", base.quantize(CENT)))
    for component in price_model.get("components", []):
        lines.append(
            EstimateLine(
                str(component.get("label", component.get("parameter", ""))),
                _component_hourly(component, params).quantize(CENT),
            )
        )
    total = sum((line.hourly for line in lines), Decimal("0")).quantize(CENT)
    return Estimate(currency=str(price_model.get("currency", "USD")), hourly=total, lines=lines)


def check_price_model(price_model: Any, parameters_schema: dict[str, Any]) -> list[str]:
    """Problems with a price model, as sentences an admin can act on."""
    if not isinstance(price_model, dict):
        return ["The price model must be an object with currency, base_hourly and components."]
    problems = []
    currency = price_model.get("currency", "USD")
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
        problems.append(f"Currency {currency!r} is not a three-letter ISO code such as USD.")
    properties = parameters_schema.get("properties", {}) if isinstance(parameters_schema, dict) else {}
    prices: list[tuple[str, Any]] = [("base_hourly", price_model.get("base_hourly", "0"))]
    for index, component in enumerate(price_model.get("components", [])):
        where = f"Component {index + 1}"
        if not isinstance(component, dict):
            problems.append(f"{where} must be an object.")
            continue
        parameter = component.get("parameter")
        if parameter not in properties:
            problems.append(f"{where} prices parameter {parameter!r}, which the parameters schema does not declare.")
        kinds = [kind for kind in PRICE_KINDS if kind in component]
        if len(kinds) != 1:
            problems.append(f"{where} needs exactly one of {', '.join(PRICE_KINDS)}.")
        elif kinds[0] == "hourly_by_value":
            table = component["hourly_by_value"]
            if not isinstance(table, dict):
                problems.append(f"{where}: hourly_by_value must map parameter values to prices.")
            else:
                prices.extend((f"{where} price for {key!r}", price) for key, price in table.items())
        else:
            prices.append((f"{where} {kinds[0]}", component[kinds[0]]))
        for name in component.get("multiply_by", []):
            if name not in properties:
                problems.append(f"{where} multiplies by {name!r}, which the parameters schema does not declare.")
    for where, price in prices:
        try:
            amount = Decimal(str(price))
        except InvalidOperation:
            problems.append(f"{where} is {price!r}, not a decimal number.")
            continue
        if amount < 0 or not amount.is_finite():
            problems.append(f"{where} must be a finite, non-negative price.")
    return problems
