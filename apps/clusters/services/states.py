"""The one way a cluster or its nodes change state (through `apps.core.transitions`): legal edges only,
audited. Entering `running` starts the cluster's clock; leaving it folds the run into `running_seconds`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet

from apps.clusters import selectors
from apps.clusters.errors import IllegalClusterTransition
from apps.clusters.models import ALLOWED_CLUSTER_TRANSITIONS, Cluster, ClusterState, Node, NodeState
from apps.core.transitions import Change, Machine, SideEffect, bulk_transition, transition

# A node is launched (pending), runs, is stopped (by us or by EC2 reclaiming spot capacity) and started again,
# and ends terminated, or missing when it vanished outside Paved.
NODE_TRANSITIONS: dict[str, frozenset[str]] = {
    NodeState.PENDING: frozenset({NodeState.RUNNING, NodeState.TERMINATED, NodeState.MISSING}),
    NodeState.RUNNING: frozenset({NodeState.STOPPED, NodeState.TERMINATED, NodeState.MISSING}),
    NodeState.STOPPED: frozenset({NodeState.RUNNING, NodeState.TERMINATED, NodeState.MISSING}),
    NodeState.MISSING: frozenset({NodeState.TERMINATED}),
    NodeState.TERMINATED: frozenset(),
}


def _start_clock(change: Change[Cluster]) -> Iterable[str]:
    change.obj.running_since = change.now
    return ["running_since"]


def _stop_clock(change: Change[Cluster]) -> Iterable[str]:
    """Fold the current run into running_seconds."""
    cluster = change.obj
    if cluster.running_since is None:
        return []
    cluster.running_seconds = selectors.running_seconds(cluster, now=change.now)
    cluster.running_since = None
    return ["running_seconds", "running_since"]


CLUSTER_MACHINE: Machine[Cluster] = Machine(
    model=Cluster,
    field="state",
    edges=ALLOWED_CLUSTER_TRANSITIONS,
    illegal=lambda cluster, previous, to: IllegalClusterTransition(
        f"Cluster {cluster} is {previous}; it cannot become {to}."
    ),
    reason_field="state_reason",
    related=("team",),
    audit_verb=lambda to: f"cluster.{to}",
    effects=(
        SideEffect(enters={ClusterState.RUNNING}, apply=_start_clock),
        # Leaving running stops the clock; so does any other move that finds it still going (never double-counts).
        SideEffect(enters=frozenset(ClusterState) - {ClusterState.RUNNING}, apply=_stop_clock),
    ),
)


def cluster_transition(*, cluster: Cluster, to: str, actor: User | None = None, reason: str = "") -> Cluster:
    return transition(CLUSTER_MACHINE, obj=cluster, to=to, actor=actor, reason=reason)


NODE_MACHINE: Machine[Node] = Machine(
    model=Node,
    field="state",
    edges=NODE_TRANSITIONS,
    illegal=lambda node, previous, to: IllegalClusterTransition(
        f"Node {node.instance_id} is {previous}; it cannot become {to}.", code="illegal_node_transition"
    ),
)


def node_transition(*, node: Node, to: str, **fields: Any) -> Node:
    """One node's move (audited by its cluster's own events, so not here)."""
    return transition(NODE_MACHINE, obj=node, to=to, fields=fields)


def nodes_transition(*, nodes: QuerySet[Node], to: str) -> list[Any]:
    """Move the nodes of `nodes` that may become `to` by the batch; returns the pks moved."""
    return bulk_transition(NODE_MACHINE, queryset=nodes, to=to)
