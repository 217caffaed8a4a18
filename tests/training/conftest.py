from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from apps.accounts.models import Team
from apps.clusters.models import Cluster, ClusterState, TeamQuota
from tests.factories import ClusterFactory


@pytest.fixture
def t0() -> datetime:
    return datetime.fromisoformat("2025-03-03T09:00:00+00:00")


@pytest.fixture
def gpu_box(vision: Team, alice: Any) -> Cluster:
    """A running 2 x 4-GPU cluster of team vision."""
    return ClusterFactory(
        team=vision, owner=alice, name="gpu-box", state=ClusterState.RUNNING, node_count=2, gpus_per_node=4
    )


@pytest.fixture
def quota_of(vision: Team) -> Any:
    def set_quota(max_gpus: int) -> TeamQuota:
        return TeamQuota.objects.update_or_create(
            team=vision, defaults={"max_gpus": max_gpus, "max_cluster_hours": 72}
        )[0]

    return set_quota
