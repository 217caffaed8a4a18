"""A large CUR 2.0 data export for the import benchmark: ROWS hourly lines over one month, written streaming as
CSV.gz and as Parquet (the same rows), with the manifest, in AWS's folder layout.

Realistic shape: 60% of lines carry `paved:team` and `paved:workspace` tags (2 teams, 200 workspaces), 20% only
a team tag, 20% none (unallocated); 12 usage types over EC2, S3, EBS and VPC.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from pathlib import Path

COLUMNS = [
    "identity_line_item_id", "identity_time_interval", "bill_billing_period_start_date", "bill_payer_account_id",
    "line_item_usage_account_id", "line_item_line_item_type", "line_item_usage_start_date",
    "line_item_usage_end_date", "line_item_product_code", "line_item_usage_type", "line_item_operation",
    "line_item_usage_amount", "line_item_unblended_cost", "line_item_net_unblended_cost", "line_item_currency_code",
    "line_item_resource_id", "resource_tags",
]  # fmt: skip
PERIOD = "2026-10"
USAGE = [
    ("AmazonEC2", "BoxUsage:g5.xlarge"), ("AmazonEC2", "BoxUsage:g5.12xlarge"), ("AmazonEC2", "BoxUsage:p4d.24xlarge"),
    ("AmazonEC2", "SpotUsage:g4dn.xlarge"), ("AmazonEC2", "EBS:VolumeUsage.gp3"), ("AmazonEC2", "NatGateway-Hours"),
    ("AmazonS3", "TimedStorage-ByteHrs"), ("AmazonS3", "Requests-Tier1"), ("AmazonVPC", "PublicIPv4:InUseAddress"),
    ("AmazonEC2", "DataTransfer-Out-Bytes"), ("AmazonCloudWatch", "CW:MetricMonitorUsage"), ("AWSLambda", "Request"),
]  # fmt: skip
BATCH = 50_000


def _rows(count: int, seed: int = 12):
    rng = random.Random(seed)  # noqa: S311 - synthetic bill amounts, not secrets
    teams = ["vision", "nlp"]
    for n in range(count):
        day, hour = 1 + n % 31, (n // 31) % 24
        start = f"{PERIOD}-{day:02d}T{hour:02d}:00:00Z"
        end = f"{PERIOD}-{day:02d}T{hour:02d}:59:59Z"
        product, usage = USAGE[n % len(USAGE)]
        kind = rng.random()
        team = teams[n % 2]
        if kind < 0.6:
            tags = {"user_paved_team": team, "user_paved_workspace": f"ws-{n % 200:03d}"}
        elif kind < 0.8:
            tags = {"user_paved_team": team}
        else:
            tags = {}
        cost = f"{rng.random() * 3:.10f}"
        yield [
            f"li-{n:08d}", f"{start}/{end}", f"{PERIOD}-01T00:00:00Z", "111122223333", "444455556666", "Usage",
            start, end, product, usage, "RunInstances", "1.0", cost, cost, "USD", f"i-{n % 5000:05d}", tags,
        ]  # fmt: skip


def _manifest(root: Path, export: str, names: list[str], execution_id: str) -> None:
    path = root / export / "metadata" / f"BILLING_PERIOD={PERIOD}" / f"{export}-Manifest.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "executionId": execution_id,
        "billingPeriod": {"start": f"{PERIOD}-01T00:00:00.000Z"},
        "columns": [{"name": name, "type": "string"} for name in COLUMNS],
        "dataFiles": [f"s3://bench/{export}/data/BILLING_PERIOD={PERIOD}/{name}" for name in names],
    }))  # fmt: skip


def write_csv_gz(root: Path, rows: int) -> tuple[Path, Path]:
    """Returns (the export folder to import, the data file)."""
    data = root / "csv-export" / "data" / f"BILLING_PERIOD={PERIOD}" / "part-1.csv.gz"
    data.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(data, "wt", newline="", compresslevel=6) as out:
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for row in _rows(rows):
            row[-1] = json.dumps(row[-1])
            writer.writerow(row)
    _manifest(root, "csv-export", ["part-1.csv.gz"], "csv-1")
    return root / "csv-export", data


def write_parquet(root: Path, rows: int) -> tuple[Path, Path]:
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = root / "parquet-export" / "data" / f"BILLING_PERIOD={PERIOD}" / "part-1.snappy.parquet"
    data.parent.mkdir(parents=True, exist_ok=True)
    times, numbers = {1 + 5, 1 + 6, 2}, {11, 12, 13}
    types = [
        pa.timestamp("ms", tz="UTC") if i in times else pa.float64() if i in numbers
        else pa.map_(pa.string(), pa.string()) if name == "resource_tags" else pa.string()
        for i, name in enumerate(COLUMNS)
    ]  # fmt: skip
    schema = pa.schema(list(zip(COLUMNS, types, strict=True)))
    with pq.ParquetWriter(data, schema) as writer:
        batch: list[list[object]] = []
        for row in _rows(rows):
            batch.append(row)
            if len(batch) == BATCH:
                writer.write_table(_table(batch, schema, times, numbers, dt))
                batch = []
        if batch:
            writer.write_table(_table(batch, schema, times, numbers, dt))
    _manifest(root, "parquet-export", ["part-1.snappy.parquet"], "parquet-1")
    return root / "parquet-export", data


def _table(batch, schema, times, numbers, dt):
    import pyarrow as pa

    columns = []
    for i, field in enumerate(schema):
        values = [row[i] for row in batch]
        if i in times:
            values = [dt.datetime.fromisoformat(str(v)) for v in values]
        elif i in numbers:
            values = [float(str(v)) for v in values]
        elif field.name == "resource_tags":
            values = [list(dict(v).items()) for v in values]
        columns.append(pa.array(values, field.type))
    return pa.table(columns, schema=schema)
