"""The GPU cluster pages: list, request form, detail with live telemetry, and the lifecycle actions. No cloud calls:
clusters are made with factories and GPU readings go through the real ingest service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.models import Cluster, ClusterState, Node, NodeState
from apps.clusters.services import ingest_telemetry, warn_or_stop_idle_clusters
from tests.factories import ClusterFactory, NodeFactory
from tests.runs.test_run_pages import must

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def client_alice(client: Client, alice: Any) -> Client:
    client.force_login(alice)
    return client


def running_cluster(team: Team, owner: Any, **fields: Any) -> Cluster:
    fields.setdefault("running_since", timezone.now() - timedelta(hours=2))
    fields.setdefault("hourly_price", "1.0060")
    return ClusterFactory(team=team, owner=owner, state=ClusterState.RUNNING, **fields)


def send_samples(node: Node, at: datetime, utilizations: list[float], memory_used: float = 1024.0) -> None:
    gpus = [
        {
            "index": index,
            "utilization_pct": utilization,
            "memory_used_mib": memory_used,
            "memory_total_mib": 24576.0,
            "power_w": 61.5,
            "temperature_c": 47.0,
            "process_count": 1,
        }
        for index, utilization in enumerate(utilizations)
    ]
    ingest_telemetry(node=node, batches=[{"node": node.instance_id, "sampled_at": at, "gpus": gpus}])


@pytest.fixture
def busy_cluster(vision: Team, alice: Any) -> Cluster:
    """A running 1 x 2-GPU cluster with ten minutes of readings; the newest say 2% and 4%."""
    cluster = running_cluster(vision, alice, name="train-a", node_count=1, gpus_per_node=2)
    node = NodeFactory(cluster=cluster, gpu_count=2, state=NodeState.RUNNING, private_ip="10.0.1.17")
    now = timezone.now().replace(microsecond=0)
    for minutes_ago in range(10, 0, -1):
        send_samples(node, now - timedelta(minutes=minutes_ago), [80.0, 70.0], memory_used=20000.0)
    send_samples(node, now, [2.0, 4.0], memory_used=12345.0)
    return cluster


@pytest.fixture
def foreign_cluster(nlp: Team, bob: Any) -> Cluster:
    return running_cluster(nlp, bob, name="secret-nlp")


# -- list ------------------------------------------------------------------------------------------------------


def test_list_shows_own_clusters_with_utilization_at_a_glance_and_idle_flag(
    client_alice: Client, busy_cluster: Cluster, foreign_cluster: Cluster
) -> None:
    Cluster.objects.filter(pk=busy_cluster.pk).update(idle_warned_at=timezone.now())

    response = client_alice.get(reverse("clusters:list"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "train-a" in html
    assert "secret-nlp" not in html
    assert "3% (2 GPUs)" in html
    assert 'data-testid="idle-flag"' in html
    assert "g5.xlarge × 1" in html
    assert "2.01 USD" in html  # two hours at 1.006/h, in the one money format
    assert reverse("clusters:create") in html


def test_list_has_no_idle_flag_for_a_cluster_that_was_not_warned(client_alice: Client, busy_cluster: Cluster) -> None:
    html = client_alice.get(reverse("clusters:list")).content.decode()

    assert "train-a" in html
    assert 'data-testid="idle-flag"' not in html


def test_nav_clusters_link_is_live(client_alice: Client) -> None:
    html = client_alice.get(reverse("home")).content.decode()

    assert 'href="/clusters/"' in html


# -- detail ----------------------------------------------------------------------------------------------------


def test_detail_renders_nodes_latest_sample_sparklines_and_poll(client_alice: Client, busy_cluster: Cluster) -> None:
    response = client_alice.get(reverse("clusters:detail", args=[busy_cluster.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    node = busy_cluster.nodes.get()
    assert node.instance_id in html
    assert "10.0.1.17" in html
    assert "12345 / 24576 MiB" in html  # the latest sample, not an older one
    assert "62 W" in html
    assert "47 °C" in html
    assert html.count('<svg class="sparkline') == 4  # utilization and memory for each of the 2 GPUs
    assert "<polyline" in html
    assert 'hx-trigger="every 10s"' in html
    assert f'hx-get="{reverse("clusters:detail", args=[busy_cluster.pk])}"' in html
    assert "<html" in html


def test_htmx_poll_gets_only_the_live_partial(client_alice: Client, busy_cluster: Cluster) -> None:
    response = client_alice.get(reverse("clusters:detail", args=[busy_cluster.pk]), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html
    assert html.lstrip().startswith('<div id="cluster-live"')
    assert "12345 / 24576 MiB" in html
    assert 'hx-trigger="every 10s"' in html
    assert "<h1" not in html  # the page around the partial is not sent again


def test_htmx_poll_carries_the_controls_that_follow_the_state_out_of_band(
    client_alice: Client, busy_cluster: Cluster
) -> None:
    """A cluster that turned Running between two polls shows Stop (and loses nothing typed) without a reload."""
    html = client_alice.get(reverse("clusters:detail", args=[busy_cluster.pk]), **HTMX).content.decode()

    actions = must(html, "cluster-actions")
    assert actions[0].get("hx-swap-oob") == "true"
    assert "Stop" in actions[1]
    controls = must(html, "cluster-controls")
    assert controls[0].get("hx-swap-oob") == "true"
    assert "Terminate cluster" in controls[1]
    assert must(html, "confirm")[0].get("hx-preserve") == "true"


def test_terminated_cluster_page_stops_polling(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.TERMINATED)

    html = client_alice.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()

    assert "every 10s" not in html
    assert "Terminate cluster" not in html


def test_idle_warning_shows_when_the_cluster_stops(client_alice: Client, busy_cluster: Cluster) -> None:
    warned = timezone.localtime(timezone.now()).replace(second=0, microsecond=0)
    Cluster.objects.filter(pk=busy_cluster.pk).update(idle_warned_at=warned)

    html = client_alice.get(reverse("clusters:detail", args=[busy_cluster.pk])).content.decode()

    stops_at = warned + timedelta(minutes=10)
    assert f"Idle: stops at {stops_at:%H:%M} unless you snooze" in html
    assert 'data-testid="snooze-form"' in html


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("get-htmx", ""),
        ("post", "stop/"),
        ("post", "start/"),
        ("post", "terminate/"),
        ("post", "snooze/"),
    ],
)
def test_another_teams_cluster_is_not_found(
    client_alice: Client, foreign_cluster: Cluster, method: str, suffix: str
) -> None:
    url = reverse("clusters:detail", args=[foreign_cluster.pk]) + suffix

    if method == "post":
        response = client_alice.post(url, {"confirm": foreign_cluster.name, "minutes": "10", "reason": "x"})
    elif method == "get-htmx":
        response = client_alice.get(url, **HTMX)
    else:
        response = client_alice.get(url)

    assert response.status_code == 404
    foreign_cluster.refresh_from_db()
    assert foreign_cluster.state == ClusterState.RUNNING
    assert not foreign_cluster.snooze_used


# -- request form ----------------------------------------------------------------------------------------------


def test_create_form_shows_quota_and_catalog_choices(client_alice: Client, busy_cluster: Cluster) -> None:
    response = client_alice.get(reverse("clusters:create"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "has <strong>14</strong> of 16 GPUs left" in html  # the busy cluster holds 2 of the default 16
    assert '<option value="p5.48xlarge">p5.48xlarge (8 x H100' in html
    assert '<option value="eu-west-1">' in html
    assert 'data-testid="hourly-estimate"' in html


def test_summary_partial_follows_the_chosen_options(client_alice: Client) -> None:
    params = {"instance_type": "g5.12xlarge", "region": "us-east-1", "node_count": "2", "purchase_option": "on_demand"}

    response = client_alice.get(reverse("clusters:create"), params, **HTMX)

    html = response.content.decode()
    assert "<html" not in html
    assert "<strong>8</strong> × A10G (24 GiB each)" in html  # one A10G's memory, not the instance's 96 GiB
    assert "has <strong>16</strong> of 16 GPUs left" in html
    assert "<strong>11.34 USD</strong> / hour" in html  # 2 x 5.672, in the one money format


def test_request_form_takes_the_one_name_rule(client_alice: Client, vision: Team) -> None:
    response = client_alice.post(reverse("clusters:create"), form_data(vision, name="ab"))

    assert response.status_code in {400, 422}
    assert "3-40 lowercase letters, digits or dashes, starting with a letter" in response.content.decode()
    assert not Cluster.objects.filter(name="ab").exists()


def form_data(team: Team, **overrides: Any) -> dict[str, Any]:
    data = {
        "team": team.slug,
        "name": "new-cluster",
        "region": "us-east-1",
        "instance_type": "g5.xlarge",
        "node_count": "1",
        "purchase_option": "on_demand",
        "max_hours": "",
    }
    data.update(overrides)
    return data


def test_request_over_quota_is_rejected_with_the_quota_message(client_alice: Client, vision: Team) -> None:
    response = client_alice.post(
        reverse("clusters:create"), form_data(vision, instance_type="p5.48xlarge", node_count="3")
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "This cluster needs 24 GPUs but team vision has only 16 of its 16 left." in html
    assert not Cluster.objects.exists()


def test_request_for_a_region_without_the_type_is_rejected(client_alice: Client, vision: Team) -> None:
    response = client_alice.post(
        reverse("clusters:create"), form_data(vision, instance_type="p5.48xlarge", region="eu-west-1")
    )

    html = response.content.decode()
    assert response.status_code == 422
    assert "p5.48xlarge is not offered in eu-west-1" in html
    assert not Cluster.objects.exists()


def test_request_with_a_taken_name_is_rejected_on_the_name(
    client_alice: Client, vision: Team, busy_cluster: Cluster
) -> None:
    response = client_alice.post(reverse("clusters:create"), form_data(vision, name=busy_cluster.name))

    assert response.status_code == 422
    assert "already has a cluster named" in response.content.decode()
    assert Cluster.objects.count() == 1


def test_request_for_another_teams_quota_is_refused(client_alice: Client, nlp: Team) -> None:
    response = client_alice.post(reverse("clusters:create"), form_data(nlp))

    assert response.status_code == 422
    assert not Cluster.objects.exists()


def test_successful_request_records_the_cluster_and_redirects(client_alice: Client, vision: Team) -> None:
    response = client_alice.post(reverse("clusters:create"), form_data(vision, node_count="2", max_hours="5"))

    cluster = Cluster.objects.get(name="new-cluster")
    assert response.status_code == 302
    assert response["Location"] == reverse("clusters:detail", args=[cluster.pk])
    assert cluster.state == ClusterState.REQUESTED
    assert cluster.team == vision
    assert cluster.node_count == 2
    assert cluster.max_hours == 5


# -- actions ---------------------------------------------------------------------------------------------------


def test_snooze_works_once(client_alice: Client, busy_cluster: Cluster) -> None:
    Cluster.objects.filter(pk=busy_cluster.pk).update(idle_warned_at=timezone.now())
    url = reverse("clusters:action", args=[busy_cluster.pk, "snooze"])

    first = client_alice.post(url, {"minutes": "30", "reason": "eval starts soon"}, follow=True)
    second = client_alice.post(url, {"minutes": "30", "reason": "still waiting"}, follow=True)

    busy_cluster.refresh_from_db()
    assert "snoozed until" in first.content.decode()
    assert busy_cluster.snooze_used
    assert busy_cluster.idle_warned_at is None
    assert busy_cluster.snooze_reason == "eval starts soon"
    assert "was already snoozed once" in second.content.decode()


def test_terminate_needs_the_typed_name(client_alice: Client, busy_cluster: Cluster) -> None:
    url = reverse("clusters:action", args=[busy_cluster.pk, "terminate"])

    response = client_alice.post(url, {"confirm": "wrong"}, follow=True)

    busy_cluster.refresh_from_db()
    assert busy_cluster.state == ClusterState.RUNNING
    assert "Type the cluster name train-a to confirm" in response.content.decode()


def test_terminate_of_a_requested_cluster_needs_no_cloud(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, name="never-launched")

    response = client_alice.post(
        reverse("clusters:action", args=[cluster.pk, "terminate"]), {"confirm": "never-launched"}
    )

    cluster.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == reverse("clusters:detail", args=[cluster.pk])
    assert cluster.state == ClusterState.TERMINATED


def test_start_of_a_stopped_cluster_moves_it_to_provisioning(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.STOPPED)

    client_alice.post(reverse("clusters:action", args=[cluster.pk, "start"]))

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.PROVISIONING


def test_illegal_action_is_shown_as_an_error(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = ClusterFactory(team=vision, owner=alice, state=ClusterState.STOPPED)

    response = client_alice.post(reverse("clusters:action", args=[cluster.pk, "stop"]), follow=True)

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.STOPPED
    assert 'class="flash flash-error"' in response.content.decode()


def test_unknown_action_is_not_found(client_alice: Client, busy_cluster: Cluster) -> None:
    response = client_alice.post(reverse("clusters:action", args=[busy_cluster.pk, "explode"]))

    assert response.status_code == 404


def test_extend_from_the_page_raises_max_hours_within_the_team_limit(
    client_alice: Client, vision: Team, alice: Any
) -> None:
    cluster = running_cluster(vision, alice, name="long", max_hours=4)  # ran 2 h of 4
    url = reverse("clusters:action", args=[cluster.pk, "extend"])

    page = client_alice.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()
    extended = client_alice.post(url, {"hours": "6"}, follow=True).content.decode()
    too_far = client_alice.post(url, {"hours": "500"}, follow=True).content.decode()
    junk = client_alice.post(url, {"hours": "six"}, follow=True).content.decode()

    assert 'data-testid="extend-form"' in page
    assert "2 h of running time left" in page or "1 h 59 min of running time left" in page
    assert "may now run for 10 hours in all" in extended
    assert "Extend by 1 to" in too_far
    assert "whole hours" in junk
    cluster.refresh_from_db()
    assert cluster.max_hours == 10


def test_idle_countdown_says_how_long_the_gpus_have_been_idle(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = running_cluster(vision, alice, name="quiet", gpus_per_node=1, idle_window_minutes=30)
    node = NodeFactory(cluster=cluster, gpu_count=1, state=NodeState.RUNNING)
    now = timezone.now().replace(microsecond=0)
    for seconds_ago in range(600, -1, -10):  # busy until 10 min ago, idle since
        send_samples(node, now - timedelta(seconds=seconds_ago), [90.0 if seconds_ago > 400 else 1.0])
    before_check = client_alice.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()
    warn_or_stop_idle_clusters()  # the beat's idle check keeps its findings on the cluster

    page = client_alice.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()

    assert "the first idle check runs within a minute" in before_check
    assert 'data-testid="idle-countdown"' in page
    assert "Idle for 6 of 30 minutes" in page


def test_idle_countdown_says_busy_while_a_gpu_works(client_alice: Client, vision: Team, alice: Any) -> None:
    cluster = running_cluster(vision, alice, name="busy", gpus_per_node=2)
    node = NodeFactory(cluster=cluster, gpu_count=2, state=NodeState.RUNNING)
    send_samples(node, timezone.now().replace(microsecond=0) - timedelta(seconds=5), [95.0, 4.0])
    warn_or_stop_idle_clusters()

    page = client_alice.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()

    assert "Not idle (" in page
    assert "Idle auto-stop counts from when every GPU goes under 5%" in page


def test_a_platform_admin_overrides_auto_stop_from_the_page(client: Client, vision: Team, alice: Any) -> None:
    from tests.factories import UserFactory

    cluster = running_cluster(vision, alice, name="demo")
    client.force_login(alice)
    assert (
        'data-testid="override-form"' not in client.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()
    )
    client.force_login(UserFactory(is_superuser=True))
    url = reverse("clusters:action", args=[cluster.pk, "override"])

    page = client.get(reverse("clusters:detail", args=[cluster.pk])).content.decode()
    done = client.post(url, {"hours": "24", "reason": "board demo"}, follow=True).content.decode()
    ended = client.post(url, {"hours": "0", "reason": "demo over"}, follow=True).content.decode()

    assert 'data-testid="override-form"' in page
    assert "overridden for 24 h" in done
    assert "restored" in ended
    cluster.refresh_from_db()
    assert cluster.autostop_override_until is None
