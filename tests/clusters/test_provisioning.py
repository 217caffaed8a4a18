"""Cluster provisioning services against a real moto server. Provisioning is called directly (no worker);
cloud errors are injected into a provider's own boto3 client with botocore's before-call hooks (see test_ec2)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.errors import NotAMember
from apps.audit.models import AuditEvent
from apps.clusters import selectors
from apps.clusters.cloud import CloudThrottled, Ec2Provider
from apps.clusters.errors import (
    ClusterNameTaken,
    InvalidClusterName,
    InvalidMaxHours,
    InvalidNodeCount,
    RegionNotOfferedForType,
    UnknownClusterInstanceType,
)
from apps.clusters.instance_catalog import price_for
from apps.clusters.models import Cluster, ClusterState, Node, NodeState
from apps.clusters.services import (
    provision_cluster,
    reconcile_clusters,
    request_cluster,
    start_cluster,
    stop_cluster,
    terminate_cluster,
)
from tests.clusters.test_ec2 import THROTTLED, aws_error, inject, refuse_spot
from tests.factories import ClusterFactory


@pytest.fixture
def aws(settings: Any, moto_endpoint: str) -> str:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    settings.AWS_REGION = "us-east-1"
    return moto_endpoint


@pytest.fixture
def provider(aws: str) -> Ec2Provider:
    """A provider on its own client, so a test can hook errors into it."""
    return Ec2Provider("us-east-1", endpoint_url=aws, base_delay=0.001, max_attempts=2, sleep=lambda _: None)


def request(actor: Any, team: Any, **overrides: Any) -> Cluster:
    fields: dict[str, Any] = {
        "name": "train",
        "region": "us-east-1",
        "instance_type": "g5.xlarge",
        "node_count": 2,
        "purchase_option": "on_demand",
    }
    return request_cluster(actor=actor, team=team, **{**fields, **overrides})


def instance_states(ec2_client: Any, instance_ids: list[str]) -> dict[str, str]:
    reservations = ec2_client.describe_instances(InstanceIds=instance_ids)["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def running_cluster(alice: Any, vision: Any, provider: Ec2Provider, **overrides: Any) -> Cluster:
    cluster = provision_cluster(cluster_pk=request(alice, vision, **overrides).pk, provider=provider)
    assert cluster.state == ClusterState.RUNNING
    return cluster


def test_request_and_provision_on_demand_gives_running_tagged_nodes(
    alice: Any, vision: Any, aws: str, ec2_client: Any
) -> None:
    cluster = request(alice, vision)
    assert cluster.state == ClusterState.REQUESTED
    assert cluster.hourly_price == 2 * price_for("g5.xlarge", "us-east-1", "on_demand")

    cluster = provision_cluster(cluster_pk=cluster.pk)  # provider built from settings (the moto endpoint)

    assert cluster.state == ClusterState.RUNNING
    assert cluster.running_since is not None
    assert cluster.purchase_option_used == "on_demand"
    nodes = list(cluster.nodes.all())
    assert len(nodes) == 2
    assert all(node.private_ip and node.state == NodeState.RUNNING and node.gpu_count == 1 for node in nodes)
    assert len({node.token_digest for node in nodes}) == 2
    reservations = ec2_client.describe_instances(InstanceIds=[n.instance_id for n in nodes])["Reservations"]
    for instance in (i for r in reservations for i in r["Instances"]):
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert tags["paved:cluster"] == str(cluster.pk)
        assert tags["paved:team"] == "vision"
        assert tags["paved:owner"] == "alice"
        assert instance["InstanceType"] == "g5.xlarge"
    verbs = list(AuditEvent.objects.filter(target_id=str(cluster.pk)).order_by("pk").values_list("verb", flat=True))
    assert verbs == ["cluster.requested", "cluster.provisioning", "cluster.nodes_launched", "cluster.running"]


def test_request_uses_settings_for_idle_and_quota_for_max_hours(alice: Any, vision: Any, settings: Any) -> None:
    settings.IDLE_THRESHOLD_PCT = 7.5
    settings.IDLE_WINDOW_MINUTES = 45
    settings.DEFAULT_MAX_CLUSTER_HOURS = 12

    cluster = request(alice, vision)

    assert (cluster.idle_threshold_pct, cluster.idle_window_minutes, cluster.max_hours) == (7.5, 45, 12)
    with pytest.raises(InvalidMaxHours, match="between 1 and 12"):
        request(alice, vision, name="longer", max_hours=13)


def test_spot_with_fallback_runs_on_demand_and_says_so(alice: Any, vision: Any, provider: Ec2Provider) -> None:
    inject(provider, "RunInstances", refuse_spot)

    cluster = running_cluster(alice, vision, provider, purchase_option="spot_with_fallback")

    assert cluster.purchase_option_used == "on_demand"
    assert "fell back to on-demand" in cluster.state_reason
    assert cluster.nodes.count() == 2


def test_plain_spot_without_capacity_fails_and_leaves_nothing(alice: Any, vision: Any, provider: Ec2Provider) -> None:
    inject(provider, "RunInstances", refuse_spot)

    cluster = provision_cluster(cluster_pk=request(alice, vision, purchase_option="spot").pk, provider=provider)

    assert cluster.state == ClusterState.FAILED
    assert "No spot capacity for 2 x g5.xlarge" in cluster.state_reason
    assert not cluster.nodes.exists()
    assert provider.find_tagged_instances() == []
    assert selectors.team_gpu_usage(vision) == 0


def test_throttling_is_raised_for_the_task_to_retry_and_fails_on_the_last_attempt(
    alice: Any, vision: Any, provider: Ec2Provider
) -> None:
    inject(provider, "RunInstances", lambda **kwargs: aws_error(*THROTTLED, status=503))
    cluster = request(alice, vision)

    with pytest.raises(CloudThrottled):
        provision_cluster(cluster_pk=cluster.pk, provider=provider, may_retry=True)
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.PROVISIONING

    cluster = provision_cluster(cluster_pk=cluster.pk, provider=provider, may_retry=False)
    assert cluster.state == ClusterState.FAILED
    assert "throttling" in cluster.state_reason


def test_provisioning_twice_launches_once(alice: Any, vision: Any, provider: Ec2Provider) -> None:
    cluster = running_cluster(alice, vision, provider)

    again = provision_cluster(cluster_pk=cluster.pk, provider=provider)

    assert again.state == ClusterState.RUNNING
    assert len(provider.find_tagged_instances(str(cluster.pk))) == 2


def test_stop_start_terminate_drive_the_instances(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = running_cluster(alice, vision, provider)
    Cluster.objects.filter(pk=cluster.pk).update(running_since=timezone.now() - timedelta(hours=1))
    ids = list(cluster.nodes.values_list("instance_id", flat=True))

    cluster = stop_cluster(actor=alice, cluster=cluster, reason="lunch", provider=provider)
    assert cluster.state == ClusterState.STOPPED
    assert cluster.running_since is None
    assert cluster.running_seconds >= 3600
    assert set(instance_states(ec2_client, ids).values()) == {"stopped"}
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.STOPPED}
    assert selectors.team_gpu_usage(vision) == 0

    cluster = start_cluster(actor=alice, cluster=cluster)
    assert cluster.state == ClusterState.PROVISIONING
    cluster = provision_cluster(cluster_pk=cluster.pk, provider=provider)
    assert cluster.state == ClusterState.RUNNING
    assert cluster.running_since is not None
    assert set(instance_states(ec2_client, ids).values()) == {"running"}
    assert cluster.nodes.count() == 2

    cluster = terminate_cluster(actor=alice, cluster=cluster, provider=provider)
    assert cluster.state == ClusterState.TERMINATED
    assert set(instance_states(ec2_client, ids).values()) == {"terminated"}
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.TERMINATED}
    verbs = set(AuditEvent.objects.filter(target_id=str(cluster.pk)).values_list("verb", flat=True))
    assert {"cluster.stopping", "cluster.stopped", "cluster.terminating", "cluster.terminated"} <= verbs


def test_stop_without_actor_is_the_system_stopping_an_idle_cluster(
    alice: Any, vision: Any, provider: Ec2Provider
) -> None:
    cluster = running_cluster(alice, vision, provider)

    cluster = stop_cluster(actor=None, cluster=cluster, reason="Idle for 30 minutes.", provider=provider)

    assert cluster.state == ClusterState.STOPPED
    assert cluster.state_reason == "Idle for 30 minutes."
    event = AuditEvent.objects.get(target_id=str(cluster.pk), verb="cluster.stopped")
    assert event.actor is None


def test_someone_outside_the_team_cannot_stop_a_cluster(
    alice: Any, bob: Any, vision: Any, provider: Ec2Provider
) -> None:
    cluster = running_cluster(alice, vision, provider)

    with pytest.raises(NotAMember):
        stop_cluster(actor=bob, cluster=cluster, provider=provider)
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.RUNNING


def test_terminating_a_requested_cluster_makes_provisioning_a_no_op(
    alice: Any, vision: Any, provider: Ec2Provider
) -> None:
    cluster = terminate_cluster(actor=alice, cluster=request(alice, vision), provider=provider)
    assert cluster.state == ClusterState.TERMINATED

    assert provision_cluster(cluster_pk=cluster.pk, provider=provider).state == ClusterState.TERMINATED
    assert provider.find_tagged_instances() == []


def test_reconcile_marks_nodes_terminated_outside_paved_missing_then_fails_the_cluster(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = running_cluster(alice, vision, provider)
    first, second = cluster.nodes.values_list("instance_id", flat=True)

    ec2_client.terminate_instances(InstanceIds=[first])
    report = reconcile_clusters(provider=provider)

    assert report.missing_nodes == [first]
    assert report.failed_clusters == []
    assert Node.objects.get(instance_id=first).state == NodeState.MISSING
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.RUNNING

    ec2_client.terminate_instances(InstanceIds=[second])
    report = reconcile_clusters(provider=provider)

    assert report.missing_nodes == [second]
    assert report.failed_clusters == [cluster.pk]
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.FAILED
    assert "terminated outside Paved" in cluster.state_reason
    assert cluster.running_since is None


def test_reconcile_follows_a_spot_interruption_that_stops_a_node_and_its_restart(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = running_cluster(alice, vision, provider, purchase_option="spot")
    first, second = cluster.nodes.values_list("instance_id", flat=True)

    ec2_client.stop_instances(InstanceIds=[first])  # what EC2 does to a persistent spot node it reclaims
    interrupted = reconcile_clusters(provider=provider)
    cluster.refresh_from_db()
    states_during = dict(cluster.nodes.values_list("instance_id", "state"))
    reason_during = cluster.state_reason
    ec2_client.start_instances(InstanceIds=[first])  # capacity is back: EC2 restarts it
    resumed = reconcile_clusters(provider=provider)
    again = reconcile_clusters(provider=provider)

    assert interrupted.interrupted_nodes == [first]
    assert states_during == {first: NodeState.STOPPED, second: NodeState.RUNNING}
    assert cluster.state == ClusterState.RUNNING
    assert "1 of 2 nodes stopped by EC2" in reason_during
    assert resumed.resumed_nodes == [first]
    assert (again.interrupted_nodes, again.resumed_nodes) == ([], [])
    cluster.refresh_from_db()
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.RUNNING}
    assert cluster.state_reason == "All nodes are running again."
    verbs = list(
        AuditEvent.objects.filter(verb__in=["cluster.nodes_interrupted", "cluster.nodes_resumed"]).values_list(
            "verb", flat=True
        )
    )
    assert sorted(verbs) == ["cluster.nodes_interrupted", "cluster.nodes_resumed"]


def test_reconcile_fails_a_stopped_cluster_whose_instances_are_gone(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = stop_cluster(actor=alice, cluster=running_cluster(alice, vision, provider), provider=provider)
    ec2_client.terminate_instances(InstanceIds=list(cluster.nodes.values_list("instance_id", flat=True)))

    report = reconcile_clusters(provider=provider)

    assert report.failed_clusters == [cluster.pk]
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.FAILED


def test_reconcile_reports_instances_of_unknown_clusters_as_orphans_without_terminating(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = running_cluster(alice, vision, provider)
    launched = ec2_client.run_instances(
        ImageId=provider.default_ami_id(),
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "paved:cluster", "Value": "999999"}]}],
    )
    orphan = launched["Instances"][0]["InstanceId"]

    report = reconcile_clusters(provider=provider)

    assert report.orphans == [orphan]
    assert report.missing_nodes == []
    assert instance_states(ec2_client, [orphan])[orphan] in {"pending", "running"}
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.RUNNING


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"instance_type": "g9.huge"}, UnknownClusterInstanceType, "Choose one of: g4dn.xlarge"),
        ({"instance_type": "g6.xlarge", "region": "eu-west-1"}, RegionNotOfferedForType, "offered in: us-east-1"),
        ({"node_count": 17}, InvalidNodeCount, "1 to 16 nodes"),
        ({"node_count": 0}, InvalidNodeCount, "1 to 16 nodes"),
        ({"name": "Not A Slug"}, InvalidClusterName, "A cluster name is 3-40 lowercase letters"),
    ],
)
def test_invalid_requests_say_what_is_wrong_and_create_nothing(
    alice: Any, vision: Any, overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        request(alice, vision, **overrides)

    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.filter(verb="cluster.requested").exists()


def test_error_codes_are_stable() -> None:
    assert UnknownClusterInstanceType.code == "unknown_instance_type"
    assert RegionNotOfferedForType.code == "region_not_offered"
    assert InvalidNodeCount.code == "invalid_node_count"


def test_cluster_names_are_unique_per_team(alice: Any, vision: Any, bob: Any, nlp: Any) -> None:
    request(alice, vision)

    with pytest.raises(ClusterNameTaken):
        request(alice, vision)
    assert request(bob, nlp).name == "train"


def test_only_members_may_request_for_a_team(bob: Any, vision: Any) -> None:
    with pytest.raises(NotAMember):
        request(bob, vision)
    assert not Cluster.objects.exists()


def test_clusters_for_is_team_scoped(alice: Any, bob: Any, vision: Any, nlp: Any) -> None:
    mine = ClusterFactory(team=vision)
    theirs = ClusterFactory(team=nlp)

    assert list(selectors.clusters_for(alice)) == [mine]
    assert selectors.cluster_for(alice, theirs.pk) is None
    assert selectors.cluster_for(bob, theirs.pk) == theirs


def test_running_cost_adds_the_current_run_to_earlier_ones(vision: Any) -> None:
    now = timezone.now()
    cluster = ClusterFactory(
        team=vision, hourly_price=Decimal("2.0120"), running_seconds=1800, running_since=now - timedelta(hours=1)
    )

    assert selectors.running_cost(cluster, now=now) == Decimal("3.02")
    cluster.running_since = None
    assert selectors.running_cost(cluster, now=now) == Decimal("1.01")


def test_provision_task_calls_the_service(alice: Any, vision: Any, aws: str) -> None:
    from apps.clusters import tasks

    cluster = request(alice, vision, node_count=1)

    tasks.provision_cluster.apply(args=[cluster.pk]).get()

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.RUNNING
