"""Idle detection and auto-stop, fed with recorded NVML readings replayed through the real ingest service."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Role
from apps.audit.models import AuditEvent
from apps.clusters.agent.sampler import build_batch
from apps.clusters.agent.sources import GpuReading, ReplaySource
from apps.clusters.errors import (
    AutostopOverrideForbidden,
    InvalidAutostopOverride,
    InvalidSnooze,
    SnoozeForbidden,
    SnoozeUsed,
)
from apps.clusters.models import Cluster, ClusterState, Node
from apps.clusters.services import cluster_transition, ingest_telemetry
from apps.clusters.services.idle import (
    MAX_IDLE_THRESHOLD_PCT,
    STOP_GRACE,
    effective_idle_policy,
    idle_assessment,
    override_autostop,
    snooze_idle_stop,
    warn_or_stop_idle_clusters,
)
from tests.factories import ClusterFactory, NodeFactory, UserFactory, member

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
IDLE_1GPU = "g5xlarge_idle.jsonl"
BUSY_THEN_IDLE_8GPU = "g5_48xlarge_busy_then_idle.jsonl"
H100_IDLE = "h100_idle.jsonl"  # recorded from real NVML on an H100, see data/README.md
H100_BUSY_THEN_IDLE = "h100_busy_then_idle.jsonl"
TICK = timedelta(seconds=10)
Edit = Callable[[int, list[GpuReading]], list[GpuReading]]


def replay(node: Node, fixture: str, *, end: datetime, ticks: int | None = None, edit: Edit | None = None) -> None:
    """Replay a recording (looping when `ticks` is longer) as the agent would, with the last tick stamped `end`."""
    source = ReplaySource(DATA / fixture, loop=True)
    count = ticks or len(source.ticks)
    batches = []
    for number in range(count):
        readings = source.read()
        if edit is not None:
            readings = edit(number, readings)
        batch = build_batch(node.instance_id, readings, end - TICK * (count - 1 - number))
        # The API's serializer hands the service a datetime; the agent sends ISO text.
        batch["sampled_at"] = datetime.fromisoformat(batch["sampled_at"])
        batches.append(batch)
    ingest_telemetry(node=node, batches=batches)


def stop_through_state_machine(cluster: Cluster, reason: str) -> None:
    """What provisioning's stop does to the row, without a cloud: running -> stopping -> stopped."""
    cluster_transition(cluster=cluster, to=ClusterState.STOPPING, reason=reason)
    cluster_transition(cluster=cluster, to=ClusterState.STOPPED, reason=reason)


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


def running_cluster(**fields: Any) -> Cluster:
    fields.setdefault("idle_window_minutes", 5)
    return ClusterFactory(state=ClusterState.RUNNING, **fields)


def test_a_single_idle_gpu_over_the_whole_window_is_idle(now: datetime) -> None:
    cluster = running_cluster()
    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now)  # 40 ticks x 10 s

    assessment = idle_assessment(cluster=cluster, now=now)

    assert assessment.idle, assessment.reason
    assert assessment.idle_since == now - 39 * TICK
    assert assessment.samples_seen == 31  # the ticks inside the last 5 minutes, both ends included
    assert "all GPUs under 5%" in assessment.reason


def test_busy_gpus_are_active_and_idle_since_is_the_first_idle_tick(now: datetime) -> None:
    cluster = running_cluster(instance_type="g5.48xlarge", gpus_per_node=8, idle_window_minutes=2)
    replay(NodeFactory(cluster=cluster, gpu_count=8), BUSY_THEN_IDLE_8GPU, end=now)
    last_busy_tick, first_idle_tick = now - 20 * TICK, now - 19 * TICK

    during_busy = idle_assessment(cluster=cluster, now=last_busy_tick)
    idle_part_too_short = idle_assessment(cluster=cluster, now=now - 10 * TICK)  # 90 s of idle, 2 min window
    idle_part_covers_window = idle_assessment(cluster=cluster, now=now)

    assert not during_busy.idle
    assert "utilization" in during_busy.reason
    assert not idle_part_too_short.idle
    assert idle_part_covers_window.idle, idle_part_covers_window.reason
    assert idle_part_covers_window.idle_since == first_idle_tick


def test_a_real_idle_h100_is_idle(now: datetime) -> None:
    cluster = running_cluster(instance_type="p5.48xlarge", idle_window_minutes=4)
    replay(NodeFactory(cluster=cluster), H100_IDLE, end=now)  # 30 ticks, stamped 10 s apart

    assessment = idle_assessment(cluster=cluster, now=now)

    assert assessment.idle, assessment.reason
    assert assessment.idle_since == now - 29 * TICK


def test_a_real_h100_training_run_is_active_and_idleness_starts_when_its_memory_is_freed(now: datetime) -> None:
    """Recorded on an H100: a bf16 matmul loop holding 17.5 GiB, then the process exits.

    The tick after the loop ends reads 0% while the process still holds its memory; idleness starts one tick
    later, when memory drops to the driver's 480 MiB and stays flat.
    """
    cluster = running_cluster(instance_type="p5.48xlarge", idle_window_minutes=2)
    replay(NodeFactory(cluster=cluster), H100_BUSY_THEN_IDLE, end=now)  # 45 ticks, stamped 10 s apart
    freed = now - 22 * TICK

    during_training = idle_assessment(cluster=cluster, now=now - 30 * TICK)
    after_exit = idle_assessment(cluster=cluster, now=now)

    assert not during_training.idle
    assert "utilization 100%" in during_training.reason
    assert after_exit.idle, after_exit.reason
    assert after_exit.idle_since == freed
    assert "process(es) still attached" not in after_exit.reason


def test_a_node_that_stopped_reporting_makes_the_cluster_unknown_not_idle(now: datetime) -> None:
    cluster = running_cluster(node_count=2)
    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now)
    silent: Node = NodeFactory(cluster=cluster)
    replay(silent, IDLE_1GPU, end=now - timedelta(seconds=150))  # half of the 5-minute window

    assessment = idle_assessment(cluster=cluster, now=now)

    assert not assessment.idle
    assert assessment.idle_since is None
    assert "Missing telemetry" in assessment.reason
    assert silent.instance_id in assessment.reason


def test_memory_climbing_at_zero_utilization_is_activity(now: datetime) -> None:
    cluster = running_cluster()

    def climbing(number: int, readings: list[GpuReading]) -> list[GpuReading]:
        return [dataclasses.replace(r, memory_used_mib=r.memory_used_mib + 40 * number) for r in readings]

    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now, edit=climbing)

    assessment = idle_assessment(cluster=cluster, now=now)

    assert not assessment.idle
    assert "memory changed" in assessment.reason


def test_a_process_with_flat_memory_and_no_utilization_still_counts_as_idle(now: datetime) -> None:
    cluster = running_cluster()

    def attached(number: int, readings: list[GpuReading]) -> list[GpuReading]:
        return [dataclasses.replace(r, process_count=1) for r in readings]

    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now, edit=attached)

    assessment = idle_assessment(cluster=cluster, now=now)

    assert assessment.idle
    assert "1 process(es) still attached" in assessment.reason


def test_beat_warns_first_then_stops_after_the_grace(now: datetime, mailoutbox: list[Any]) -> None:
    cluster = running_cluster()
    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now, ticks=120)  # 20 minutes, looping the recording
    first_pass = now - timedelta(minutes=11)

    warned = warn_or_stop_idle_clusters(now=first_pass, stop=stop_through_state_machine)

    assert warned.warned == [cluster.pk]
    assert warned.stopped == []
    cluster.refresh_from_db()
    assert cluster.idle_warned_at == first_pass
    assert cluster.state == ClusterState.RUNNING
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [cluster.owner.email]
    assert f"will stop in {STOP_GRACE.seconds // 60} minutes" in mailoutbox[0].subject
    assert AuditEvent.objects.filter(verb="cluster.idle_warning", target_id=str(cluster.pk), actor=None).exists()

    stopped = warn_or_stop_idle_clusters(now=now, stop=stop_through_state_machine)

    assert stopped.stopped == [cluster.pk]
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.STOPPED
    assert cluster.state_reason == "Idle for 19 minutes (all GPUs under 5%, memory flat); stopped by auto-stop."
    assert cluster.idle_warned_at is None
    assert AuditEvent.objects.filter(verb="cluster.auto_stopped", target_id=str(cluster.pk)).exists()
    assert len(mailoutbox) == 1


def test_a_cluster_that_got_busy_again_loses_its_warning(now: datetime) -> None:
    cluster = running_cluster(instance_type="g5.48xlarge", gpus_per_node=8, idle_window_minutes=2)
    cluster.idle_warned_at = now - timedelta(minutes=20)
    cluster.save()
    replay(NodeFactory(cluster=cluster, gpu_count=8), BUSY_THEN_IDLE_8GPU, end=now)

    report = warn_or_stop_idle_clusters(now=now - 20 * TICK, stop=stop_through_state_machine)

    assert report.stopped == []
    assert "utilization" in report.skipped[cluster.pk]
    cluster.refresh_from_db()
    assert cluster.idle_warned_at is None
    assert cluster.state == ClusterState.RUNNING


def test_a_snooze_holds_the_stop_until_it_expires_and_works_once(now: datetime, mailoutbox: list[Any]) -> None:
    cluster = running_cluster()
    # Telemetry up to 4 minutes ahead (inside ingest's clock-skew allowance) so a pass after the snooze sees data.
    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now + timedelta(minutes=4), ticks=144)
    assert warn_or_stop_idle_clusters(now=now - timedelta(minutes=11), stop=stop_through_state_machine).warned

    snooze_idle_stop(actor=cluster.owner, cluster=cluster, minutes=1, reason="checkpoint upload still running")
    during = warn_or_stop_idle_clusters(now=now, stop=stop_through_state_machine)
    after = warn_or_stop_idle_clusters(now=now + timedelta(minutes=2), stop=stop_through_state_machine)

    assert during.stopped == []
    assert "Snoozed until" in during.skipped[cluster.pk]
    assert after.warned == [cluster.pk]  # warned afresh: the full grace again, not an instant stop
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.RUNNING
    assert cluster.snooze_used
    assert AuditEvent.objects.filter(verb="cluster.idle_snoozed", target_id=str(cluster.pk)).exists()
    with pytest.raises(SnoozeUsed) as second:
        snooze_idle_stop(actor=cluster.owner, cluster=cluster, minutes=1, reason="once more")
    assert second.value.code == "snooze_already_used"


def test_snooze_is_bounded_needs_a_reason_and_a_right_to_it(now: datetime, settings: Any) -> None:
    cluster = running_cluster()
    manager = member(cluster.team, Role.MANAGER)
    teammate = member(cluster.team, Role.MEMBER)

    with pytest.raises(InvalidSnooze):
        snooze_idle_stop(
            actor=cluster.owner, cluster=cluster, minutes=settings.MAX_SNOOZE_MINUTES + 1, reason="long job"
        )
    with pytest.raises(InvalidSnooze):
        snooze_idle_stop(actor=cluster.owner, cluster=cluster, minutes=0, reason="long job")
    with pytest.raises(InvalidSnooze):
        snooze_idle_stop(actor=cluster.owner, cluster=cluster, minutes=10, reason="  ")
    with pytest.raises(SnoozeForbidden):
        snooze_idle_stop(actor=teammate, cluster=cluster, minutes=10, reason="not mine")
    snoozed = snooze_idle_stop(
        actor=manager, cluster=cluster, minutes=settings.MAX_SNOOZE_MINUTES, reason="demo at noon"
    )
    assert snoozed.snoozed_until is not None


def test_an_admin_override_skips_auto_stop_and_is_audited(now: datetime) -> None:
    cluster = running_cluster()
    replay(NodeFactory(cluster=cluster), IDLE_1GPU, end=now)
    admin: Any = UserFactory(is_superuser=True)

    override_autostop(actor=admin, cluster=cluster, until=now + timedelta(days=1), reason="conference deadline")
    report = warn_or_stop_idle_clusters(now=now, stop=stop_through_state_machine)

    assert report.warned == []
    assert report.stopped == []
    assert "Admin override" in report.skipped[cluster.pk]
    assert AuditEvent.objects.filter(verb="cluster.autostop_override", actor=admin).exists()


def test_only_admins_override_auto_stop_and_only_for_a_week(now: datetime) -> None:
    cluster = running_cluster()
    admin: Any = UserFactory(is_superuser=True)

    with pytest.raises(AutostopOverrideForbidden):
        override_autostop(actor=cluster.owner, cluster=cluster, until=now + timedelta(hours=1), reason="please")
    with pytest.raises(InvalidAutostopOverride):
        override_autostop(actor=admin, cluster=cluster, until=now + timedelta(days=8), reason="a long time")
    cluster.refresh_from_db()
    assert cluster.autostop_override_until is None


def test_the_policy_clamps_a_cluster_past_the_admin_maximums(settings: Any) -> None:
    cluster = running_cluster(idle_window_minutes=settings.MAX_IDLE_WINDOW_MINUTES * 10, idle_threshold_pct=99.0)

    policy = effective_idle_policy(cluster=cluster)

    assert policy.window == timedelta(minutes=settings.MAX_IDLE_WINDOW_MINUTES)
    assert policy.threshold_pct == MAX_IDLE_THRESHOLD_PCT


def test_the_idle_check_keeps_its_findings_on_the_cluster_for_the_page(now: datetime) -> None:
    idle = running_cluster()
    replay(NodeFactory(cluster=idle), IDLE_1GPU, end=now)
    busy = running_cluster(instance_type="g5.48xlarge", gpus_per_node=8, idle_window_minutes=2)
    replay(NodeFactory(cluster=busy, gpu_count=8), BUSY_THEN_IDLE_8GPU, end=now, ticks=20)  # the 20 busy ticks

    warn_or_stop_idle_clusters(now=now, stop=lambda cluster, reason: None)

    idle.refresh_from_db()
    busy.refresh_from_db()
    assert (idle.idle_checked_at, idle.idle_streak_since) == (now, now - 39 * TICK)
    assert "all GPUs under 5%" in idle.idle_status
    assert busy.idle_checked_at == now
    assert busy.idle_streak_since is None
    assert busy.idle_status.startswith("Active: GPU")
