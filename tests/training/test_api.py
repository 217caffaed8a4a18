"""/api/v1/training-jobs/: submit, list (filters), retrieve and cancel, scoped to the caller's teams."""

from __future__ import annotations

from typing import Any

from apps.audit.models import AuditEvent
from apps.clusters.models import ClusterState
from apps.training.models import JobLogChunk, JobState, TrainingJob
from tests.factories import ClusterFactory, TrainingJobFactory

URL = "/api/v1/training-jobs/"


def _body(**change: Any) -> dict[str, Any]:
    return {
        "team": "vision",
        "image": "ghcr.io/vision/trainer:2.1",
        "command": ["python", "train.py"],
        "environment": {"EPOCHS": "3"},
        "hyperparameters": {"lr": 0.01},
        "gpus_per_node": 2,
        "node_count": 1,
        "max_run_minutes": 60,
        **change,
    }


def test_a_member_submits_a_job_to_a_cluster_of_the_team(api: Any, alice: Any, gpu_box: Any) -> None:
    api.force_authenticate(alice)

    response = api.post(URL, _body(cluster=gpu_box.pk), format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["team"], data["owner"], data["cluster"], data["cluster_name"]) == (
        "vision",
        "alice",
        gpu_box.pk,
        "gpu-box",
    )
    assert (data["state"], data["gpus"], data["queue_seconds"], data["run_seconds"]) == ("queued", 2, None, None)
    assert data["command"] == ["python", "train.py"]
    assert AuditEvent.objects.filter(verb="training_job.submitted", actor=alice).exists()


def test_a_refused_job_is_a_problem_with_its_code_and_field_and_creates_nothing(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)

    response = api.post(URL, _body(environment={"PAVED_TEAM": "nlp"}), format="json")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "reserved_environment_key"
    assert "environment" in problem["errors"]
    assert not TrainingJob.objects.exists()


def test_a_shell_string_command_is_refused(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)

    response = api.post(URL, _body(command="python train.py"), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_command"


def test_another_teams_cluster_reads_as_unknown(api: Any, alice: Any, bob: Any, nlp: Any) -> None:
    theirs = ClusterFactory(team=nlp, owner=bob, state=ClusterState.RUNNING, gpus_per_node=4)
    api.force_authenticate(alice)

    for cluster_id in (theirs.pk, 999_999_999, 2**70):
        response = api.post(URL, _body(cluster=cluster_id), format="json")
        assert response.status_code == 400, cluster_id
        assert response.json()["code"] == "unknown_cluster"
    assert not TrainingJob.objects.exists()


def test_submitting_to_a_team_you_are_not_in_is_not_found(api: Any, alice: Any, nlp: Any) -> None:
    api.force_authenticate(alice)

    response = api.post(URL, _body(team="nlp"), format="json")

    assert response.status_code == 404
    assert not TrainingJob.objects.exists()


def test_over_quota_is_a_409(api: Any, alice: Any, quota_of: Any) -> None:
    quota_of(1)
    api.force_authenticate(alice)

    response = api.post(URL, _body(), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "job_over_quota"


def test_the_list_shows_the_callers_teams_jobs_and_filters_by_state_and_cluster(
    api: Any, alice: Any, bob: Any, vision: Any, nlp: Any, gpu_box: Any
) -> None:
    on_box = TrainingJobFactory(team=vision, owner=alice, cluster=gpu_box)
    running = TrainingJobFactory(team=vision, owner=alice, state=JobState.RUNNING)
    TrainingJobFactory(team=nlp, owner=bob)
    api.force_authenticate(alice)

    every = api.get(URL).json()["results"]
    by_state = api.get(URL, {"state": "running"}).json()["results"]
    by_cluster = api.get(URL, {"cluster": gpu_box.pk}).json()["results"]
    too_big = api.get(URL, {"cluster": 2**64})

    assert {job["id"] for job in every} == {on_box.pk, running.pk}
    assert [job["id"] for job in by_state] == [running.pk]
    assert [job["id"] for job in by_cluster] == [on_box.pk]
    assert too_big.status_code == 400
    assert too_big.json()["code"] == "invalid_query"


def test_retrieve_shows_why_a_job_waits(api: Any, alice: Any, vision: Any) -> None:
    job = TrainingJobFactory(team=vision, owner=alice, state_reason="waiting: cluster gpu-box runs job #1")
    api.force_authenticate(alice)

    response = api.get(f"{URL}{job.pk}/")

    assert response.status_code == 200
    assert response.json()["state_reason"] == "waiting: cluster gpu-box runs job #1"


def test_cancel_ends_the_job_and_a_second_cancel_is_a_conflict(api: Any, alice: Any, vision: Any) -> None:
    job = TrainingJobFactory(team=vision, owner=alice)
    api.force_authenticate(alice)

    first = api.post(f"{URL}{job.pk}/cancel/", format="json")
    second = api.post(f"{URL}{job.pk}/cancel/", format="json")

    assert first.status_code == 200
    assert first.json()["state"] == "cancelled"
    assert second.status_code == 409
    assert second.json()["code"] == "illegal_job_transition"
    assert AuditEvent.objects.filter(verb="training_job.cancelled", actor=alice, target_id=str(job.pk)).count() == 1


def test_the_log_is_paged_from_a_line_offset_and_complete_once_the_job_is_over(
    api: Any, alice: Any, vision: Any
) -> None:
    job: TrainingJob = TrainingJobFactory(team=vision, owner=alice, state=JobState.RUNNING)
    JobLogChunk.objects.create(job=job, seq=1, first_line=1, line_count=2, text="epoch 1\nepoch 2")
    JobLogChunk.objects.create(job=job, seq=2, first_line=3, line_count=1, text="epoch 3")
    api.force_authenticate(alice)

    first = api.get(f"{URL}{job.pk}/log/").json()
    rest = api.get(f"{URL}{job.pk}/log/", {"after": 1}).json()
    TrainingJob.objects.filter(pk=job.pk).update(state=JobState.SUCCEEDED)
    done = api.get(f"{URL}{job.pk}/log/", {"after": 3}).json()

    assert first == {"after": 0, "next": 3, "lines": ["epoch 1", "epoch 2", "epoch 3"], "complete": False}
    assert (rest["lines"], rest["next"]) == (["epoch 2", "epoch 3"], 3)
    assert done == {"after": 3, "next": 3, "lines": [], "complete": True}


def test_another_teams_job_cannot_be_read_or_cancelled(api: Any, alice: Any, bob: Any, nlp: Any) -> None:
    theirs = TrainingJobFactory(team=nlp, owner=bob)
    api.force_authenticate(alice)

    assert api.get(f"{URL}{theirs.pk}/").status_code == 404
    assert api.post(f"{URL}{theirs.pk}/cancel/", format="json").status_code == 404
    assert api.get(f"{URL}{theirs.pk}/log/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.state == JobState.QUEUED


def test_the_schema_documents_the_training_routes(api: Any, alice: Any) -> None:
    api.force_authenticate(alice)

    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assert {"/api/v1/training-jobs/", "/api/v1/training-jobs/{id}/", "/api/v1/training-jobs/{id}/cancel/"} <= set(
        schema["paths"]
    )
    cluster = next(p for p in schema["paths"]["/api/v1/training-jobs/"]["get"]["parameters"] if p["name"] == "cluster")
    assert {"minimum", "maximum"} <= set(cluster["schema"])
