"""The definition pages: save a job as a definition from its page, the schedule page with its next runs and its
firings (outcome, job, result), run now and suspend from the page, refusals shown, other teams seeing none."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team
from apps.training.models import FireOutcome, JobDefinition, TrainingJob
from apps.training.services import definitions
from tests.factories import TrainingJobFactory

pytestmark = pytest.mark.django_db


def test_a_job_is_saved_as_a_scheduled_definition_from_its_page(client: Client, vision: Team, alice: Any) -> None:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice, command=["python", "train.py", "--lr", "0.1"])
    client.force_login(alice)
    assert 'data-testid="define-form"' in client.get(reverse("training:detail", args=[job.pk])).content.decode()

    response = client.post(
        reverse("training:define", args=[job.pk]),
        {"name": "weekly-retrain", "schedule": "0 3 * * 1", "concurrency_policy": "forbid"},
        follow=True,
    )

    definition = JobDefinition.objects.get(name="weekly-retrain")
    assert definition.command == ["python", "train.py", "--lr", "0.1"]
    assert definition.schedule == "0 3 * * 1"
    page = response.content.decode()
    assert "Saved as job definition weekly-retrain." in page
    assert definition.next_run_at is not None
    assert definition.next_run_at.strftime("%Y-%m-%d %H:%M") in page  # the next runs are listed
    assert 'data-testid="definition-trigger"' in page


def test_a_bad_schedule_is_refused_on_the_job_page_with_nothing_saved(client: Client, vision: Team, alice: Any) -> None:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice)
    client.force_login(alice)

    response = client.post(
        reverse("training:define", args=[job.pk]), {"name": "nightly", "schedule": "at 3am"}, follow=True
    )

    assert "is not a cron schedule" in response.content.decode()
    assert not JobDefinition.objects.exists()


def test_the_schedule_page_shows_firings_and_runs_or_suspends_from_the_page(
    client: Client, vision: Team, alice: Any, bob: Any
) -> None:
    now = timezone.now()
    definition = definitions.create_definition(
        actor=alice, team=vision, name="hourly", image="ghcr.io/acme/t:1", command=["python", "t.py"],
        gpus_per_node=1, max_run_minutes=30, schedule="@hourly", now=now - timedelta(hours=2),
    )  # fmt: skip
    (started,) = definitions.fire_due_schedules(now=now)
    (skipped,) = definitions.fire_due_schedules(now=now + timedelta(hours=1))
    assert (started.outcome, skipped.outcome) == (FireOutcome.STARTED, FireOutcome.SKIPPED)
    client.force_login(alice)

    page = client.get(reverse("training:definition", args=[definition.pk])).content.decode()
    assert f'data-testid="fire-row-{started.pk}"' in page
    assert f"started job #{started.job_id}" in page
    assert f"skipped: job #{started.job_id} is still queued (forbid)" in page
    listing = client.get(reverse("training:definitions")).content.decode()
    assert 'data-testid="definition-row-hourly"' in listing

    response = client.post(
        reverse("training:definition-suspend", args=[definition.pk]), {"suspended": "1"}, follow=True
    )
    assert "schedule suspended" in response.content.decode()
    definition.refresh_from_db()
    assert definition.suspended
    assert definition.next_run_at is None

    response = client.post(reverse("training:definition-trigger", args=[definition.pk]), follow=True)
    assert "skipped: job" in response.content.decode()  # forbid applies to a trigger too

    client.force_login(bob)
    assert client.get(reverse("training:definition", args=[definition.pk])).status_code == 404
    assert client.post(reverse("training:definition-trigger", args=[definition.pk])).status_code == 404
    assert "hourly" not in client.get(reverse("training:definitions")).content.decode()
