"""Node tokens and telemetry ingest from node agents."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from apps.clusters.errors import TelemetryRejected, WrongNode
from apps.clusters.models import GpuSample, Node

NODE_TOKEN_PREFIX = "pvn_"  # noqa: S105 - a prefix, not a secret
# Samples stamped further ahead than this are refused: the node's clock is wrong, and idle detection would
# trust the future.
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_SAMPLE_AGE = timedelta(days=7)


def hash_node_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_node_token() -> tuple[str, str]:
    """(secret for the node's agent, digest to store). The secret goes to the node once, in its user data."""
    raw = NODE_TOKEN_PREFIX + secrets.token_urlsafe(32)
    return raw, hash_node_token(raw)


def authenticate_node(raw: str) -> Node | None:
    return Node.objects.select_related("cluster").filter(token_digest=hash_node_token(raw)).first()


@dataclass(frozen=True)
class IngestResult:
    accepted: int  # batches
    received: int
    stored: int
    duplicates: int


def ingest_telemetry(node: Node, batches: list[dict[str, Any]]) -> IngestResult:
    """Store validated batches of one node. Idempotent: a resent batch (the agent retries after outages) is
    counted as duplicates and stores nothing; batches may arrive out of order."""
    now = timezone.now()
    samples: list[GpuSample] = []
    for batch in batches:
        if batch["node"] != node.instance_id:
            raise WrongNode(f"This token belongs to node {node.instance_id}, not {batch['node']}.")
        sampled_at: datetime = batch["sampled_at"]
        if sampled_at > now + MAX_CLOCK_SKEW:
            raise TelemetryRejected(f"Sample time {sampled_at.isoformat()} is in the future; check the node's clock.")
        if sampled_at < now - MAX_SAMPLE_AGE:
            raise TelemetryRejected(f"Sample time {sampled_at.isoformat()} is older than 7 days.")
        samples += [
            GpuSample(
                node=node,
                gpu_index=gpu["index"],
                sampled_at=sampled_at,
                utilization_pct=gpu["utilization_pct"],
                memory_used_mib=gpu["memory_used_mib"],
                memory_total_mib=gpu["memory_total_mib"],
                power_w=gpu.get("power_w"),
                temperature_c=gpu.get("temperature_c"),
                process_count=gpu.get("process_count", 0),
            )
            for gpu in batch["gpus"]
        ]
    if not samples:
        return IngestResult(accepted=len(batches), received=0, stored=0, duplicates=0)
    with transaction.atomic():
        keys = {(s.gpu_index, s.sampled_at) for s in samples}
        times = {s.sampled_at for s in samples}
        existing = set(GpuSample.objects.filter(node=node, sampled_at__in=times).values_list("gpu_index", "sampled_at"))
        fresh = [s for s in samples if (s.gpu_index, s.sampled_at) not in existing]
        GpuSample.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=1000)
        newest = GpuSample.objects.filter(node=node).aggregate(newest=Max("sampled_at"))["newest"]
        Node.objects.filter(pk=node.pk).update(last_sample_at=newest)
    return IngestResult(
        accepted=len(batches),
        received=len(samples),
        stored=len(keys - existing),
        duplicates=len(samples) - len(fresh),
    )
