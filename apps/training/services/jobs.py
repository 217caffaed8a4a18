"""Submitting and ending training jobs.

The boundary with execution: Paved decides *where and when* a job runs (`submit_job`, then the scheduler in
`services/scheduling.py` moves it to `scheduling` on a cluster); the node agent executes it and reports (through
`services/agent.py`) with `start_job`, `finish_job`, `time_out_job` and `lose_job`, which take no actor because
the agent is not a person. Nothing in this module talks to a node."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.catalog.models import TemplateVersion
from apps.clusters.models import Cluster, ClusterState, Node
from apps.clusters.selectors import effective_quota
from apps.core.tasks import send_on_commit
from apps.training.errors import (
    ClusterChoiceConflict,
    ClusterUnavailable,
    JobDoesNotFitCluster,
    JobOverQuota,
    UnknownCluster,
)
from apps.training.models import Framework, JobDefinition, JobState, TrainingJob
from apps.training.services.job_clusters import NewCluster, request_job_cluster
from apps.training.services.transitions import job_transition
from apps.training.spec import JobSpec, validate_job_spec

ENDED_CLUSTER_STATES = frozenset({ClusterState.TERMINATING, ClusterState.TERMINATED, ClusterState.FAILED})


def check_placement(*, team: Team, cluster: Cluster | None, spec: JobSpec) -> None:
    """Whether a job of `spec` can ever run for `team` (on `cluster` when one is named): the cluster is the
    team's, still running or able to, and big enough; the job alone fits the team's GPU quota. Checked when a
    job is submitted and when a definition is saved (its firings are checked again at submit)."""
    if cluster is not None:
        if cluster.team_id != team.pk:
            raise UnknownCluster(f"Team {team.slug} has no such cluster. Pick one of its clusters, or none.")
        if cluster.state in ENDED_CLUSTER_STATES:
            raise ClusterUnavailable(f"Cluster {cluster.name} is {cluster.state}; pick a cluster that can still run.")
        owner_job = TrainingJob.objects.filter(cluster=cluster, owns_cluster=True).values_list("pk", flat=True).first()
        if owner_job is not None:
            raise ClusterUnavailable(
                f"Cluster {cluster.name} was made for training job #{owner_job} and ends with it; pick another "
                "cluster, or ask for a new one (new_cluster)."
            )
        if spec.gpus_per_node > cluster.gpus_per_node or spec.node_count > cluster.node_count:
            raise JobDoesNotFitCluster(
                f"The job asks for {spec.node_count} nodes x {spec.gpus_per_node} GPUs; cluster {cluster.name} has "
                f"{cluster.node_count} x {cluster.gpus_per_node}. Ask for less, or pick a bigger cluster.",
                extra={"cluster_nodes": cluster.node_count, "cluster_gpus_per_node": cluster.gpus_per_node},
            )
    quota = effective_quota(team)
    if spec.gpus > quota.max_gpus:
        raise JobOverQuota(
            f"The job needs {spec.gpus} GPUs but team {team.slug}'s GPU quota is {quota.max_gpus}, so it could "
            "never run. Ask for fewer GPUs or nodes, or ask a platform admin for a quota exception.",
            extra={"requested_gpus": spec.gpus, "max_gpus": quota.max_gpus},
        )


def submit_job(
    *,
    actor: User,
    team: Team,
    cluster: Cluster | None,
    new_cluster: NewCluster | None = None,
    image: Any,
    command: Any,
    framework: Any = Framework.PYTORCH,
    environment: Any = None,
    dataset_uri: Any = "",
    hyperparameters: Any = None,
    output_uri: Any = "",
    gpus_per_node: Any,
    node_count: Any = 1,
    max_run_minutes: Any,
    max_retries: Any = 0,
    template_version: TemplateVersion | None = None,
    definition: JobDefinition | None = None,
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> TrainingJob:
    """Queue a job for `team` (on `cluster`, or the first of the team's running clusters it fits, or on a cluster
    requested for it: `new_cluster`, terminated when the job ends). Nothing is created when the contract, the
    cluster, the cluster request or the quota refuses it."""
    require(actor, "training.submit", team, message=f"Only members of team {team.slug} may submit its jobs.")
    if cluster is not None and new_cluster is not None:
        raise ClusterChoiceConflict(
            "Give either cluster (one of the team's clusters) or new_cluster (a cluster made for the job), not both."
        )
    spec = validate_job_spec(
        image=image,
        command=command,
        framework=framework,
        environment=environment,
        dataset_uri=dataset_uri,
        hyperparameters=hyperparameters,
        output_uri=output_uri,
        gpus_per_node=gpus_per_node,
        node_count=node_count,
        max_run_minutes=max_run_minutes,
        max_retries=max_retries,
        allowed_images=settings.TRAINING_ALLOWED_IMAGES,
    )
    with transaction.atomic():
        check_placement(team=team, cluster=cluster, spec=spec)
        job = TrainingJob.objects.create(
            team=team,
            owner=actor,
            cluster=cluster,
            image=spec.image,
            command=spec.command,
            framework=spec.framework,
            environment=spec.environment,
            dataset_uri=spec.dataset_uri,
            hyperparameters=spec.hyperparameters,
            output_uri=spec.output_uri,
            gpus_per_node=spec.gpus_per_node,
            node_count=spec.node_count,
            max_run_minutes=spec.max_run_minutes,
            max_retries=spec.max_retries,
            template_version=template_version,
            definition=definition,
            state=JobState.QUEUED,
            state_reason="waiting for the scheduler",
            submitted_at=now or timezone.now(),
        )
        if new_cluster is not None:
            cluster = request_job_cluster(actor=actor, job=job, new_cluster=new_cluster, spec=spec)
            job.cluster, job.owns_cluster = cluster, True
            job.state_reason = f"waiting: cluster {cluster.name} is provisioning"
            job.save(update_fields=["cluster", "owns_cluster", "state_reason", "updated_at"])
        record(
            actor=actor,
            team=team,
            verb="training_job.submitted",
            target=job,
            data={
                "cluster": cluster.name if cluster else None,
                "owns_cluster": job.owns_cluster,
                "cluster_template": str(new_cluster.template_version)
                if new_cluster and new_cluster.template_version
                else None,
                "image": spec.image,
                "gpus": spec.gpus,
                "max_run_minutes": spec.max_run_minutes,
                "template": str(template_version) if template_version else None,
                "definition": definition.name if definition else None,
            },
            request=request,
        )
        # Place it now rather than at the next beat pass: an idle agent starts it within its claim interval.
        from apps.training import tasks

        send_on_commit(tasks.schedule_training_jobs, what=f"scheduling of training job #{job.pk}")
    return job


def cancel_job(
    *,
    actor: User,
    job: TrainingJob,
    reason: str = "",
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> TrainingJob:
    """Cancel a job that has not ended; a scheduled or running job frees its cluster and GPUs at once (the
    agent stops the process when its next log post is answered `stop`)."""
    require(actor, "training.operate", job, message=f"Only members of team {job.team.slug} may cancel its jobs.")
    return job_transition(
        job=job,
        to=JobState.CANCELLED,
        actor=actor,
        reason=reason or f"cancelled by {actor.get_username()}",
        finished_at=now or timezone.now(),
    )


def start_job(*, job: TrainingJob, node: Node | None = None, now: datetime | None = None) -> TrainingJob:
    """The node agent started the job (the agent's claim endpoint calls this; no person does)."""
    where = f" on cluster {job.cluster.name}" if job.cluster else ""
    on = f", node {node.instance_id}" if node else ""
    now = now or timezone.now()
    return job_transition(
        job=job, to=JobState.RUNNING, reason=f"running{where}{on}", started_at=now, last_heartbeat_at=now, node=node
    )


def finish_job(
    *, job: TrainingJob, exit_code: int, reason: str | None = None, now: datetime | None = None
) -> TrainingJob:
    """The job's process exited: 0 succeeded, anything else failed (a failure is not retried: the code ran).
    `reason` replaces the default "exited with code N" (a multi-node job names the rank)."""
    to = JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED
    with transaction.atomic():
        job = job_transition(
            job=job,
            to=to,
            reason=reason or f"exited with code {exit_code}",
            exit_code=exit_code,
            finished_at=now or timezone.now(),
        )
        if to == JobState.SUCCEEDED and job.definition_id is not None:
            # The definition may register what its jobs make; the worker does it (it reads the job's S3 output).
            from apps.training import tasks

            send_on_commit(tasks.register_definition_output, job.pk, what=f"registration of job #{job.pk}'s output")
    return job


def time_out_job(*, job: TrainingJob, now: datetime | None = None) -> TrainingJob:
    """The agent stopped the job at its max run time (the timeout pass does the same for a silent agent)."""
    return job_transition(
        job=job,
        to=JobState.TIMED_OUT,
        reason=f"ran past its max run time of {job.max_run_minutes} minutes",
        finished_at=now or timezone.now(),
    )


def lose_job(*, job: TrainingJob, reason: str, now: datetime | None = None) -> TrainingJob:
    """The job's node vanished (spot reclaim, a dead agent). Within its retry policy it is queued again, at the
    head of its cluster's queue (its submitted_at is kept); otherwise it ends lost."""
    now = now or timezone.now()
    with transaction.atomic():
        lost = job_transition(job=job, to=JobState.LOST, reason=f"lost: {reason}", finished_at=now)
        if lost.retries >= lost.max_retries:
            return lost
        return job_transition(
            job=lost,
            to=JobState.QUEUED,
            reason=f"retry {lost.retries + 1} of {lost.max_retries} after: {reason}",
            retries=lost.retries + 1,
            started_at=None,
            finished_at=None,
        )
