"""The `make run` demo's GPU node: a running 1 x A10G cluster of alice's team in the sandbox cloud (moto), with one
registered node whose real agent `run_stack` starts in dev mode, so training jobs launched in the demo run.

The sandbox cloud keeps everything in memory and `run_stack` starts a fresh one each time, so this runs there,
once the cloud answers, and not in `seed_demo` (which runs before it). Within one sandbox cloud it is idempotent:
the cluster, its node and the node's token (var/demo-node.json, mode 600) are reused. When the sandbox lost the
node (a new `make run`), or the token file is gone, the node is replaced through the cluster's own life cycle:
the lost node is terminated, the cluster stopped and started again, and `provision_cluster` launches a new
instance with the same provider code as every cluster, whose node then registers (`register_node`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from apps.accounts import tokens
from apps.accounts.models import Team
from apps.clusters.cloud import CloudError, Ec2Provider
from apps.clusters.models import Cluster, ClusterState, Node, NodeState
from apps.clusters.services.idle import MAX_AUTOSTOP_OVERRIDE, override_autostop
from apps.clusters.services.provisioning import (
    LIVE_NODE_STATES,
    ec2_provider,
    provision_cluster,
    request_cluster,
    start_cluster,
)
from apps.clusters.services.registration import register_node
from apps.clusters.services.states import cluster_transition, nodes_transition

TEAM, OWNER, ADMIN, NAME, INSTANCE_TYPE = "vision", "alice", "ada", "demo-gpu", "g5.xlarge"
NODE_FILE = settings.DATA_DIR / "demo-node.json"
# What the demo node's agent replays as its GPU's readings (an idle A10G; README of tests/clusters/data).
RECORDING = Path(__file__).resolve().parent / "agent" / "recordings" / "g5xlarge_idle.jsonl"
# The training-job template's defaults (infra/templates/training-job/template.yaml) read and write these.
DATA_BUCKET, DATASET_KEY, MODEL_BUCKET = "paved-demo-data", "iris/iris.csv", "paved-demo-models"
ML_PYTHON = settings.BASE_DIR / ".venv-serving" / "bin" / "python"
IRIS_CSV = (
    "from sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True)\n"
    "print('sepal_length,sepal_width,petal_length,petal_width,label')\n"
    "for row, label in zip(X, y): print(','.join(map(str, row)) + f',{label}')\n"
)


class DemoNodeUnavailable(Exception):
    """The demo cluster exists but cannot run again (a person terminated it, or it failed)."""


@dataclass(frozen=True)
class DemoNode:
    cluster: Cluster
    instance_id: str
    token: str  # the node's raw token: for the agent's environment only, never a log
    path: Path


def ensure_demo_node(*, provider: Ec2Provider | None = None, path: Path = NODE_FILE) -> DemoNode:
    team = Team.objects.get(slug=TEAM)
    owner = User.objects.get(username=OWNER)
    provider = provider or ec2_provider(region=settings.AWS_REGION)
    cluster = Cluster.objects.filter(team=team, name=NAME).first()
    if cluster is None:
        cluster = request_cluster(
            actor=owner,
            team=team,
            name=NAME,
            region=provider.region,
            instance_type=INSTANCE_TYPE,
            node_count=1,
            purchase_option="on_demand",
            dispatch=False,  # provisioned below, here: no worker may race it
        )
    if cluster.state == ClusterState.RUNNING:
        reused = _reusable(cluster, path, provider)
        if reused is not None:
            _keep_awake(cluster)
            return reused
        _retire_nodes(cluster, provider)
        reason = "The demo node was lost (a new sandbox cloud, or its token file is gone); starting a new one."
        cluster_transition(cluster=cluster, to=ClusterState.STOPPING, reason=reason)
        cluster_transition(cluster=cluster, to=ClusterState.STOPPED, reason=reason)
        cluster.refresh_from_db()
    if cluster.state == ClusterState.STOPPED:
        _retire_nodes(cluster, provider)  # a stopped node does not outlive the sandbox cloud either
        start_cluster(actor=owner, cluster=cluster, dispatch=False)
    elif cluster.state == ClusterState.PROVISIONING:
        _retire_nodes(cluster, provider)
    if cluster.state in (ClusterState.REQUESTED, ClusterState.PROVISIONING, ClusterState.STOPPED):
        cluster = provision_cluster(cluster_pk=cluster.pk, provider=provider)
    if cluster.state != ClusterState.RUNNING:
        raise DemoNodeUnavailable(
            f"Demo cluster {cluster} is {cluster.state} ({cluster.state_reason or 'no reason given'}); "
            "the demo runs without a node agent."
        )
    _keep_awake(cluster)
    node = cluster.nodes.get(state=NodeState.RUNNING)
    registered = register_node(cluster=cluster, instance_id=node.instance_id)
    _write(path, {"cluster": cluster.pk, "instance_id": node.instance_id, "token": registered.token})
    return DemoNode(cluster=cluster, instance_id=node.instance_id, token=registered.token, path=path)


def _keep_awake(cluster: Cluster) -> None:
    """The replayed readings are always idle, so idle auto-stop would stop the demo node half an hour in and the
    demo's training jobs would wait: the demo's platform admin overrides auto-stop for the longest allowed span
    (audited like any override; renewed at every `make run`)."""
    admin = User.objects.filter(username=ADMIN, is_superuser=True).first()
    if admin is None:
        return
    override_autostop(
        actor=admin,
        cluster=cluster,
        until=timezone.now() + MAX_AUTOSTOP_OVERRIDE - timedelta(minutes=1),
        reason="The make run demo's node: its replayed readings are idle, and demo training jobs need it awake.",
    )


def _reusable(cluster: Cluster, path: Path, provider: Ec2Provider) -> DemoNode | None:
    """The saved node, if it is this cluster's running, registered node, its token is right and EC2 runs it."""
    saved = _read(path)
    token, instance_id = str(saved.get("token", "")), str(saved.get("instance_id", ""))
    node = Node.objects.filter(cluster=cluster, instance_id=instance_id, state=NodeState.RUNNING).first()
    if node is None or node.registered_at is None or not token or tokens.digest(token) != node.token_digest:
        return None
    try:
        infos = provider.describe_nodes([instance_id])
    except CloudError:
        return None
    if not any(info.state == "running" for info in infos):
        return None
    return DemoNode(cluster=cluster, instance_id=instance_id, token=token, path=path)


def _retire_nodes(cluster: Cluster, provider: Ec2Provider) -> None:
    nodes = cluster.nodes.filter(state__in=[*LIVE_NODE_STATES, NodeState.MISSING])
    instance_ids = list(nodes.filter(state__in=LIVE_NODE_STATES).values_list("instance_id", flat=True))
    with contextlib.suppress(CloudError):  # the sandbox cloud no longer knows them: nothing left to terminate
        provider.terminate_nodes(instance_ids)
    nodes_transition(nodes=nodes, to=NodeState.TERMINATED)


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)  # also when the file was there before with other bits
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
        handle.write("\n")


def iris_csv() -> bytes:
    """The iris data set as CSV (four features, the label last), from the ML venv's scikit-learn."""
    # A fixed argv: the ML venv's python and a constant program.
    return subprocess.run([str(ML_PYTHON), "-c", IRIS_CSV], capture_output=True, check=True, timeout=120).stdout  # noqa: S603


def seed_demo_buckets(*, endpoint_url: str | None = None) -> str:
    """The training-job template's buckets in the sandbox cloud, with the iris data set its example reads
    (written with the ML venv's scikit-learn, `make serving`). Returns what was done, for the log."""
    s3 = boto3.client("s3", region_name=settings.AWS_REGION, endpoint_url=endpoint_url or settings.AWS_ENDPOINT_URL)
    for bucket in (DATA_BUCKET, MODEL_BUCKET):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
    if not ML_PYTHON.exists():
        return f"no {ML_PYTHON} (run `make serving`): s3://{DATA_BUCKET}/{DATASET_KEY} not written"
    try:
        s3.head_object(Bucket=DATA_BUCKET, Key=DATASET_KEY)
        return f"s3://{DATA_BUCKET}/{DATASET_KEY} already there"
    except ClientError:
        pass
    csv = iris_csv()
    try:
        s3.put_object(Bucket=DATA_BUCKET, Key=DATASET_KEY, Body=csv)
    except (ClientError, BotoCoreError) as exc:
        return f"s3://{DATA_BUCKET}/{DATASET_KEY} not written: {exc}"
    return f"wrote s3://{DATA_BUCKET}/{DATASET_KEY} ({len(csv)} bytes)"
