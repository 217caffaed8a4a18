"""Telemetry ingest: node-token auth, validation, idempotency, out-of-order batches, rate limit, and the real
agent (replaying recorded NVML readings) posting to a live portal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from apps.clusters.models import GpuSample, Node
from tests.factories import node_with_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/clusters/telemetry"
DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[2]


def batch(node: Node, at: datetime, *, util: float = 3.0, gpus: int = 1) -> dict[str, Any]:
    return {
        "node": node.instance_id,
        "sampled_at": at.isoformat(),
        "gpus": [
            {"index": i, "utilization_pct": util, "memory_used_mib": 255.0, "memory_total_mib": 23028.0,
             "power_w": 21.0, "temperature_c": 30.0, "process_count": 0}
            for i in range(gpus)
        ],
    }  # fmt: skip


def client_for(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Node {raw}")
    return client


@pytest.fixture(autouse=True)
def fresh_throttle_cache() -> None:
    cache.clear()


def test_batches_are_stored_per_gpu_and_the_node_knows_its_last_sample(db: None) -> None:
    node, raw = node_with_token(gpu_count=8)
    now = timezone.now().replace(microsecond=0)
    response = client_for(raw).post(
        URL, [batch(node, now - timedelta(seconds=10), gpus=8), batch(node, now, gpus=8)], format="json"
    )

    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 2, "received": 16, "stored": 16, "duplicates": 0}
    assert GpuSample.objects.filter(node=node).count() == 16
    node.refresh_from_db()
    assert node.last_sample_at == now


def test_resent_and_out_of_order_batches_are_idempotent(db: None) -> None:
    node, raw = node_with_token()
    now = timezone.now().replace(microsecond=0)
    client = client_for(raw)
    client.post(URL, [batch(node, now)], format="json")

    response = client.post(URL, [batch(node, now), batch(node, now - timedelta(minutes=1))], format="json")

    assert response.json() == {"accepted": 2, "received": 2, "stored": 1, "duplicates": 1}
    assert GpuSample.objects.filter(node=node).count() == 2
    node.refresh_from_db()
    assert node.last_sample_at == now  # an older batch arriving late does not move it back


def test_a_sample_repeated_inside_one_request_is_stored_once(db: None) -> None:
    node, raw = node_with_token(gpu_count=2)
    now = timezone.now().replace(microsecond=0)

    response = client_for(raw).post(URL, [batch(node, now, gpus=2), batch(node, now, gpus=2)], format="json")

    assert response.json() == {"accepted": 2, "received": 4, "stored": 2, "duplicates": 2}
    assert GpuSample.objects.filter(node=node).count() == 2


def test_a_large_backlog_is_stored_in_chunks(db: None) -> None:
    """An agent back from an outage sends up to an hour of batches; SQLite takes 999 parameters per statement."""
    node, raw = node_with_token(gpu_count=8)
    now = timezone.now().replace(microsecond=0)
    backlog = [batch(node, now - timedelta(seconds=10 * i), gpus=8) for i in range(200)]

    response = client_for(raw).post(URL, backlog, format="json")

    assert response.json() == {"accepted": 200, "received": 1600, "stored": 1600, "duplicates": 0}
    assert GpuSample.objects.filter(node=node).count() == 1600
    node.refresh_from_db()
    assert node.last_sample_at == now


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "not_authenticated"),
        ("Node pvn_unknown", "authentication_failed"),
        ("Bearer pvd_x", "authentication_failed"),
    ],
)
def test_telemetry_needs_a_valid_node_token(db: None, header: str | None, code: str) -> None:
    node, _ = node_with_token()
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.post(URL, [batch(node, timezone.now())], format="json")
    assert response.status_code in {401, 403}
    assert response.json()["code"] in {code, "not_authenticated"}
    assert not GpuSample.objects.exists()


def test_a_nodes_token_cannot_report_for_another_node(db: None) -> None:
    _node, raw = node_with_token()
    other, _ = node_with_token()
    response = client_for(raw).post(URL, [batch(other, timezone.now())], format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "wrong_node"
    assert not GpuSample.objects.exists()


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b["gpus"][0].update(utilization_pct=130), id="utilization-over-100"),
        pytest.param(lambda b: b["gpus"][0].pop("memory_used_mib"), id="missing-field"),
        pytest.param(lambda b: b.update(gpus=[]), id="no-gpus"),
        pytest.param(lambda b: b.update(sampled_at="yesterday"), id="bad-time"),
    ],
)
def test_invalid_batches_are_refused_whole(db: None, mutate: Any) -> None:
    node, raw = node_with_token()
    good, bad = batch(node, timezone.now() - timedelta(seconds=10)), batch(node, timezone.now())
    mutate(bad)
    response = client_for(raw).post(URL, [good, bad], format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_failed"
    assert not GpuSample.objects.exists()


def test_samples_from_the_future_are_refused(db: None) -> None:
    node, raw = node_with_token()
    response = client_for(raw).post(URL, [batch(node, timezone.now() + timedelta(hours=1))], format="json")
    assert response.status_code == 400
    assert "check the node's clock" in response.json()["detail"]


def test_a_flooding_node_is_throttled(db: None) -> None:
    node, raw = node_with_token()
    client = client_for(raw)
    start = timezone.now() - timedelta(hours=1)
    codes = [
        client.post(URL, [batch(node, start + timedelta(seconds=i))], format="json").status_code for i in range(125)
    ]
    assert codes[:120] == [202] * 120
    assert codes[-1] == 429


@pytest.mark.django_db(transaction=True)
def test_the_agent_replays_recorded_nvml_samples_into_a_live_portal(live_server: Any, tmp_path: Path) -> None:
    node, raw = node_with_token(instance_id="i-0agentreplay0000")
    token = tmp_path / "token"
    token.write_text(raw)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "apps.clusters.agent", "--portal", live_server.url, "--node-id", node.instance_id,
         "--token-file", str(token), "--replay", str(DATA / "g5xlarge_idle.jsonl"), "--once"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = GpuSample.objects.get(node=node)
    first = json.loads((DATA / "g5xlarge_idle.jsonl").read_text().splitlines()[0])["gpus"][0]
    assert stored.utilization_pct == first["utilization_pct"]
    assert stored.memory_total_mib == first["memory_total_mib"]
    assert stored.sampled_at <= datetime.now(UTC)
