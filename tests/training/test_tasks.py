"""The beat runs the scheduler and the timeout pass; each task only calls its service."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.training import tasks
from apps.training.models import JobState
from tests.factories import TrainingJobFactory


def test_the_beat_schedules_both_passes() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {tasks.schedule_training_jobs.name, tasks.expire_training_jobs.name} <= scheduled


def test_the_schedule_task_places_a_queued_job(alice: Any, vision: Any, gpu_box: Any) -> None:
    job = TrainingJobFactory(team=vision, owner=alice, cluster=gpu_box)

    tasks.schedule_training_jobs()
    tasks.expire_training_jobs()

    job.refresh_from_db()
    assert job.state == JobState.SCHEDULING
