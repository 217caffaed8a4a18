"""Cost estimates before apply, from a template version's price model.

Price model (JSON, all prices decimal strings per hour):
    {"currency": "USD", "base_hourly": "0.00",
     "components": [{"label": "GPU nodes", "parameter": "instance_type",
                     "hourly_by_value": {"g5.xlarge": "1.006"}, "multiply_by": ["node_count"]},
                    {"label": "Storage", "parameter": "volume_size_gb", "hourly_per_unit": "0.00011"},
                    {"label": "Public IP", "parameter": "public", "hourly_if_true": "0.005"}]}

`hourly_from_instance_catalog` prices an instance type parameter from the GPU instance catalog instead of a table
written into the template: `{"label": "GPU nodes", "parameter": "instance_type", "multiply_by": ["node_count"],
"hourly_from_instance_catalog": {"region": "region", "purchase_option": "purchase_option"}}` names the parameters
that hold the region and the purchase option. GPU cluster templates use it, so the estimate before launch is the
price `clusters.services.request_cluster` records for the cluster, and follows the catalog when prices change.
Money is always Decimal with a currency code; never float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.0001")
PRICE_KINDS = ("hourly_by_value", "hourly_per_unit", "hourly_if_true", "hourly_from_instance_catalog")
CATALOG_PRICE_KIND = "hourly_from_instance_catalog"
CATALOG_PRICE_KEYS = ("region", "purchase_option")
CATALOG_CURRENCY = "USD"


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


def _catalog_hourly(instance_type: Any, names: Any, params: dict[str, Any]) -> tuple[Decimal, str]:
    """One instance's catalog price, or zero and why for a combination the catalog does not offer."""
    from apps.clusters.instance_catalog import price_for  # lazy: only cluster templates need the catalog
    from apps.core.errors import ApplicationError

    names = names if isinstance(names, dict) else {}
    region = params.get(names.get("region", ""), "")
    purchase_option = params.get(names.get("purchase_option", ""), "on_demand")
    try:
        return price_for(str(instance_type), str(region), str(purchase_option)), ""
    except ApplicationError as exc:
        return Decimal("0"), exc.message


def _component_hourly(component: dict[str, Any], params: dict[str, Any]) -> tuple[Decimal, str]:
    value = params.get(component.get("parameter", ""))
    problem = ""
    if CATALOG_PRICE_KIND in component:
        hourly, problem = _catalog_hourly(value, component[CATALOG_PRICE_KIND], params)
    elif "hourly_by_value" in component:
        hourly = _decimal(component["hourly_by_value"].get(str(value), "0"))
    elif "hourly_per_unit" in component:
        hourly = _decimal(component["hourly_per_unit"]) * _number(value)
    elif "hourly_if_true" in component:
        hourly = _decimal(component["hourly_if_true"]) if value is True else Decimal("0")
    else:
        hourly = Decimal("0")
    for name in component.get("multiply_by", []):
        hourly *= _number(params.get(name, 0))
    return hourly, problem


def estimate_hourly(price_model: dict[str, Any], params: dict[str, Any]) -> Estimate:
    """Hourly estimate for `params` (already validated and with defaults applied)."""
    lines = []
    base = _decimal(price_model.get("base_hourly", "0"))
    if base:
        lines.append(EstimateLine("Base", base.quantize(CENT)))
    for component in price_model.get("components", []):
        hourly, problem = _component_hourly(component, params)
        label = str(component.get("label", component.get("parameter", "")))
        lines.append(EstimateLine(f"{label} (not priced: {problem})" if problem else label, hourly.quantize(CENT)))
    total = sum((line.hourly for line in lines), Decimal("0")).quantize(CENT)
    return Estimate(currency=str(price_model.get("currency", "USD")), hourly=total, lines=lines)


def _catalog_component_problems(where: str, names: Any, properties: dict[str, Any], currency: Any) -> list[str]:
    if not isinstance(names, dict) or set(names) != set(CATALOG_PRICE_KEYS):
        return [f"{where}: {CATALOG_PRICE_KIND} must name the region and purchase_option parameters."]
    problems = [
        f"{where} reads the {key} from {name!r}, which the parameters schema does not declare."
        for key, name in names.items()
        if name not in properties
    ]
    if currency != CATALOG_CURRENCY:
        problems.append(f"{where} is priced from the GPU instance catalog, which is in USD: set the currency to USD.")
    return problems


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
        elif kinds[0] == CATALOG_PRICE_KIND:
            problems += _catalog_component_problems(where, component[CATALOG_PRICE_KIND], properties, currency)
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
