"""The cost explorer: exact amounts for every grouping (unallocated and shared-cost lines included), who sees
which team's spend, the CSV exports and the API (with its 400 on a bad query). Data goes in as line items and
through the real rollup rebuild; the explorer reads only the rollups."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.costs.models import Budget, CostSource, SharedCostRule, SplitMethod
from apps.costs.money import Money
from apps.costs.selectors import cost_team_ids, explore
from apps.costs.services.rollups import rebuild_days
from tests.factories import CostLineItemFactory, TemplateVersionFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db
NOV = date(2026, 11, 1)
DEC = date(2026, 12, 1)
QUERY = {"start": "2026-11-01", "end": "2026-12-01"}


def at(day: int, hour: int = 1) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def spend(vision: Team, nlp: Team, alice: Any, bob: Any) -> dict[str, Any]:
    """November: vision 3.75 (alice's workspace, two days), nlp 4.00 (bob, RDS), 0.75 untagged, and a 10.00
    support plan split evenly between the two teams by a shared-cost rule."""
    version = TemplateVersionFactory(template__slug="sandbox-experiment")
    ws = WorkspaceFactory(team=vision, created_by=alice, name="resnet", template_version=version)
    line = {"source": CostSource.METERING}
    CostLineItemFactory(**line, team=vision, workspace=ws, template=version.template, user=alice, usage_start=at(3),
                        instance_type="g5.xlarge", net_cost=Decimal("1.25"))  # fmt: skip
    CostLineItemFactory(**line, team=vision, workspace=ws, template=version.template, user=alice, usage_start=at(4),
                        instance_type="g5.xlarge", net_cost=Decimal("2.50"))  # fmt: skip
    CostLineItemFactory(**line, team=nlp, user=bob, usage_start=at(3), product_code="AmazonRDS",
                        usage_type="InstanceUsage:db.r5", net_cost=Decimal("4.00"))  # fmt: skip
    CostLineItemFactory(**line, team=None, usage_start=at(4), product_code="AmazonS3", net_cost=Decimal("0.75"))
    CostLineItemFactory(**line, team=None, usage_start=at(5), product_code="AWSSupportBusiness", net_cost=Decimal("10"))
    rule = SharedCostRule.objects.create(
        name="Support", product_code="AWSSupportBusiness", method=SplitMethod.EVEN, created_by=alice
    )
    rule.teams.set([vision, nlp])
    rebuild_days(source=CostSource.METERING, days=[at(3).date(), at(4).date(), at(5).date()])
    return {"workspace": ws, "template": version.template}


def platform_admin() -> Any:
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def totals(group_by: str, team_ids: list[int], unallocated: bool = True) -> dict[str, Money]:
    result = explore(team_ids=team_ids, start=NOV, end=DEC, group_by=group_by, include_unallocated=unallocated)
    return {group.label: group.total for group in result.groups}


def usd(amount: str) -> Money:
    return Money(Decimal(amount), "USD")


def test_by_team_lists_each_team_its_shared_lines_and_unallocated(
    spend: dict[str, Any], vision: Team, nlp: Team
) -> None:
    assert totals("team", [vision.pk, nlp.pk]) == {
        "nlp": usd("4.00"),
        "vision": usd("3.75"),
        "Shared: Support (nlp)": usd("5"),
        "Shared: Support (vision)": usd("5"),
        "Unallocated": usd("0.75"),
    }
    result = explore(team_ids=[vision.pk, nlp.pk], start=NOV, end=DEC, group_by="team", include_unallocated=True)
    assert result.total == usd("18.50")
    assert result.unallocated_percent == Decimal("4.1")  # 0.75 of 18.50
    vision_row = next(group for group in result.groups if group.label == "vision")
    assert vision_row.daily[2:5] == (Decimal("1.25"), Decimal("2.50"), Decimal(0))
    assert len(vision_row.daily) == 30
    assert result.top_spenders == [("bob", usd("4.00")), ("alice", usd("3.75"))]


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("template", {"sandbox-experiment": "3.75", "nlp: no template": "4.00"}),
        ("workspace", {"vision/resnet": "3.75", "nlp: no workspace": "4.00"}),
        ("user", {"alice": "3.75", "bob": "4.00"}),
        ("instance_type", {"g5.xlarge": "3.75", "nlp: no instance type": "4.00"}),
        ("service", {"AmazonEC2": "3.75", "AmazonRDS": "4.00"}),
    ],
)
def test_every_grouping_adds_up_to_the_same_total(
    spend: dict[str, Any], vision: Team, nlp: Team, group_by: str, expected: dict[str, str]
) -> None:
    shared_and_unallocated = {
        "Shared: Support (nlp)": usd("5"),
        "Shared: Support (vision)": usd("5"),
        "Unallocated": usd("0.75"),
    }
    assert totals(group_by, [vision.pk, nlp.pk]) == {
        **{label: usd(amount) for label, amount in expected.items()},
        **shared_and_unallocated,
    }


def test_unallocated_is_listed_even_at_zero(vision: Team) -> None:
    assert totals("team", [vision.pk]) == {"Unallocated": usd("0")}


def test_a_member_of_nlp_sees_no_vision_spend(spend: dict[str, Any], bob: Any, nlp: Team) -> None:
    assert cost_team_ids(bob) == [nlp.pk]
    assert totals("team", cost_team_ids(bob), unallocated=False) == {"nlp": usd("4.00"), "Shared: Support": usd("5")}


def test_a_manager_of_both_sees_both_and_a_platform_admin_everything(
    spend: dict[str, Any], mark: Any, vision: Team, nlp: Team
) -> None:
    assert sorted(cost_team_ids(mark)) == sorted([vision.pk, nlp.pk])
    admin = platform_admin()
    other = Team.objects.create(slug="other", name="Other")
    assert cost_team_ids(admin) == sorted([vision.pk, nlp.pk, other.pk])


def test_the_explorer_page_scopes_and_shows_unallocated_to_platform_admins_only(
    spend: dict[str, Any], client: Client, bob: Any
) -> None:
    client.force_login(bob)
    page = client.get("/costs/", {"group_by": "team", **QUERY}).content.decode()
    assert "4.00 USD" in page
    assert "vision" not in page.split("<main", 1)[-1].split("Top spenders")[0]
    assert 'data-testid="cost-row-unallocated"' not in page
    client.force_login(platform_admin())
    page = client.get("/costs/", {"group_by": "team", **QUERY}).content.decode()
    assert 'data-testid="cost-row-unallocated"' in page
    assert "18.50 USD" in page


def read_csv(response: Any) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_exports_hold_every_table(spend: dict[str, Any], client: Client, mark: Any) -> None:
    client.force_login(mark)
    groups = read_csv(client.get("/costs/export/groups.csv", {"group_by": "user", **QUERY}))
    assert groups == [
        ["user", "kind", "currency", "total", "budget_spent_percent", "budget_forecast_percent"],
        ["Shared: Support (nlp)", "shared", "USD", "5.00", "", ""],
        ["Shared: Support (vision)", "shared", "USD", "5.00", "", ""],
        ["bob", "own", "USD", "4.00", "", ""],
        ["alice", "own", "USD", "3.75", "", ""],
    ]
    daily = read_csv(client.get("/costs/export/daily.csv", {"group_by": "workspace", "team": "vision", **QUERY}))
    assert daily[0] == ["day", "workspace", "currency", "amount"]
    assert [row[:3] for row in daily[1:]] == [
        ["2026-11-05", "Shared: Support", "USD"],
        ["2026-11-03", "vision/resnet", "USD"],
        ["2026-11-04", "vision/resnet", "USD"],
    ]
    assert [Decimal(row[3]) for row in daily[1:]] == [Decimal(5), Decimal("1.25"), Decimal("2.50")]
    spenders = read_csv(client.get("/costs/export/top-spenders.csv", QUERY))
    assert spenders == [["user", "currency", "spent"], ["bob", "USD", "4.00"], ["alice", "USD", "3.75"]]
    estimates = read_csv(client.get("/costs/export/estimates.csv", QUERY))
    assert estimates[0][:2] == ["kind", "name"]
    assert estimates[1][:2] == ["workspace", "vision/resnet"]
    assert estimates[1][6] == "3.75"


def test_a_team_outside_yours_is_refused_on_pages_and_exports(spend: dict[str, Any], client: Client, bob: Any) -> None:
    client.force_login(bob)
    assert client.get("/costs/teams/vision/").status_code == 404
    assert client.get("/costs/export/groups.csv", {"team": "vision"}).status_code == 400
    assert client.get("/costs/teams/nlp/", QUERY).status_code == 200


def test_the_api_returns_the_explorer_and_estimates(spend: dict[str, Any], api: APIClient, alice: Any) -> None:
    api.force_authenticate(alice)
    body = api.get("/api/v1/costs/explorer", {"group_by": "team", **QUERY}).json()
    assert {(g["label"], g["total"]["amount"]) for g in body["groups"]} == {
        ("vision", "3.75"),
        ("Shared: Support", "5.00"),
    }
    assert body["totals"] == [{"amount": "8.75", "currency": "USD"}]
    assert body["unallocated"] == {"amount": "0.00", "currency": "USD"}
    estimates = api.get("/api/v1/costs/estimates", QUERY).json()
    assert [(row["kind"], row["label"], row["actual"]["amount"]) for row in estimates] == [
        ("workspace", "vision/resnet", "3.75")
    ]


@pytest.mark.parametrize(
    "query",
    [
        {"group_by": "colour"},
        {"start": "2026-13-01"},
        {"start": "2026-11-10", "end": "2026-11-01"},
        {"start": "2025-01-01", "end": "2026-12-01"},
        {"start": ""},
        {"team": "vision"},
    ],
)
def test_a_bad_query_is_a_400_invalid_query_problem(
    api: APIClient, bob: Any, vision: Team, query: dict[str, str]
) -> None:
    api.force_authenticate(bob)
    response = api.get("/api/v1/costs/explorer", query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "invalid_query"


def test_the_costs_read_rule(vision: Team, nlp: Team, alice: Any, bob: Any, mark: Any) -> None:
    admin = platform_admin()
    assert [can(bob, "costs.read", team) for team in (vision, nlp)] == [False, True]
    assert [can(alice, "costs.read", team) for team in (vision, nlp)] == [True, False]
    assert [can(mark, "costs.read", team) for team in (vision, nlp)] == [True, True]
    assert [can(admin, "costs.read", team) for team in (vision, nlp)] == [True, True]
    assert [can(user, "costs.read_unallocated") for user in (alice, mark, admin)] == [False, False, True]


def test_a_managers_team_showback_page(spend: dict[str, Any], client: Client, mark: Any, vision: Team) -> None:
    Budget.objects.create(team=vision, name="GPU", monthly_amount=Decimal("10"), created_by=mark)
    client.force_login(mark)
    response = client.get("/costs/teams/vision/", QUERY)
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="showback-total">8.75 USD' in page  # 3.75 own + 5.00 of the support plan
    assert 'data-testid="cost-row-visionresnet"' in page  # grouped by workspace by default
    assert 'data-testid="cost-row-shared-support"' in page
    assert "AmazonEC2" in page  # by service
    assert 'data-testid="showback-budget"' in page
    assert "nlp" not in page.split('data-testid="showback-team"', 1)[1]
    export = read_csv(client.get("/costs/export/groups.csv", {"team": "vision", **QUERY}))
    assert [row[:4] for row in export[1:]] == [
        ["Shared: Support", "shared", "USD", "5.00"],
        ["vision", "own", "USD", "3.75"],
    ]
    assert export[2][4] != ""  # the budget's spent % (of the current month, whatever range the page shows)


def test_a_range_across_two_months_cuts_each_months_days(vision: Team, alice: Any, bob: Any) -> None:
    """The owner months are sliced to the range: days outside it count nowhere, an owner with spend only outside
    it is not listed, and a day on either side of the month boundary lands on its own place in the series."""
    ws = WorkspaceFactory(team=vision, created_by=alice, name="resnet")
    mine = {"source": CostSource.METERING, "team": vision, "workspace": ws, "user": alice}
    CostLineItemFactory(**mine, usage_start=datetime(2026, 10, 30, 5, tzinfo=UTC), net_cost=Decimal("100"))
    CostLineItemFactory(**mine, usage_start=datetime(2026, 10, 31, 5, tzinfo=UTC), net_cost=Decimal("1.5"))
    CostLineItemFactory(**mine, usage_start=datetime(2026, 11, 2, 5, tzinfo=UTC), net_cost=Decimal("2"))
    CostLineItemFactory(**mine, usage_start=datetime(2026, 11, 3, 5, tzinfo=UTC), net_cost=Decimal("1000"))
    CostLineItemFactory(
        source=CostSource.METERING, team=vision, user=bob, usage_start=datetime(2026, 10, 2, 5, tzinfo=UTC)
    )
    days = [date(2026, 10, 2), date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 2), date(2026, 11, 3)]
    rebuild_days(source=CostSource.METERING, days=days)

    result = explore(team_ids=[vision.pk], start=date(2026, 10, 31), end=date(2026, 11, 3), group_by="workspace")

    assert [(g.label, g.total, g.daily) for g in result.groups] == [
        ("vision/resnet", usd("3.5"), (Decimal("1.5"), Decimal(0), Decimal("2"))),
    ]
    assert result.top_spenders == [("alice", usd("3.5"))]
    by_user = explore(team_ids=[vision.pk], start=date(2026, 10, 1), end=date(2026, 10, 31), group_by="user")
    assert {g.label: g.total for g in by_user.groups} == {"alice": usd("100"), "bob": usd("1.00")}
