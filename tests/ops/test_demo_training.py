"""The `make run` demo's GPU node (apps/clusters/demo.py, started by run_stack): made ready in the sandbox cloud
(a real moto server) idempotently, replaced when a new sandbox cloud forgot it, and its real agent, started with
run_stack's own argv and environment against a live portal, runs a job to success."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import call_command

from apps.accounts import tokens
from apps.audit.models import AuditEvent
from apps.clusters import demo
from apps.clusters.models import Cluster, ClusterState, NodeState
from apps.ops.management.commands.run_stack import Command as RunStack
from apps.training.models import JobState, TrainingJob
from apps.training.selectors import iter_job_log
from apps.training.services.scheduling import schedule_jobs
from tests.factories import TrainingJobFactory
from tests.fixtures.moto import reset_moto
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sandbox(moto_endpoint: str, settings: Any) -> str:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    call_command("seed_demo", stdout=StringIO())
    return moto_endpoint


def test_the_demo_node_is_made_once_per_sandbox_cloud_and_its_token_file_is_private(
    sandbox: str, moto_server: str, tmp_path: Path
) -> None:
    path = tmp_path / "demo-node.json"
    first = demo.ensure_demo_node(path=path)
    saved = path.read_text()
    again = demo.ensure_demo_node(path=path)

    assert (again.cluster.pk, again.instance_id, again.token) == (first.cluster.pk, first.instance_id, first.token)
    assert path.read_text() == saved
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(saved) == {"cluster": first.cluster.pk, "instance_id": first.instance_id, "token": first.token}
    cluster = Cluster.objects.get(team__slug="vision", name="demo-gpu")
    assert (cluster.state, cluster.owner.username, cluster.instance_type) == (
        ClusterState.RUNNING,
        "alice",
        "g5.xlarge",
    )
    node = cluster.nodes.get()
    assert (node.instance_id, node.token_digest) == (first.instance_id, tokens.digest(first.token))
    assert node.registered_at is not None
    assert cluster.autostop_override_until is not None  # replayed idle readings must not stop the demo node
    assert AuditEvent.objects.filter(verb="cluster.autostop_override", actor__username="ada").count() == 2


def test_a_new_sandbox_cloud_gets_a_new_node_for_the_same_demo_cluster(
    sandbox: str, moto_server: str, tmp_path: Path
) -> None:
    path = tmp_path / "demo-node.json"
    first = demo.ensure_demo_node(path=path)
    reset_moto(moto_server)  # what the next `make run` starts with

    second = demo.ensure_demo_node(path=path)

    assert second.cluster.pk == first.cluster.pk
    assert second.instance_id != first.instance_id
    assert json.loads(path.read_text())["instance_id"] == second.instance_id
    states = dict(Cluster.objects.get(pk=first.cluster.pk).nodes.values_list("instance_id", "state"))
    assert states == {first.instance_id: NodeState.TERMINATED, second.instance_id: NodeState.RUNNING}
    assert Cluster.objects.get(pk=first.cluster.pk).state == ClusterState.RUNNING


def test_the_training_template_data_is_written_to_the_sandbox_once(sandbox: str) -> None:
    assert demo.seed_demo_buckets().startswith("wrote s3://paved-demo-data/iris/iris.csv")
    assert demo.seed_demo_buckets() == "s3://paved-demo-data/iris/iris.csv already there"
    body = boto3.client("s3", region_name="us-east-1", endpoint_url=sandbox).get_object(
        Bucket=demo.DATA_BUCKET, Key=demo.DATASET_KEY
    )["Body"]
    lines = body.read().decode().splitlines()
    assert (lines[0], len(lines)) == ("sepal_length,sepal_width,petal_length,petal_width,label", 151)


def test_run_stacks_agent_for_the_demo_node_runs_a_job_to_success(
    sandbox: str, live_server: Any, tmp_path: Path
) -> None:
    node = demo.ensure_demo_node(path=tmp_path / "demo-node.json")
    # The environment run_stack has under `make run`: the sandbox cloud's endpoint and credentials.
    env = RunStack._agent_env({**os.environ, "PYTHONPATH": str(ROOT), "AWS_ENDPOINT_URL": sandbox}, node)
    agent = subprocess.Popen(
        [*RunStack._agent(sys.executable, live_server.url, node), "--job-poll", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cluster = node.cluster
        code = "import os; print(os.environ['AWS_DEFAULT_REGION'], os.environ['AWS_ENDPOINT_URL'], 'PAVED_NODE_TOKEN' in os.environ)"
        job = TrainingJobFactory(
            team=cluster.team, owner=cluster.owner, cluster=cluster, command=[sys.executable, "-c", code]
        )
        assert schedule_jobs() == [job.pk]

        def ended() -> bool:
            job.refresh_from_db()
            return job.state in (JobState.SUCCEEDED, JobState.FAILED)

        wait_for(ended, timeout=60, message=lambda: f"the demo node to run job #{job.pk} (it is {job.state})")
        assert (job.state, job.node.instance_id) == (JobState.SUCCEEDED, node.instance_id), iter_job_log(job)
        assert iter_job_log(job) == [f"us-east-1 {sandbox} False"]  # the sandbox cloud's S3, not the node token
        assert TrainingJob.objects.get(pk=job.pk).exit_code == 0
    finally:
        agent.terminate()
        _out, err = agent.communicate(timeout=30)
    assert agent.returncode == 0, err
    assert node.token not in err  # no secret in the agent's log
