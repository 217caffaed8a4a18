"""The GPU instance catalog: which types the portal offers, their hardware, and hourly prices per region.

Prices ship as data (`data/gpu_instances.json`, with its source and as-of date) so estimates work offline and in
tests; `refresh_from_pricing_api` fetches current on-demand prices from the AWS Price List API when one is reachable.
Money is Decimal, never float.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from apps.clusters.cloud.errors import PricingUnavailable
from apps.core.errors import NotFound, ValidationFailed

CATALOG_PATH = Path(__file__).resolve().parent / "data" / "gpu_instances.json"

CatalogPurchaseOption = Literal["on_demand", "spot"]

# The Price List API filters by location *name*, not region code.
REGION_LOCATIONS: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-west-2": "EU (London)",
    "eu-central-1": "EU (Frankfurt)",
    "eu-north-1": "EU (Stockholm)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
}
LOCATION_REGIONS = {location: region for region, location in REGION_LOCATIONS.items()}


class UnknownInstanceType(NotFound):
    code = "unknown_instance_type"


class RegionNotOffered(NotFound):
    code = "region_not_offered"


class CatalogInvalid(ValidationFailed):
    code = "catalog_invalid"


@dataclass(frozen=True)
class RegionPrice:
    on_demand_hourly: Decimal
    typical_spot_hourly: Decimal


@dataclass(frozen=True)
class InstanceType:
    type: str
    gpus: int
    gpu_model: str
    gpu_memory_per_gpu_gib: int  # one GPU's memory (an A10G has 24 GiB), never the instance's RAM
    vcpus: int
    memory_gib: int  # the instance's RAM
    prices: Mapping[str, RegionPrice]

    @property
    def gpu_memory_gib(self) -> int:
        """All the instance's GPU memory together (a g5.12xlarge: 4 x 24 GiB)."""
        return self.gpus * self.gpu_memory_per_gpu_gib

    @property
    def regions(self) -> list[str]:
        return sorted(self.prices)


def _price(value: Any, where: str) -> Decimal:
    if not isinstance(value, str):
        raise CatalogInvalid(f"{where}: prices must be decimal strings, got {value!r}.")
    try:
        price = Decimal(value)
    except InvalidOperation as exc:
        raise CatalogInvalid(f"{where}: {value!r} is not a decimal number.") from exc
    if not price.is_finite() or price <= 0:
        raise CatalogInvalid(f"{where}: price must be positive, got {value!r}.")
    return price


def _positive_int(entry: Mapping[str, Any], key: str, where: str) -> int:
    value = entry.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CatalogInvalid(f"{where}: {key!r} must be a positive integer, got {value!r}.")
    return value


def _parse_entry(entry: Mapping[str, Any]) -> InstanceType:
    name = entry.get("type")
    if not isinstance(name, str) or not name:
        raise CatalogInvalid(f"Catalog entry without a 'type': {entry!r}.")
    gpu_model = entry.get("gpu_model")
    if not isinstance(gpu_model, str) or not gpu_model:
        raise CatalogInvalid(f"{name}: 'gpu_model' is required.")
    regions = entry.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise CatalogInvalid(f"{name}: 'regions' must list at least one region with prices.")
    prices = {
        region: RegionPrice(
            on_demand_hourly=_price(values.get("on_demand_hourly"), f"{name} in {region} on_demand_hourly"),
            typical_spot_hourly=_price(values.get("typical_spot_hourly"), f"{name} in {region} typical_spot_hourly"),
        )
        for region, values in regions.items()
    }
    return InstanceType(
        type=name,
        gpus=_positive_int(entry, "gpus", name),
        gpu_model=gpu_model,
        gpu_memory_per_gpu_gib=_positive_int(entry, "gpu_memory_per_gpu_gib", name),
        vcpus=_positive_int(entry, "vcpus", name),
        memory_gib=_positive_int(entry, "memory_gib", name),
        prices=prices,
    )


def load_catalog(path: Path | str | None = None) -> dict[str, InstanceType]:
    """Load and validate the catalog; a malformed file fails loudly here rather than as a wrong estimate later."""
    if path is None:
        return dict(_default_catalog())
    return _load(Path(path))


@lru_cache(maxsize=1)
def _default_catalog() -> dict[str, InstanceType]:
    return _load(CATALOG_PATH)


def _load(path: Path) -> dict[str, InstanceType]:
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("source", "as_of", "instances"):
        if key not in data:
            raise CatalogInvalid(f"{path.name}: missing {key!r}.")
    catalog: dict[str, InstanceType] = {}
    for entry in data["instances"]:
        instance = _parse_entry(entry)
        if instance.type in catalog:
            raise CatalogInvalid(f"{path.name}: {instance.type} is listed twice.")
        catalog[instance.type] = instance
    return catalog


def price_for(
    instance_type: str,
    region: str,
    purchase_option: str = "on_demand",
    catalog: Mapping[str, InstanceType] | None = None,
) -> Decimal:
    """Hourly USD price of one instance. `spot_with_fallback` is estimated at the on-demand (worst-case) price."""
    catalog = catalog if catalog is not None else _default_catalog()
    entry = catalog.get(instance_type)
    if entry is None:
        raise UnknownInstanceType(
            f"Unknown instance type {instance_type!r}. Choose one of: {', '.join(sorted(catalog))}.",
            extra={"valid": sorted(catalog)},
        )
    price = entry.prices.get(region)
    if price is None:
        raise RegionNotOffered(
            f"{instance_type} is not offered in {region}. It is offered in: {', '.join(entry.regions)}.",
            extra={"valid": entry.regions},
        )
    if purchase_option in ("on_demand", "spot_with_fallback"):
        return price.on_demand_hourly
    if purchase_option == "spot":
        return price.typical_spot_hourly
    raise ValidationFailed(
        f"Unknown purchase option {purchase_option!r}; choose on_demand, spot or spot_with_fallback.",
        code="invalid_purchase_option",
    )


# -- AWS Price List API ------------------------------------------------------------------------------------------


def parse_on_demand_prices(price_list: Iterable[str | Mapping[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Parse `get_products` PriceList items (JSON strings, as AWS returns them) into type -> region -> hourly USD.

    Only hourly USD OnDemand dimensions count; items without a known region or with a zero price (AWS lists $0
    placeholder SKUs, e.g. for reserved capacity) are skipped.
    """
    prices: dict[str, dict[str, Decimal]] = {}
    for raw in price_list:
        item: Mapping[str, Any] = json.loads(raw) if isinstance(raw, str) else raw
        attributes = item.get("product", {}).get("attributes", {})
        instance_type = attributes.get("instanceType")
        region = attributes.get("regionCode") or LOCATION_REGIONS.get(attributes.get("location", ""))
        if not instance_type or not region:
            continue
        for term in item.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                if dimension.get("unit") != "Hrs":
                    continue
                usd = dimension.get("pricePerUnit", {}).get("USD")
                try:
                    amount = Decimal(usd)
                except (InvalidOperation, TypeError):
                    continue
                if amount > 0:
                    prices.setdefault(instance_type, {})[region] = amount.normalize()
    return prices


def pricing_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    location = REGION_LOCATIONS.get(region)
    if location is None:
        raise ValidationFailed(
            f"No Price List location name known for {region}; add it to REGION_LOCATIONS.",
            code="unknown_pricing_region",
        )
    terms = {
        "instanceType": instance_type,
        "location": location,
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "operatingSystem": "Linux",
    }
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in terms.items()]


def refresh_from_pricing_api(
    client: Any,
    catalog: Mapping[str, InstanceType] | None = None,
    regions: Iterable[str] | None = None,
) -> dict[str, dict[str, Decimal]]:
    """Fetch current on-demand prices for the catalog's types and regions: type -> region -> hourly USD.

    `client` is a boto3 `pricing` client (the API lives in us-east-1 and a few other regions only). Any failure to
    reach or use the API becomes `PricingUnavailable`, so callers can keep the shipped prices instead.
    """
    catalog = catalog if catalog is not None else _default_catalog()
    wanted_regions = list(regions) if regions is not None else None
    updated: dict[str, dict[str, Decimal]] = {}
    for instance in catalog.values():
        for region in wanted_regions if wanted_regions is not None else instance.regions:
            token: str | None = None
            while True:
                params: dict[str, Any] = {
                    "ServiceCode": "AmazonEC2",
                    "Filters": pricing_filters(instance.type, region),
                    "FormatVersion": "aws_v1",
                    "MaxResults": 100,
                }
                if token:
                    params["NextToken"] = token
                try:
                    page = client.get_products(**params)
                except (ClientError, BotoCoreError) as exc:
                    raise PricingUnavailable(
                        f"The AWS Price List API could not be used ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0][:200]}). The shipped catalog prices remain in effect; "
                        "check network access and the pricing:GetProducts permission.",
                    ) from exc
                for found_type, by_region in parse_on_demand_prices(page.get("PriceList", [])).items():
                    updated.setdefault(found_type, {}).update(by_region)
                token = page.get("NextToken")
                if not token:
                    break
    return updated
