"""What a node agent does with training jobs, as the portal sees it: claim the job scheduled on its cluster
(which starts it), append its output, and report how it ended. Every call is scoped to the node: a job is the
node's only once that node claimed it, so another cluster's (or another node's) job reads as unknown.

The log post doubles as the agent's heartbeat for the job: its answer says whether the job should keep running
(`stop` once it was cancelled or timed out meanwhile), so cancelling needs no channel into the node. Metrics ride
in the same batches: `paved:metric {...}` lines are stored as the job run's metric points as well as log lines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.clusters.models import Node
from apps.tracking.services import log_job_metrics, metrics_in_lines, tracking_environment
from apps.training import selectors
from apps.training.errors import IllegalJobTransition, JobNotStarted, LogLinesOutOfOrder, UnknownAgentJob
from apps.training.models import JobLogChunk, JobState, TrainingJob
from apps.training.services.jobs import finish_job, lose_job, start_job, time_out_job

MASTER_PORT = 29500  # torchrun's default rendezvous port
MAX_LOG_LINES = 1000  # per post: an agent sends about a second of output at a time
MAX_LOG_LINE_CHARS = 4096  # longer lines are cut by the agent before sending


@dataclass(frozen=True)
class LogAppend:
    accepted: int  # lines newly stored (a resent batch stores nothing)
    next_line: int  # the number the agent's next batch should start at
    state: str
    stop: bool  # the job no longer runs here: stop the process


def claim_job(*, node: Node, now: datetime | None = None) -> TrainingJob | None:
    """Start the oldest job scheduled on the node's cluster, on this node; None when there is none.

    The agent claims only while it runs nothing, so a job still running on this node was left by an earlier
    agent process (a restart, a crash): it is lost (and retried within its policy) before a new one starts."""
    now = now or timezone.now()
    with transaction.atomic():
        for orphan in TrainingJob.objects.filter(node=node, state=JobState.RUNNING):
            lose_job(job=orphan, reason=f"the agent on node {node.instance_id} restarted while it ran", now=now)
        job = (
            TrainingJob.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(cluster_id=node.cluster_id, state=JobState.SCHEDULING, node_count=1)
            .order_by("scheduled_at", "pk")
            .first()
        )
        if job is None:
            return None
        return start_job(job=job, node=node, now=now)


def job_environment(job: TrainingJob, node: Node) -> dict[str, str]:
    """The job's environment plus what the platform sets (it wins over the job's own names): torchrun's
    rendezvous variables for a single node, one process (RANK 0 of WORLD_SIZE 1); PAVED_JOB_ID, the dataset,
    output and hyperparameters (JSON) of the job; and the MLflow variables of the job's tracking run (a fresh
    token per claim: `tracking.services.tracking_environment`)."""
    return {
        **job.environment,
        **tracking_environment(job=job),
        "PAVED_JOB_ID": str(job.pk),
        "PAVED_DATASET_URI": job.dataset_uri,
        "PAVED_OUTPUT_URI": job.output_uri,
        "PAVED_HYPERPARAMETERS": json.dumps(job.hyperparameters, sort_keys=True),
        "RANK": "0",
        "LOCAL_RANK": "0",
        "NODE_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": node.private_ip or "127.0.0.1",
        "MASTER_PORT": str(MASTER_PORT),
    }


def job_of_node(*, node: Node | None, job_id: int) -> TrainingJob:
    """The job `node` claimed; any other caller (another node, no node at all) finds no such job."""
    ok = node is not None and 0 < job_id < 2**63
    job = TrainingJob.objects.filter(pk=job_id, node=node).first() if ok else None
    if job is None:
        where = f"Node {node.instance_id}" if node else "This caller (not a node agent)"
        raise UnknownAgentJob(f"{where} runs no training job #{job_id}.")
    return job


def append_log(*, node: Node | None, job_id: int, first_line: int, lines: list[str]) -> LogAppend:
    """Store the lines numbered `first_line`.. in order. Lines already stored (a resent batch) are skipped; a
    batch past the next expected line is refused, so the log never has a hole."""
    with transaction.atomic():
        job = job_of_node(node=node, job_id=job_id)
        job = TrainingJob.objects.select_for_update(of=("self",)).get(pk=job.pk)
        if job.started_at is None:
            raise JobNotStarted(f"Training job #{job.pk} is {job.state}; claim it before sending its log.")
        if job.state == JobState.RUNNING:  # every post, an empty one too, is the job's heartbeat
            TrainingJob.objects.filter(pk=job.pk).update(last_heartbeat_at=timezone.now())
        tail = selectors.last_log_chunk(job)
        next_line = selectors.line_after(tail)
        if first_line > next_line:
            raise LogLinesOutOfOrder(
                f"Training job #{job.pk}'s log continues at line {next_line}; this batch starts at {first_line}.",
                extra={"next_line": next_line},
            )
        new = lines[next_line - first_line :]
        if new:
            metrics = metrics_in_lines(new)
            if metrics:
                log_job_metrics(job=job, metrics=metrics)
            JobLogChunk.objects.create(
                job=job,
                seq=tail.seq + 1 if tail else 1,
                first_line=next_line,
                line_count=len(new),
                text="\n".join(new),
            )
    return LogAppend(
        accepted=len(new),
        next_line=next_line + len(new),
        state=job.state,
        stop=job.state != JobState.RUNNING,
    )


def report_exit(
    *, node: Node | None, job_id: int, exit_code: int, timed_out: bool = False, now: datetime | None = None
) -> TrainingJob:
    """The job's process ended on the node. A job that already ended (cancelled or timed out meanwhile, or a
    resent report) keeps its outcome; a job the agent stopped at its max run time is timed out."""
    job = job_of_node(node=node, job_id=job_id)
    if job.started_at is None:
        raise JobNotStarted(f"Training job #{job.pk} is {job.state}; it never started, so it cannot have exited.")
    if job.state != JobState.RUNNING:
        return job
    try:
        if timed_out:
            return time_out_job(job=job, now=now)
        return finish_job(job=job, exit_code=exit_code, now=now)
    except IllegalJobTransition:  # it ended meanwhile (a cancel racing the exit): the first outcome stands
        job.refresh_from_db()
        return job
