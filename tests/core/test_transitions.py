"""The core transition helper (apps.core.transitions) on a real model, and the side effects the run and cluster
machines declare on it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.clusters.errors import IllegalClusterTransition
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services.states import CLUSTER_MACHINE, cluster_transition
from apps.core.transitions import Change, Machine, SideEffect, transition
from apps.runs.errors import IllegalTransition
from apps.runs.models import Run, RunState, Workspace
from apps.runs.services.transitions import _dispatch_next, run_transition
from tests.factories import ClusterFactory, RunFactory

pytestmark = pytest.mark.django_db


def machine(**overrides: Any) -> Machine[Cluster]:
    """A small machine on Cluster: requested -> provisioning -> running."""
    fields: dict[str, Any] = {
        "model": Cluster,
        "field": "state",
        "edges": {ClusterState.REQUESTED: {ClusterState.PROVISIONING}, ClusterState.PROVISIONING: {"running"}},
        "illegal": lambda obj, previous, to: IllegalClusterTransition(f"{previous} -> {to}"),
        "reason_field": "state_reason",
        "audit_verb": lambda to: f"test.{to}",
        **overrides,
    }
    return Machine(**fields)


def test_an_illegal_edge_is_refused_and_nothing_changes() -> None:
    cluster: Cluster = ClusterFactory()
    with pytest.raises(IllegalClusterTransition, match="requested -> running"):
        transition(machine(), obj=cluster, to=ClusterState.RUNNING)
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.REQUESTED
    assert not AuditEvent.objects.filter(verb__startswith="test.").exists()


def test_a_legal_edge_saves_stamps_and_audits(alice: Any) -> None:
    cluster: Cluster = ClusterFactory()
    stamped = machine(stamps={ClusterState.PROVISIONING: "running_since"})
    moved = transition(stamped, obj=cluster, to=ClusterState.PROVISIONING, actor=alice, reason="go")
    assert moved.state == cluster.state == ClusterState.PROVISIONING  # the caller's object follows
    assert cluster.running_since is not None
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.state, stored.state_reason, stored.running_since) == ("provisioning", "go", cluster.running_since)
    event = AuditEvent.objects.get(verb="test.provisioning")
    assert event.actor == alice
    assert event.team_id == cluster.team_id
    assert event.target_id == str(cluster.pk)
    assert event.data == {"from": "requested", "reason": "go"}


def test_in_transaction_effects_apply_only_on_their_edges() -> None:
    seen: list[tuple[str, str]] = []

    def note(change: Change[Cluster]) -> list[str]:
        seen.append((change.previous, change.to))
        change.obj.running_seconds = 7
        return ["running_seconds"]

    noting = machine(effects=(SideEffect(enters={"running"}, apply=note),))
    cluster: Cluster = ClusterFactory()
    transition(noting, obj=cluster, to=ClusterState.PROVISIONING)
    assert seen == []
    transition(noting, obj=cluster, to=ClusterState.RUNNING)
    assert seen == [("provisioning", "running")]
    assert Cluster.objects.get(pk=cluster.pk).running_seconds == 7


def test_on_commit_effects_run_only_after_the_commit(django_capture_on_commit_callbacks: Any) -> None:
    ran: list[str] = []
    committing = machine(effects=(SideEffect(on_commit=lambda change: ran.append(change.to)),))
    cluster: Cluster = ClusterFactory()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        transition(committing, obj=cluster, to=ClusterState.PROVISIONING)
        assert ran == []  # still inside the transaction
    assert len(callbacks) == 1
    assert ran == ["provisioning"]


def test_on_commit_effects_never_run_on_a_rollback(django_capture_on_commit_callbacks: Any) -> None:
    ran: list[str] = []
    committing = machine(effects=(SideEffect(on_commit=lambda change: ran.append(change.to)),))
    cluster: Cluster = ClusterFactory()

    def move_then_fail() -> None:
        with transaction.atomic():
            transition(committing, obj=cluster, to=ClusterState.PROVISIONING)
            raise RuntimeError("roll back")

    with django_capture_on_commit_callbacks(execute=True) as callbacks, pytest.raises(RuntimeError):
        move_then_fail()
    assert callbacks == []
    assert ran == []
    assert Cluster.objects.get(pk=cluster.pk).state == ClusterState.REQUESTED


def test_a_terminal_run_frees_its_workspace_at_once_and_sends_the_next_run_on_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = RunFactory(state=RunState.PLANNING)
    Workspace.objects.filter(pk=run.workspace_id).update(locked_by=run, locked_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        run_transition(run=run, to=RunState.FAILED, reason="boom")
        # In the same transaction: nobody ever sees a finished run holding the workspace.
        assert Workspace.objects.get(pk=run.workspace_id).locked_by_id is None
    assert [getattr(callback, "func", None) for callback in callbacks] == [_dispatch_next]
    assert run.finished_at is not None
    assert AuditEvent.objects.filter(verb="run.failed", target_id=str(run.pk)).exists()


def test_a_finished_run_cannot_move_again() -> None:
    run = RunFactory(state=RunState.APPLIED)
    with pytest.raises(IllegalTransition):
        run_transition(run=run, to=RunState.PLANNING)
    assert Run.objects.get(pk=run.pk).state == RunState.APPLIED


def test_entering_and_leaving_running_starts_and_stops_the_clusters_clock() -> None:
    cluster = ClusterFactory(state=ClusterState.PROVISIONING)
    cluster_transition(cluster=cluster, to=ClusterState.RUNNING)
    assert cluster.running_since is not None
    Cluster.objects.filter(pk=cluster.pk).update(running_since=timezone.now() - timedelta(hours=1))
    cluster_transition(cluster=cluster, to=ClusterState.STOPPING)
    stored = Cluster.objects.get(pk=cluster.pk)
    assert stored.running_since is None
    assert stored.running_seconds >= 3600
    assert CLUSTER_MACHINE.allows(ClusterState.STOPPING, ClusterState.STOPPED)
