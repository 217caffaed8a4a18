"""Waste in money from real telemetry rows: idle GPU cost, right-sizing and idle-policy suggestions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.instance_catalog import price_for
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node
from apps.clusters.services.rollups import rollup_telemetry
from apps.costs.selectors import idle_gpu_costs, idle_policy_suggestions, rightsizing_recommendations
from tests.factories import ClusterFactory, NodeFactory, gpu_rollups

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def samples(node: Node, gpu: int, start: datetime, minutes: int, utilization: float) -> None:
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


def test_idle_gpu_cost_counts_idle_gpu_hours_at_the_price_per_gpu(vision: Team, nlp: Team) -> None:
    cluster = ClusterFactory(team=vision, node_count=1, gpus_per_node=2, hourly_price=Decimal("4.00"))
    node = NodeFactory(cluster=cluster, gpu_count=2)
    samples(node, 0, T0, 120, 1.0)  # idle for two hours
    samples(node, 1, T0, 60, 80.0)  # busy, then idle for an hour
    samples(node, 1, T0 + timedelta(hours=1), 60, 2.0)
    report = rollup_telemetry(now=T0 + timedelta(hours=26))  # folds the first two hours into 5-minute rollups
    assert report.folded_samples == 240
    samples(node, 0, T0 + timedelta(hours=2), 60, 0.0)  # a third hour still raw: both GPUs idle
    samples(node, 1, T0 + timedelta(hours=2), 60, 0.0)
    ClusterFactory(team=nlp, hourly_price=Decimal("9"))  # no telemetry: no waste

    [cost] = idle_gpu_costs(team_ids=[vision.pk, nlp.pk], start=T0, end=T0 + timedelta(hours=3))

    assert (cost.team_slug, cost.cluster_id) == ("vision", cluster.pk)
    assert cost.gpu_hourly_price == Decimal("2")
    assert cost.gpu_hours == Decimal(6)
    assert cost.idle_gpu_hours == Decimal(5)
    assert (cost.idle_cost, cost.currency) == (Decimal("10.0000"), "USD")
    assert idle_gpu_costs(team_ids=[nlp.pk], start=T0, end=T0 + timedelta(hours=3)) == []


def test_a_threshold_is_the_clusters_own(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, hourly_price=Decimal("1.00"), idle_threshold_pct=1.0)
    gpu_rollups(NodeFactory(cluster=cluster), 0, T0, 12, 1.0)  # max 2 %: idle under 5 %, not under 1 %

    assert idle_gpu_costs(team_ids=[vision.pk], start=T0, end=T0 + timedelta(hours=1)) == []


def big_cluster(team: Team, utilization: float) -> Cluster:
    cluster = ClusterFactory(
        team=team,
        instance_type="g5.12xlarge",
        node_count=1,
        gpus_per_node=4,
        hourly_price=price_for("g5.12xlarge", "us-east-1"),
        state=ClusterState.RUNNING,
    )
    node = NodeFactory(cluster=cluster, gpu_count=4)
    for gpu in range(4):
        gpu_rollups(node, gpu, T0 - timedelta(hours=24), 24, utilization, seconds=3600)
    return cluster


def test_a_cluster_averaging_low_gets_the_cheapest_type_that_fits_with_the_monthly_saving(vision: Team) -> None:
    cluster = big_cluster(vision, utilization=10.0)
    big_cluster(vision, utilization=70.0)  # busy: no recommendation

    [recommendation] = rightsizing_recommendations(team_ids=[vision.pk], now=T0)

    assert recommendation.cluster_id == cluster.pk
    assert recommendation.average_utilization_pct == 10.0
    # One GPU carries 4 x 10 % at 60 %; 8000 MiB peak fits a T4's 16 GiB; the cheapest such type in us-east-1.
    assert recommendation.suggested_type == "g4dn.xlarge"
    assert recommendation.suggested_hourly == Decimal("0.526")
    expected = ((price_for("g5.12xlarge", "us-east-1") - Decimal("0.526")) * 730).quantize(Decimal("0.01"))
    assert recommendation.monthly_saving == expected
    assert recommendation.monthly_saving > 0


def test_a_shorter_window_and_higher_threshold_are_suggested_with_what_they_would_have_saved(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, hourly_price=Decimal("3.00"), idle_window_minutes=30, idle_threshold_pct=5.0)
    node = NodeFactory(cluster=cluster)
    gpu_rollups(node, 0, T0, 12, 50.0)  # busy for an hour
    gpu_rollups(node, 0, T0 + timedelta(minutes=60), 6, 4.0)  # 30 minutes at max 8 %: idle only under 10 %
    gpu_rollups(node, 0, T0 + timedelta(minutes=90), 24, 1.0)  # 2 hours idle at max 2 %
    gpu_rollups(node, 0, T0 + timedelta(minutes=210), 12, 50.0)

    [suggestion] = idle_policy_suggestions(team_ids=[vision.pk], now=T0 + timedelta(hours=6))

    # Now (30 min, 5 %) cuts 120 - 30 = 90 min; (15 min, 10 %) cuts 150 - 15 = 135: 45 more minutes at 3.00/h.
    assert (suggestion.window_minutes, suggestion.threshold_pct) == (15, 10.0)
    assert suggestion.idle_hours_cut == Decimal("0.75")
    assert (suggestion.saving, suggestion.currency) == (Decimal("2.25"), "USD")


def test_a_cluster_that_never_idles_gets_no_policy_suggestion(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, hourly_price=Decimal("3.00"))
    gpu_rollups(NodeFactory(cluster=cluster), 0, T0, 48, 60.0)

    assert idle_policy_suggestions(team_ids=[vision.pk], now=T0 + timedelta(hours=6)) == []


def test_the_waste_page_shows_the_callers_teams_only(client: Any, vision: Team, nlp: Team, alice: Any) -> None:
    now = timezone.now()
    mine = ClusterFactory(team=vision, hourly_price=Decimal("2.00"))
    theirs = ClusterFactory(team=nlp, hourly_price=Decimal("2.00"))
    for cluster in (mine, theirs):
        gpu_rollups(NodeFactory(cluster=cluster), 0, now - timedelta(hours=2), 12, 1.0)
    client.force_login(alice)

    page = client.get(reverse("costs:waste")).content.decode()

    assert f"idle-{mine.pk}" in page
    assert f"idle-{theirs.pk}" not in page
