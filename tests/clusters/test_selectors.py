"""Cluster reads that pages and the API build on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.clusters import selectors
from apps.clusters.models import ClusterState, GpuSample, Node
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db


def test_gpu_minutes_averages_each_minute_of_each_gpu(vision: Any) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING, gpus_per_node=2)
    node: Node = NodeFactory(cluster=cluster, gpu_count=2, instance_id="i-0bbbbbbbbbbbbbbb1")
    minute = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    for second in range(0, 60, 10):  # six samples in one minute, then one in the next
        for gpu in (0, 1):
            GpuSample.objects.create(node=node, gpu_index=gpu, sampled_at=minute + timedelta(seconds=second),
                                     utilization_pct=second + gpu, memory_used_mib=100.0 * (gpu + 1),
                                     memory_total_mib=1000.0)  # fmt: skip
    GpuSample.objects.create(node=node, gpu_index=0, sampled_at=minute + timedelta(seconds=65), utilization_pct=90.0,
                             memory_used_mib=500.0, memory_total_mib=1000.0)  # fmt: skip
    GpuSample.objects.create(node=node, gpu_index=0, sampled_at=minute - timedelta(hours=2), utilization_pct=1.0,
                             memory_used_mib=1.0, memory_total_mib=1000.0)  # fmt: skip

    series = selectors.gpu_minutes(cluster, since=minute - timedelta(minutes=1))

    assert list(series) == [(node.instance_id, 0), (node.instance_id, 1)]
    gpu0, gpu1 = series[(node.instance_id, 0)], series[(node.instance_id, 1)]
    assert [(p.minute, p.utilization_pct, p.memory_used_pct) for p in gpu0] == [
        (minute, 25.0, 10.0),  # (0 + 10 + ... + 50) / 6
        (minute + timedelta(minutes=1), 90.0, 50.0),
    ]
    assert [(p.utilization_pct, p.memory_used_pct) for p in gpu1] == [(26.0, 20.0)]
