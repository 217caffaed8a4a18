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
Money is always Decimal with a currency code; never float. What a price model must be to be published is the
template contract's (`apps.catalog.spec.price.check_price_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.catalog.spec.limits import CATALOG_PRICE_KIND

CENT = Decimal("0.0001")


@dataclass(frozen=True)
class EstimateLine:
    label: str
    hourly: Decimal


@dataclass(frozen=True)
class Estimate:
    currency: str
    hourly: Decimal
    lines: list[EstimateLine] = field(default_factory=list)
    max_hours: Decimal | None = None  # a launch that stops by itself (a training job's max run time)

    @property
    def max_total(self) -> Decimal | None:
        """What the launch costs at most: the hourly rate for its whole bounded life."""
        return None if self.max_hours is None else (self.hourly * self.max_hours).quantize(Decimal("0.01"))

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
