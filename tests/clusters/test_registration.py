"""Node registration: the bootstrap secret travels in the EC2 user data (read back from a real moto server), and
each node's agent trades it once for its own token, through the real API and the real agent process."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts.tokens import digest
from apps.audit.models import AuditEvent
from apps.clusters.agent.client import PortalRejected, PortalUnavailable, register
from apps.clusters.cloud import Ec2Provider
from apps.clusters.errors import UnknownClusterNode
from apps.clusters.models import Cluster, ClusterState, GpuSample, Node
from apps.clusters.services import provision_cluster, request_cluster, terminate_cluster
from apps.clusters.services.registration import new_bootstrap_token, register_node
from apps.clusters.services.telemetry import authenticate_node
from tests.factories import ClusterFactory, NodeFactory
from tests.waiting import wait_cluster_state

URL = "/api/v1/clusters/nodes/register"
ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
SECRET_LINE = re.compile(r"^(pvb_[A-Za-z0-9_-]{40,})$", re.MULTILINE)


@pytest.fixture
def provider(settings: Any, moto_endpoint: str) -> Ec2Provider:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    return Ec2Provider("us-east-1", endpoint_url=moto_endpoint, base_delay=0.001, max_attempts=2, sleep=lambda _: None)


def launched(alice: Any, vision: Any, provider: Ec2Provider, **fields: Any) -> Cluster:
    cluster = request_cluster(actor=alice, team=vision, name=fields.get("name", "train"), region="us-east-1",
                              instance_type="g5.xlarge", node_count=2, purchase_option="spot")  # fmt: skip
    return provision_cluster(cluster_pk=cluster.pk, provider=provider)


def user_data(ec2_client: Any, instance_id: str) -> str:
    attribute = ec2_client.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    return base64.b64decode(attribute["UserData"]["Value"]).decode()


def secret_in(script: str) -> str:
    match = SECRET_LINE.search(script)
    assert match, script
    return match.group(1)


def bootstrap_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bootstrap {secret}")
    return client


@pytest.mark.django_db
def test_every_node_boots_with_the_clusters_bootstrap_secret_and_the_agent_service(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any, settings: Any
) -> None:
    settings.PAVED_NODE_PORTAL_URL = "https://paved.example.com/"
    cluster = launched(alice, vision, provider)
    scripts = [user_data(ec2_client, node.instance_id) for node in cluster.nodes.all()]

    assert len(scripts) == 2
    assert scripts[0] == scripts[1]  # one run_instances call, one user data
    secret = secret_in(scripts[0])
    assert cluster.bootstrap_token_digest == digest(secret)
    assert not Cluster.objects.filter(bootstrap_token_digest=secret).exists()  # only the digest is stored
    assert "--portal https://paved.example.com --register" in scripts[0]
    assert "--token-file /etc/paved/node-token --run-jobs\n" in scripts[0]  # the node runs the cluster's jobs
    assert "systemctl enable --now paved-gpu-agent.service" in scripts[0]
    assert scripts[0].startswith("#!/bin/bash\n")


@pytest.mark.django_db
def test_a_node_registers_once_and_its_token_authenticates_only_it(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = launched(alice, vision, provider)
    first, second = cluster.nodes.all()
    client = bootstrap_client(secret_in(user_data(ec2_client, first.instance_id)))

    response = client.post(URL, {"instance_id": first.instance_id}, format="json")
    again = client.post(URL, {"instance_id": first.instance_id}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["node"], body["gpu_count"], body["cluster"]) == (first.instance_id, 1, cluster.pk)
    assert authenticate_node(digest=digest(body["token"])) == first
    assert authenticate_node(digest=digest(body["token"])) != second
    first.refresh_from_db()
    assert first.registered_at is not None
    assert again.status_code == 409
    assert again.json()["code"] == "node_already_registered"
    assert authenticate_node(digest=digest(body["token"])) == first  # a refused second try does not rotate the token
    verbs = list(
        AuditEvent.objects.filter(team=vision, verb__startswith="cluster.node_regist").values_list("verb", flat=True)
    )
    assert sorted(verbs) == ["cluster.node_registered", "cluster.node_registration_refused"]


@pytest.mark.django_db
def test_a_secret_registers_only_its_own_clusters_instances(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    ours = launched(alice, vision, provider, name="ours")
    theirs = launched(alice, vision, provider, name="theirs")
    client = bootstrap_client(secret_in(user_data(ec2_client, ours.nodes.first().instance_id)))  # type: ignore[union-attr]
    foreign = theirs.nodes.first()
    assert foreign is not None

    response = client.post(URL, {"instance_id": foreign.instance_id}, format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "unknown_node"
    foreign.refresh_from_db()
    assert foreign.registered_at is None


@pytest.mark.django_db
def test_registration_is_refused_with_a_wrong_secret_bad_input_or_a_finished_cluster(
    alice: Any, vision: Any, provider: Ec2Provider, ec2_client: Any
) -> None:
    cluster = launched(alice, vision, provider)
    node = cluster.nodes.first()
    assert node is not None
    secret = secret_in(user_data(ec2_client, node.instance_id))

    wrong = bootstrap_client("pvb_" + "x" * 43).post(URL, {"instance_id": node.instance_id}, format="json")
    node_token_scheme = APIClient()
    node_token_scheme.credentials(HTTP_AUTHORIZATION=f"Node {secret}")
    as_node = node_token_scheme.post(URL, {"instance_id": node.instance_id}, format="json")
    malformed = bootstrap_client(secret).post(URL, {"instance_id": "../../etc"}, format="json")
    terminate_cluster(actor=alice, cluster=cluster, provider=provider)
    finished = bootstrap_client(secret).post(URL, {"instance_id": node.instance_id}, format="json")

    assert wrong.status_code == 401
    assert as_node.status_code in (401, 403)
    assert malformed.status_code == 400
    assert "instance_id" in malformed.json()["errors"]
    assert finished.status_code == 409
    assert finished.json()["code"] == "cluster_not_registrable"
    assert not Node.objects.filter(registered_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_a_node_that_boots_before_its_launch_is_recorded_is_told_to_retry(live_server: Any, vision: Any) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.PROVISIONING)
    secret, stored = new_bootstrap_token()
    Cluster.objects.filter(pk=cluster.pk).update(bootstrap_token_digest=stored)

    with pytest.raises(PortalUnavailable, match="retry"):
        register(live_server.url, secret, "i-0123456789abcdef0")
    NodeFactory(cluster=cluster, instance_id="i-0123456789abcdef0")
    token = register(live_server.url, secret, "i-0123456789abcdef0")
    with pytest.raises(PortalRejected) as refused:
        register(live_server.url, secret, "i-0123456789abcdef0")

    assert token.startswith("pvn_")
    assert refused.value.code == "node_already_registered"


@pytest.mark.django_db(transaction=True)
def test_the_real_agent_registers_with_the_user_data_secret_then_reports(
    live_server: Any,
    celery_worker: Any,
    alice: Any,
    vision: Any,
    provider: Ec2Provider,
    ec2_client: Any,
    tmp_path: Path,
) -> None:
    # Committed rows for the live server: the request's on-commit dispatch goes to the real worker, which
    # provisions the cluster in the same moto server.
    cluster = request_cluster(actor=alice, team=vision, name="train", region="us-east-1", instance_type="g5.xlarge",
                              node_count=2, purchase_option="spot")  # fmt: skip
    wait_cluster_state(cluster, ClusterState.RUNNING)
    node = cluster.nodes.first()
    assert node is not None
    bootstrap = tmp_path / "bootstrap-token"
    bootstrap.write_text(secret_in(user_data(ec2_client, node.instance_id)) + "\n")
    token = tmp_path / "node-token"
    command = [
        sys.executable, "-m", "apps.clusters.agent", "--portal", live_server.url, "--register",
        "--bootstrap-token-file", str(bootstrap), "--token-file", str(token), "--node-id", node.instance_id,
        "--replay", str(DATA / "h100_idle.jsonl"), "--once",
    ]  # fmt: skip

    def run_agent() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60
        )

    first = run_agent()
    second = run_agent()  # a restart: the token file is there, so no second registration

    assert first.returncode == 0, first.stderr
    assert "registered node" in first.stderr
    assert second.returncode == 0, second.stderr
    assert "registered node" not in second.stderr
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert authenticate_node(digest=digest(token.read_text().strip())) == node
    assert GpuSample.objects.filter(node=node).count() == 2
    assert AuditEvent.objects.filter(verb="cluster.node_registered").count() == 1


def test_registering_needs_both_token_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "apps.clusters.agent", "--portal", "http://127.0.0.1:9", "--register"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--register needs --bootstrap-token-file" in result.stderr


@pytest.mark.django_db
def test_register_node_service_refuses_unknown_instances_of_a_running_cluster(vision: Any) -> None:
    cluster = ClusterFactory(team=vision, state=ClusterState.RUNNING)
    with pytest.raises(UnknownClusterNode, match="not a node of cluster"):
        register_node(cluster=cluster, instance_id="i-0fffffffffffffff0")
