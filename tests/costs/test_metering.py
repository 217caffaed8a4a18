"""Metering: clusters' running and stopped time from their audited transitions, workspaces' live time from their
runs, priced hour by hour, idempotent on re-run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.models import Cluster, ClusterState
from apps.costs import tasks
from apps.costs.models import CostDaily, CostLineItem, CostSource
from apps.costs.sources.metering import NotHourAligned, meter, meter_recent
from apps.runs.models import RunKind, RunState, Workspace, WorkspaceStatus
from tests.factories import AuditEventFactory, ClusterFactory, RunFactory, WorkspaceFactory
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
# 2 nodes x 365 GB x 0.08 / 730 h = 0.08 per hour of stopped storage.
STORAGE = {"METERING_EBS_GB_PER_NODE": 365, "METERING_EBS_PRICE_PER_GB_MONTH": "0.08"}


def transitions(cluster: Cluster, *moves: tuple[str, datetime]) -> None:
    """The audit trail `cluster_transition` writes, at chosen times."""
    for state, at in moves:
        AuditEventFactory(
            team=cluster.team,
            verb=f"cluster.{state}",
            target_type="clusters.cluster",
            target_id=str(cluster.pk),
            target_label=str(cluster),
            created_at=at,
        )


def lines(**filters: Any) -> dict[str, Decimal]:
    rows = CostLineItem.objects.filter(source=CostSource.METERING, **filters).order_by("usage_start", "line_id")
    return {row.line_id: row.net_cost for row in rows}


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.fixture
def restarted(vision: Team) -> Cluster:
    """Ran 2.5 hours, stopped for 3 (storage only), ran again until 17:00."""
    cluster = ClusterFactory(team=vision, node_count=2, gpus_per_node=1, hourly_price=Decimal("2.00"))
    transitions(
        cluster,
        ("requested", h(-0.5)),
        ("provisioning", h(-0.4)),
        ("running", h(0)),
        ("stopping", h(2.5)),
        ("stopped", h(2.5)),
        ("provisioning", h(5.5)),
        ("running", h(5.5)),
        ("stopping", h(7)),
        ("stopped", h(7)),
        ("terminating", h(7)),
        ("terminated", h(7)),
    )
    return cluster


@override_settings(**STORAGE)
def test_a_cluster_that_ran_stopped_and_ran_again_pays_compute_then_storage_then_compute(restarted: Cluster) -> None:
    result = meter(start=T0, end=h(8), now=h(24))

    pk = restarted.pk
    assert lines() == {
        f"cluster:{pk}:2026-11-03T10:00:00+00:00:compute": Decimal("2.0000000000"),
        f"cluster:{pk}:2026-11-03T11:00:00+00:00:compute": Decimal("2.0000000000"),
        f"cluster:{pk}:2026-11-03T12:00:00+00:00:compute": Decimal("1.0000000000"),
        f"cluster:{pk}:2026-11-03T12:00:00+00:00:storage": Decimal("0.0400000000"),
        f"cluster:{pk}:2026-11-03T13:00:00+00:00:storage": Decimal("0.0800000000"),
        f"cluster:{pk}:2026-11-03T14:00:00+00:00:storage": Decimal("0.0800000000"),
        f"cluster:{pk}:2026-11-03T15:00:00+00:00:compute": Decimal("1.0000000000"),
        f"cluster:{pk}:2026-11-03T15:00:00+00:00:storage": Decimal("0.0400000000"),
        f"cluster:{pk}:2026-11-03T16:00:00+00:00:compute": Decimal("2.0000000000"),
    }
    assert result.total == Decimal("8.24")
    line = CostLineItem.objects.get(line_id=f"cluster:{pk}:2026-11-03T10:00:00+00:00:compute")
    assert (line.team_id, line.cluster_id, line.user_id, line.instance_type) == (
        restarted.team_id,
        pk,
        restarted.owner_id,
        "g5.xlarge",
    )
    assert line.tags["paved:team"] == "vision"
    assert line.tags["paved:cluster"] == str(pk)
    daily = CostDaily.objects.get(source=CostSource.METERING, day=date(2026, 11, 3), cluster=restarted)
    assert daily.net_cost == Decimal("8.24")


@override_settings(**STORAGE)
def test_re_metering_an_hour_replaces_its_lines(restarted: Cluster) -> None:
    meter(start=T0, end=h(8), now=h(24))
    meter(start=h(2), end=h(4), now=h(24))
    meter(start=T0, end=h(8), now=h(24))

    assert CostLineItem.objects.filter(source=CostSource.METERING).count() == 9
    assert sum(lines().values()) == Decimal("8.24")
    assert CostDaily.objects.get(source=CostSource.METERING, day=date(2026, 11, 3)).net_cost == Decimal("8.24")


def test_time_after_now_is_not_metered_yet(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, hourly_price=Decimal("3.00"))
    transitions(cluster, ("running", h(0)))

    meter(start=T0, end=h(3), now=h(1.5))

    assert sum(lines().values()) == Decimal("4.5")
    meter(start=T0, end=h(3), now=h(3))
    assert sum(lines().values()) == Decimal("9")


def test_a_workspace_live_across_midnight_is_split_by_day(vision: Team, alice: Any) -> None:
    workspace: Workspace = WorkspaceFactory(
        team=vision, created_by=alice, estimated_hourly_cost=Decimal("1.50"), status=WorkspaceStatus.DESTROYED
    )
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.APPLIED, finished_at=h(12))  # 22:00
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.APPLIED, finished_at=h(13))  # a re-apply
    RunFactory(workspace=workspace, kind=RunKind.DESTROY, state=RunState.FAILED, finished_at=h(14))
    RunFactory(workspace=workspace, kind=RunKind.DESTROY, state=RunState.APPLIED, finished_at=h(15.5))  # 01:30

    meter(start=h(10), end=h(18), now=h(30))

    days = {
        row.day: row.net_cost
        for row in CostDaily.objects.filter(source=CostSource.METERING, workspace=workspace).order_by("day")
    }
    assert days == {date(2026, 11, 3): Decimal("3.0000000000"), date(2026, 11, 4): Decimal("2.2500000000")}
    line = CostLineItem.objects.get(line_id=f"workspace:{workspace.pk}:2026-11-04T01:00:00+00:00:live")
    assert line.net_cost == Decimal("0.75")
    assert (line.team_id, line.user_id, line.template_id) == (
        vision.pk,
        alice.pk,
        workspace.template_version.template_id,
    )
    assert line.tags["paved:workspace"] == workspace.name


def test_a_workspace_never_applied_costs_nothing(vision: Team) -> None:
    workspace = WorkspaceFactory(team=vision, estimated_hourly_cost=Decimal("1.50"))
    RunFactory(workspace=workspace, kind=RunKind.APPLY, state=RunState.FAILED, finished_at=h(1))

    assert meter(start=T0, end=h(5), now=h(5)).lines == 0


def test_meter_refuses_hours_that_are_not_aligned() -> None:
    with pytest.raises(NotHourAligned):
        meter(start=T0 + timedelta(minutes=5), end=h(2), now=h(3))


def test_the_beat_catches_up_from_the_last_metered_hour_within_its_bound(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, hourly_price=Decimal("1.00"))
    transitions(cluster, ("running", h(-100)))

    with override_settings(METERING_MAX_CATCHUP_HOURS=5):
        first = meter_recent(now=h(0.5))
        assert (first.start, first.end) == (h(-5), h(1))
        second = meter_recent(now=h(3.25))

    assert second.start == T0
    assert sum(lines().values()) == Decimal("8.25")  # 10:00 back 5 hours, then to 13:15


def test_the_command_meters_a_range(restarted: Cluster) -> None:
    call_command("meter_costs", "--since", "2026-11-03T10:00", "--until", "2026-11-03T12:00")

    assert sum(lines().values()) == Decimal("4")


@pytest.mark.django_db(transaction=True)
def test_the_hourly_task_meters_in_the_real_worker(celery_worker: Any, vision: Team) -> None:
    now = timezone.now()
    cluster: Cluster = ClusterFactory(team=vision, hourly_price=Decimal("2.50"), state=ClusterState.RUNNING)
    transitions(cluster, ("running", now - timedelta(hours=2)))
    last_full_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    line_id = f"cluster:{cluster.pk}:{last_full_hour.isoformat()}:compute"

    tasks.meter_costs.delay()

    wait_for(lambda: CostLineItem.objects.filter(line_id=line_id).exists(), timeout=60, message="the metering task")
    assert CostLineItem.objects.get(line_id=line_id).net_cost == Decimal("2.5")
    assert CostDaily.objects.filter(source=CostSource.METERING, cluster=cluster).exists()
