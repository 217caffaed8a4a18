from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from apps.accounts.models import Team
from apps.clusters.demo import iris_csv
from apps.clusters.models import Cluster, ClusterState, Node, TeamQuota
from apps.training.models import TrainingJob
from apps.training.services.scheduling import schedule_jobs
from tests.factories import ClusterFactory, TrainingJobFactory, node_with_token
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
IDLE = ROOT / "tests" / "clusters" / "data" / "g5xlarge_idle.jsonl"
ML_PYTHON = ROOT / ".venv-serving" / "bin" / "python"  # the ML venv: scikit-learn, mlflow-skinny, boto3
SCRIPT = ROOT / "apps" / "training" / "examples" / "train_iris.py"


@pytest.fixture
def t0() -> datetime:
    return datetime.fromisoformat("2025-03-03T09:00:00+00:00")


@pytest.fixture
def gpu_box(vision: Team, alice: Any) -> Cluster:
    """A running 2 x 4-GPU cluster of team vision."""
    return ClusterFactory(
        team=vision, owner=alice, name="gpu-box", state=ClusterState.RUNNING, node_count=2, gpus_per_node=4
    )


@pytest.fixture
def quota_of(vision: Team) -> Any:
    def set_quota(max_gpus: int) -> TeamQuota:
        return TeamQuota.objects.update_or_create(
            team=vision, defaults={"max_gpus": max_gpus, "max_cluster_hours": 72}
        )[0]

    return set_quota


@pytest.fixture
def node(vision: Team, alice: Any) -> tuple[Node, str]:
    """A registered node (with its token) of vision's running 4-GPU cluster "box"."""
    box = ClusterFactory(team=vision, owner=alice, name="box", state=ClusterState.RUNNING, gpus_per_node=4)
    return node_with_token(cluster=box, gpu_count=4, private_ip="10.0.0.7")


def start_agent(
    portal_url: str, node: tuple[Node, str], extra_env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """The real node agent (`--run-jobs`, dev mode) for `node`, against the portal at `portal_url`."""
    instance, raw = node
    return subprocess.Popen(
        [sys.executable, "-m", "apps.clusters.agent", "--portal", portal_url, "--node-id", instance.instance_id,
         "--replay", str(IDLE), "--interval", "5", "--run-jobs", "--job-poll", "0.2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "PAVED_NODE_TOKEN": raw, "PAVED_AGENT_DEV_MODE": "1",
             **(extra_env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.fixture
def agent(live_server: Any, node: tuple[Node, str]) -> Iterator[subprocess.Popen[str]]:
    """`start_agent` for the test's node; it must exit cleanly, with no traceback, when the test is done."""
    proc = start_agent(live_server.url, node)
    yield proc
    if proc.poll() is None:
        proc.terminate()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err


@pytest.fixture
def buckets(moto_server: str, settings: Any) -> Any:
    """The data and model buckets in the session's moto server (the one the worker talks to)."""
    settings.AWS_ENDPOINT_URL = moto_server
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    for bucket in ("vision-data", "vision-models"):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket="vision-data", Key="iris/iris.csv", Body=iris_csv())  # the demo's data set
    return s3


def scheduled_job(node: Node, code: str, **fields: Any) -> TrainingJob:
    """A job of `node`'s cluster running `python -c code`, placed on it (the agent claims it next)."""
    cluster = node.cluster
    job = TrainingJobFactory(
        team=cluster.team, owner=cluster.owner, cluster=cluster, command=[sys.executable, "-c", code], **fields
    )
    assert schedule_jobs() == [job.pk]
    return job


def job_state(job: TrainingJob, *states: str, timeout: float = 30) -> TrainingJob:
    """Wait until the job is in one of `states`."""

    def ended() -> TrainingJob | None:
        job.refresh_from_db()
        return job if job.state in states else None

    return wait_for(ended, timeout=timeout, message=lambda: f"job #{job.pk} {states} (it is {job.state})")
