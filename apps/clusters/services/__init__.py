"""Cluster services by concern: states (the state machine), telemetry (node tokens, ingest), quotas,
provisioning (request, provision, stop, start, terminate, reconcile), idle (auto-stop from GPU telemetry)."""

from apps.clusters.services.idle import (
    IdleAssessment,
    idle_assessment,
    override_autostop,
    snooze_idle_stop,
    warn_or_stop_idle_clusters,
)
from apps.clusters.services.provisioning import (
    ReconcileReport,
    ec2_provider,
    provision_cluster,
    reconcile_clusters,
    request_cluster,
    request_termination,
    start_cluster,
    stop_cluster,
    stop_cluster_for_idleness,
    terminate_cluster,
)
from apps.clusters.services.quotas import check_cluster_request, grant_quota_exception, set_team_quota
from apps.clusters.services.states import cluster_transition
from apps.clusters.services.telemetry import (
    IngestResult,
    authenticate_node,
    ingest_telemetry,
    new_node_token,
)

__all__ = [
    "IdleAssessment",
    "IngestResult",
    "ReconcileReport",
    "authenticate_node",
    "check_cluster_request",
    "cluster_transition",
    "ec2_provider",
    "grant_quota_exception",
    "idle_assessment",
    "ingest_telemetry",
    "new_node_token",
    "override_autostop",
    "provision_cluster",
    "reconcile_clusters",
    "request_cluster",
    "request_termination",
    "set_team_quota",
    "snooze_idle_stop",
    "start_cluster",
    "stop_cluster",
    "stop_cluster_for_idleness",
    "terminate_cluster",
    "warn_or_stop_idle_clusters",
]
