"""Browser journey of a manager's KPIs: mark (manager of vision and nlp) signs in and lands on the home page with
his current team's 30-day KPI cards, opens the dashboards overview, filters it to vision, opens the Spend tab and
reads the spend card, finds the same total on the cost page for vision over the same 30 days, and exports the
Spend tab as CSV (the download's spend_total row holds the same number).

The history goes in through the real paths: metering line items folded by the rollup rebuild (a line just before
the window checks its first-day boundary, one today its last), a few finished training jobs and Terraform runs,
then `refresh_snapshots()` writes the snapshots the home page and the overview read."""

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
from apps.costs.models import CostSource
from apps.costs.services.rollups import rebuild_days
from apps.dashboards.services import refresh_snapshots
from apps.runs.models import RunKind, RunState
from apps.training.models import JobState
from tests.factories import CostLineItemFactory, RunFactory, TrainingJobFactory, WorkspaceFactory
from tests.fixtures.browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WINDOW = 30
# (days before today, hour of that UTC day, amount): day 29 is the window's first day, day 30 the day before it.
VISION_SPEND = ((0, 0, "34.06"), (3, 14, "200.50"), (12, 6, "600.00"), (29, 0, "400.00"), (30, 23, "500.00"))
NLP_SPEND = ((1, 9, "50.00"), (20, 2, "27.00"))
VISION_IN_WINDOW = Decimal("1234.56")  # every vision line but the one 30 days back
NLP_IN_WINDOW = Decimal("77.00")


def _usd(text: str) -> Decimal:
    """A dashboard card's `$1,234.56` or a cost page's `1,234.56 USD`, as a number."""
    match = re.fullmatch(r"\$?([\d,]+\.\d{2})(?: USD)?", text.strip())
    assert match, f"not an amount in USD: {text!r}"
    return Decimal(match[1].replace(",", ""))


def _history(vision: Team, nlp: Team, alice: Any, bob: Any, today: datetime) -> None:
    days = set()
    for team, owner, spend in ((vision, alice, VISION_SPEND), (nlp, bob, NLP_SPEND)):
        for back, hour, amount in spend:
            start = today - timedelta(days=back) + timedelta(hours=hour)
            CostLineItemFactory(source=CostSource.METERING, team=team, user=owner, usage_start=start,
                                net_cost=Decimal(amount))  # fmt: skip
            days.add(start.date())
    rebuild_days(source=CostSource.METERING, days=days)

    now = timezone.now()
    for team, owner, states in (
        (vision, alice, (JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.FAILED)),
        (nlp, bob, (JobState.SUCCEEDED,)),
    ):
        for n, state in enumerate(states):
            submitted = now - timedelta(days=2 + n, minutes=30)
            TrainingJobFactory(team=team, owner=owner, state=state, submitted_at=submitted,
                               started_at=submitted + timedelta(minutes=10),
                               finished_at=submitted + timedelta(minutes=25))  # fmt: skip
    workspace = WorkspaceFactory(team=vision, created_by=alice, name="resnet")
    for n, state in enumerate((RunState.APPLIED, RunState.FAILED)):
        finished = now - timedelta(days=4 + n)
        RunFactory(workspace=workspace, kind=RunKind.APPLY, state=state, started_at=finished - timedelta(minutes=5),
                   finished_at=finished)  # fmt: skip


def test_mark_filters_to_vision_and_finds_the_cost_page_total(
    live_server: Any, page: Any, mark: Any, alice: Any, bob: Any, vision: Team, nlp: Team, screenshot: Any
) -> None:
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    _history(vision, nlp, alice, bob, today)
    refresh_snapshots()

    # Home: mark's current team is his first by slug (nlp); its 30-day snapshot cards are there.
    log_in(page, live_server, "mark")
    home = page.locator("[data-testid=home-kpis]")
    expect(home).to_contain_text("Team nlp: the last 30 days")
    expect(home.locator("[data-testid=kpi-spend_total] [data-testid=kpi-value]")).to_have_text("77.00 USD")
    expect(home.locator("[data-testid=kpi-training_success_rate] [data-testid=kpi-value]")).to_have_text("100.0%")
    screenshot("dashboards-home")

    # Overview, filtered to vision with the form.
    page.click("nav.mainnav >> text=Dashboards")
    filters = page.locator("[data-testid=kpi-filters]")
    filters.locator("select[name=team]").select_option("vision")
    expect(filters.locator("select[name=days]")).to_have_value(str(WINDOW))
    filters.locator("button", has_text="Show").click()
    expect(filters.locator("select[name=team]")).to_have_value("vision")
    grid = page.locator("[data-testid=kpi-grid]")
    expect(grid.locator("[data-testid=kpi-training_success_rate] [data-testid=kpi-value]")).to_have_text("66.7%")
    expect(grid.locator("[data-testid=kpi-run_success_rate] [data-testid=kpi-value]")).to_have_text("50.0%")
    expect(grid.locator("[data-testid=kpi-spend_total] [data-testid=kpi-value]")).to_have_text("1,234.56 USD")
    screenshot("dashboards-overview-vision")

    # Spend tab: the filter carries over; read the spend card.
    page.click("nav.tabs >> text=Spend")
    expect(page).to_have_url(re.compile(r"/dashboards/spend/\?.*team=vision"))
    spend_card = page.locator("[data-testid=kpi-spend_total] [data-testid=kpi-value]")
    expect(spend_card).not_to_have_text("—")
    dashboard_total = _usd(spend_card.inner_text())
    spend_url = page.url

    # The cost page for vision over the same 30 whole UTC days (the explorer's end is exclusive).
    first = (today - timedelta(days=WINDOW - 1)).date()
    end = (today + timedelta(days=1)).date()
    page.click("nav.mainnav >> text=Costs")
    form = page.locator("[data-testid=explorer-form]")
    form.locator("#f-start").fill(first.isoformat())
    form.locator("#f-end").fill(end.isoformat())
    form.locator("#f-team").select_option("vision")
    form.locator("[data-testid=apply-filters]").click()
    expect(page.locator("#f-team")).to_have_value("vision")
    expect(page.locator("#f-start")).to_have_value(first.isoformat())
    cost_total = _usd(page.locator("[data-testid=explorer-total]").inner_text())
    assert dashboard_total == cost_total == VISION_IN_WINDOW
    screenshot("dashboards-costs-vision")

    page.goto(spend_url)
    expect(spend_card).to_have_text("1,234.56 USD")
    screenshot("dashboards-spend")

    with page.expect_download() as download_info:
        page.click("[data-testid=kpi-csv]")
    download = download_info.value
    assert download.suggested_filename == "kpis-spend.csv"
    rows = list(csv.DictReader(Path(download.path()).read_text().splitlines()))
    spend_rows = [row for row in rows if row["key"] == "spend_total"]
    assert len(spend_rows) == 1
    assert spend_rows[0]["area"] == "spend"
    assert Decimal(spend_rows[0]["value"]).quantize(Decimal("0.01")) == dashboard_total
    assert {row["area"] for row in rows} == {"spend"}
