"""The daily rollups: grouped per day and dimension, rebuilt per day, shared-cost pools split exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.costs.models import (
    CostAllocation,
    CostDaily,
    CostLineItem,
    CostOwnerDaily,
    CostOwnerMonthly,
    CostSource,
    SharedCostRule,
    SplitMethod,
)
from apps.costs.services.rollups import days_between, rebuild_days, split
from tests.factories import CostLineItemFactory, TeamFactory

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 3)


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def daily(**filters: Any) -> Decimal:
    return sum((row.net_cost for row in CostDaily.objects.filter(**filters)), Decimal(0))


def test_rollup_groups_a_day_by_team_and_keeps_unallocated(vision: Team, nlp: Team) -> None:
    CostLineItemFactory(team=vision, usage_start=at(1), net_cost=Decimal("1.25"))
    CostLineItemFactory(team=vision, usage_start=at(2), net_cost=Decimal("2.50"))
    CostLineItemFactory(team=nlp, usage_start=at(2), net_cost=Decimal("4.00"))
    CostLineItemFactory(team=None, usage_start=at(3), net_cost=Decimal("0.75"))
    CostLineItemFactory(team=vision, usage_start=at(0, date(2026, 11, 4)), net_cost=Decimal("9"))

    rebuild_days(source=CostSource.CUR, days=[DAY])

    assert daily(day=DAY, team=vision) == Decimal("3.75")
    assert daily(day=DAY, team=nlp) == Decimal("4.00")
    assert daily(day=DAY, team=None) == Decimal("0.75")
    assert not CostDaily.objects.filter(day=date(2026, 11, 4)).exists()


def test_rebuilding_a_day_replaces_it_and_leaves_other_days(vision: Team) -> None:
    line = CostLineItemFactory(team=vision, usage_start=at(1), net_cost=Decimal("1"))
    CostLineItemFactory(team=vision, usage_start=at(1, date(2026, 11, 4)), net_cost=Decimal("5"))
    rebuild_days(source=CostSource.CUR, days=[DAY, date(2026, 11, 4)])
    CostLineItem.objects.filter(pk=line.pk).update(net_cost=Decimal("3"))

    rebuild_days(source=CostSource.CUR, days=[DAY])

    assert daily(day=DAY) == Decimal("3")
    assert daily(day=date(2026, 11, 4)) == Decimal("5")
    assert CostDaily.objects.count() == 2


def test_a_proportional_rule_splits_unallocated_spend_by_each_teams_own_spend(
    vision: Team, nlp: Team, alice: Any
) -> None:
    TeamFactory(slug="idle-team")  # spent nothing that day: gets no share of a proportional split
    CostLineItemFactory(team=vision, usage_start=at(1), net_cost=Decimal("30"))
    CostLineItemFactory(team=nlp, usage_start=at(1), net_cost=Decimal("10"))
    CostLineItemFactory(team=None, usage_start=at(1), usage_type="NatGateway-Hours", net_cost=Decimal("10"))
    CostLineItemFactory(team=None, usage_start=at(2), usage_type="DataTransfer-Out", net_cost=Decimal("1"))
    rule = SharedCostRule.objects.create(name="NAT", usage_type_contains="NatGateway", created_by=alice)

    rebuild_days(source=CostSource.CUR, days=[DAY])

    shares = {a.team.slug: a.net_cost for a in CostAllocation.objects.filter(rule=rule)}
    assert shares == {"vision": Decimal("7.5"), "nlp": Decimal("2.5")}
    # The claimed pool is not also counted as unallocated; the unclaimed line still is.
    assert daily(day=DAY, team=None, shared_rule=None) == Decimal("1")


def test_an_even_rule_over_named_teams_adds_up_exactly(vision: Team, nlp: Team, alice: Any) -> None:
    third: Team = TeamFactory(slug="third")
    CostLineItemFactory(team=None, product_code="AWSSupportBusiness", usage_start=at(5), net_cost=Decimal("100"))
    rule = SharedCostRule.objects.create(
        name="Support", product_code="AWSSupportBusiness", method=SplitMethod.EVEN, created_by=alice
    )
    rule.teams.set([vision, nlp, third])

    rebuild_days(source=CostSource.CUR, days=[DAY])

    shares = [a.net_cost for a in CostAllocation.objects.filter(rule=rule).order_by("team_id")]
    assert len(shares) == 3
    assert sum(shares) == Decimal("100")
    assert shares[0] == Decimal("33.3333333333")


def test_split_gives_the_remainder_to_the_last_share() -> None:
    assert split(Decimal("1"), [Decimal(1)] * 3) == [
        Decimal("0.3333333333"),
        Decimal("0.3333333333"),
        Decimal("0.3333333334"),
    ]
    assert split(Decimal("5"), []) == []


def test_days_between_covers_every_touched_utc_day() -> None:
    assert days_between(at(23), at(1, date(2026, 11, 5))) == [DAY, date(2026, 11, 4), date(2026, 11, 5)]
    assert days_between(at(1), at(2)) == [DAY]
    assert days_between(at(2), at(2)) == []


def test_the_owner_rollup_sums_a_day_per_team_without_services_or_shared_lines(
    vision: Team, nlp: Team, alice: Any
) -> None:
    CostLineItemFactory(team=vision, product_code="AmazonEC2", usage_start=at(1), net_cost=Decimal("1.25"))
    CostLineItemFactory(team=vision, product_code="AmazonS3", usage_start=at(2), net_cost=Decimal("2.50"))
    CostLineItemFactory(team=nlp, usage_start=at(2), net_cost=Decimal("4.00"))
    nat = CostLineItemFactory(team=None, usage_type="NatGateway-Hours", usage_start=at(3), net_cost=Decimal("6"))
    CostLineItemFactory(team=None, usage_start=at(3), net_cost=Decimal("0.75"))
    SharedCostRule.objects.create(name="NAT", usage_type_contains="NatGateway", created_by=alice)

    rebuild_days(source=CostSource.CUR, days=[DAY])

    owners = {(row.team_id, row.currency): (row.net_cost, row.line_count) for row in CostOwnerDaily.objects.all()}
    assert owners == {
        (vision.pk, "USD"): (Decimal("3.75"), 2),
        (nlp.pk, "USD"): (Decimal("4.00"), 1),
        (None, "USD"): (Decimal("0.75"), 1),  # the NAT line is the rule's pool, not unallocated spend
    }
    CostLineItem.objects.filter(pk=nat.pk).delete()
    CostLineItem.objects.filter(team=nlp).update(net_cost=Decimal("1"))

    rebuild_days(source=CostSource.CUR, days=[DAY])

    assert CostOwnerDaily.objects.get(team=nlp).net_cost == Decimal("1")
    assert CostOwnerDaily.objects.count() == 3


def test_the_owner_month_keeps_each_day_and_follows_a_re_import_of_one_day(vision: Team, nlp: Team) -> None:
    november = date(2026, 11, 1)
    line = CostLineItemFactory(team=vision, usage_start=at(1), net_cost=Decimal("1.25"))
    CostLineItemFactory(team=vision, usage_start=at(5, date(2026, 11, 4)), net_cost=Decimal("2.50"))
    gone = CostLineItemFactory(team=nlp, usage_start=at(2), net_cost=Decimal("4"))
    rebuild_days(source=CostSource.CUR, days=[DAY, date(2026, 11, 4)])

    month = CostOwnerMonthly.objects.get(team=vision, month=november)
    assert len(month.daily) == 30
    assert [Decimal(v) if v is not None else None for v in month.daily[1:5]] == [
        None,
        Decimal("1.25"),
        Decimal("2.50"),
        None,
    ]
    assert month.net_cost == Decimal("3.75")

    # Re-import of the 3rd only: the month is re-read, the 4th stays, and an owner with no days left goes.
    CostLineItem.objects.filter(pk=line.pk).update(net_cost=Decimal("7"))
    CostLineItem.objects.filter(pk=gone.pk).delete()
    rebuild_days(source=CostSource.CUR, days=[DAY])

    month = CostOwnerMonthly.objects.get(team=vision, month=november)
    assert (Decimal(month.daily[2]), Decimal(month.daily[3])) == (Decimal("7"), Decimal("2.50"))
    assert month.net_cost == Decimal("9.50")
    assert not CostOwnerMonthly.objects.filter(team=nlp).exists()
