"""GPU quotas: usage, the request check, per-type limits, and the platform admins' levers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.errors import NotAPlatformAdmin
from apps.audit.models import AuditEvent
from apps.clusters import selectors
from apps.clusters.errors import InstanceTypeLimitExceeded, InvalidQuota, QuotaExceeded
from apps.clusters.models import Cluster, ClusterState, InstanceTypeLimit, QuotaException, TeamQuota
from apps.clusters.services import (
    check_cluster_request,
    grant_quota_exception,
    request_cluster,
    set_team_quota,
    start_cluster,
)
from tests.factories import ClusterFactory, UserFactory


@pytest.fixture
def admin(db: None) -> Any:
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def request(actor: Any, team: Any, **overrides: Any) -> Cluster:
    fields: dict[str, Any] = {
        "name": "train",
        "region": "us-east-1",
        "instance_type": "g5.xlarge",
        "node_count": 2,
        "purchase_option": "on_demand",
    }
    return request_cluster(actor=actor, team=team, **{**fields, **overrides})


def test_usage_counts_clusters_holding_gpus_not_stopped_or_finished_ones(vision: Any) -> None:
    for state, nodes in [
        (ClusterState.REQUESTED, 1),
        (ClusterState.PROVISIONING, 2),
        (ClusterState.RUNNING, 3),
        (ClusterState.STOPPING, 1),
        (ClusterState.STOPPED, 10),
        (ClusterState.TERMINATED, 10),
        (ClusterState.FAILED, 10),
    ]:
        ClusterFactory(team=vision, state=state, node_count=nodes, gpus_per_node=4)

    assert selectors.team_gpu_usage(vision) == (1 + 2 + 3 + 1) * 4


def test_effective_quota_defaults_to_settings_and_follows_the_team_quota(vision: Any, settings: Any) -> None:
    settings.DEFAULT_GPU_QUOTA = 8
    settings.DEFAULT_MAX_CLUSTER_HOURS = 24
    assert selectors.effective_quota(vision) == selectors.Quota(8, 24, None, 0)

    TeamQuota.objects.create(team=vision, max_gpus=32, max_cluster_hours=96)
    assert selectors.effective_quota(vision) == selectors.Quota(32, 96, None, 0)


def test_request_over_quota_says_requested_and_remaining(alice: Any, vision: Any, settings: Any) -> None:
    settings.DEFAULT_GPU_QUOTA = 4
    ClusterFactory(team=vision, state=ClusterState.RUNNING, node_count=3, gpus_per_node=1)

    with pytest.raises(QuotaExceeded, match="needs 2 GPUs but team vision has only 1") as excinfo:
        request(alice, vision)

    assert excinfo.value.code == "quota_exceeded"
    assert excinfo.value.extra == {"remaining_gpus": 1, "requested_gpus": 2}
    assert not Cluster.objects.filter(name="train").exists()


def test_instance_type_limit_caps_nodes_of_that_type(alice: Any, vision: Any) -> None:
    InstanceTypeLimit.objects.create(team=vision, instance_type="g5.xlarge", max_nodes=3)
    ClusterFactory(team=vision, state=ClusterState.RUNNING, instance_type="g5.xlarge", node_count=2)

    with pytest.raises(InstanceTypeLimitExceeded, match=r"at most 3 g5\.xlarge nodes and already has 2") as excinfo:
        request(alice, vision)

    assert excinfo.value.code == "instance_type_limit_exceeded"
    assert request(alice, vision, instance_type="g4dn.xlarge").state == ClusterState.REQUESTED


def test_quota_exception_raises_the_limit_until_it_expires(admin: Any, vision: Any, settings: Any) -> None:
    settings.DEFAULT_GPU_QUOTA = 2
    with pytest.raises(QuotaExceeded):
        check_cluster_request(team=vision, instance_type="g5.xlarge", node_count=4, gpus_per_node=1)

    exception = grant_quota_exception(actor=admin, team=vision, extra_gpus=2, reason="NeurIPS deadline", hours=48)

    check_cluster_request(team=vision, instance_type="g5.xlarge", node_count=4, gpus_per_node=1)
    quota = selectors.effective_quota(vision)
    assert (quota.max_gpus, quota.extra_gpus, quota.extra_gpus_until) == (4, 2, exception.expires_at)

    QuotaException.objects.filter(pk=exception.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(QuotaExceeded):
        check_cluster_request(team=vision, instance_type="g5.xlarge", node_count=4, gpus_per_node=1)
    assert selectors.remaining_gpus(vision) == 2


def test_starting_a_stopped_cluster_checks_quota_again(alice: Any, vision: Any, settings: Any) -> None:
    settings.DEFAULT_GPU_QUOTA = 2
    stopped = ClusterFactory(team=vision, owner=alice, state=ClusterState.STOPPED, node_count=2)
    ClusterFactory(team=vision, state=ClusterState.RUNNING, node_count=1)

    with pytest.raises(QuotaExceeded):
        start_cluster(actor=alice, cluster=stopped)
    stopped.refresh_from_db()
    assert stopped.state == ClusterState.STOPPED


def test_only_platform_admins_set_quotas_or_grant_exceptions(alice: Any, mark: Any, vision: Any) -> None:
    with pytest.raises(NotAPlatformAdmin):
        set_team_quota(actor=mark, team=vision, max_gpus=64, max_cluster_hours=72)
    with pytest.raises(NotAPlatformAdmin):
        grant_quota_exception(actor=alice, team=vision, extra_gpus=8, reason="please", hours=24)

    assert not TeamQuota.objects.exists()
    assert not QuotaException.objects.exists()


def test_setting_a_quota_is_audited(admin: Any, vision: Any) -> None:
    set_team_quota(actor=admin, team=vision, max_gpus=64, max_cluster_hours=72)
    set_team_quota(actor=admin, team=vision, max_gpus=32, max_cluster_hours=48)

    assert selectors.effective_quota(vision).max_gpus == 32
    events = list(AuditEvent.objects.filter(verb="quota.set").order_by("pk"))
    assert [e.data["max_gpus"] for e in events] == [64, 32]
    assert events[-1].data["previous"] == {
        "max_gpus": 64,
        "max_cluster_hours": 72,
        "idle_window_minutes": None,
        "idle_threshold_pct": None,
    }
    assert events[-1].actor == admin


@pytest.mark.parametrize(
    ("extra_gpus", "reason", "hours"),
    [(4, "deadline", 30 * 24 + 1), (4, "deadline", 0), (0, "deadline", 24), (4, "  ", 24)],
)
def test_quota_exceptions_are_time_boxed_and_justified(
    admin: Any, vision: Any, extra_gpus: int, reason: str, hours: int
) -> None:
    with pytest.raises(InvalidQuota):
        grant_quota_exception(actor=admin, team=vision, extra_gpus=extra_gpus, reason=reason, hours=hours)
    assert not QuotaException.objects.exists()


def test_granting_an_exception_is_audited(admin: Any, vision: Any) -> None:
    exception = grant_quota_exception(actor=admin, team=vision, extra_gpus=8, reason="ICML camera-ready", hours=30 * 24)

    event = AuditEvent.objects.get(verb="quota.exception_granted")
    assert event.team == vision
    assert event.data["extra_gpus"] == 8
    assert event.data["reason"] == "ICML camera-ready"
    assert exception.granted_by == admin
