"""Estimate vs actual on the workspace and cluster pages, and the typical actual cost per launch on the template
page, from the rollups (metering here: no bill imported)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.models import ClusterState
from apps.costs.models import CostSource
from apps.costs.selectors import cluster_cost, template_typical_cost, workspace_cost
from apps.costs.services.rollups import rebuild_days
from apps.runs.models import RunKind, RunState
from tests.factories import (
    ClusterFactory,
    CostLineItemFactory,
    RunFactory,
    TemplateVersionFactory,
    WorkspaceFactory,
    member,
)

pytestmark = pytest.mark.django_db


def hour_ago(hours: int) -> Any:
    return timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


def spent(amount: str, **dimensions: Any) -> None:
    line = CostLineItemFactory(
        source=CostSource.METERING, usage_start=hour_ago(3), net_cost=Decimal(amount), **dimensions
    )
    rebuild_days(source=CostSource.METERING, days=[line.usage_start.date()])


def test_the_workspace_page_shows_estimate_actual_and_error(client: Client, alice: Any, vision: Team) -> None:
    now = timezone.now()
    workspace = WorkspaceFactory(team=vision, created_by=alice, estimated_hourly_cost=Decimal("2.00"))
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.APPLIED, finished_at=now - timedelta(hours=10))
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.APPLIED, finished_at=now - timedelta(hours=2))
    spent("25.00", team=vision, workspace=workspace)

    cost = workspace_cost(workspace=workspace, now=now)
    assert cost.hours == Decimal("10.0000")  # from the first applied run
    assert (cost.estimate.amount, cost.actual.amount, cost.error.amount) == (Decimal(20), Decimal(25), Decimal(5))
    assert cost.error_percent == Decimal("25.0")

    client.force_login(alice)
    page = client.get(f"/workspaces/{workspace.pk}/").content.decode()
    assert 'data-testid="estimate-vs-actual"' in page
    assert "2.00 USD / hour" in page
    assert "25.00 USD" in page  # actual to date
    assert "(25.0%)" in page


def test_a_workspace_never_applied_has_no_estimate_to_date(alice: Any, vision: Team) -> None:
    workspace = WorkspaceFactory(team=vision, created_by=alice, estimated_hourly_cost=Decimal("2.00"))
    cost = workspace_cost(workspace=workspace, now=timezone.now())
    assert (cost.hours, cost.estimate.amount, cost.error_percent) == (Decimal(0), Decimal(0), None)


def test_the_cluster_page_shows_estimate_from_running_time(client: Client, alice: Any, vision: Team) -> None:
    now = timezone.now()
    cluster = ClusterFactory(
        team=vision, owner=alice, hourly_price=Decimal("4.00"), state=ClusterState.RUNNING,
        running_seconds=3600, running_since=now - timedelta(hours=2),
    )  # fmt: skip
    spent("10.00", team=vision, cluster=cluster)

    cost = cluster_cost(cluster=cluster, now=now)
    assert cost.hours == Decimal("3.0000")
    assert (cost.estimate.amount, cost.actual.amount, cost.error.amount) == (Decimal(12), Decimal(10), Decimal(-2))

    client.force_login(alice)
    page = client.get(f"/clusters/{cluster.pk}/").content.decode()
    assert 'data-testid="actual-to-date"' in page
    assert "10.00 USD" in page
    assert "4.00 USD / hour" in page


def test_the_template_page_shows_the_median_actual_cost_per_launch(client: Client, alice: Any, vision: Team) -> None:
    version = TemplateVersionFactory(template__slug="typical")
    for amount in ("3.00", "5.00", "40.00"):
        spent(amount, team=vision, template=version.template, workspace=WorkspaceFactory(team=vision, created_by=alice))
    spent("99.00", team=vision, template=version.template)  # no workspace or cluster: not a launch

    typical = template_typical_cost(template=version.template)
    assert typical.median is not None
    assert typical.median.amount == Decimal(5)
    assert typical.launches == 3

    client.force_login(alice)
    page = client.get("/catalog/typical/").content.decode()
    assert 'data-testid="typical-cost-median">5.00 USD' in page


@pytest.mark.parametrize(("superuser", "offered"), [(False, False), (True, True)])
def test_the_cost_pages_offer_shared_costs_only_to_platform_admins(
    client: Client, vision: Team, superuser: bool, offered: bool
) -> None:
    client.force_login(member(vision, is_superuser=superuser))
    for url in ("/costs/", "/costs/budgets/", "/costs/waste/", "/costs/reconciliation/"):
        page = client.get(url)
        assert page.status_code == 200
        assert 'href="/costs/budgets/"' in page.content.decode()
        assert ('href="/costs/shared-rules/"' in page.content.decode()) is offered
