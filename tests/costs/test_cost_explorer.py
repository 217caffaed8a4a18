"""Cost Explorer against a real moto server: seeded results (moto hands the first seeded result to the first exact
request body that asks and applies no group-by itself), paging, attribution by the paved:team tag, and the
reconciliation of CUR, metering and Cost Explorer per team and month."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from apps.accounts.models import Team
from apps.costs.models import CostDaily, CostLineItem, CostSource
from apps.costs.selectors import reconciliation
from apps.costs.services.rollups import rebuild_days
from apps.costs.sources.cost_explorer import import_cost_explorer, sync_recent
from tests.factories import CostLineItemFactory

pytestmark = pytest.mark.django_db


def group(team: str, service: str, unblended: str, net: str) -> dict[str, Any]:
    return {
        "Keys": [f"paved:team${team}", service],
        "Metrics": {
            "UnblendedCost": {"Amount": unblended, "Unit": "USD"},
            "NetUnblendedCost": {"Amount": net, "Unit": "USD"},
        },
    }


def day_result(day: str, next_day: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"TimePeriod": {"Start": day, "End": next_day}, "Total": {}, "Groups": groups, "Estimated": False}


def seed(endpoint: str, *results: dict[str, Any]) -> None:
    body = json.dumps({"results": list(results)}).encode()
    request = urllib.request.Request(
        f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


@pytest.fixture
def seeded(moto_endpoint: str, settings: Any) -> str:
    """Two pages: 1 and 2 November on the first (with a NextPageToken), 3 November on the second."""
    settings.AWS_ENDPOINT_URL = moto_endpoint
    seed(
        moto_endpoint,
        {
            "ResultsByTime": [
                day_result(
                    "2026-11-01",
                    "2026-11-02",
                    [
                        group("vision", "Amazon Elastic Compute Cloud - Compute", "10.50", "9.50"),
                        group("nlp", "Amazon Elastic Compute Cloud - Compute", "4.00", "4.00"),
                        group("", "Amazon Virtual Private Cloud", "1.25", "1.25"),
                    ],
                ),
                day_result(
                    "2026-11-02",
                    "2026-11-03",
                    [group("vision", "Amazon Simple Storage Service", "0.75", "0.75")],
                ),
            ],
            "NextPageToken": "page-2",
        },
        {
            "ResultsByTime": [
                day_result(
                    "2026-11-03", "2026-11-04", [group("nlp", "Amazon Elastic Compute Cloud - Compute", "2", "2")]
                )
            ]
        },
    )
    return moto_endpoint


def test_cost_explorer_pages_are_stored_per_day_and_group_and_attributed_by_team(
    seeded: str, vision: Team, nlp: Team
) -> None:
    result = import_cost_explorer(start=date(2026, 11, 1), end=date(2026, 11, 4))

    assert (result.pages, result.lines, result.total) == (2, 5, Decimal("17.50"))
    line = CostLineItem.objects.get(
        source=CostSource.COST_EXPLORER,
        line_id="2026-11-01:paved:team$vision|Amazon Elastic Compute Cloud - Compute",
    )
    assert (line.team_id, line.unblended_cost, line.net_cost) == (vision.pk, Decimal("10.50"), Decimal("9.50"))
    assert line.product_code == "Amazon Elastic Compute Cloud - Compute"
    assert line.usage_start == datetime(2026, 11, 1, tzinfo=UTC)
    untagged = CostLineItem.objects.get(line_id="2026-11-01:paved:team$|Amazon Virtual Private Cloud")
    assert untagged.team_id is None
    daily = {(row.day, row.team_id): row.net_cost for row in CostDaily.objects.filter(source=CostSource.COST_EXPLORER)}
    assert daily == {
        (date(2026, 11, 1), vision.pk): Decimal("9.50"),
        (date(2026, 11, 1), nlp.pk): Decimal("4.00"),
        (date(2026, 11, 1), None): Decimal("1.25"),
        (date(2026, 11, 2), vision.pk): Decimal("0.75"),
        (date(2026, 11, 3), nlp.pk): Decimal("2"),
    }


def test_re_reading_the_same_days_replaces_them(seeded: str, vision: Team, nlp: Team) -> None:
    import_cost_explorer(start=date(2026, 11, 1), end=date(2026, 11, 4))
    # The same request bodies again: moto answers them with the same seeded results.
    import_cost_explorer(start=date(2026, 11, 1), end=date(2026, 11, 4))

    assert CostLineItem.objects.filter(source=CostSource.COST_EXPLORER).count() == 5


def test_the_command_reads_cost_explorer(seeded: str, vision: Team, nlp: Team) -> None:
    call_command("reconcile_cost_explorer", "--since", "2026-11-01", "--until", "2026-11-04")

    assert CostLineItem.objects.filter(source=CostSource.COST_EXPLORER, team=nlp).count() == 2


def test_the_beat_does_nothing_unless_enabled(seeded: str) -> None:
    with override_settings(COST_EXPLORER_ENABLED=False):
        assert sync_recent(now=datetime(2026, 11, 4, 3, tzinfo=UTC)) is None
    assert not CostLineItem.objects.filter(source=CostSource.COST_EXPLORER).exists()


def test_reconciliation_compares_the_three_sources_per_team_and_month(seeded: str, vision: Team, nlp: Team) -> None:
    import_cost_explorer(start=date(2026, 11, 1), end=date(2026, 11, 4))
    for source, amount in ((CostSource.CUR, "10.00"), (CostSource.METERING, "9.00")):
        CostLineItemFactory(
            source=source, team=vision, usage_start=datetime(2026, 11, 1, 5, tzinfo=UTC), net_cost=Decimal(amount)
        )
        rebuild_days(source=source, days=[date(2026, 11, 1)])

    rows = {row.team_slug: row for row in reconciliation(team_ids=None, start=date(2026, 11, 1), end=date(2026, 12, 1))}

    vision_row = rows["vision"]
    assert (vision_row.cur, vision_row.metering, vision_row.cost_explorer) == (
        Decimal("10.00"),
        Decimal("9.00"),
        Decimal("10.25"),
    )
    assert vision_row.cur_minus_cost_explorer == Decimal("-0.25")
    assert vision_row.metering_minus_cost_explorer == Decimal("-1.25")
    assert vision_row.metering_minus_cur == Decimal("-1.00")
    assert rows["nlp"].cost_explorer == Decimal("6.00")
    assert rows["unallocated"].cost_explorer == Decimal("1.25")
    only_nlp = reconciliation(team_ids=[nlp.pk], start=date(2026, 11, 1), end=date(2026, 12, 1))
    assert [row.team_slug for row in only_nlp] == ["nlp"]


def test_the_reconciliation_page_shows_admins_every_team_and_managers_theirs(
    client: Any, seeded: str, vision: Team, nlp: Team, alice: Any
) -> None:
    from tests.factories import UserFactory

    import_cost_explorer(start=date(2026, 11, 1), end=date(2026, 11, 4))
    client.force_login(UserFactory(is_superuser=True))
    page = client.get(reverse("costs:reconciliation"), {"start": "2026-11-01", "months": 1}).content.decode()
    assert "reconciliation-2026-11-vision" in page
    assert "reconciliation-2026-11-unallocated" in page

    client.force_login(alice)
    page = client.get(reverse("costs:reconciliation"), {"start": "2026-11-01", "months": 1}).content.decode()
    assert "reconciliation-2026-11-vision" in page
    assert "reconciliation-2026-11-nlp" not in page
    assert "unallocated" not in page.split("reconciliation-table")[1]
