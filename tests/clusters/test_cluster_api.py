"""The people's side of /api/v1/clusters/: request, act, nodes and telemetry, against a real moto server (the
provisioning task is run in-process where a worker would run it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node, TeamQuota
from apps.clusters.services import provision_cluster
from tests.factories import ClusterFactory, NodeFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/"
REQUEST = {"team": "vision", "name": "train", "instance_type": "g5.xlarge", "node_count": 2, "purchase_option": "spot"}


@pytest.fixture
def aws(settings: Any, moto_endpoint: str) -> str:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    return moto_endpoint


def as_user(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_request_through_the_api_then_stop_start_extend_and_terminate(alice: Any, aws: str, ec2_client: Any) -> None:
    client = as_user(alice)

    created = client.post(URL, {**REQUEST, "max_hours": 8}, format="json")
    assert created.status_code == 201, created.json()
    cluster_id = created.json()["id"]
    assert created.json()["state"] == "requested"
    provision_cluster(cluster_pk=cluster_id)  # what the worker does on commit
    running = client.get(f"{URL}{cluster_id}/").json()
    nodes = client.get(f"{URL}{cluster_id}/nodes/").json()
    stopped = client.post(f"{URL}{cluster_id}/stop/")
    extended = client.post(f"{URL}{cluster_id}/extend/", {"hours": 4}, format="json")
    started = client.post(f"{URL}{cluster_id}/start/")
    refused = client.post(f"{URL}{cluster_id}/terminate/", {"confirm": "nope"}, format="json")
    provision_cluster(cluster_pk=cluster_id)
    terminated = client.post(f"{URL}{cluster_id}/terminate/", {"confirm": "train"}, format="json")

    assert running["state"] == "running"
    assert running["purchase_option_used"] == "spot"
    assert len(nodes) == 2
    assert {node["state"] for node in nodes} == {"running"}
    assert stopped.json()["state"] == "stopped"
    assert extended.status_code == 200, extended.json()
    assert started.json()["state"] == "provisioning"
    assert refused.status_code == 400
    assert "nothing was terminated" in refused.json()["detail"]
    assert terminated.json()["state"] == "terminated"
    reservations = ec2_client.describe_instances(InstanceIds=[n["instance_id"] for n in nodes])["Reservations"]
    assert {i["State"]["Name"] for r in reservations for i in r["Instances"]} == {"terminated"}
    verbs = set(AuditEvent.objects.filter(team__slug="vision").values_list("verb", flat=True))
    assert {"cluster.requested", "cluster.extended"} <= verbs


def test_bad_requests_are_problem_details_and_create_nothing(alice: Any, bob: Any) -> None:
    client = as_user(alice)
    cases = {
        "unknown_instance_type": {**REQUEST, "instance_type": "g9.huge"},
        "region_not_offered": {**REQUEST, "region": "mars-north-1"},
        "invalid_cluster_name": {**REQUEST, "name": "Bad Name!"},
    }
    for code, payload in cases.items():
        response = client.post(URL, payload, format="json")
        assert response.status_code == 400, response.json()
        assert response.json()["code"] == code
    over_limit = client.post(URL, {**REQUEST, "node_count": 99}, format="json")
    foreign_team = client.post(URL, {**REQUEST, "team": "nlp"}, format="json")
    TeamQuota.objects.create(team=alice.memberships.get().team, max_gpus=1, max_cluster_hours=8)
    over_quota = client.post(URL, REQUEST, format="json")

    assert over_limit.status_code == 400
    assert "node_count" in over_limit.json()["errors"]
    assert foreign_team.status_code == 404
    assert over_quota.status_code == 409
    assert over_quota.json()["code"] == "quota_exceeded"
    assert not Cluster.objects.exists()


def test_extend_is_bounded_by_the_team_maximum(alice: Any, vision: Any) -> None:
    TeamQuota.objects.create(team=vision, max_gpus=8, max_cluster_hours=10)
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING, max_hours=8)
    client = as_user(alice)

    too_far = client.post(f"{URL}{cluster.pk}/extend/", {"hours": 3}, format="json")
    ok = client.post(f"{URL}{cluster.pk}/extend/", {"hours": 2}, format="json")
    full = client.post(f"{URL}{cluster.pk}/extend/", {"hours": 1}, format="json")

    assert too_far.status_code == 400
    assert too_far.json()["code"] == "invalid_max_hours"
    assert "1 to 2 hours" in too_far.json()["detail"]
    assert ok.json()["max_hours"] == 10
    assert full.status_code == 400
    assert "already has team vision's maximum" in full.json()["detail"]


def test_another_members_cluster_can_be_extended_only_by_a_manager(alice: Any, vision: Any, mark: Any) -> None:
    from tests.factories import member

    carol = member(vision, username="carol")
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING, max_hours=8)

    by_carol = as_user(carol).post(f"{URL}{cluster.pk}/extend/", {"hours": 1}, format="json")
    by_mark = as_user(mark).post(f"{URL}{cluster.pk}/extend/", {"hours": 1}, format="json")

    assert by_carol.status_code == 403
    assert by_carol.json()["code"] == "not_the_owner"
    assert by_mark.status_code == 200


def test_actions_on_another_teams_cluster_are_404(alice: Any, nlp: Any) -> None:
    cluster = ClusterFactory(team=nlp, state=ClusterState.RUNNING)
    client = as_user(alice)
    for path in ("stop/", "start/", "extend/", "snooze/", "nodes/", "telemetry/"):
        method = client.get if path in ("nodes/", "telemetry/") else client.post
        assert method(f"{URL}{cluster.pk}/{path}").status_code == 404, path


def test_telemetry_read_gives_each_gpus_recent_samples_oldest_first(alice: Any, vision: Any) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING, gpus_per_node=2)
    node: Node = NodeFactory(cluster=cluster, gpu_count=2, instance_id="i-0aaaaaaaaaaaaaaa1")
    now = timezone.now()
    for minutes_ago in (90, 20, 10):
        for gpu in (0, 1):
            GpuSample.objects.create(node=node, gpu_index=gpu, sampled_at=now - timedelta(minutes=minutes_ago),
                                     utilization_pct=minutes_ago + gpu, memory_used_mib=1.0, memory_total_mib=2.0)  # fmt: skip
    client = as_user(alice)

    last_hour = client.get(f"{URL}{cluster.pk}/telemetry/").json()
    two_hours = client.get(f"{URL}{cluster.pk}/telemetry/?minutes=120").json()
    bad = client.get(f"{URL}{cluster.pk}/telemetry/?minutes=0")

    assert [(s["node"], s["gpu_index"]) for s in last_hour] == [(node.instance_id, 0), (node.instance_id, 1)]
    assert [p["utilization_pct"] for p in last_hour[1]["points"]] == [21.0, 11.0]
    assert len(two_hours[0]["points"]) == 3
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_query"
    assert set(bad.json()["errors"]) == {"minutes"}


def test_snooze_through_the_api_is_once_only(alice: Any, vision: Any) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING)
    client = as_user(alice)

    first = client.post(f"{URL}{cluster.pk}/snooze/", {"minutes": 30, "reason": "data loading"}, format="json")
    second = client.post(f"{URL}{cluster.pk}/snooze/", {"minutes": 30, "reason": "again"}, format="json")

    assert first.status_code == 200
    assert first.json()["snoozed_until"] is not None
    assert second.status_code == 409


def test_only_platform_admins_override_auto_stop_and_it_is_audited(alice: Any, vision: Any) -> None:
    from tests.factories import UserFactory

    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.RUNNING)
    until = (timezone.now() + timedelta(days=2)).isoformat()
    admin = UserFactory(is_superuser=True)

    by_owner = as_user(alice).post(f"{URL}{cluster.pk}/autostop-override/", {"until": until, "reason": "demo"},
                                   format="json")  # fmt: skip
    too_long = as_user(admin).post(
        f"{URL}{cluster.pk}/autostop-override/",
        {"until": (timezone.now() + timedelta(days=9)).isoformat(), "reason": "forever"},
        format="json",
    )
    by_admin = as_user(admin).post(f"{URL}{cluster.pk}/autostop-override/", {"until": until, "reason": "demo day"},
                                   format="json")  # fmt: skip

    assert by_owner.status_code == 403
    assert too_long.status_code == 400
    assert by_admin.status_code == 200, by_admin.json()
    cluster.refresh_from_db()
    assert cluster.autostop_override_until is not None
    event = AuditEvent.objects.get(verb="cluster.autostop_override")
    assert (event.actor, event.data["reason"]) == (admin, "demo day")


@pytest.mark.parametrize("minutes", ["abc", "1441", "99999999999999999999", "1.5"])
def test_telemetry_window_outside_its_documented_bounds_is_an_invalid_query(
    alice: Any, vision: Any, minutes: str
) -> None:
    cluster = ClusterFactory(team=vision, owner=alice)
    client = as_user(alice)

    response = client.get(f"{URL}{cluster.pk}/telemetry/", {"minutes": minutes})
    schema = client.get("/api/schema/?format=json").json()["paths"]["/api/v1/clusters/{id}/telemetry/"]["get"]

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"minutes"}
    assert [
        (p["name"], p["schema"]["minimum"], p["schema"]["maximum"]) for p in schema["parameters"] if p["in"] == "query"
    ] == [("minutes", 1, 1440)]


def test_nodes_are_a_plain_list_and_the_schema_says_so(alice: Any, vision: Any) -> None:
    """Regression (contract fuzzer): nodes were declared paginated (with the cluster list's filters)."""
    cluster = ClusterFactory(team=vision, owner=alice)
    NodeFactory(cluster=cluster)
    client = as_user(alice)

    nodes = client.get(f"{URL}{cluster.pk}/nodes/").json()
    operation = client.get("/api/schema/?format=json").json()["paths"]["/api/v1/clusters/{id}/nodes/"]["get"]

    assert len(nodes) == 1
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"
    assert [parameter["in"] for parameter in operation["parameters"]] == ["path"]
