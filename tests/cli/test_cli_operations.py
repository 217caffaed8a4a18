"""The `paved` commands that change things, run as subprocesses against the live portal, the real Celery worker,
Terraform, the node agent and the sandbox cloud (moto): clusters requested, stopped, started and terminated;
runs approved and rejected; workspaces shown, extended and destroyed; training jobs submitted (on an existing
cluster or on one made from a gpu_cluster template), followed, listed and cancelled. Each checks the exit status,
the `--json` output and what changed on the server (state, decision, audit event)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState, Node
from apps.deployments.models import Deployment
from apps.runs.models import Approval, ApprovalStatus, Run, RunState, Workspace, WorkspaceStatus
from apps.training.models import JobState, TrainingJob
from tests.cli.running import as_user, ok_json, paved, refused
from tests.factories import ClusterFactory, RunFactory, WorkspaceFactory, deployment_for
from tests.runs.fixtures import approval_version, sandbox_version
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TEMPLATE = "sandbox-experiment"
IMAGE = "ghcr.io/acme/trainer:1.0"


def verbs(target: Any) -> list[str]:
    """The audit verbs recorded on `target`, oldest first."""
    events = AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk))
    return list(events.order_by("pk").values_list("verb", flat=True))


def cluster_state(cluster_id: int, *states: str) -> Cluster:
    def reached() -> Cluster | None:
        cluster = Cluster.objects.get(pk=cluster_id)
        return cluster if cluster.state in states else None

    return wait_for(reached, timeout=60, message=lambda: f"cluster #{cluster_id} to be {states}")


def run_state(run_id: int, *states: str) -> Run:
    def reached() -> Run | None:
        run = Run.objects.get(pk=run_id)
        return run if run.state in states else None

    return wait_for(reached, timeout=90, message=lambda: f"run #{run_id} to be {states}")


# --- clusters ---------------------------------------------------------------------------------------------------


def test_a_cluster_is_requested_stopped_started_and_terminated_from_the_cli(
    live_server: Any, celery_worker: Any, moto_endpoint: str, settings: Any, alice: Any, token: str, tmp_path: Path
) -> None:
    settings.AWS_ENDPOINT_URL = moto_endpoint  # stop and terminate call EC2 from the web process
    env = as_user(live_server, token, tmp_path)

    requested = ok_json(
        paved("clusters", "request", "--name", "cli-box", "--instance-type", "g5.xlarge", "--max-hours", "4",
              "--json", env=env)
    )  # fmt: skip
    assert (requested["name"], requested["team"], requested["max_hours"]) == ("cli-box", "vision", 4)
    cluster_id = requested["id"]
    cluster_state(cluster_id, ClusterState.RUNNING)
    listed = ok_json(paved("clusters", "list", "--search", "cli-", "--json", env=env))
    assert [(row["id"], row["state"]) for row in listed] == [(cluster_id, ClusterState.RUNNING)]

    stopped = ok_json(paved("clusters", "stop", str(cluster_id), "--json", env=env))
    assert stopped["state"] == ClusterState.STOPPED
    assert Cluster.objects.get(pk=cluster_id).state == ClusterState.STOPPED

    started = ok_json(paved("clusters", "start", str(cluster_id), "--json", env=env))
    assert started["state"] == ClusterState.PROVISIONING
    cluster_state(cluster_id, ClusterState.RUNNING)

    unconfirmed = refused(paved("clusters", "terminate", str(cluster_id), env=env), status=2)
    wrong_name = refused(paved("clusters", "terminate", str(cluster_id), "--confirm", "cli-bx", env=env))
    assert "--confirm NAME" in unconfirmed
    assert "Type the cluster name cli-box" in wrong_name
    assert Cluster.objects.get(pk=cluster_id).state == ClusterState.RUNNING

    terminated = ok_json(paved("clusters", "terminate", str(cluster_id), "--confirm", "cli-box", "--json", env=env))
    assert terminated["state"] == ClusterState.TERMINATED
    cluster = Cluster.objects.get(pk=cluster_id)
    assert cluster.state == ClusterState.TERMINATED
    assert {"cluster.requested", "cluster.stopped", "cluster.terminated"} <= set(verbs(cluster))
    stops = AuditEvent.objects.filter(verb__in=["cluster.stopped", "cluster.terminated"], target_id=str(cluster_id))
    assert set(stops.values_list("actor__username", flat=True)) == {"alice"}


def test_a_cluster_request_over_the_quota_prints_the_problem(
    live_server: Any, alice: Any, token: str, tmp_path: Path
) -> None:
    env = as_user(live_server, token, tmp_path)

    result = paved("clusters", "request", "--name", "too-big", "--instance-type", "p5.48xlarge", "--nodes", "4",
                   env=env)  # fmt: skip

    error = refused(result)
    assert error.startswith("Error: ")
    assert "GPU" in error
    assert not Cluster.objects.filter(name="too-big").exists()


# --- approvals ----------------------------------------------------------------------------------------------------


def test_a_manager_lists_and_approves_a_run_from_the_cli_and_the_worker_applies_it(
    live_server: Any, celery_worker: Any, alice: Any, mark: Any, token_for: Callable[[Any], str], tmp_path: Path
) -> None:
    approval_version(sandbox_version())  # 9.1.0: every apply waits for a manager
    as_alice = as_user(live_server, token_for(alice), tmp_path)
    as_mark = as_user(live_server, token_for(mark), tmp_path)

    launched = ok_json(
        paved("launch", TEMPLATE, "--name", "cli-approve", "--version", "9.1.0", "-p", "experiment_name=cli-approve",
              "--json", env=as_alice)
    )  # fmt: skip
    run_id = launched["run"]["id"]
    run_state(run_id, RunState.AWAITING_APPROVAL)

    waiting = ok_json(paved("approvals", "list", "--json", env=as_mark))
    own = refused(paved("approvals", "approve", str(run_id), env=as_alice))
    approved = ok_json(paved("approvals", "approve", str(run_id), "--comment", "within budget", "--json", env=as_mark))

    assert [(item["approval_for"], item["id"], item["kind"]) for item in waiting] == [("run", run_id, "apply")]
    assert "(403)" in own.splitlines()[0]
    assert approved["id"] == run_id
    assert run_state(run_id, RunState.APPLIED, RunState.FAILED, RunState.ERRORED).state == RunState.APPLIED
    approval = Approval.objects.get(run_id=run_id)
    assert (approval.status, approval.decided_by, approval.comment) == (ApprovalStatus.APPROVED, mark, "within budget")
    event = AuditEvent.objects.get(verb="approval.approved", target_id=str(run_id))
    assert (event.actor, event.data["comment"]) == (mark, "within budget")
    assert ok_json(paved("approvals", "list", "--json", env=as_mark)) == []


def test_a_rollout_waiting_for_approval_is_listed_refused_to_a_member_and_rejected_by_the_manager(
    live_server: Any, alice: Any, mark: Any, vision: Any, token_for: Callable[[Any], str], tmp_path: Path
) -> None:
    """`approvals approve|reject ID --kind deployment`: only a team manager decides, and rejecting aborts it."""
    rollout = deployment_for(vision, alice)
    Deployment.objects.filter(pk=rollout.pk).update(state="awaiting_approval")
    as_alice = as_user(live_server, token_for(alice), tmp_path)
    as_mark = as_user(live_server, token_for(mark), tmp_path)

    waiting = ok_json(paved("approvals", "list", "--json", env=as_mark))
    member = refused(paved("approvals", "approve", str(rollout.pk), "--kind", "deployment", env=as_alice))
    rejected = ok_json(paved("approvals", "reject", str(rollout.pk), "--kind", "deployment", "--json", env=as_mark))
    again = refused(paved("approvals", "approve", str(rollout.pk), "--kind", "deployment", env=as_mark))

    assert [(item["approval_for"], item["id"]) for item in waiting] == [("deployment", rollout.pk)]
    assert member.splitlines()[:2] == [
        "Error: Permission denied (403)",
        "Only a manager of the team approves its rollouts.",
    ]
    assert rejected["state"] == "aborted"
    assert Deployment.objects.get(pk=rollout.pk).state == "aborted"
    assert again.splitlines()[:2] == [
        "Error: Conflict (409)",
        f"Deployment #{rollout.pk} is aborted; it cannot become provisioning.",
    ]
    assert AuditEvent.objects.filter(
        actor=mark, target_id=str(rollout.pk), target_type="deployments.deployment"
    ).exists()


def test_a_manager_rejects_a_run_from_the_cli(
    live_server: Any, alice: Any, mark: Any, vision: Any, token_for: Callable[[Any], str], tmp_path: Path
) -> None:
    run: Run = RunFactory(
        workspace=WorkspaceFactory(team=vision, created_by=alice, name="cli-big-sweep"),
        state=RunState.AWAITING_APPROVAL,
        needs_approval=True,
    )
    Approval.objects.create(run=run, team=vision, why_needed="8 GPUs", expires_at=timezone.now() + timedelta(days=1))
    env = as_user(live_server, token_for(mark), tmp_path)

    rejected = ok_json(paved("approvals", "reject", str(run.pk), "--comment", "use 2 GPUs", "--json", env=env))
    again = refused(paved("approvals", "reject", str(run.pk), env=env))

    assert rejected["state"] == RunState.REJECTED
    assert Run.objects.get(pk=run.pk).state == RunState.REJECTED
    approval = Approval.objects.get(run=run)
    assert (approval.status, approval.decided_by, approval.comment) == (ApprovalStatus.REJECTED, mark, "use 2 GPUs")
    assert AuditEvent.objects.filter(verb="approval.rejected", target_id=str(run.pk), actor=mark).exists()
    assert "already rejected" in again


# --- workspaces ---------------------------------------------------------------------------------------------------


def test_a_workspace_is_shown_extended_and_destroyed_from_the_cli(
    live_server: Any, celery_worker: Any, catalog: None, token: str, tmp_path: Path
) -> None:
    env = as_user(live_server, token, tmp_path)
    launched = paved("launch", TEMPLATE, "--name", "cli-life", "-p", "experiment_name=cli-life", "--wait", env=env)
    assert launched.returncode == 0, launched.stdout + launched.stderr
    workspace = Workspace.objects.get(name="cli-life")

    shown = ok_json(paved("workspaces", "show", str(workspace.pk), "--json", env=env))
    assert (shown["id"], shown["name"], shown["status"]) == (workspace.pk, "cli-life", WorkspaceStatus.READY)

    before = timezone.now()
    extended = ok_json(paved("workspaces", "extend", str(workspace.pk), "--hours", "48", "--json", env=env))
    workspace.refresh_from_db()
    assert workspace.expires_at is not None
    assert before + timedelta(hours=48) <= workspace.expires_at <= timezone.now() + timedelta(hours=48)
    assert extended["expires_at"] == workspace.expires_at.isoformat().replace("+00:00", "Z")
    too_long = refused(paved("workspaces", "extend", str(workspace.pk), "--hours", "500", env=env))
    assert "Extend by 1 to 168 hours" in too_long

    unconfirmed = refused(paved("workspaces", "destroy", str(workspace.pk), env=env), status=2)
    wrong_name = refused(paved("workspaces", "destroy", str(workspace.pk), "--confirm", "cli-lfe", env=env))
    assert "--confirm NAME" in unconfirmed
    assert wrong_name.startswith("Error: ")
    assert Workspace.objects.get(pk=workspace.pk).status == WorkspaceStatus.READY

    destroyed = paved("workspaces", "destroy", str(workspace.pk), "--confirm", "cli-life", "--wait", "--json", env=env)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    final = [line for line in destroyed.stdout.splitlines() if line.startswith('{"run"')]
    assert len(final) == 1
    assert '"kind": "destroy"' in final[0]
    assert '"state": "applied"' in final[0]
    workspace.refresh_from_db()
    assert workspace.status == WorkspaceStatus.DESTROYED
    assert "workspace.extended" in verbs(workspace)


# --- training jobs ------------------------------------------------------------------------------------------------


def test_jobs_are_submitted_followed_to_their_result_and_listed_from_the_cli(
    live_server: Any, celery_worker: Any, agent: Any, node: tuple[Node, str], token: str, tmp_path: Path
) -> None:
    env = as_user(live_server, token, tmp_path)
    box = str(node[0].cluster_id)
    submit = ("jobs", "submit", "--cluster", box, "--image", IMAGE, "--gpus", "1", "--minutes", "5", "--json")

    good = ok_json(
        paved(*submit, "--hp", "epochs=2", "--", sys.executable, "-c", "print('epoch 1'); print('epoch 2')", env=env)
    )
    assert (good["cluster"], good["hyperparameters"], good["command"][-2]) == (int(box), {"epochs": 2}, "-c")
    followed = paved("jobs", "logs", str(good["id"]), "--follow", "--json", env=env)
    bad = ok_json(paved(*submit, "--", sys.executable, "-c", "print('oom'); raise SystemExit(3)", env=env))
    failed = paved("jobs", "logs", str(bad["id"]), "--follow", env=env)

    assert followed.returncode == 0, followed.stdout + followed.stderr
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert [event["line"] for event in events[:-1] if event["line"].startswith("epoch")] == ["epoch 1", "epoch 2"]
    assert events[-1]["job"]["state"] == JobState.SUCCEEDED
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "oom" in failed.stdout
    assert f"Training job #{bad['id']}: failed" in failed.stderr
    assert TrainingJob.objects.get(pk=bad["id"]).exit_code == 3
    listed = ok_json(paved("jobs", "list", "--cluster", box, "--json", env=env))
    assert {(row["id"], row["state"]) for row in listed} == {
        (good["id"], JobState.SUCCEEDED),
        (bad["id"], JobState.FAILED),
    }


def test_a_job_waiting_for_its_cluster_is_cancelled_from_the_cli(
    live_server: Any, alice: Any, vision: Any, token: str, tmp_path: Path
) -> None:
    quiet = ClusterFactory(team=vision, owner=alice, name="quiet-box", state=ClusterState.RUNNING, gpus_per_node=1)
    env = as_user(live_server, token, tmp_path)
    job = ok_json(
        paved("jobs", "submit", "--cluster", str(quiet.pk), "--image", IMAGE, "--gpus", "1", "--minutes", "5",
              "--json", "--", "python", "train.py", env=env)
    )  # fmt: skip

    cancelled = ok_json(paved("jobs", "cancel", str(job["id"]), "--json", env=env))
    again = refused(paved("jobs", "cancel", str(job["id"]), env=env))

    assert cancelled["state"] == JobState.CANCELLED
    saved = TrainingJob.objects.get(pk=job["id"])
    assert saved.state == JobState.CANCELLED
    found = verbs(saved)  # the worker's scheduling pass may have looked at it first: it waited either way
    assert (found[0], found[-1]) == ("training_job.submitted", "training_job.cancelled")
    assert set(found) <= {"training_job.submitted", "training_job.scheduling", "training_job.cancelled"}
    assert again.startswith("Error: ")


def test_a_job_on_a_new_cluster_from_a_gpu_cluster_template_releases_it_when_cancelled(
    live_server: Any, celery_worker: Any, moto_endpoint: str, settings: Any, catalog: None, token: str, tmp_path: Path
) -> None:
    settings.AWS_ENDPOINT_URL = moto_endpoint
    env = as_user(live_server, token, tmp_path)
    submit = ("jobs", "submit", "--image", IMAGE, "--gpus", "1", "--minutes", "5", "--json")

    template_alone = refused(paved(*submit, "--cluster-template", "gpu-cluster", "--", "python", "t.py", env=env))
    job = ok_json(
        paved(*submit, "--new-cluster", "g5.xlarge", "--cluster-template", "gpu-cluster", "--", "python", "t.py",
              env=env)
    )  # fmt: skip

    assert "A cluster template needs a new cluster" in template_alone
    assert (job["owns_cluster"], job["cluster_name"]) == (True, f"job-{job['id']}")
    cluster = Cluster.objects.get(pk=job["cluster"])
    assert (cluster.instance_type, cluster.purchase_option, cluster.max_hours) == ("g5.xlarge", "spot_with_fallback", 8)
    cluster_state(cluster.pk, ClusterState.RUNNING)

    assert ok_json(paved("jobs", "cancel", str(job["id"]), "--json", env=env))["state"] == JobState.CANCELLED
    cluster_state(cluster.pk, ClusterState.TERMINATED)
