"""The job state machine: every move goes through job_transition, legal edges only, each audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.training.errors import IllegalJobTransition
from apps.training.models import ALLOWED_JOB_TRANSITIONS, ENDED_JOB_STATES, JobState
from apps.training.services.jobs import finish_job, lose_job, start_job
from apps.training.services.transitions import job_transition
from tests.factories import TrainingJobFactory

LEGAL = [(source, target) for source, targets in ALLOWED_JOB_TRANSITIONS.items() for target in targets]
ILLEGAL = [
    (source, target)
    for source in JobState.values
    for target in JobState.values
    if target not in ALLOWED_JOB_TRANSITIONS[source] and target != source
]


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{s}->{t}" for s, t in LEGAL])
def test_a_legal_move_changes_the_state_and_is_audited(db: None, source: str, target: str) -> None:
    job = TrainingJobFactory(state=source)

    job_transition(job=job, to=target, reason="because")

    job.refresh_from_db()
    assert (job.state, job.state_reason) == (target, "because")
    event = AuditEvent.objects.get(verb=f"training_job.{target}", target_id=str(job.pk))
    assert event.data["from"] == source


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{s}->{t}" for s, t in ILLEGAL])
def test_an_illegal_move_is_refused_and_changes_nothing(db: None, source: str, target: str) -> None:
    job = TrainingJobFactory(state=source)

    with pytest.raises(IllegalJobTransition) as refused:
        job_transition(job=job, to=target)

    assert refused.value.code == "illegal_job_transition"
    job.refresh_from_db()
    assert job.state == source
    assert not AuditEvent.objects.filter(target_id=str(job.pk)).exists()


def test_ended_states_lead_nowhere() -> None:
    assert all(not ALLOWED_JOB_TRANSITIONS[state] for state in ENDED_JOB_STATES)


def test_start_and_finish_stamp_the_callers_clock_and_derive_queue_and_run_time(db: None, t0: Any) -> None:
    job = TrainingJobFactory(state=JobState.SCHEDULING, submitted_at=t0)

    start_job(job=job, now=t0 + timedelta(minutes=5))
    finish_job(job=job, exit_code=0, now=t0 + timedelta(minutes=65))

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED
    assert (job.queue_seconds, job.run_seconds, job.exit_code) == (300, 3600, 0)


def test_a_nonzero_exit_fails_the_job_with_the_code_in_the_reason(db: None) -> None:
    job = TrainingJobFactory(state=JobState.RUNNING)

    finish_job(job=job, exit_code=137)

    job.refresh_from_db()
    assert (job.state, job.exit_code, job.state_reason) == (JobState.FAILED, 137, "exited with code 137")


def test_finishing_a_job_that_is_not_running_is_refused(db: None) -> None:
    job = TrainingJobFactory(state=JobState.QUEUED)

    with pytest.raises(IllegalJobTransition):
        finish_job(job=job, exit_code=0)


def test_a_lost_job_is_queued_again_within_its_retry_policy(db: None, t0: Any) -> None:
    job = TrainingJobFactory(state=JobState.RUNNING, max_retries=1, submitted_at=t0, started_at=t0)

    lose_job(job=job, reason="spot instance reclaimed")

    job.refresh_from_db()
    assert (job.state, job.retries, job.started_at, job.submitted_at) == (JobState.QUEUED, 1, None, t0)
    assert job.state_reason == "retry 1 of 1 after: spot instance reclaimed"
    verbs = list(AuditEvent.objects.filter(target_id=str(job.pk)).order_by("pk").values_list("verb", flat=True))
    assert verbs == ["training_job.lost", "training_job.queued"]


def test_a_lost_job_past_its_retries_ends_lost(db: None) -> None:
    job = TrainingJobFactory(state=JobState.RUNNING, max_retries=1, retries=1)

    lose_job(job=job, reason="node vanished")

    job.refresh_from_db()
    assert (job.state, job.state_reason) == (JobState.LOST, "lost: node vanished")
    assert job.finished_at is not None
