"""Browser journey of a GPU cluster, against the real worker, broker, database and the sandbox cloud (a moto
server): alice requests a 2-node spot cluster of g5.xlarge, follows it live to "Running" with its cost ticking,
her nodes register with the bootstrap secret from their EC2 user data, their idle GPUs' telemetry (a recording replayed through the agent's own sampler and HTTP client, backdated to cover
the idle window) gets her a warning, and the next idle check stops the cluster, in the database and in EC2.

The worker is paused while the detail page first loads (see test_run_journey), so "Running" has to reach the open
page through htmx polling. The idle check is the beat task `stop_idle_clusters`, sent by the test to the real
worker; the worker runs with IDLE_STOP_GRACE_MINUTES=0 (tests/fixtures/worker.py), so the pass after the warning
stops the cluster instead of one ten minutes later."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.models import AuditEvent
from apps.clusters.agent.client import PortalClient, register
from apps.clusters.agent.sampler import Sampler
from apps.clusters.agent.sources import ReplaySource
from apps.clusters.models import Cluster, ClusterState, Node, NodeState
from apps.clusters.services.idle import idle_assessment
from apps.clusters.tasks import stop_idle_clusters
from apps.core.money import format_money
from tests.e2e.test_run_journey import WorkerTap, log_in, mark_page, still_the_same_page
from tests.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

IDLE_RECORDING = Path(__file__).resolve().parents[1] / "clusters" / "data" / "g5xlarge_idle.jsonl"  # 1 x A10G
TICK = timedelta(seconds=10)  # the agent's sampling interval
POLL_TIMEOUT_MS = 30_000  # the live partial polls every 10 s; a worker step takes a second or two on moto


@pytest.fixture
def worker(celery_worker: Any) -> Iterator[WorkerTap]:
    tap = WorkerTap()
    yield tap
    if tap.paused:  # never leave the session-wide worker deaf for the tests that follow
        tap.resume()


def register_from_user_data(portal_url: str, ec2_client: Any, node: Node) -> str:
    """What a node's agent does at boot: read the cluster's bootstrap secret from its EC2 user data (here, as moto
    stored it) and trade it for this node's own token through the registration API."""
    attribute = ec2_client.describe_instance_attribute(InstanceId=node.instance_id, Attribute="userData")
    script = base64.b64decode(attribute["UserData"]["Value"]).decode()
    secret = next(line for line in script.splitlines() if line.startswith("pvb_"))
    return register(portal_url, secret, node.instance_id)


def replay_idle_telemetry(portal_url: str, node: Node, token: str, *, minutes: int, end: datetime) -> int:
    """Post `minutes` of the idle recording (looped) for `node` through the agent's sampler and HTTP client, as an
    agent that buffered them would: one batch per 10 s tick, the last stamped `end`, flushed oldest first."""
    ticks = minutes * 60 // int(TICK.total_seconds()) + 1
    stamps = iter([end - TICK * (ticks - 1 - number) for number in range(ticks)])
    sampler = Sampler(
        ReplaySource(IDLE_RECORDING, loop=True),
        PortalClient(portal_url, token),
        node.instance_id,
        buffer_size=ticks,
        clock=lambda: next(stamps),
    )
    for _ in range(ticks):
        sampler.sample()
    result = sampler.flush()
    assert result.error is None, result.error
    assert (result.accepted, result.buffered) == (ticks, 0)
    return ticks


def dollars(text: str | None) -> Decimal:
    assert text is not None
    assert text.endswith(" USD"), text  # the one money format: 1,234.5678 USD
    return Decimal(text.removesuffix(" USD").replace(",", ""))


def test_alice_runs_a_spot_cluster_that_idles_until_paved_stops_it(
    live_server: Any,
    page: Any,
    alice: Any,
    worker: WorkerTap,
    moto_endpoint: str,
    ec2_client: Any,
    settings: Any,
    screenshot: Any,
) -> None:
    settings.AWS_ENDPOINT_URL = moto_endpoint  # the worker already has it; this is for anything the web side calls
    log_in(page, live_server, "alice")

    # The request form, filled as a user does; the side panel follows each change (quota and hourly estimate).
    page.goto(f"{live_server.url}/clusters/new")
    summary = page.locator("[data-testid=request-summary]")
    page.fill("#id_name", "alice-spot-pair")
    page.select_option("#id_region", "us-east-1")
    page.select_option("#id_instance_type", "g5.xlarge")
    page.fill("#id_node_count", "2")
    page.locator("#id_node_count").blur()
    page.select_option("#id_purchase_option", "spot")
    expect(summary).to_contain_text("2 × g5.xlarge: 2 × A10G")
    expect(page.locator("[data-testid=quota]")).to_contain_text("Team vision has 16 of 16 GPUs left")
    expect(page.locator("[data-testid=hourly-estimate]")).to_have_text("0.86 USD / hour")  # 2 x 0.432 typical spot
    screenshot("cluster-journey-01-request")

    # Submitted while the worker is paused: the detail page opens on the queued request.
    worker.pause()
    page.click("[data-testid=submit-cluster]")
    page.wait_for_selector("[data-testid=cluster-name]")
    cluster = Cluster.objects.get(name="alice-spot-pair")
    assert page.url.endswith(f"/clusters/{cluster.pk}/")
    assert (cluster.node_count, cluster.instance_type, cluster.purchase_option) == (2, "g5.xlarge", "spot")
    state = page.locator("[data-testid=cluster-state]")
    expect(state).to_have_text("Requested")
    mark_page(page)
    worker.resume()

    # The real worker launches both nodes in moto; the page gets there by polling, and the cost starts ticking.
    expect(state).to_have_text("Running", timeout=POLL_TIMEOUT_MS)
    assert still_the_same_page(page)
    cluster.refresh_from_db()
    assert cluster.purchase_option_used == "spot"
    nodes = list(cluster.nodes.order_by("instance_id"))
    assert len(nodes) == 2
    assert all(node.state == NodeState.RUNNING for node in nodes)
    node_table = page.locator("[data-testid=nodes]")
    for node in nodes:
        expect(node_table).to_contain_text(node.instance_id)
    cost = page.locator("[data-testid=cost]")
    first_cost = cost.text_content()
    expect(cost).not_to_have_text(first_cost or "", timeout=POLL_TIMEOUT_MS)  # the next poll
    assert dollars(cost.text_content()) > dollars(first_cost) >= 0
    screenshot("cluster-journey-02-running-cost-ticking")

    # The nodes' agents report 31 minutes of idle A10Gs (the window is 30), through the telemetry API.
    end = timezone.now() - timedelta(seconds=1)
    for node in nodes:
        replay_idle_telemetry(
            live_server.url,
            node,
            register_from_user_data(live_server.url, ec2_client, node),
            minutes=cluster.idle_window_minutes + 1,
            end=end,
        )

    # First idle check on the worker: a warning, not a stop yet.
    stop_idle_clusters.delay()
    wait_for(
        lambda: Cluster.objects.get(pk=cluster.pk).idle_warned_at is not None,
        timeout=30,
        message=lambda: (
            f"an idle warning (the idle check says: {idle_assessment(cluster=cluster, now=timezone.now()).reason})"
        ),
    )
    assert Cluster.objects.get(pk=cluster.pk).state == ClusterState.RUNNING
    warning = page.locator("[data-testid=idle-warning]")
    expect(warning).to_contain_text("Idle: stops at", timeout=POLL_TIMEOUT_MS)  # brought in by the live poll
    assert still_the_same_page(page)
    expect(warning.locator("[data-testid=snooze]")).to_be_visible()
    expect(state).to_have_text("Running")
    gpus = page.locator("[data-testid=gpus]")
    for node in nodes:
        expect(gpus.locator("tr", has_text=node.instance_id)).to_contain_text("255 / 23028 MiB")
    screenshot("cluster-journey-03-idle-warning")

    # The next idle check stops it; the open page follows by polling.
    mark_page(page)
    stop_idle_clusters.delay()
    expect(state).to_have_text("Stopped", timeout=POLL_TIMEOUT_MS)
    assert still_the_same_page(page)
    expect(page.locator("[data-testid=cluster-live]")).to_contain_text("stopped by auto-stop")
    wait_for(  # the task's last write: after it, the worker is done with this cluster
        lambda: AuditEvent.objects.filter(verb="cluster.auto_stopped", target_id=str(cluster.pk)).exists(),
        timeout=30,
        message=lambda: f"the auto-stop audit event (the cluster is {Cluster.objects.get(pk=cluster.pk).state})",
    )
    stopped_cost = dollars(cost.text_content())
    page.reload()
    expect(page.locator("[data-testid=idle-warning]")).to_have_count(0)
    expect(page.locator("[data-testid=start]")).to_be_visible()
    expect(cost).to_have_text(format_money(stopped_cost, "USD", places=4))  # the clock stopped with the cluster
    screenshot("cluster-journey-04-stopped")

    cluster.refresh_from_db()
    assert cluster.state == ClusterState.STOPPED
    assert cluster.running_since is None
    assert set(cluster.nodes.values_list("state", flat=True)) == {NodeState.STOPPED}
    described = ec2_client.describe_instances(InstanceIds=[node.instance_id for node in nodes])
    instances = [instance for reservation in described["Reservations"] for instance in reservation["Instances"]]
    assert {instance["InstanceId"]: instance["State"]["Name"] for instance in instances} == {
        node.instance_id: "stopped" for node in nodes
    }
    assert {instance["InstanceType"] for instance in instances} == {"g5.xlarge"}
