"""The one way a training job changes state (through `apps.core.transitions`): legal edges only
(`models.ALLOWED_JOB_TRANSITIONS`), under a row lock, audited as `training_job.<state>`. The clock stamps
(started_at, finished_at) come from the caller's `now`, so services decide by an explicit clock."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from apps.core.tasks import send_on_commit
from apps.core.transitions import Change, Machine, SideEffect, transition
from apps.training.errors import IllegalJobTransition
from apps.training.models import ALLOWED_JOB_TRANSITIONS, ENDED_JOB_STATES, JobState, TrainingJob


def _release_own_cluster(change: Change[TrainingJob]) -> None:
    """A job that is over hands the cluster made for it to the worker for termination, once this commits (a lost
    job only when no retry is left: a retry keeps the cluster). The beat's `release_leftover_clusters` pass
    catches a message that never arrived."""
    job = change.obj
    if not job.owns_cluster or job.cluster_id is None:
        return
    if change.to == JobState.LOST and job.retries < job.max_retries:
        return
    from apps.training import tasks

    send_on_commit(tasks.release_job_cluster, job.pk, what=f"termination of training job #{job.pk}'s cluster")


JOB_MACHINE: Machine[TrainingJob] = Machine(
    model=TrainingJob,
    field="state",
    edges=ALLOWED_JOB_TRANSITIONS,
    illegal=lambda job, previous, to: IllegalJobTransition(
        f"Training job #{job.pk} is {previous.replace('_', ' ')}; it cannot become {to.replace('_', ' ')}.",
        extra={"state": previous},
    ),
    reason_field="state_reason",
    related=("team", "cluster"),
    audit_verb=lambda to: f"training_job.{to}",
    effects=(SideEffect(enters=ENDED_JOB_STATES | {JobState.LOST}, apply=_release_own_cluster),),
)


def job_transition(
    *, job: TrainingJob, to: str, actor: User | None = None, reason: str = "", **fields: Any
) -> TrainingJob:
    """Move `job` to `to`; `fields` (stamps, the exit code, the placement) are saved with it."""
    return transition(JOB_MACHINE, obj=job, to=to, actor=actor, reason=reason, fields=fields)
