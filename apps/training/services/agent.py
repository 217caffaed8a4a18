"""What a node agent does with training jobs, as the portal sees it: claim a rank of the job scheduled on its
cluster, append its output, and report how it ended. Every call is scoped to the node: a job is the node's only
once that node claimed a rank of its current attempt (a `JobNode`), so another cluster's (or another node's, or an
earlier attempt's) job reads as unknown.

Multi-node jobs (node_count > 1) start as a gang. Each claim by a node of the cluster that has no part in the job's
current attempt takes the next free rank (claim order; rank 0's node is the rendezvous: MASTER_ADDR is its private
IP). The claim that takes the last rank starts the job (running) and gets its assignment at once; the nodes that
claimed earlier were answered "nothing yet" (204), keep polling the claim (each poll is their heartbeat), and
their next poll once the job runs hands them the same rank. A single-node job is the same path with one rank.
Each node runs one process (RANK = NODE_RANK = its rank, WORLD_SIZE = node_count, LOCAL_RANK 0) and gets torchrun's
PET_* variables too, so `torchrun --nproc-per-node=N` on every node forms the whole job.

The log post doubles as the node's heartbeat for the job: its answer says whether the job should keep running
(`stop` once it was cancelled, timed out, or failed on another rank meanwhile), so stopping needs no channel into
the node. Each node numbers its own lines (`JobNode.next_line`: a resent batch is a no-op per node); the job's
one stored log takes every node's batches in arrival order, and in a multi-node job every line is prefixed with
`[rank N] ` (rank 0 too, so the ranks read alike). Metrics ride in the same batches: `paved:metric {...}` lines are
stored as the job run's metric points as well as log lines, from rank 0 only (torchrun's convention: rank 0 logs),
and only rank 0 gets the MLflow variables (its tracking token is minted once per attempt).

The exit: each node reports its own exit code. A non-zero code from any rank fails the job at once (the others are
told `stop` on their next post), a timed-out report from any rank times it out, and the job succeeds once every
rank exited 0. A report after the job ended is recorded on the node but the first outcome stands. A node silent
for TRAINING_LOST_AFTER_SECONDS (running, or waiting for its gang) loses the job (`scheduling.lose_silent_jobs`);
its retry is a new attempt whose gang forms afresh."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from apps.clusters.models import Node
from apps.tracking.services import log_job_metrics, metrics_in_lines, tracking_environment
from apps.training import selectors
from apps.training.errors import IllegalJobTransition, JobNotStarted, LogLinesOutOfOrder, UnknownAgentJob
from apps.training.models import ACTIVE_JOB_STATES, JobLogChunk, JobNode, JobState, TrainingJob
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


def claim_job(*, node: Node, now: datetime | None = None) -> JobNode | None:
    """The node's assignment (its rank of the job scheduled on its cluster, `.job` started), or None: nothing is
    scheduled, or the job's gang is not complete yet (claim again).

    The agent claims only while it runs nothing, so a rank this node was handed and has not reported the exit of
    was left by an earlier agent process (a restart, a crash): its job is lost (and retried within its policy)
    before anything else."""
    now = now or timezone.now()
    with transaction.atomic():
        orphans = JobNode.objects.filter(
            node=node,
            attempt=F("job__retries"),
            job__state=JobState.RUNNING,
            started_at__isnull=False,
            exit_code__isnull=True,
        ).select_related("job")
        for orphan in orphans:
            lose_job(job=orphan.job, reason=f"the agent on node {node.instance_id} restarted while it ran", now=now)
        waiting = (
            JobNode.objects.filter(
                node=node, attempt=F("job__retries"), job__state__in=ACTIVE_JOB_STATES, started_at__isnull=True
            )
            .select_related("job")
            .first()
        )
        if waiting is not None:
            return _hand_out(waiting, now=now)
        return _claim_rank(node=node, now=now)


def _hand_out(part: JobNode, *, now: datetime) -> JobNode | None:
    """A node that claimed its rank earlier polls again: its assignment once the gang is complete."""
    JobNode.objects.filter(pk=part.pk).update(last_heartbeat_at=now)
    if part.job.state != JobState.RUNNING:
        return None  # still gathering
    JobNode.objects.filter(pk=part.pk).update(started_at=now)
    part.started_at = part.last_heartbeat_at = now
    return part


def _claim_rank(*, node: Node, now: datetime) -> JobNode | None:
    mine = JobNode.objects.filter(job=OuterRef("pk"), attempt=OuterRef("retries"), node=node)
    job = (
        TrainingJob.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(cluster_id=node.cluster_id, state=JobState.SCHEDULING)
        .exclude(Exists(mine))
        .order_by("scheduled_at", "pk")
        .first()
    )
    if job is None:
        return None
    taken = list(selectors.attempt_nodes(job))
    rank = len(taken)
    if rank >= job.node_count:
        return None  # every rank is taken (the last claim started it)
    part = JobNode.objects.create(
        job=job,
        node=node,
        rank=rank,
        attempt=job.retries,
        claimed_at=now,
        last_heartbeat_at=now,
        next_line=selectors.next_log_line(job),
    )
    if rank + 1 < job.node_count:
        return None  # the gang is not complete: this node polls again
    part.job = start_job(job=job, node=taken[0].node if taken else node, now=now)
    JobNode.objects.filter(pk=part.pk).update(started_at=now)
    part.started_at = now
    return part


def job_environment(job: TrainingJob, node: Node) -> dict[str, str]:
    """The job's environment plus what the platform sets (it wins over the job's own names) for `node`'s rank of
    the current attempt: torchrun's rendezvous variables (one process per node: RANK = NODE_RANK = the rank,
    WORLD_SIZE = node_count, LOCAL_RANK 0, MASTER_ADDR = rank 0's private IP) and their PET_* forms that torchrun
    itself reads; PAVED_JOB_ID, PAVED_NODE_RANK, the dataset, output and hyperparameters (JSON) of the job; and, for
    rank 0, the MLflow variables of the job's tracking run (a fresh token per attempt:
    `tracking.services.tracking_environment`)."""
    parts = list(selectors.attempt_nodes(job))
    rank = next((part.rank for part in parts if part.node_id == node.pk), 0)
    master = parts[0].node if parts else node
    master_addr = master.private_ip or "127.0.0.1"
    return {
        **job.environment,
        **(tracking_environment(job=job) if rank == 0 else {}),
        "PAVED_JOB_ID": str(job.pk),
        "PAVED_NODE_RANK": str(rank),
        "PAVED_DATASET_URI": job.dataset_uri,
        "PAVED_OUTPUT_URI": job.output_uri,
        "PAVED_HYPERPARAMETERS": json.dumps(job.hyperparameters, sort_keys=True),
        "RANK": str(rank),
        "LOCAL_RANK": "0",
        "NODE_RANK": str(rank),
        "WORLD_SIZE": str(job.node_count),
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(MASTER_PORT),
        "PET_NNODES": str(job.node_count),
        "PET_NODE_RANK": str(rank),
        "PET_MASTER_ADDR": master_addr,
        "PET_MASTER_PORT": str(MASTER_PORT),
    }


def job_of_node(*, node: Node | None, job_id: int) -> TrainingJob:
    """The job `node` claimed a rank of (its current attempt); any other caller (another node, no node at all, a
    node of an earlier attempt) finds no such job."""
    ok = node is not None and 0 < job_id < 2**63
    job = (
        TrainingJob.objects.filter(pk=job_id, job_nodes__node=node, job_nodes__attempt=F("retries")).first()
        if ok
        else None
    )
    if job is None:
        where = f"Node {node.instance_id}" if node else "This caller (not a node agent)"
        raise UnknownAgentJob(f"{where} runs no training job #{job_id}.")
    return job


def _locked_part(*, node: Node | None, job_id: int) -> tuple[TrainingJob, JobNode]:
    job = job_of_node(node=node, job_id=job_id)
    job = TrainingJob.objects.select_for_update(of=("self",)).get(pk=job.pk)  # one node's post at a time
    part = JobNode.objects.get(job=job, attempt=job.retries, node=node)
    return job, part


def append_log(
    *, node: Node | None, job_id: int, first_line: int, lines: list[str], now: datetime | None = None
) -> LogAppend:
    """Store the node's lines numbered `first_line`.. (its own numbering) in order. Lines already stored (a
    resent batch) are skipped; a batch past the node's next expected line is refused, so its log has no hole."""
    now = now or timezone.now()
    with transaction.atomic():
        job, part = _locked_part(node=node, job_id=job_id)
        if job.started_at is None:
            raise JobNotStarted(f"Training job #{job.pk} is {job.state}; claim it before sending its log.")
        if job.state == JobState.RUNNING:  # every post, an empty one too, is the node's heartbeat
            JobNode.objects.filter(pk=part.pk).update(last_heartbeat_at=now)
            TrainingJob.objects.filter(pk=job.pk).update(last_heartbeat_at=now)
        next_line = part.next_line
        if first_line > next_line:
            raise LogLinesOutOfOrder(
                f"Training job #{job.pk}'s log continues at line {next_line}; this batch starts at {first_line}.",
                extra={"next_line": next_line},
            )
        new = lines[next_line - first_line :]
        if new:
            metrics = metrics_in_lines(new) if part.rank == 0 else []
            if metrics:
                log_job_metrics(job=job, metrics=metrics)
            stored = [f"[rank {part.rank}] {line}" for line in new] if job.node_count > 1 else new
            tail = selectors.last_log_chunk(job)
            JobLogChunk.objects.create(
                job=job,
                seq=tail.seq + 1 if tail else 1,
                first_line=selectors.line_after(tail),
                line_count=len(stored),
                text="\n".join(stored),
            )
            JobNode.objects.filter(pk=part.pk).update(next_line=next_line + len(new))
    return LogAppend(
        accepted=len(new),
        next_line=next_line + len(new),
        state=job.state,
        stop=job.state != JobState.RUNNING,
    )


def report_exit(
    *, node: Node | None, job_id: int, exit_code: int, timed_out: bool = False, now: datetime | None = None
) -> TrainingJob:
    """The job's process ended on the node (its first report is recorded on the node's rank). A non-zero code
    fails the job, a timed-out report (the agent stopped it at its max run time) times it out, and the job
    succeeds once every rank exited 0. A job that already ended (cancelled, timed out or failed meanwhile, or a
    resent report) keeps its outcome."""
    now = now or timezone.now()
    with transaction.atomic():
        job, part = _locked_part(node=node, job_id=job_id)
        if job.started_at is None:
            raise JobNotStarted(f"Training job #{job.pk} is {job.state}; it never started, so it cannot have exited.")
        if part.finished_at is None:
            JobNode.objects.filter(pk=part.pk).update(exit_code=exit_code, finished_at=now, last_heartbeat_at=now)
            part.exit_code, part.finished_at = exit_code, now
        if job.state != JobState.RUNNING:
            return job
        multi = job.node_count > 1
        try:
            if timed_out:
                return time_out_job(job=job, now=now)
            code = part.exit_code if part.exit_code is not None else exit_code
            if code != 0:
                reason = f"rank {part.rank} exited with code {code}" if multi else None
                return finish_job(job=job, exit_code=code, reason=reason, now=now)
            parts = list(selectors.attempt_nodes(job))
            if len(parts) == job.node_count and all(p.exit_code == 0 for p in parts):
                reason = f"all {job.node_count} ranks exited with code 0" if multi else None
                return finish_job(job=job, exit_code=0, reason=reason, now=now)
            return job  # other ranks still run
        except IllegalJobTransition:  # it ended meanwhile: the first outcome stands
            job.refresh_from_db()
            return job
