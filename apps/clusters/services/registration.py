"""How a node's agent gets its own token: the bootstrap secret in the EC2 user data, exchanged once per node.

`run_instances` launches all of a cluster's nodes in one call with one user data, so the user data cannot carry
per-node tokens. It carries a per-cluster bootstrap secret instead (stored as a digest, like every token); each
node's agent trades it, with its own instance id, for a node token exactly once. The secret registers only
instances this cluster launched, only while the cluster is provisioning or running, and only once per instance,
so a leaked secret cannot mint tokens for other nodes or clusters.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts import tokens
from apps.audit.services import record
from apps.clusters.errors import (
    ClusterNotRegistrable,
    NodeAlreadyRegistered,
    NodeNotRecordedYet,
    UnknownClusterNode,
)
from apps.clusters.models import Cluster, ClusterState, Node
from apps.clusters.services.telemetry import new_node_token

BOOTSTRAP_TOKEN_PREFIX = "pvb_"  # noqa: S105 - a prefix, not a secret
REGISTRABLE_STATES = (ClusterState.PROVISIONING, ClusterState.RUNNING)
AGENT_DIR = "/etc/paved"


def new_bootstrap_token() -> tuple[str, str]:
    """(secret for the nodes' user data, digest to store on the cluster)."""
    return tokens.mint(BOOTSTRAP_TOKEN_PREFIX)


def authenticate_bootstrap(*, digest: str) -> Cluster | None:
    """The cluster whose bootstrap secret has this digest (`tokens.digest` of the secret), or None."""
    return Cluster.objects.select_related("team").filter(bootstrap_token_digest=digest).first()


@dataclass(frozen=True)
class RegisteredNode:
    node: Node
    token: str  # shown once, to the node


def register_node(*, cluster: Cluster, instance_id: str, request: HttpRequest | None = None) -> RegisteredNode:
    """Issue `instance_id`'s node token. A node that boots before the worker recorded the launch gets
    NodeNotRecordedYet (its agent retries); a second registration of the same node is refused and audited."""
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().select_related("team").get(pk=cluster.pk)
        if locked.state not in REGISTRABLE_STATES:
            raise ClusterNotRegistrable(
                f"Cluster {locked} is {locked.state}; nodes register only while it is provisioning or running."
            )
        node = locked.nodes.select_for_update().filter(instance_id=instance_id).first()
        if node is None:
            if locked.state == ClusterState.PROVISIONING:
                raise NodeNotRecordedYet(
                    f"Instance {instance_id} is not recorded for cluster {locked} yet; retry in a few seconds."
                )
            raise UnknownClusterNode(f"Instance {instance_id} is not a node of cluster {locked}.")
        already = node.registered_at
        if already is None:
            raw, digest = new_node_token()
            node.token_digest = digest
            node.registered_at = timezone.now()
            node.save(update_fields=["token_digest", "registered_at", "updated_at"])
            record(
                actor=None,
                team=locked.team,
                verb="cluster.node_registered",
                target=locked,
                data={"instance_id": instance_id},
                request=request,
            )
    if already is not None:
        # Audited outside the transaction: a refusal is worth keeping (a leaked secret, a node that lost its token).
        record(
            actor=None,
            team=locked.team,
            verb="cluster.node_registration_refused",
            target=locked,
            data={"instance_id": instance_id},
            request=request,
        )
        raise NodeAlreadyRegistered(
            f"Node {instance_id} registered at {already:%Y-%m-%d %H:%M} UTC; a node registers once. "
            "If it lost its token, replace the node (terminate and start the cluster again)."
        )
    return RegisteredNode(node=node, token=raw)


def node_user_data(*, cluster: Cluster, bootstrap_secret: str, portal_url: str | None = None) -> str:
    """The cloud-init script every node of `cluster` boots with: it writes the portal address and the bootstrap
    secret (root-only) and starts the agent as a service, which registers, then reports every 10 s and runs the
    training jobs Paved schedules on the cluster (`--run-jobs`: in a container where docker or podman is there).

    The node image must carry the agent (`apps/clusters/agent`, standard library + nvidia-ml-py) under
    /opt/paved; the Deep Learning AMIs have Python and the NVIDIA driver.
    """
    url = (portal_url or settings.PAVED_NODE_PORTAL_URL).rstrip("/")
    agent = (
        f"/usr/bin/env python3 -m apps.clusters.agent --portal {shlex.quote(url)} --register "
        f"--bootstrap-token-file {AGENT_DIR}/bootstrap-token --token-file {AGENT_DIR}/node-token --run-jobs"
    )
    return f"""#!/bin/bash
# Paved GPU node bootstrap for cluster {cluster.team.slug}/{cluster.name} (#{cluster.pk}).
set -eu
install -d -m 700 {AGENT_DIR}
umask 077
cat > {AGENT_DIR}/bootstrap-token <<'PAVED_SECRET'
{bootstrap_secret}
PAVED_SECRET
cat > /etc/systemd/system/paved-gpu-agent.service <<'PAVED_UNIT'
[Unit]
Description=Paved GPU telemetry agent
After=network-online.target
Wants=network-online.target

[Service]
WorkingDirectory=/opt/paved
ExecStart={agent}
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
PAVED_UNIT
systemctl daemon-reload
systemctl enable --now paved-gpu-agent.service
"""
