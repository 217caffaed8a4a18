"""Browser journey of a manager's showback: mark opens Costs, groups by team, sees vision flagged over 80% of its
monthly budget with the forecast, opens a workspace from the estimate vs actual table and sees both figures there,
and exports the table as CSV (the download's content is checked). The spend goes in as line items through the
real rollup rebuild; the chart is drawn by the vendored Chart.js under the portal's CSP (the `page` fixture fails
the test on any violation)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.models import Team
from apps.costs.models import Budget, CostSource
from apps.costs.services.rollups import rebuild_days
from apps.runs.models import RunKind, RunState
from tests.factories import CostLineItemFactory, RunFactory, WorkspaceFactory
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_mark_sees_vision_over_budget_and_exports_it(
    live_server: Any, page: Any, mark: Any, alice: Any, vision: Team, nlp: Team, screenshot: Any
) -> None:
    now = timezone.now()
    month = datetime(now.year, now.month, 1, tzinfo=UTC)
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="resnet", estimated_hourly_cost=Decimal("3.00"))
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.APPLIED, finished_at=now - timedelta(hours=20))
    for hour, amount in ((0, "50.00"), (1, "35.00")):
        CostLineItemFactory(source=CostSource.METERING, team=vision, workspace=workspace, user=alice,
                            usage_start=month + timedelta(hours=hour), net_cost=Decimal(amount))  # fmt: skip
    CostLineItemFactory(source=CostSource.METERING, team=nlp, usage_start=month, net_cost=Decimal("12.00"))
    rebuild_days(source=CostSource.METERING, days=[month.date()])
    Budget.objects.create(team=vision, name="GPU", monthly_amount=Decimal("100"), created_by=mark)

    log_in(page, live_server, "mark")
    page.click("nav.mainnav >> text=Costs")
    page.select_option("[data-testid=group-by]", "workspace")
    expect(page.locator("[data-testid=cost-row-visionresnet]")).to_contain_text("85.00 USD")
    page.select_option("[data-testid=group-by]", "team")
    vision_row = page.locator("[data-testid=cost-row-vision]")
    expect(vision_row).to_contain_text("85.00 USD")
    expect(vision_row).to_have_class("cost-own flagged")
    expect(vision_row.locator("[data-testid=budget-flag]")).to_have_text("85.0% of 100.00 USD")
    # Forecast: 85.00 spent plus the live workspace's 3.00/hour over the hours left in the month.
    forecast_text = vision_row.locator("[data-testid=budget-forecast]").inner_text()
    forecast = Decimal(re.fullmatch(r"forecast ([\d.]+) \([\d.]+%\)", forecast_text.strip())[1])  # type: ignore[index]
    month_end = (month + timedelta(days=32)).replace(day=1)
    hours_left = Decimal((month_end - timezone.now()).total_seconds()) / 3600
    assert abs(forecast - (Decimal(85) + 3 * hours_left)) < Decimal("0.5")  # the page rendered moments ago
    expect(page.locator("[data-testid=cost-row-nlp]")).not_to_have_class("cost-own flagged")
    expect(page.locator("[data-testid=cost-chart][data-rendered=true]")).to_have_count(1)
    screenshot("costs-journey-01-explorer-by-team")

    with page.expect_download() as download_info:
        page.click("[data-testid=export-groups]")
    download = download_info.value
    rows = list(csv.reader(Path(download.path()).read_text().splitlines()))
    assert rows[0][:4] == ["team", "kind", "currency", "total"]
    assert rows[1][:5] == ["vision", "own", "USD", "85.00", "85.0"]
    assert Decimal(rows[1][5]) > Decimal(100)  # the forecast percent
    assert rows[2:] == [["nlp", "own", "USD", "12.00", "", ""]]

    page.click("[data-testid=estimate-link-visionresnet]")
    expect(page.locator("[data-testid=workspace-name]")).to_contain_text("resnet")
    expect(page.locator("[data-testid=estimate-hourly]")).to_have_text("3.00 USD / hour")
    expect(page.locator("[data-testid=actual-to-date]")).to_have_text("85.00 USD")
    expect(page.locator("[data-testid=estimate-to-date]")).to_contain_text("20.0 h live")
    screenshot("costs-journey-02-workspace-estimate-vs-actual")
