"""Reconcile sends provisioning again for a cluster no worker picked up, and the real worker provisions it in the
sandbox cloud (the session's moto server)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services.provisioning import redispatch_stuck_clusters
from tests.factories import ClusterFactory
from tests.waiting import wait_cluster_state


@pytest.mark.django_db(transaction=True)
def test_a_request_the_broker_lost_is_sent_again_and_provisioned(
    celery_worker: Any, moto_endpoint: str, vision: Any, alice: Any, ec2_client: Any
) -> None:
    # A request recorded while the broker was down: `requested`, and nothing was queued for it.
    lost = ClusterFactory(team=vision, owner=alice, state=ClusterState.REQUESTED, name="lost")
    fresh = ClusterFactory(team=vision, owner=alice, state=ClusterState.REQUESTED, name="fresh")
    Cluster.objects.filter(pk=lost.pk).update(updated_at=timezone.now() - timedelta(minutes=3))
    Cluster.objects.filter(pk=fresh.pk).update(state=ClusterState.TERMINATED)  # not stuck: it is done

    sent = redispatch_stuck_clusters()

    assert sent == [lost.pk]
    running = wait_cluster_state(lost, ClusterState.RUNNING)
    node = running.nodes.get()
    described = ec2_client.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0]["Instances"][0]
    assert described["State"]["Name"] == "running"
    assert redispatch_stuck_clusters() == []
