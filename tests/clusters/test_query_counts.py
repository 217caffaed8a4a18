"""The cluster page (the load test's slowest page) reads a fixed number of queries however many nodes and GPUs
report; its "GPUs now" table keeps each GPU's newest sample, now chosen by the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters import selectors
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node, NodeState
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db

GPUS = 2


def add_nodes(cluster: Cluster, count: int, minutes: int = 5) -> list[Node]:
    """Nodes with `minutes` of 10 s samples of each GPU, as the agent sends them."""
    now = timezone.now()
    nodes = []
    for _ in range(count):
        node: Node = NodeFactory(cluster=cluster, gpu_count=GPUS, state=NodeState.RUNNING, last_sample_at=now)
        GpuSample.objects.bulk_create(
            GpuSample(node=node, gpu_index=gpu, sampled_at=now - timedelta(seconds=10 * step),
                      utilization_pct=50.0 + step, memory_used_mib=1000.0, memory_total_mib=24576.0)
            for step in range(minutes * 6)
            for gpu in range(GPUS)
        )  # fmt: skip
        nodes.append(node)
    return nodes


def page_queries(client: Client, cluster: Cluster) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/clusters/{cluster.pk}/")
    assert response.status_code == 200
    return len(queries)


def test_cluster_page_queries_do_not_grow_with_the_nodes(
    client: Client, alice: Any, vision: Team, django_assert_max_num_queries: Any
) -> None:
    client.force_login(alice)
    cluster = ClusterFactory(
        team=vision, owner=alice, state=ClusterState.RUNNING, gpus_per_node=GPUS,
        running_since=timezone.now() - timedelta(hours=1), hourly_price="2.0000", max_hours=24,
    )  # fmt: skip
    add_nodes(cluster, 1)
    one = page_queries(client, cluster)
    add_nodes(cluster, 9)

    with django_assert_max_num_queries(one):
        response = client.get(f"/clusters/{cluster.pk}/")

    assert len(response.context["nodes"]) == 10
    assert len(response.context["latest"]) == 10 * GPUS
    assert len(response.context["sparklines"]) == 10 * GPUS


def test_latest_samples_are_each_gpus_newest_and_skip_a_silent_gpu(vision: Team) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING, gpus_per_node=GPUS)
    (node,) = add_nodes(cluster, 1)
    now = node.last_sample_at
    assert now is not None
    silent: Node = NodeFactory(cluster=cluster, gpu_count=GPUS, last_sample_at=now)
    GpuSample.objects.create(node=silent, gpu_index=0, sampled_at=now, utilization_pct=7.0, memory_used_mib=1.0,
                             memory_total_mib=2.0)  # fmt: skip
    GpuSample.objects.create(node=silent, gpu_index=1, sampled_at=now - timedelta(minutes=3), utilization_pct=9.0,
                             memory_used_mib=1.0, memory_total_mib=2.0)  # fmt: skip

    latest = selectors.latest_gpu_samples([cluster.pk])

    assert [(s.node_id, s.gpu_index, s.sampled_at, s.utilization_pct) for s in latest] == [
        (node.pk, 0, now, 50.0),
        (node.pk, 1, now, 50.0),
        (silent.pk, 0, now, 7.0),  # its GPU 1 last reported three minutes before the node's newest sample: dropped
    ]
