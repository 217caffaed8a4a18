"""Real CUR 2.0 data exports for tests: CSV.gz or Parquet data files with AWS's column names and the manifest,
written into a local folder or a (moto) S3 bucket in the layout AWS uses."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = [
    "identity_line_item_id",
    "identity_time_interval",
    "bill_billing_period_start_date",
    "bill_payer_account_id",
    "line_item_usage_account_id",
    "line_item_line_item_type",
    "line_item_usage_start_date",
    "line_item_usage_end_date",
    "line_item_product_code",
    "line_item_usage_type",
    "line_item_operation",
    "line_item_usage_amount",
    "line_item_unblended_cost",
    "line_item_net_unblended_cost",
    "line_item_currency_code",
    "line_item_resource_id",
    "resource_tags",
]
# The same columns as the legacy CUR names them (tags get a column each, added by `legacy_csv_gz`).
LEGACY = {
    "identity_line_item_id": "identity/LineItemId",
    "identity_time_interval": "identity/TimeInterval",
    "bill_billing_period_start_date": "bill/BillingPeriodStartDate",
    "bill_payer_account_id": "bill/PayerAccountId",
    "line_item_usage_account_id": "lineItem/UsageAccountId",
    "line_item_line_item_type": "lineItem/LineItemType",
    "line_item_usage_start_date": "lineItem/UsageStartDate",
    "line_item_usage_end_date": "lineItem/UsageEndDate",
    "line_item_product_code": "lineItem/ProductCode",
    "line_item_usage_type": "lineItem/UsageType",
    "line_item_operation": "lineItem/Operation",
    "line_item_usage_amount": "lineItem/UsageAmount",
    "line_item_unblended_cost": "lineItem/UnblendedCost",
    "line_item_net_unblended_cost": "lineItem/NetUnblendedCost",
    "line_item_currency_code": "lineItem/CurrencyCode",
    "line_item_resource_id": "lineItem/ResourceId",
}


def line(
    line_id: str,
    *,
    period: str,
    day: int = 1,
    hour: int = 0,
    cost: str = "1.00",
    net: str | None = None,
    tags: Mapping[str, str] | None = None,
    product: str = "AmazonEC2",
    usage_type: str = "BoxUsage:g5.xlarge",
    currency: str = "USD",
    **overrides: str,
) -> dict[str, Any]:
    """One hourly CUR 2.0 line (values as AWS writes them in CSV; `tags` as the `resource_tags` map)."""
    start = f"{period}-{day:02d}T{hour:02d}:00:00Z"
    end = f"{period}-{day:02d}T{hour:02d}:59:59Z"
    row: dict[str, Any] = {
        "identity_line_item_id": line_id,
        "identity_time_interval": f"{start}/{end}",
        "bill_billing_period_start_date": f"{period}-01T00:00:00Z",
        "bill_payer_account_id": "111122223333",
        "line_item_usage_account_id": "444455556666",
        "line_item_line_item_type": "Usage",
        "line_item_usage_start_date": start,
        "line_item_usage_end_date": end,
        "line_item_product_code": product,
        "line_item_usage_type": usage_type,
        "line_item_operation": "RunInstances",
        "line_item_usage_amount": "1.0",
        "line_item_unblended_cost": cost,
        "line_item_net_unblended_cost": cost if net is None else net,
        "line_item_currency_code": currency,
        "line_item_resource_id": f"i-{line_id}",
        "resource_tags": dict(tags or {}),
    }
    row.update(overrides)
    return row


def csv_gz(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        tags = row.get("resource_tags", {})
        writer.writerow(
            [json.dumps(tags) if name == "resource_tags" and isinstance(tags, dict) else row.get(name, "")
             for name in columns]
        )  # fmt: skip
    return gzip.compress(out.getvalue().encode())


def legacy_csv_gz(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Legacy CUR headers, one `resourceTags/user:<key>` column per tag."""
    keys = sorted({key for row in rows for key in row["resource_tags"]})
    header = [LEGACY[name] for name in COLUMNS if name in LEGACY] + [
        "resourceTags/" + key.removeprefix("user_").replace("_", ":").join(["user:", ""]) for key in keys
    ]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [row[name] for name in COLUMNS if name in LEGACY] + [row["resource_tags"].get(k, "") for k in keys]
        )
    return gzip.compress(out.getvalue().encode())


def parquet(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """CUR 2.0 Parquet: timestamps as timestamps, amounts as doubles, `resource_tags` a map<string,string>."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    def when(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text)

    times = {"line_item_usage_start_date", "line_item_usage_end_date", "bill_billing_period_start_date"}
    numbers = {"line_item_usage_amount", "line_item_unblended_cost", "line_item_net_unblended_cost"}
    arrays = []
    for name in COLUMNS:
        values = [row[name] for row in rows]
        if name in times:
            arrays.append(pa.array([when(v) for v in values], pa.timestamp("ms", tz="UTC")))
        elif name in numbers:
            arrays.append(pa.array([float(v) for v in values], pa.float64()))
        elif name == "resource_tags":
            arrays.append(pa.array([list(v.items()) for v in values], pa.map_(pa.string(), pa.string())))
        else:
            arrays.append(pa.array(values, pa.string()))
    out = io.BytesIO()
    pq.write_table(pa.table(arrays, names=COLUMNS), out)
    return out.getvalue()


@dataclass
class Delivery:
    """One delivery of one period: data files (name -> bytes) and the manifest naming them."""

    export: str
    period: str
    execution_id: str
    files: dict[str, bytes] = field(default_factory=dict)
    extra_refs: list[str] = field(default_factory=list)  # names in the manifest with no file behind them
    manifest_override: bytes | None = None

    def data_key(self, name: str) -> str:
        return f"{self.export}/data/BILLING_PERIOD={self.period}/{name}"

    def manifest_key(self) -> str:
        return f"{self.export}/metadata/BILLING_PERIOD={self.period}/{self.export}-Manifest.json"

    def manifest(self, bucket: str) -> bytes:
        if self.manifest_override is not None:
            return self.manifest_override
        names = [*self.files, *self.extra_refs]
        return json.dumps(
            {
                "executionId": self.execution_id,
                "billingPeriod": {"start": f"{self.period}-01T00:00:00.000Z"},
                "columns": [{"name": name, "type": "string"} for name in COLUMNS],
                "dataFiles": [f"s3://{bucket}/cur/{self.data_key(name)}" for name in names],
            }
        ).encode()

    def write_local(self, root: Path) -> Path:
        """Write under `root`; returns the export folder (the location to import)."""
        for name, data in self.files.items():
            path = root / self.data_key(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifest = root / self.manifest_key()
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_bytes(self.manifest("paved-billing"))
        return root / self.export

    def put_s3(self, client: Any, bucket: str) -> str:
        """Put into `bucket` under `cur/`; returns the location to import."""
        for name, data in self.files.items():
            client.put_object(Bucket=bucket, Key=f"cur/{self.data_key(name)}", Body=data)
        client.put_object(Bucket=bucket, Key=f"cur/{self.manifest_key()}", Body=self.manifest(bucket))
        return f"s3://{bucket}/cur/{self.export}"
