"""Clusters made for one training job (`submit_job(new_cluster=...)`): requested with the job, through the
clusters app's own `request_cluster` (its catalog, quota and name checks), as the job's owner; the job's only
cluster (no other job is placed on it); terminated, through `terminate_cluster`, once the job is over.

The job's terminal transition queues `release_job_cluster` after commit (the side effect on the job's machine in
`services/transitions.py`); `release_leftover_clusters`, a beat pass, does the same for any job whose message was
lost, so a cluster is never left billing GPUs after its job. A cluster that fails, or goes away, before its job
ran fails the job (the scheduler pass, `fail_job_without_cluster`)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User

from apps.accounts.models import Team
from apps.catalog.models import Lifecycle, TemplateKind, TemplateVersion
from apps.catalog.schema import validate_parameters
from apps.catalog.selectors import launch_teams
from apps.clusters.cloud import CloudError, Ec2Provider
from apps.clusters.errors import IllegalClusterTransition
from apps.clusters.instance_catalog import load_catalog
from apps.clusters.models import Cluster, ClusterState, PurchaseOption
from apps.clusters.services.provisioning import request_cluster, terminate_cluster
from apps.training.errors import IllegalJobTransition, InvalidClusterTemplate, JobDoesNotFitCluster
from apps.training.models import FINAL_JOB_STATES, JobState, TrainingJob
from apps.training.services.transitions import job_transition
from apps.training.spec import JobSpec

logger = logging.getLogger(__name__)

# Cluster states in which a job's own cluster can never run it.
GONE_CLUSTER_STATES = frozenset({ClusterState.FAILED, ClusterState.TERMINATING, ClusterState.TERMINATED})
RELEASED_CLUSTER_STATES = frozenset({ClusterState.TERMINATING, ClusterState.TERMINATED})
# The settings a gpu_cluster template may give a job's cluster (node_count always comes from the job).
TEMPLATE_SETTINGS = ("region", "purchase_option", "max_hours", "idle_window_minutes")


@dataclass(frozen=True)
class NewCluster:
    """What a job asks of the cluster made for it: an instance type, and optionally the gpu_cluster template
    version whose settings (region, purchase option, max hours, idle window) the cluster takes."""

    instance_type: str
    template_version: TemplateVersion | None = None


def _template_settings(*, actor: User, team: Team, new_cluster: NewCluster, node_count: int) -> dict[str, Any]:
    """The cluster settings: the template version's (its schema validates the instance type and the node count),
    else the platform's region and on-demand nodes."""
    version = new_cluster.template_version
    if version is None:
        return {"region": settings.AWS_REGION, "purchase_option": PurchaseOption.ON_DEMAND}
    if version.template.kind != TemplateKind.GPU_CLUSTER:
        raise InvalidClusterTemplate(
            f"{version} is a {version.template.get_kind_display()} template; a job's cluster comes from a GPU "
            "cluster template."
        )
    if version.lifecycle != Lifecycle.PUBLISHED:
        raise InvalidClusterTemplate(f"{version} is {version.lifecycle}; pick a published version.")
    if not launch_teams(actor, version.template).filter(pk=team.pk).exists():
        raise InvalidClusterTemplate(f"Team {team.slug} cannot launch {version.template.slug}.")
    parameters = validate_parameters(
        version.parameters_schema, {"instance_type": new_cluster.instance_type, "node_count": node_count}
    )
    return {key: parameters[key] for key in TEMPLATE_SETTINGS if key in parameters}


def _cluster_name(job: TrainingJob) -> str:
    name = f"job-{job.pk}"
    if Cluster.objects.filter(team_id=job.team_id, name=name).exists():
        name = f"{name}-{secrets.token_hex(3)}"
    return name


def request_job_cluster(*, actor: User, job: TrainingJob, new_cluster: NewCluster, spec: JobSpec) -> Cluster:
    """Request the cluster for `job` (inside the caller's transaction: a refusal leaves nothing). The instance
    type must have the job's GPUs per node; everything else is `request_cluster`'s to check."""
    entry = load_catalog().get(new_cluster.instance_type)
    if entry is not None and entry.gpus < spec.gpus_per_node:
        raise JobDoesNotFitCluster(
            f"The job asks for {spec.gpus_per_node} GPUs per node; a {new_cluster.instance_type} has {entry.gpus}. "
            "Ask for fewer GPUs per node, or a bigger instance type.",
            field="new_cluster",
            extra={"instance_type": new_cluster.instance_type, "instance_gpus": entry.gpus},
        )
    cluster_settings = _template_settings(
        actor=actor, team=job.team, new_cluster=new_cluster, node_count=spec.node_count
    )
    return request_cluster(
        actor=actor,
        team=job.team,
        name=_cluster_name(job),
        instance_type=new_cluster.instance_type,
        node_count=spec.node_count,
        **cluster_settings,
    )


def fail_job_without_cluster(*, job: TrainingJob, cluster: Cluster, now: datetime) -> TrainingJob | None:
    """A queued job whose own cluster failed or went away can never run: it fails, saying why."""
    if not job.owns_cluster or cluster.state not in GONE_CLUSTER_STATES:
        return None
    why = f": {cluster.state_reason}" if cluster.state_reason else ""
    try:
        return job_transition(
            job=job,
            to=JobState.FAILED,
            reason=f"cluster {cluster.name}, requested for this job, is {cluster.state}{why}",
            finished_at=now,
        )
    except IllegalJobTransition:
        return None  # it moved meanwhile


def release_job_cluster(*, job_id: int, provider: Ec2Provider | None = None) -> Cluster | None:
    """Terminate the cluster made for job `job_id` once the job is over; any other job, or cluster, is left alone.
    Safe to run twice (a terminating or terminated cluster is left as it is)."""
    job = TrainingJob.objects.select_related("cluster").get(pk=job_id)
    cluster = job.cluster
    if not job.owns_cluster or cluster is None or job.state not in FINAL_JOB_STATES:
        return None
    if cluster.state in RELEASED_CLUSTER_STATES:
        return cluster
    reason = f"Training job #{job.pk} is {job.get_state_display().lower()}; the cluster made for it ends with it."
    try:
        return terminate_cluster(actor=None, cluster=cluster, reason=reason, provider=provider)
    except IllegalClusterTransition:
        cluster.refresh_from_db()
        return cluster  # terminated meanwhile


def release_leftover_clusters(*, provider: Ec2Provider | None = None) -> list[int]:
    """The safety pass: terminate clusters made for jobs that are over but still live (the release message was
    lost, or EC2 refused the termination and the cluster failed). Returns the pks it terminated."""
    leftovers = (
        TrainingJob.objects.filter(owns_cluster=True, state__in=FINAL_JOB_STATES)
        .exclude(cluster__isnull=True)
        .exclude(cluster__state__in=RELEASED_CLUSTER_STATES)
        .values_list("pk", flat=True)
    )
    released = []
    for job_id in list(leftovers):
        try:
            cluster = release_job_cluster(job_id=job_id, provider=provider)
        except CloudError:
            logger.exception("Could not terminate the cluster of training job #%s; the next pass tries again.", job_id)
            continue
        if cluster is not None:
            released.append(cluster.pk)
    return released
