"""The training pages: a team's jobs with why each waits, one job's state, timings and log (its live part served
alone to htmx, polling until it ends), cancelling from the page, and other teams seeing none of it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.training.models import JobLogChunk, JobState, TrainingJob
from apps.training.services.scheduling import schedule_jobs
from tests.factories import TrainingJobFactory

pytestmark = pytest.mark.django_db


def test_the_list_shows_why_a_job_waits_and_others_see_nothing(
    client: Client, vision: Team, alice: Any, bob: Any, gpu_box: Any
) -> None:
    running: TrainingJob = TrainingJobFactory(team=vision, owner=alice, cluster=gpu_box)
    waiting: TrainingJob = TrainingJobFactory(team=vision, owner=alice, cluster=gpu_box)
    schedule_jobs()
    waiting.refresh_from_db()
    assert waiting.state == JobState.QUEUED
    client.force_login(alice)
    page = client.get(reverse("training:list")).content.decode()
    assert f'data-testid="job-row-{running.pk}"' in page
    assert waiting.state_reason in page
    assert f"cluster gpu-box runs job #{running.pk}" in waiting.state_reason
    client.force_login(bob)
    assert f"job-row-{running.pk}" not in client.get(reverse("training:list")).content.decode()
    assert client.get(reverse("training:detail", args=[running.pk])).status_code == 404
    assert client.post(reverse("training:cancel", args=[running.pk])).status_code == 404
    running.refresh_from_db()
    assert running.state == JobState.SCHEDULING


def test_the_job_page_shows_the_log_and_htmx_gets_the_live_part(client: Client, vision: Team, alice: Any) -> None:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice, command=["python", "train.py", "--epochs", "3"])
    JobLogChunk.objects.create(job=job, seq=1, first_line=1, line_count=2, text="epoch 1 loss 0.9\nepoch 2 loss 0.5")
    JobLogChunk.objects.create(job=job, seq=2, first_line=3, line_count=1, text="epoch 3 loss 0.3")
    client.force_login(alice)
    url = reverse("training:detail", args=[job.pk])
    page = client.get(url).content.decode()
    assert "<html" in page
    assert "python train.py --epochs 3" in page
    assert "epoch 1 loss 0.9\nepoch 2 loss 0.5\nepoch 3 loss 0.3\n" in page
    live = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in live
    assert 'hx-trigger="every 2s"' in live  # queued: the page keeps polling
    assert 'data-testid="job-cancel"' in live


def test_cancelling_from_the_page_is_audited_and_stops_the_polling(client: Client, vision: Team, alice: Any) -> None:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice)
    client.force_login(alice)
    response = client.post(reverse("training:cancel", args=[job.pk]))
    assert response["Location"] == reverse("training:detail", args=[job.pk])
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert AuditEvent.objects.filter(verb="training_job.cancelled", target_id=str(job.pk)).exists()
    live = client.get(reverse("training:detail", args=[job.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in live
    assert 'data-testid="job-cancel"' not in live
    again = client.post(reverse("training:cancel", args=[job.pk]), follow=True).content.decode()
    assert f"Training job #{job.pk} is cancelled; it cannot become cancelled." in again  # said on the page
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
