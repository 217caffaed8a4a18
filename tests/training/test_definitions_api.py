"""/api/v1/job-definitions/ (create, change, trigger, firings, delete) and /api/v1/training-jobs/{id}/metrics/,
scoped to the caller's teams, refusals as problems with stable codes."""

from __future__ import annotations

from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.tracking.services import log_job_metrics
from apps.training.models import JobDefinition, TrainingJob
from tests.factories import JobDefinitionFactory

URL = "/api/v1/job-definitions/"

pytestmark = pytest.mark.django_db


def _body(**change: Any) -> dict[str, Any]:
    return {
        "team": "vision",
        "name": "nightly-retrain",
        "image": "ghcr.io/vision/trainer:2.1",
        "command": ["python", "train.py"],
        "gpus_per_node": 1,
        "max_run_minutes": 60,
        "schedule": "0 3 * * *",
        "concurrency_policy": "forbid",
        **change,
    }


def test_a_member_defines_changes_triggers_and_deletes_a_definition(api: Any, alice: Any, gpu_box: Any) -> None:
    api.force_authenticate(alice)

    created = api.post(URL, _body(cluster=gpu_box.pk), format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["team"], data["owner"], data["name"], data["cluster"]) == ("vision", "alice", "nightly-retrain",
                                                                             gpu_box.pk)  # fmt: skip
    assert data["next_run_at"].endswith("03:00:00Z")
    assert len(data["upcoming_runs"]) == 3
    url = f"{URL}{data['id']}/"

    changed = api.patch(url, {"schedule": "", "concurrency_policy": "replace"}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["schedule"], changed.json()["next_run_at"]) == ("", None)

    fired = api.post(f"{url}trigger/", format="json")
    assert fired.status_code == 201, fired.content
    fire = fired.json()
    assert (fire["via"], fire["actor"], fire["outcome"], fire["job_state"]) == ("trigger", "alice", "started",
                                                                                "queued")  # fmt: skip
    job = api.get(f"/api/v1/training-jobs/{fire['job']}/").json()
    assert job["definition"] == data["id"]
    assert api.get("/api/v1/training-jobs/", {"definition": data["id"]}).json()["count"] == 1

    fires = api.get(f"{url}fires/")
    assert fires.status_code == 200
    assert [f["id"] for f in fires.json()] == [fire["id"]]

    assert api.delete(url).status_code == 204
    assert not JobDefinition.objects.exists()
    assert TrainingJob.objects.filter(pk=fire["job"]).exists()
    verbs = set(AuditEvent.objects.filter(verb__startswith="job_definition").values_list("verb", flat=True))
    assert verbs == {"job_definition.created", "job_definition.updated", "job_definition.fired",
                     "job_definition.deleted"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"schedule": "61 * * * *"}, "invalid_schedule", "schedule"),
        ({"command": "python train.py && curl evil"}, "invalid_command", "command"),
        ({"environment": {"LD_PRELOAD": "x\ny"}}, "invalid_environment", "environment"),
        ({"image": "quay.io/someone/miner:latest"}, "image_not_allowed", "image"),
        ({"cluster": 999999}, "unknown_cluster", "cluster"),
        ({"name": "-x"}, "invalid_definition_name", "name"),
    ],
)
def test_a_refused_definition_is_a_problem_and_saves_nothing(
    api: Any, alice: Any, change: dict[str, Any], code: str, field: str
) -> None:
    api.force_authenticate(alice)

    response = api.post(URL, _body(**change), format="json")

    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code, problem
    assert field in problem["errors"], problem
    assert not JobDefinition.objects.exists()


def test_a_duplicate_name_is_a_conflict(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)
    assert api.post(URL, _body(), format="json").status_code == 201
    response = api.post(URL, _body(), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "job_definition_name_taken"


def test_another_teams_definition_is_not_found_for_any_action(api: Any, bob: Any, alice: Any, vision: Any) -> None:
    definition = JobDefinitionFactory(team=vision, owner=alice)
    api.force_authenticate(bob)
    url = f"{URL}{definition.pk}/"
    assert api.get(url).status_code == 404
    assert api.patch(url, {"suspended": True}, format="json").status_code == 404
    assert api.post(f"{url}trigger/").status_code == 404
    assert api.delete(url).status_code == 404
    assert JobDefinition.objects.filter(pk=definition.pk, suspended=False).exists()
    assert not TrainingJob.objects.exists()


def test_a_jobs_metrics_are_time_series_by_key(api: Any, alice: Any, vision: Any) -> None:
    from tests.factories import TrainingJobFactory

    job = TrainingJobFactory(team=vision, owner=alice)
    log_job_metrics(job=job, metrics=[{"key": "loss", "value": 0.9, "step": 0}, {"key": "loss", "value": 0.4,
                                                                              "step": 1}])  # fmt: skip
    api.force_authenticate(alice)

    data = api.get(f"/api/v1/training-jobs/{job.pk}/metrics/").json()

    assert data["series"] == {"loss": [{"step": 0, "value": 0.9}, {"step": 1, "value": 0.4}]}
    assert data["running"] is True
