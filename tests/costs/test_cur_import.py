"""The CUR 2.0 import: real export files (CSV.gz, Parquet, legacy headers) in a local folder and in a real moto S3,
imported through the command, the service and the real worker; amounts asserted from the daily rollups."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from django.db.models import Sum

from apps.accounts.models import Team
from apps.costs.models import CostAllocation, CostDaily, CostImport, CostLineItem, ImportStatus, SharedCostRule
from apps.costs.sources.cur import import_cur
from apps.costs.tasks import import_cur_exports
from apps.runs.models import Workspace
from tests.costs.cur_files import COLUMNS, Delivery, csv_gz, legacy_csv_gz, line, parquet
from tests.factories import WorkspaceFactory
from tests.waiting import wait_for

PERIOD = "2026-11"
FIRST = date(2026, 11, 1)
BUCKET = "paved-billing"


def spend(**filters: Any) -> Decimal:
    return CostDaily.objects.filter(source="cur", **filters).aggregate(total=Sum("net_cost"))["total"] or Decimal(0)


@pytest.fixture
def workspace(vision: Team, alice: Any) -> Workspace:
    ws: Workspace = WorkspaceFactory(team=vision, name="detector", created_by=alice)
    Workspace.objects.filter(pk=ws.pk).update(created_at=datetime(2026, 10, 1, tzinfo=UTC))
    return ws


def bill(revision: str = "1") -> list[dict[str, Any]]:
    """vision's workspace (tagged by owner), nlp, and two untagged lines (one of them NAT)."""
    scale = Decimal(revision)
    return [
        line("a1", period=PERIOD, day=2, cost=str(Decimal("10.50") * scale),
             tags={"user_paved_team": "vision", "user_paved_workspace": "detector", "user_paved_owner": "alice"}),
        line("a2", period=PERIOD, day=3, cost="4.25", tags={"user_paved_team": "vision"}),
        line("b1", period=PERIOD, day=2, cost="6.00", net="5.00", tags={"user_paved_team": "nlp"}),
        line("u1", period=PERIOD, day=2, cost="3.00", usage_type="USE1-NatGateway-Hours", tags={}),
        line("u2", period=PERIOD, day=4, cost="0.75", product="AmazonS3", usage_type="TimedStorage-ByteHrs"),
    ]  # fmt: skip


def delivery(rows: list[dict[str, Any]], *, execution_id: str = "exec-1", fmt: str = "csv") -> Delivery:
    name, data = ("part-00001.snappy.parquet", parquet(rows)) if fmt == "parquet" else ("part-1.csv.gz", csv_gz(rows))
    return Delivery(export="paved-cur", period=PERIOD, execution_id=execution_id, files={name: data})


def assert_first_bill(vision: Team, nlp: Team, workspace: Workspace, alice: Any) -> None:
    assert spend(team=vision) == Decimal("14.75")
    assert spend(workspace=workspace) == Decimal("10.50")
    assert spend(user=alice) == Decimal("10.50")
    assert spend(team=nlp) == Decimal("5.00")  # net, not unblended
    assert spend(team=None) == Decimal("3.75")  # unallocated, never dropped
    assert spend(day=date(2026, 11, 2)) == Decimal("18.50")


def test_a_csv_export_in_a_folder_imports_through_the_command(
    tmp_path: Path, vision: Team, nlp: Team, workspace: Workspace, alice: Any
) -> None:
    location = delivery(bill()).write_local(tmp_path)
    out = io.StringIO()

    call_command("import_cur", "--location", str(location), "--period", PERIOD, stdout=out)

    assert "2026-11 succeeded: 5 rows loaded, 0 skipped" in out.getvalue()
    run = CostImport.objects.get()
    assert (run.status, run.rows_read, run.total_cost, run.execution_id) == ("succeeded", 5, Decimal("23.50"), "exec-1")
    assert run.finished_at is not None
    assert_first_bill(vision, nlp, workspace, alice)
    line_item = CostLineItem.objects.get(line_id__startswith="a1/")
    assert line_item.line_id == "a1/2026-11-02T00:00:00Z/2026-11-02T00:59:59Z"
    assert (line_item.instance_type, line_item.tags["user_paved_team"]) == ("g5.xlarge", "vision")


def test_a_parquet_export_in_moto_s3_imports_the_same_amounts(
    moto_endpoint: str, settings: Any, vision: Team, nlp: Team, workspace: Workspace, alice: Any
) -> None:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    location = delivery(bill(), fmt="parquet").put_s3(s3, BUCKET)

    [run] = import_cur(location=location)

    assert (run.status, run.rows_loaded) == ("succeeded", 5)
    assert_first_bill(vision, nlp, workspace, alice)


def test_legacy_cur_headers_are_read_as_cur_2(
    tmp_path: Path, vision: Team, nlp: Team, workspace: Workspace, alice: Any
) -> None:
    export = Delivery(export="legacy", period=PERIOD, execution_id="x", files={"a.csv.gz": legacy_csv_gz(bill())})
    [run] = import_cur(location=str(export.write_local(tmp_path)))

    assert run.status == "succeeded", run.status_reason
    assert_first_bill(vision, nlp, workspace, alice)


def test_a_redelivered_period_replaces_the_old_amounts_and_an_unchanged_one_is_skipped(
    tmp_path: Path, vision: Team, nlp: Team, workspace: Workspace
) -> None:
    location = str(delivery(bill()).write_local(tmp_path))
    import_cur(location=location)
    assert import_cur(location=location) == []  # same executionId: nothing to do

    revised = [row for row in bill("2") if row["identity_line_item_id"] != "u2"]
    delivery(revised, execution_id="exec-2").write_local(tmp_path)
    [run] = import_cur(location=location)

    assert run.status == "succeeded"
    assert spend(workspace=workspace) == Decimal("21.00")
    assert spend(team=vision) == Decimal("25.25")
    assert spend(team=None) == Decimal("3.00")  # u2 is gone from the bill, and from the rollups
    assert not CostDaily.objects.filter(day=date(2026, 11, 4)).exists()
    assert CostLineItem.objects.count() == 4


def test_a_shared_cost_rule_splits_the_nat_line_by_each_teams_spend(
    tmp_path: Path, vision: Team, nlp: Team, workspace: Workspace, alice: Any
) -> None:
    rule = SharedCostRule.objects.create(name="NAT", usage_type_contains="NatGateway", created_by=alice)
    import_cur(location=str(delivery(bill()).write_local(tmp_path)))

    shares = {a.team.slug: a.net_cost for a in CostAllocation.objects.filter(rule=rule)}
    # Day 2: vision spent 10.50, nlp 5.00 of their own; the 3.00 NAT pool goes 2.0322... / 0.9677...
    assert sum(shares.values()) == Decimal("3.00")
    assert shares["vision"] == (Decimal("3.00") * Decimal("10.50") / Decimal("15.50")).quantize(Decimal("1e-10"))
    assert spend(team=None, shared_rule=None) == Decimal("0.75")


def test_bad_rows_are_skipped_and_recorded_with_file_and_row(tmp_path: Path, vision: Team) -> None:
    rows = [
        line("ok", period=PERIOD, cost="1.00", tags={"user_paved_team": "vision"}),
        line("bad-number", period=PERIOD, cost="12,5"),
        line("bad-currency", period=PERIOD, currency="XYZ"),
        line("no-cost", period=PERIOD, cost=""),
        line("bad-date", period=PERIOD, line_item_usage_start_date="2026-11-31T00:00:00Z"),
        line("ok", period=PERIOD, cost="99.00"),  # a duplicate line id: the first is kept
        line("bad-tags", period=PERIOD, resource_tags="[1, 2]"),
    ]
    [run] = import_cur(location=str(delivery(rows).write_local(tmp_path)))

    assert (run.status, run.rows_read, run.rows_loaded, run.rows_skipped) == ("succeeded", 7, 1, 6)
    found = {(p["row"], p["column"], p["message"].split(":")[0]) for p in run.problems}
    assert found == {
        (2, "line_item_unblended_cost", "not a number"),
        (3, "line_item_currency_code", "unknown currency"),
        (4, "line_item_unblended_cost", "missing a required value"),
        (5, "line_item_usage_start_date", "not a date"),
        (6, "identity_line_item_id", "duplicate line id (the first row with it was kept)"),
        (7, "resource_tags", "not a JSON object of tags"),
    }
    assert {p["file"] for p in run.problems} == {
        f"s3://{BUCKET}/cur/paved-cur/data/BILLING_PERIOD={PERIOD}/part-1.csv.gz"
    }
    assert spend(team=vision) == Decimal("1.00")


def corrupt(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing_column", "missing required column(s) line_item_unblended_cost"),
        ("missing_file", "The manifest names missing data file(s)"),
        ("corrupt_gzip", "unreadable"),
        ("corrupt_parquet", "unreadable"),
        ("bad_manifest", "The manifest is not JSON"),
        ("wrong_field_count", "malformed CSV"),
    ],
)
def test_a_bad_file_rejects_the_period_and_changes_nothing(
    tmp_path: Path, vision: Team, workspace: Workspace, case: str, reason: str
) -> None:
    location = str(delivery(bill()).write_local(tmp_path))
    import_cur(location=location)
    bad = delivery(bill("3"), execution_id="exec-bad")
    if case == "missing_column":
        bad.files = {"part-1.csv.gz": csv_gz(bill("3"), [c for c in COLUMNS if c != "line_item_unblended_cost"])}
    elif case == "missing_file":
        bad.extra_refs = ["part-2.csv.gz"]
    elif case == "corrupt_gzip":
        bad.files = {"part-1.csv.gz": corrupt(bad.files["part-1.csv.gz"])}
    elif case == "corrupt_parquet":
        bad.files = {"part-1.parquet": corrupt(parquet(bill("3")))}
    elif case == "bad_manifest":
        bad.manifest_override = b'{"executionId": "exec-bad", "dataFiles": ['
    else:
        text = gzip.decompress(bad.files["part-1.csv.gz"]).decode() + "only,three,fields\n"
        bad.files = {"part-1.csv.gz": gzip.compress(text.encode())}
    bad.write_local(tmp_path)

    [run] = import_cur(location=location)

    assert run.status == ImportStatus.REJECTED
    assert reason in run.status_reason
    assert run.finished_at is not None
    assert spend(workspace=workspace) == Decimal("10.50")  # the first delivery stands
    assert CostLineItem.objects.count() == 5
    # Fixed and delivered again, the period imports (a rejected import is safe to re-run).
    delivery(bill("3"), execution_id="exec-fixed").write_local(tmp_path)
    [rerun] = import_cur(location=location)
    assert rerun.status == "succeeded"
    assert spend(workspace=workspace) == Decimal("31.50")


@pytest.mark.django_db(transaction=True)
def test_the_beat_task_imports_through_the_real_worker(
    celery_worker: Any, moto_endpoint: str, vision: Team, nlp: Team, workspace: Workspace, alice: Any
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint)
    s3.create_bucket(Bucket=BUCKET)
    location = delivery(bill()).put_s3(s3, BUCKET)

    import_cur_exports.delay(location=location)

    wait_for(lambda: CostImport.objects.filter(status="succeeded").exists(), timeout=60, message="the CUR import")
    assert_first_bill(vision, nlp, workspace, alice)
