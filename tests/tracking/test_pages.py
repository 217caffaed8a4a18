"""The job page's metric chart data (live while the job runs) and the compare view across the runs of one
experiment: parameters with their differences highlighted, final metrics, one metric overlaid."""

from __future__ import annotations

from typing import Any

from apps.tracking.models import TrackingRun
from apps.tracking.services import log_batch, tracking_environment
from apps.training.models import JobState, TrainingJob
from tests.factories import TrainingJobFactory


def job_with_metrics(vision: Any, alice: Any, lr: str, losses: list[float], **fields: Any) -> TrainingJob:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice, state=JobState.RUNNING, **fields)
    tracking_environment(job=job)
    run = TrackingRun.objects.get(training_job=job)
    log_batch(
        run=run,
        params=[{"key": "lr", "value": lr}, {"key": "epochs", "value": "3"}],
        metrics=[{"key": "loss", "value": loss, "step": step} for step, loss in enumerate(losses, 1)],
    )
    return job


def test_the_chart_data_follows_the_run_and_stops_polling_once_the_job_ended(
    client: Any, vision: Any, alice: Any
) -> None:
    job = job_with_metrics(vision, alice, "0.1", [0.9, 0.4])
    client.force_login(alice)

    page = client.get(f"/training/{job.pk}/").content.decode()
    assert 'data-testid="job-metric-chart"' in page
    assert f'data-url="/training/{job.pk}/metrics.json"' in page
    data = client.get(f"/training/{job.pk}/metrics.json").json()
    assert data == {
        "series": {"loss": [{"step": 1, "value": 0.9}, {"step": 2, "value": 0.4}]},
        "points": 2,
        "running": True,
    }

    TrainingJob.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    assert client.get(f"/training/{job.pk}/metrics.json").json()["running"] is False


def test_the_compare_view_highlights_differing_params_and_overlays_a_metric(
    client: Any, vision: Any, alice: Any
) -> None:
    first = job_with_metrics(vision, alice, "0.1", [0.9, 0.5])
    second = job_with_metrics(vision, alice, "0.01", [0.8, 0.3, 0.2])
    client.force_login(alice)

    answer = client.get(f"/training/{second.pk}/compare/?metric=loss")

    assert answer.status_code == 200
    context = answer.context
    assert [c["job_id"] for c in context["columns"]] == [second.pk, first.pk]
    rows = {row["key"]: row for row in context["param_rows"]}
    assert rows["lr"]["values"] == ["0.01", "0.1"]
    assert rows["lr"]["differs"] is True
    assert rows["epochs"]["differs"] is False
    assert context["metric_rows"] == [{"key": "loss", "values": [0.2, 0.5]}]
    assert [len(points) for points in context["chart"].values()] == [3, 2]
    assert 'data-testid="differs-lr"' in answer.content.decode()


def test_another_teams_job_metrics_are_not_found(client: Any, vision: Any, alice: Any, bob: Any) -> None:
    job = job_with_metrics(vision, alice, "0.1", [0.9])
    client.force_login(bob)

    assert client.get(f"/training/{job.pk}/metrics.json").status_code == 404
    assert client.get(f"/training/{job.pk}/compare/").status_code == 404
