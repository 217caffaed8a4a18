"""The spend KPIs on PostgreSQL with known ledgers, budgets, telemetry and estimates: exact values, the same total
as the cost explorer, no data (with the reason), another team's rows, the period's boundaries, records in flight
(a running cluster, raw telemetry not folded yet) and `by_team` agreeing with `measure`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.catalog.models import Template
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node
from apps.costs.models import Budget, CostSource
from apps.costs.selectors import explore, idle_gpu_costs
from apps.costs.services.rollups import rebuild_days
from apps.dashboards.registry import Measurement, Period, Scope, get_kpi
from tests.costs.budget_helpers import spend
from tests.factories import (
    ClusterFactory,
    CostLineItemFactory,
    NodeFactory,
    TeamFactory,
    TemplateFactory,
    WorkspaceFactory,
    gpu_rollups,
    shared_rule_for,
)

pytestmark = pytest.mark.django_db

MARCH = Period(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
FIRST_HALF = Period(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 16, tzinfo=UTC))
KEYS = (
    "spend_total",
    "budget_burn",
    "budget_forecast_ratio",
    "gpu_utilization_efficiency",
    "idle_gpu_cost",
    "cost_per_1k_inferences",
    "estimate_accuracy",
)


def measure(key: str, teams: list[Team] | None, period: Period = MARCH) -> Measurement:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.measure(period=period, scope=Scope(teams=None if teams is None else frozenset(t.pk for t in teams)))


def assert_by_team_agrees(key: str, teams: list[Team], period: Period = MARCH) -> None:
    kpi = get_kpi(key)
    assert kpi is not None
    grouped = kpi.by_team(period=period, team_ids=[team.pk for team in teams])
    assert grouped == {team.pk: measure(key, [team], period) for team in teams}


@pytest.fixture
def speech(db: None) -> Team:
    return TeamFactory(slug="speech", name="Speech")


@pytest.fixture
def ledger(vision: Team, nlp: Team, speech: Team) -> None:
    """March (metering): vision 100 on the 10th, 50 on the 20th and all of 8 of shared NAT on the 10th; nlp 30 and
    speech 30 on the 10th; 40 unallocated. Outside: vision 999 on February 28th and 777 on April 1st."""
    shared_rule_for(vision)
    tenth = date(2026, 3, 10)
    CostLineItemFactory(source=CostSource.METERING, team=None, usage_start=datetime(2026, 3, 10, 3, tzinfo=UTC),
                        net_cost=Decimal("8"), product_code="AmazonVPC", usage_type="USE1-NatGateway-Hours")  # fmt: skip
    CostLineItemFactory(
        source=CostSource.METERING, team=None, usage_start=datetime(2026, 3, 10, 4, tzinfo=UTC), net_cost=Decimal("40")
    )
    spend(vision, tenth, "100")
    spend(vision, date(2026, 3, 20), "50")
    spend(nlp, tenth, "30")
    spend(speech, tenth, "30")
    spend(vision, date(2026, 2, 28), "999")
    spend(vision, date(2026, 4, 1), "777")
    rebuild_days(source=CostSource.METERING, days=[tenth])


def test_each_kpi_is_registered() -> None:
    for key in KEYS:
        kpi = get_kpi(key)
        assert kpi is not None, key
        assert kpi.formula, key
        assert kpi.source, key


# --- Spend ----------------------------------------------------------------------------------------------------


def test_spend_is_the_allocated_ledger_of_the_period(ledger: None, vision: Team, nlp: Team, speech: Team) -> None:
    assert measure("spend_total", [vision]).value == 158.0  # 100 + 50 + the shared 8; not Feb 28th nor Apr 1st
    assert measure("spend_total", [nlp]).value == 30.0
    assert measure("spend_total", None).value == 218.0  # the unallocated 40 is no team's
    assert_by_team_agrees("spend_total", [vision, nlp, speech])


def test_spend_equals_the_cost_explorers_total(ledger: None, vision: Team, nlp: Team, speech: Team) -> None:
    start, end = date(2026, 3, 1), date(2026, 4, 1)
    for group_by in ("team", "workspace", "template", "instance_type"):
        page = explore(team_ids=[vision.pk], start=start, end=end, group_by=group_by)
        assert Decimal(str(measure("spend_total", [vision]).value)) == page.total.amount, group_by
    every = explore(team_ids=[vision.pk, nlp.pk, speech.pk], start=start, end=end, group_by="team")
    assert Decimal(str(measure("spend_total", None).value)) == every.total.amount


def test_a_ledger_day_counts_when_its_midnight_is_in_the_period(ledger: None, vision: Team) -> None:
    berlin = Period(
        start=datetime(2026, 2, 28, 23, tzinfo=UTC), end=datetime(2026, 3, 31, 22, tzinfo=UTC), tz="Europe/Berlin"
    )
    assert measure("spend_total", [vision], berlin).value == 158.0  # March 1st to 31st, Berlin midnights
    noon_to_noon = Period(start=datetime(2026, 3, 10, 12, tzinfo=UTC), end=datetime(2026, 3, 20, 12, tzinfo=UTC))
    assert measure("spend_total", [vision], noon_to_noon).value == 50.0  # the 11th to the 20th


def test_no_spend_says_why(vision: Team) -> None:
    assert measure("spend_total", [vision]).no_data == "no data yet: no spend in the ledger for this period"


# --- Budgets --------------------------------------------------------------------------------------------------


@pytest.fixture
def budgets(ledger: None, vision: Team, nlp: Team, speech: Team, mark: Any) -> None:
    """vision: 200 a month; speech: 100; nlp none. A template-narrowed budget of nlp is not a team budget."""
    Budget.objects.create(team=vision, name="Monthly", monthly_amount=Decimal("200"), created_by=mark)
    Budget.objects.create(team=speech, name="Monthly", monthly_amount=Decimal("100"), created_by=mark)
    sandbox: Template = TemplateFactory()
    Budget.objects.create(team=nlp, template=sandbox, name="Sandbox", monthly_amount=Decimal("50"), created_by=mark)


def test_budget_burn_is_the_months_spend_over_the_budget(budgets: None, vision: Team, nlp: Team, speech: Team) -> None:
    burn = measure("budget_burn", [vision])
    assert (burn.value, burn.sample) == (79.0, 1)  # 158 / 200
    assert measure("budget_burn", [speech]).value == 30.0
    assert measure("budget_burn", [nlp]).no_data == "no data yet: team has no budget"
    platform = measure("budget_burn", None)
    assert (platform.value, platform.sample) == (pytest.approx(188 / 3), 2)  # (158 + 30) / (200 + 100)
    # As of the period's end: the first half of March has vision's 100 + 8, not the 50 of the 20th.
    assert measure("budget_burn", [vision], FIRST_HALF).value == 54.0
    assert_by_team_agrees("budget_burn", [vision, nlp, speech])


def test_budget_forecast_adds_the_running_resources_over_the_hours_left(
    budgets: None, vision: Team, nlp: Team, speech: Team
) -> None:
    assert measure("budget_forecast_ratio", [vision]).value == 79.0  # the month is over: forecast = spend
    ClusterFactory(team=vision, state=ClusterState.RUNNING, hourly_price=Decimal("2"))  # in flight: 2 USD an hour
    # As of March 15th's last moment: 108 spent + 2 x 384 hours left = 876, of 200.
    assert measure("budget_forecast_ratio", [vision], FIRST_HALF).value == 438.0
    assert measure("budget_forecast_ratio", [nlp]).no_data == "no data yet: team has no budget"
    assert measure("budget_forecast_ratio", None, FIRST_HALF).value == pytest.approx(100 * (876 + 30 + 0) / 300)
    assert_by_team_agrees("budget_forecast_ratio", [vision, nlp, speech], FIRST_HALF)


# --- GPU time -------------------------------------------------------------------------------------------------

T0 = datetime(2026, 3, 10, 10, tzinfo=UTC)


def raw_samples(node: Node, gpu: int, start: datetime, minutes: int, utilization: float) -> None:
    GpuSample.objects.bulk_create(
        GpuSample(
            node=node,
            gpu_index=gpu,
            sampled_at=start + timedelta(minutes=m),
            utilization_pct=utilization,
            memory_used_mib=1000,
            memory_total_mib=24000,
        )
        for m in range(minutes)
    )


@pytest.fixture
def telemetry(vision: Team, nlp: Team, speech: Team) -> Cluster:
    """vision (2 GPUs, 4 USD/h: 2 per GPU-hour): GPU 0 idle for an hour of 5-minute rollups then busy for an hour
    of raw samples not folded yet; GPU 1 busy for an hour, then idle for one hourly rollup. nlp (1 GPU, 3 USD/h):
    idle for an hour. Outside March: a vision bucket starting just before and one at April 1st."""
    cluster = ClusterFactory(team=vision, node_count=1, gpus_per_node=2, hourly_price=Decimal("4"))
    node = NodeFactory(cluster=cluster, gpu_count=2)
    gpu_rollups(node, 0, T0, 12, 1.0)  # max 2 % < 5 %: idle
    raw_samples(node, 0, T0 + timedelta(hours=1), 60, 80.0)  # in flight: raw, not rolled up yet
    gpu_rollups(node, 1, T0, 12, 40.0)  # busy
    gpu_rollups(node, 1, T0 + timedelta(hours=1), 1, 1.0, seconds=3600)  # an hourly bucket, idle
    gpu_rollups(node, 0, MARCH.start - timedelta(minutes=5), 1, 1.0)
    gpu_rollups(node, 0, MARCH.end, 1, 1.0)
    other = ClusterFactory(team=nlp, node_count=1, gpus_per_node=1, hourly_price=Decimal("3"))
    gpu_rollups(NodeFactory(cluster=other), 0, T0, 1, 1.0, seconds=3600)
    return cluster


def test_gpu_efficiency_is_busy_over_reported_gpu_hours(
    telemetry: Cluster, vision: Team, nlp: Team, speech: Team
) -> None:
    vision_efficiency = measure("gpu_utilization_efficiency", [vision])
    assert (vision_efficiency.value, vision_efficiency.sample) == (50.0, 4)  # 2 busy of 4 GPU-hours
    assert measure("gpu_utilization_efficiency", [nlp]).value == 0.0
    assert measure("gpu_utilization_efficiency", None).value == 40.0  # 2 of 5
    assert measure("gpu_utilization_efficiency", [speech]).no_data == "no data yet: no GPU telemetry in this period"
    assert_by_team_agrees("gpu_utilization_efficiency", [vision, nlp, speech])


def test_idle_gpu_cost_is_the_waste_pages(telemetry: Cluster, vision: Team, nlp: Team, speech: Team) -> None:
    assert measure("idle_gpu_cost", [vision]).value == 4.0  # 2 idle GPU-hours x 2 USD
    assert measure("idle_gpu_cost", [nlp]).value == 3.0
    assert measure("idle_gpu_cost", None).value == 7.0
    [waste] = idle_gpu_costs(team_ids=[vision.pk], start=MARCH.start, end=MARCH.end)
    assert waste.idle_cost == Decimal("4.0000")
    assert measure("idle_gpu_cost", [speech]).no_data == "no data yet: no GPU telemetry in this period"
    assert_by_team_agrees("idle_gpu_cost", [vision, nlp, speech])


# --- Serving and estimates ----------------------------------------------------------------------------------


def test_cost_per_1k_inferences_says_what_is_missing(vision: Team, nlp: Team) -> None:
    measured = measure("cost_per_1k_inferences", [vision])
    assert measured.value is None
    assert measured.no_data == "no data yet: no endpoint with spend attributed to it answered requests in this period"
    assert_by_team_agrees("cost_per_1k_inferences", [vision, nlp])


@pytest.fixture
def estimates(vision: Team, nlp: Team) -> None:
    """vision: a stopped cluster estimated 20 (10 h at 2) that cost 25 (+25 %), and one running since March 31st
    14:00 at 1 an hour (9.9997 h to the period's end) that cost 9 (-10.0 %); a cluster that spent only in
    February (left out) and a workspace never applied (no estimate: left out). nlp: 10 estimated, 15 spent."""
    stopped = ClusterFactory(team=vision, state=ClusterState.STOPPED, hourly_price=Decimal("2"), running_seconds=36000)
    running = ClusterFactory(team=vision, state=ClusterState.RUNNING, hourly_price=Decimal("1"),
                             running_since=datetime(2026, 3, 31, 14, tzinfo=UTC))  # fmt: skip
    february = ClusterFactory(team=vision, state=ClusterState.STOPPED, hourly_price=Decimal("1"), running_seconds=3600)
    never_applied = WorkspaceFactory(team=vision)
    nlp_cluster = ClusterFactory(team=nlp, state=ClusterState.STOPPED, hourly_price=Decimal("1"), running_seconds=36000)
    spend(vision, date(2026, 3, 5), "25", cluster=stopped)
    spend(vision, date(2026, 3, 31), "9", cluster=running)
    spend(vision, date(2026, 2, 5), "500", cluster=february)
    spend(vision, date(2026, 3, 6), "7", workspace=never_applied)
    spend(nlp, date(2026, 3, 7), "15", cluster=nlp_cluster)


def test_estimate_accuracy_is_100_minus_the_mean_absolute_percentage_error(
    estimates: None, vision: Team, nlp: Team, speech: Team
) -> None:
    accuracy = measure("estimate_accuracy", [vision])
    assert (accuracy.value, accuracy.sample) == (82.5, 2)  # 100 - (25 + 10) / 2
    assert measure("estimate_accuracy", [nlp]).value == 50.0
    platform = measure("estimate_accuracy", None)
    assert (platform.value, platform.sample) == (pytest.approx(100 - 85 / 3), 3)
    reason = "no data yet: no workspace or cluster with an estimate spent in this period"
    assert measure("estimate_accuracy", [speech]).no_data == reason
    assert_by_team_agrees("estimate_accuracy", [vision, nlp, speech])
