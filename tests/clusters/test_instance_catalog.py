from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.config import Config

from apps.clusters.cloud import PricingUnavailable
from apps.clusters.instance_catalog import (
    CATALOG_PATH,
    CatalogInvalid,
    RegionNotOffered,
    UnknownInstanceType,
    load_catalog,
    parse_on_demand_prices,
    price_for,
    pricing_filters,
    refresh_from_pricing_api,
)

EXPECTED_TYPES = {
    "g4dn.xlarge",
    "g5.xlarge",
    "g5.2xlarge",
    "g5.4xlarge",
    "g5.12xlarge",
    "g5.48xlarge",
    "g6.xlarge",
    "p4d.24xlarge",
    "p5.48xlarge",
}


def price_list_item(instance_type: str, location: str, region: str, usd: str, unit: str = "Hrs") -> str:
    """One PriceList entry, shaped as AWS returns it from pricing get_products (aws_v1): a JSON *string*."""
    sku = f"SKU-{instance_type}-{region}".upper().replace(".", "")
    return json.dumps(
        {
            "product": {
                "productFamily": "Compute Instance",
                "attributes": {
                    "instanceType": instance_type,
                    "location": location,
                    "locationType": "AWS Region",
                    "regionCode": region,
                    "operatingSystem": "Linux",
                    "tenancy": "Shared",
                    "preInstalledSw": "NA",
                    "capacitystatus": "Used",
                    "servicecode": "AmazonEC2",
                    "usagetype": f"USE1-BoxUsage:{instance_type}",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonEC2",
            "terms": {
                "OnDemand": {
                    f"{sku}.JRTCKXETXF": {
                        "priceDimensions": {
                            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                                "unit": unit,
                                "endRange": "Inf",
                                "description": f"${usd} per On Demand Linux {instance_type} Instance Hour",
                                "appliesTo": [],
                                "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2025-11-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                },
                "Reserved": {},
            },
            "version": "20251101000000",
            "publicationDate": "2025-11-01T00:00:00Z",
        }
    )


RECORDED_GET_PRODUCTS = {
    "FormatVersion": "aws_v1",
    "PriceList": [
        price_list_item("g5.xlarge", "US East (N. Virginia)", "us-east-1", "1.0060000000"),
        price_list_item("p5.48xlarge", "US West (Oregon)", "us-west-2", "55.0400000000"),
        price_list_item("g5.xlarge", "EU (Ireland)", "eu-west-1", "0.0000000000"),  # $0 placeholder SKU
    ],
}


def test_catalog_loads_every_expected_type_with_decimal_prices() -> None:
    catalog = load_catalog()

    assert set(catalog) == EXPECTED_TYPES
    for entry in catalog.values():
        assert entry.regions, entry.type
        for price in entry.prices.values():
            assert isinstance(price.on_demand_hourly, Decimal)
            assert Decimal(0) < price.typical_spot_hourly < price.on_demand_hourly


def test_catalog_file_records_source_and_date() -> None:
    data = json.loads(CATALOG_PATH.read_text())

    assert "Price List API" in data["source"]
    assert data["as_of"]


def test_catalog_hardware_matches_known_figures() -> None:
    catalog = load_catalog()

    assert (catalog["p5.48xlarge"].gpus, catalog["p5.48xlarge"].gpu_model) == (8, "H100 80GB")
    assert catalog["g5.12xlarge"].gpu_memory_per_gpu_gib == 24  # one A10G
    assert catalog["g5.12xlarge"].gpu_memory_gib == 96  # its four together
    assert catalog["g5.12xlarge"].memory_gib == 192  # the instance's RAM, a separate figure
    assert catalog["p4d.24xlarge"].gpu_memory_per_gpu_gib == 40
    assert "eu-west-1" not in catalog["p5.48xlarge"].regions


def test_price_for_on_demand_and_spot() -> None:
    assert price_for("g5.xlarge", "us-east-1", "on_demand") == Decimal("1.006")
    assert price_for("g5.xlarge", "us-east-1", "spot") == Decimal("0.4320")
    assert price_for("g5.xlarge", "us-east-1", "spot_with_fallback") == Decimal("1.006")


def test_unknown_instance_type_error_lists_valid_types() -> None:
    with pytest.raises(UnknownInstanceType, match=r"Unknown instance type 'x9\.huge'.*g5\.xlarge.*p5\.48xlarge"):
        price_for("x9.huge", "us-east-1", "on_demand")


def test_region_not_offered_error_lists_offered_regions() -> None:
    with pytest.raises(RegionNotOffered, match=r"p5\.48xlarge is not offered in eu-west-1.*us-east-1, us-west-2"):
        price_for("p5.48xlarge", "eu-west-1", "on_demand")


def test_invalid_catalog_price_fails_loading(tmp_path: Any) -> None:
    data = json.loads(CATALOG_PATH.read_text())
    data["instances"][0]["regions"]["us-east-1"]["on_demand_hourly"] = 0.526
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))

    with pytest.raises(CatalogInvalid, match="decimal strings"):
        load_catalog(path)


def test_parser_reads_hourly_on_demand_prices_from_recorded_price_list() -> None:
    prices = parse_on_demand_prices(RECORDED_GET_PRODUCTS["PriceList"])

    assert prices == {"g5.xlarge": {"us-east-1": Decimal("1.006")}, "p5.48xlarge": {"us-west-2": Decimal("55.04")}}


def test_refresh_pages_through_get_products_with_linux_shared_filters() -> None:
    class RecordedPricingClient:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def get_products(self, **params: Any) -> dict[str, Any]:
            self.calls.append(params)
            if "NextToken" not in params:
                return {**RECORDED_GET_PRODUCTS, "PriceList": RECORDED_GET_PRODUCTS["PriceList"][:1], "NextToken": "t"}
            return {**RECORDED_GET_PRODUCTS, "PriceList": RECORDED_GET_PRODUCTS["PriceList"][1:]}

    client = RecordedPricingClient()
    catalog = {"g5.xlarge": load_catalog()["g5.xlarge"]}

    prices = refresh_from_pricing_api(client, catalog=catalog, regions=["us-east-1"])

    assert prices["g5.xlarge"] == {"us-east-1": Decimal("1.006")}
    assert [call.get("NextToken") for call in client.calls] == [None, "t"]
    assert client.calls[0]["ServiceCode"] == "AmazonEC2"
    assert client.calls[0]["Filters"] == pricing_filters("g5.xlarge", "us-east-1")
    fields = {f["Field"]: f["Value"] for f in client.calls[0]["Filters"]}
    assert fields["location"] == "US East (N. Virginia)"
    assert fields["operatingSystem"] == "Linux"


def test_refresh_against_moto_raises_pricing_unavailable(moto_endpoint: str) -> None:
    # moto does not implement the Price List API: it answers HTTP 500.
    client = boto3.client(
        "pricing", region_name="us-east-1", endpoint_url=moto_endpoint, config=Config(retries={"total_max_attempts": 1})
    )

    with pytest.raises(PricingUnavailable, match="Price List API could not be used") as excinfo:
        refresh_from_pricing_api(client, regions=["us-east-1"])
    assert excinfo.value.code == "pricing_unavailable"
