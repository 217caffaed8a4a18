"""Max hours per cluster: the beat terminates clusters whose running time is used up (real moto server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.clusters import selectors
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services import provision_cluster, request_cluster, stop_cluster
from apps.clusters.services.limits import terminate_clusters_over_max_hours
from apps.clusters.tasks import enforce_cluster_max_hours

pytestmark = pytest.mark.django_db


@pytest.fixture
def aws(settings: Any, moto_endpoint: str) -> str:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    return moto_endpoint


def running(alice: Any, vision: Any, name: str, max_hours: int, ran_hours: float) -> Cluster:
    cluster = request_cluster(actor=alice, team=vision, name=name, region="us-east-1", instance_type="g5.xlarge",
                              node_count=1, purchase_option="on_demand", max_hours=max_hours)  # fmt: skip
    provision_cluster(cluster_pk=cluster.pk)
    # The cluster has been running for `ran_hours`: move its clock back instead of waiting.
    Cluster.objects.filter(pk=cluster.pk).update(running_since=timezone.now() - timedelta(hours=ran_hours))
    cluster.refresh_from_db()
    return cluster


def instance_state(ec2_client: Any, cluster: Cluster) -> str:
    node = cluster.nodes.get()
    reservations = ec2_client.describe_instances(InstanceIds=[node.instance_id])["Reservations"]
    return str(reservations[0]["Instances"][0]["State"]["Name"])


def test_a_cluster_over_its_max_hours_is_terminated_and_one_under_is_left(
    alice: Any, vision: Any, aws: str, ec2_client: Any
) -> None:
    over = running(alice, vision, "over", max_hours=8, ran_hours=8.01)
    under = running(alice, vision, "under", max_hours=8, ran_hours=7.5)

    report = terminate_clusters_over_max_hours()

    over.refresh_from_db()
    under.refresh_from_db()
    assert report.terminated == [over.pk]
    assert over.state == ClusterState.TERMINATED
    assert "maximum of 8 running hours" in over.state_reason
    assert instance_state(ec2_client, over) == "terminated"
    assert under.state == ClusterState.RUNNING
    assert instance_state(ec2_client, under) == "running"
    assert selectors.seconds_left(under) == pytest.approx(1800, abs=30)
    terminated = AuditEvent.objects.get(verb="cluster.terminated")
    assert terminated.actor is None  # the system, not a person
    assert "maximum of 8 running hours" in terminated.data["reason"]


def test_stopped_time_does_not_count(alice: Any, vision: Any, aws: str) -> None:
    cluster = running(alice, vision, "paused", max_hours=2, ran_hours=1)
    stop_cluster(actor=alice, cluster=cluster)
    cluster.refresh_from_db()

    enforce_cluster_max_hours.apply()  # the beat task, run in-process

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.STOPPED
    assert selectors.seconds_left(cluster) == pytest.approx(3600, abs=30)
