"""What the real agent sent from a real GPU, replayed through the real portal.

`data/h100_agent_posts.json` was recorded on an NVIDIA H100 by `scripts/capture_agent_posts.py`: the agent ran
with NVML and `--register` against a stand-in that only wrote down each request (with a PyTorch load in the
middle third). Here those exact requests go to the real registration and telemetry endpoints. Only the sample
times are moved, as a block, so that they end now (the portal refuses samples older than 7 days)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.tokens import digest
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node
from tests.factories import ClusterFactory, NodeFactory, node_with_token

pytestmark = pytest.mark.django_db

CAPTURE = json.loads((Path(__file__).parent / "data" / "h100_agent_posts.json").read_text())


def shifted(requests: list[dict[str, Any]], end: datetime) -> list[dict[str, Any]]:
    """The telemetry requests with every sample time moved by one offset, so that the newest is `end`."""
    telemetry = copy.deepcopy([r for r in requests if r["path"].endswith("/telemetry")])
    times = [datetime.fromisoformat(batch["sampled_at"]) for r in telemetry for batch in r["body"]]
    offset = end - max(times)
    for request in telemetry:
        for batch in request["body"]:
            batch["sampled_at"] = (datetime.fromisoformat(batch["sampled_at"]) + offset).isoformat()
    return telemetry


def test_the_captured_agent_registers_and_its_h100_samples_are_stored(vision: Any) -> None:
    registration, *_ = CAPTURE["requests"]
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING, instance_type="p5.48xlarge")
    node: Node = NodeFactory(cluster=cluster, instance_id=CAPTURE["node"], gpu_count=1)
    secret = registration["authorization"].removeprefix("Bootstrap ")
    Cluster.objects.filter(pk=cluster.pk).update(bootstrap_token_digest=digest(secret))
    client = APIClient()

    registered = client.post(registration["path"], registration["body"], format="json",
                             HTTP_AUTHORIZATION=registration["authorization"])  # fmt: skip
    assert registered.status_code == 201, registered.json()
    token = registered.json()["token"]
    answers = [
        client.post(r["path"], r["body"], format="json", HTTP_AUTHORIZATION=f"Node {token}")
        for r in shifted(CAPTURE["requests"], timezone.now() - timedelta(seconds=1))
    ]

    assert CAPTURE["agent_exit"] == 0
    assert registration["path"] == "/api/v1/clusters/nodes/register"
    assert {answer.status_code for answer in answers} == {202}
    samples = list(GpuSample.objects.filter(node=node).order_by("sampled_at"))
    assert len(samples) == len(answers) == 23
    utilization = [sample.utilization_pct for sample in samples]
    assert (utilization[0], utilization[-1]) == (0.0, 0.0)  # idle before and after the load
    assert max(utilization) >= 95.0  # the matmul loop in the middle
    assert {sample.memory_total_mib for sample in samples} == {81559.0}
    node.refresh_from_db()
    assert node.last_sample_at == samples[-1].sampled_at


def test_the_captured_requests_are_refused_with_another_nodes_token(vision: Any) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING)
    NodeFactory(cluster=cluster, instance_id=CAPTURE["node"])
    _other, other_token = node_with_token(cluster=cluster)
    first = shifted(CAPTURE["requests"], timezone.now())[0]

    answer = APIClient().post(first["path"], first["body"], format="json", HTTP_AUTHORIZATION=f"Node {other_token}")

    assert answer.status_code == 403
    assert answer.json()["code"] == "wrong_node"
    assert not GpuSample.objects.exists()
