"""Cost per 1,000 inferences from a known bill and known traffic: spend found by the `paved:endpoint` tag in each
of its spellings or by the SageMaker endpoint's ARN, the month's showback source only (March is billed: its
metering lines do not count), lines and traffic outside the period left out, endpoints with requests but no
spend (and spend without requests) left out, per endpoint, per team and for the platform; `by_team` agrees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.accounts.models import Team
from apps.costs.models import CostImport, CostSource, ImportStatus
from apps.dashboards.registry import Measurement, Period, Scope, get_kpi
from apps.deployments.models import Endpoint
from tests.factories import CostLineItemFactory, EndpointFactory, EndpointTrafficFactory, RegisteredModelFactory

pytestmark = pytest.mark.django_db

MARCH = Period(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
DAY = datetime(2026, 3, 10, 12, tzinfo=UTC)
KEY = "cost_per_1k_inferences"


def measure(teams: list[Team] | None) -> Measurement:
    kpi = get_kpi(KEY)
    assert kpi is not None
    return kpi.measure(period=MARCH, scope=Scope(teams=None if teams is None else frozenset(t.pk for t in teams)))


def serving(team: Team, name: str, requests: int) -> Endpoint:
    made: Endpoint = EndpointFactory(model=RegisteredModelFactory(team=team), name=name, target="sagemaker")
    EndpointTrafficFactory(endpoint=made, start=DAY, requests=requests)
    return made


def line(cost: str, *, at: datetime = DAY, source: str = CostSource.CUR, **fields: object) -> None:
    CostLineItemFactory(source=source, usage_start=at, net_cost=Decimal(cost), product_code="AmazonSageMaker", **fields)


@pytest.fixture
def bill(vision: Team, nlp: Team) -> None:
    """vision/a: 3.00 by its tag over 2000 requests; vision/b: 2.00 by its ARN (untagged) over 1000; vision/c:
    requests, no spend; nlp/n: 1.50 by CUR 2.0's tag spelling over 10000. Not counted: a's April line and a's
    metering line (March has the bill), spend of an endpoint without traffic, another endpoint's tag on b's ARN."""
    CostImport.objects.create(
        source=CostSource.CUR, billing_period=date(2026, 3, 1), status=ImportStatus.SUCCEEDED, started_at=timezone.now()
    )
    serving(vision, "a", 2000)
    serving(vision, "b", 1000)
    serving(vision, "c", 5000)
    serving(nlp, "n", 10000)
    EndpointTrafficFactory(endpoint=serving(vision, "late", 0), start=MARCH.end, requests=100)  # April's traffic
    line("1.00", tags={"paved:endpoint": "vision-a"})
    line("2.00", tags={"resourceTags/user:paved:endpoint": "vision-a", "paved:team": "vision"})
    line("2.00", resource_id="arn:aws:sagemaker:us-east-1:123456789012:endpoint/vision-b")
    line("1.50", tags={"user_paved_endpoint": "nlp-n"})
    line("9.00", at=MARCH.end, tags={"paved:endpoint": "vision-a"})  # April
    line("9.00", at=MARCH.end - timedelta(days=40), tags={"paved:endpoint": "vision-a"})  # January
    line("9.00", source=CostSource.METERING, tags={"paved:endpoint": "vision-a"})  # March is billed: CUR counts
    line("9.00", tags={"paved:endpoint": "vision-late"})  # no requests in March
    line("9.00", tags={"paved:endpoint": "nlp-other"}, resource_id="arn:aws:sagemaker:us-east-1:1:endpoint/vision-b")


def test_cost_per_1k_inferences_divides_attributed_spend_by_requests(bill: None, vision: Team, nlp: Team) -> None:
    mine = measure([vision])
    assert mine.breakdown == {"vision/a": pytest.approx(1.5), "vision/b": pytest.approx(2.0)}  # c has no spend
    assert (mine.value, mine.sample) == (pytest.approx(5.0 * 1000 / 3000), 3000)
    assert measure([nlp]).value == pytest.approx(0.15)
    assert measure(None).value == pytest.approx(6.5 * 1000 / 13000)


def test_by_team_agrees_with_measure(bill: None, vision: Team, nlp: Team) -> None:
    kpi = get_kpi(KEY)
    assert kpi is not None
    assert kpi.by_team(period=MARCH, team_ids=[vision.pk, nlp.pk]) == {
        team.pk: measure([team]) for team in (vision, nlp)
    }


def test_requests_without_attributed_spend_give_no_number(vision: Team) -> None:
    serving(vision, "local", 1000)
    measured = measure([vision])
    assert (measured.value, measured.no_data) == (
        None,
        "no data yet: no endpoint with spend attributed to it answered requests in this period",
    )
