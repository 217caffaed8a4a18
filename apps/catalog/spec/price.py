"""The one checker of a template version's price model (see apps.costs.estimates for what it computes).

    {"currency": "USD", "base_hourly": "0.00",
     "components": [{"label": "GPU nodes", "parameter": "instance_type",
                     "hourly_by_value": {"g5.xlarge": "1.006"}, "multiply_by": ["node_count"]}]}

Prices are decimal strings (never floats, which lose cents). Every component prices one declared parameter with
exactly one kind: a table of its allowed values (every value priced), a price per unit of a number parameter, a
price when a boolean parameter is true, or the GPU instance catalog's price (in USD); `multiply_by` names number
parameters. An estimate computed from a model that passes is never silently zero for a choice the form offers.
"""

from __future__ import annotations

from typing import Any

from apps.catalog.spec.limits import (
    CATALOG_CURRENCY,
    CATALOG_PRICE_KEYS,
    CATALOG_PRICE_KIND,
    COMPONENT_KEYS,
    CURRENCY,
    DECIMAL,
    MAX_NAME_LENGTH,
    PRICE_KEYS,
    PRICE_KINDS,
)
from apps.catalog.spec.parameters import all_properties
from apps.catalog.spec.report import Finding, error

ROOT_KEY = "price"
NUMBER_TYPES = ("integer", "number")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), f"a {type(value).__name__}")


def _price(value: Any, key: str, what: str) -> list[Finding]:
    if not isinstance(value, str):
        return [error(key, f'{what} must be a decimal string such as "1.006" (quote it in YAML), not {_kind(value)}.')]
    if not DECIMAL.match(value):
        return [error(key, f"{what} is {value!r}, not a non-negative decimal such as 1.006.")]
    return []


def _typed(properties: dict[str, Any], name: Any) -> Any:
    spec = properties.get(name) if isinstance(name, str) else None
    return spec.get("type") if isinstance(spec, dict) else None


def _by_value(where: str, key: str, table: Any, parameter: Any, properties: dict[str, Any]) -> list[Finding]:
    if not isinstance(table, dict) or not table:
        return [error(key, f"{where}: hourly_by_value must map each value of {parameter!r} to a price.")]
    found: list[Finding] = []
    for choice, amount in table.items():
        found += _price(amount, f"{key}.{choice}", f"{where}'s price for {choice!r}")
    spec = properties.get(parameter) if isinstance(parameter, str) else None
    allowed = spec.get("enum") if isinstance(spec, dict) else None
    if isinstance(allowed, list):
        values = [str(value) for value in allowed]
        for extra in [choice for choice in table if choice not in values]:
            found.append(
                error(f"{key}.{extra}", f"{where} prices {extra!r}, which is not an allowed value of {parameter!r}.")
            )
        unpriced = [value for value in values if value not in table]
        if unpriced:
            found.append(
                error(key, f"{where} has no price for {', '.join(unpriced)} (allowed values of {parameter!r}).")
            )
    return found


def _from_catalog(where: str, key: str, names: Any, properties: dict[str, Any], currency: Any) -> list[Finding]:
    if not isinstance(names, dict) or set(names) != set(CATALOG_PRICE_KEYS):
        return [error(key, f"{where}: {CATALOG_PRICE_KIND} must name the region and purchase_option parameters.")]
    found = [
        error(f"{key}.{role}", f"{where} reads the {role} from {name!r}, which the parameters schema does not declare.")
        for role, name in names.items()
        if name not in properties
    ]
    if currency != CATALOG_CURRENCY:
        found.append(
            error(
                f"{ROOT_KEY}.currency",
                f"{where} is priced from the GPU instance catalog, which is in USD: set the currency to USD.",
            )
        )
    return found


def _component(index: int, component: Any, properties: dict[str, Any], currency: Any) -> list[Finding]:
    where, key = f"Component {index + 1}", f"{ROOT_KEY}.components[{index}]"
    if not isinstance(component, dict):
        return [error(key, f"{where} must be an object with a label, a parameter and one price.")]
    found = [
        error(f"{key}.{name}", f"{where}: {name!r} is not a component key ({', '.join(COMPONENT_KEYS)}).")
        for name in sorted(set(component) - set(COMPONENT_KEYS), key=str)
    ]
    label = component.get("label")
    if not isinstance(label, str) or not label.strip() or "\n" in label.strip() or len(label) > MAX_NAME_LENGTH:
        found.append(
            error(f"{key}.label", f"{where} needs a label of one line and at most {MAX_NAME_LENGTH} characters.")
        )
    parameter = component.get("parameter")
    if not isinstance(parameter, str) or parameter not in properties:
        found.append(
            error(
                f"{key}.parameter",
                f"{where} prices parameter {parameter!r}, which the parameters schema does not declare.",
            )
        )
    kinds = [kind for kind in PRICE_KINDS if kind in component]
    if len(kinds) != 1:
        found.append(error(key, f"{where} needs exactly one of {', '.join(PRICE_KINDS)}."))
    else:
        kind, value = kinds[0], component[kinds[0]]
        declared = isinstance(parameter, str) and parameter in properties
        if kind == "hourly_by_value":
            found += _by_value(where, f"{key}.{kind}", value, parameter, properties)
        elif kind == CATALOG_PRICE_KIND:
            found += _from_catalog(where, f"{key}.{kind}", value, properties, currency)
        else:
            found += _price(value, f"{key}.{kind}", f"{where}'s {kind}")
            needs = NUMBER_TYPES if kind == "hourly_per_unit" else ("boolean",)
            if declared and _typed(properties, parameter) not in needs:
                what = "a number" if kind == "hourly_per_unit" else "a boolean"
                found.append(
                    error(f"{key}.parameter", f"{where}: {kind} needs {what} parameter; {parameter!r} is not.")
                )
    multiply_by = component.get("multiply_by", [])
    if not isinstance(multiply_by, list):
        return [*found, error(f"{key}.multiply_by", f"{where}: multiply_by must be a list of number parameters.")]
    for name in multiply_by:
        if _typed(properties, name) not in NUMBER_TYPES:
            found.append(
                error(
                    f"{key}.multiply_by",
                    f"{where} multiplies by {name!r}, which is not a number parameter of the parameters schema.",
                )
            )
    return found


def price_findings(price_model: Any, parameters_schema: Any) -> list[Finding]:
    """Every problem with a price model, keyed (`price.components[0].parameter`), as sentences an admin can act on."""
    if not isinstance(price_model, dict):
        return [error(ROOT_KEY, "The price model must be an object with currency, base_hourly and components.")]
    found = [
        error(f"{ROOT_KEY}.{name}", f"{name!r} is not a price model key; use {', '.join(PRICE_KEYS)}.")
        for name in sorted(set(price_model) - set(PRICE_KEYS), key=str)
    ]
    currency = price_model.get("currency")
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        found.append(
            error(f"{ROOT_KEY}.currency", f"Currency {currency!r} is not a three-letter ISO code such as USD.")
        )
    found += _price(price_model.get("base_hourly"), f"{ROOT_KEY}.base_hourly", "base_hourly")
    components = price_model.get("components", [])
    if not isinstance(components, list):
        return [*found, error(f"{ROOT_KEY}.components", "components must be a list.")]
    properties = all_properties(parameters_schema)
    for index, component in enumerate(components):
        found += _component(index, component, properties, currency)
    return found


def check_price_model(price_model: Any, parameters_schema: Any) -> list[str]:
    """The problems of a price model, as sentences; empty when it may be published."""
    return [finding.message for finding in price_findings(price_model, parameters_schema)]
