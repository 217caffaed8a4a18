"""GPU idle detection and auto-stop: warn the owner, wait a grace period, then stop the cluster.

What counts as activity (the one definition, used by the assessment, the warning and the stop):

- utilization at or above the cluster's threshold on any GPU, in any sample;
- memory that moves: max - min of `memory_used_mib` of one GPU over the idle stretch above
  max(1 % of the GPU's memory, 256 MiB). A job that allocates (or frees) memory is doing something even when its
  kernels are too short to show in NVML's utilization.
- Processes alone are NOT activity. A process holding a CUDA context with no utilization and flat memory (an
  abandoned notebook kernel, a hung job) still counts as idle: SkyPilot users asked for a signal from the GPU
  itself, and a leftover process is the most common reason an idle GPU is paid for. A process whose memory grows is
  activity through the memory rule above. A dataloader-bound job that never gets one sample over the threshold in
  the whole window is rare (NVML's utilization is the share of time any kernel ran); the warning e-mail and a
  one-time snooze are the escape hatch. The reason text says how many processes were still attached.

Telemetry that is missing is "unknown", never idle: every node must have reported for at least 80 % of the window,
with all of its GPUs, or the cluster is left running (agents that stopped reporting must not get a cluster stopped).
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from apps.accounts.permissions import require
from apps.audit.services import record
from apps.clusters.errors import (
    AutostopOverrideForbidden,
    InvalidAutostopOverride,
    InvalidSnooze,
    SnoozeForbidden,
    SnoozeUsed,
)
from apps.clusters.models import Cluster, ClusterState, GpuSample, NodeState
from apps.clusters.selectors import MAX_IDLE_THRESHOLD_PCT
from apps.clusters.selectors import STOP_GRACE as STOP_GRACE  # the warning-to-stop grace, defined with the reads
from apps.core.errors import ApplicationError

MIN_COVERAGE = 0.8
# A sample vouches for at most this much time before it (the agent samples every 10 s); longer gaps are silence.
MAX_SAMPLE_GAP = timedelta(seconds=60)
MEMORY_FLAT_FRACTION = 0.01
MEMORY_FLAT_MIB = 256.0
# idle_since is looked for this far back (at least three windows); an older idle stretch reports the look-back's edge.
LOOKBACK_WINDOWS = 3
MIN_LOOKBACK = timedelta(hours=1)
MAX_AUTOSTOP_OVERRIDE = timedelta(days=7)

StopCallable = Callable[[Cluster, str], None]


@dataclass(frozen=True)
class IdlePolicy:
    threshold_pct: float
    window: timedelta


@dataclass(frozen=True)
class IdleAssessment:
    idle: bool
    idle_since: datetime | None
    reason: str
    samples_seen: int


@dataclass
class IdleReport:
    warned: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def effective_idle_policy(*, cluster: Cluster) -> IdlePolicy:
    """The cluster's own settings, held inside the admin's bounds (a user cannot turn auto-stop off by asking for a
    week-long window or a 100 % threshold)."""
    minutes = min(max(int(cluster.idle_window_minutes), 1), settings.MAX_IDLE_WINDOW_MINUTES)
    threshold = min(max(float(cluster.idle_threshold_pct), 0.0), MAX_IDLE_THRESHOLD_PCT)
    return IdlePolicy(threshold_pct=threshold, window=timedelta(minutes=minutes))


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _memory_tolerance(total_mib: float) -> float:
    return max(total_mib * MEMORY_FLAT_FRACTION, MEMORY_FLAT_MIB)


# (sampled_at, utilization_pct, memory_used_mib, memory_total_mib, process_count)
_Row = tuple[datetime, float, float, float, int]


def _idle_stretch(rows: list[_Row], threshold: float) -> tuple[datetime | None, str]:
    """Walk one GPU's samples newest first; return where its trailing idle stretch starts (None: the newest sample
    is already active) and what ended the stretch ("" when it reaches the oldest sample looked at)."""
    start: datetime | None = None
    low = high = 0.0
    later: datetime | None = None
    for at, util, used, total, _processes in reversed(rows):
        if util >= threshold:
            return start, f"utilization {util:g}% at {at:%H:%M:%S} (threshold {threshold:g}%)"
        new_low, new_high = (used, used) if start is None else (min(low, used), max(high, used))
        if new_high - new_low > _memory_tolerance(total):
            return start, f"memory changed by {new_high - new_low:.0f} MiB after {at:%H:%M:%S}"
        if later is not None and later - at > MAX_SAMPLE_GAP:
            return start, f"no telemetry between {at:%H:%M:%S} and {later:%H:%M:%S}"
        start, low, high, later = at, new_low, new_high, at
    return start, ""


def _coverage(times: list[datetime], window_start: datetime) -> timedelta:
    covered = timedelta()
    previous = window_start
    for at in times:
        covered += min(at - previous, MAX_SAMPLE_GAP)
        previous = at
    return covered


def idle_assessment(*, cluster: Cluster, now: datetime) -> IdleAssessment:
    """Whether every GPU of every node has been idle over the whole window ending at `now`."""
    policy = effective_idle_policy(cluster=cluster)
    window_start = now - policy.window
    window_label = f"{_minutes(policy.window)} minutes"
    nodes = list(cluster.nodes.exclude(state__in=[NodeState.STOPPED, NodeState.TERMINATED]))
    if not nodes:
        return IdleAssessment(False, None, "No nodes to read telemetry from; idleness is unknown.", 0)
    rows = GpuSample.objects.filter(
        node__in=nodes, sampled_at__gt=now - max(policy.window * LOOKBACK_WINDOWS, MIN_LOOKBACK), sampled_at__lte=now
    ).values_list("node_id", "gpu_index", "sampled_at", "utilization_pct", "memory_used_mib", "memory_total_mib",
                  "process_count")  # fmt: skip
    per_gpu: dict[tuple[int, int], list[_Row]] = defaultdict(list)
    for node_id, gpu_index, at, util, used, total, processes in rows.order_by("sampled_at"):
        per_gpu[(node_id, gpu_index)].append((at, util, used, total, processes))
    seen = sum(1 for gpu_rows in per_gpu.values() for row in gpu_rows if row[0] >= window_start)

    for node in nodes:
        node_gpus = {index: gpu_rows for (node_id, index), gpu_rows in per_gpu.items() if node_id == node.pk}
        in_window = sorted({row[0] for gpu_rows in node_gpus.values() for row in gpu_rows if row[0] >= window_start})
        share = _coverage(in_window, window_start) / policy.window
        if share < MIN_COVERAGE:
            return IdleAssessment(
                False,
                None,
                f"Missing telemetry: node {node.instance_id} reported for {share:.0%} of the last {window_label} "
                f"({MIN_COVERAGE:.0%} needed); a node that is not reporting is unknown, not idle.",
                seen,
            )
        reporting = sum(1 for gpu_rows in node_gpus.values() if any(row[0] >= window_start for row in gpu_rows))
        if reporting < node.gpu_count:
            return IdleAssessment(
                False,
                None,
                f"Missing telemetry: node {node.instance_id} reported {reporting} of its {node.gpu_count} GPUs "
                f"in the last {window_label}; idleness is unknown.",
                seen,
            )

    idle_since: datetime | None = None
    processes = 0
    for (node_id, gpu_index), gpu_rows in sorted(per_gpu.items()):
        start, ended_by = _idle_stretch(gpu_rows, policy.threshold_pct)
        first_in_window = next((row[0] for row in gpu_rows if row[0] >= window_start), None)
        if first_in_window is None:
            continue  # a GPU of a node that is no longer part of the cluster's live nodes
        node_name = next(node.instance_id for node in nodes if node.pk == node_id)
        if start is None or start > first_in_window:
            return IdleAssessment(False, None, f"Active: GPU {gpu_index} of node {node_name}: {ended_by}.", seen)
        idle_since = start if idle_since is None else max(idle_since, start)
        processes = max(processes, max(row[4] for row in gpu_rows if row[0] >= start))
    if idle_since is None:
        return IdleAssessment(False, None, "No telemetry in the window; idleness is unknown.", seen)
    attached = f"; {processes} process(es) still attached but doing nothing" if processes else ""
    return IdleAssessment(
        True,
        idle_since,
        f"Idle for {_minutes(now - idle_since)} minutes: all GPUs under {policy.threshold_pct:g}%, "
        f"memory flat{attached}.",
        seen,
    )


def _stop_with_provisioning(cluster: Cluster, reason: str) -> None:
    # Looked up when called: provisioning imports the cloud layer, and idle detection must not depend on it at import.
    provisioning = importlib.import_module("apps.clusters.services.provisioning")
    provisioning.stop_cluster(actor=None, cluster=cluster, reason=reason)


def _warn(cluster: Cluster, assessment: IdleAssessment, now: datetime) -> bool:
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().select_related("team", "owner").get(pk=cluster.pk)
        if locked.state != ClusterState.RUNNING or locked.idle_warned_at is not None:
            return False
        locked.idle_warned_at = now
        locked.save(update_fields=["idle_warned_at", "updated_at"])
        record(
            actor=None,
            team=locked.team,
            verb="cluster.idle_warning",
            target=locked,
            data={"idle_since": assessment.idle_since, "reason": assessment.reason, "stops_after": now + STOP_GRACE},
        )
    cluster.idle_warned_at = now
    if locked.owner.email:
        grace = _minutes(STOP_GRACE)
        send_mail(
            subject=f"Cluster {locked} is idle and will stop in {grace} minutes",
            message=(
                f"{assessment.reason}\n\nPaved will stop cluster {locked} in {grace} minutes unless its GPUs get "
                f"busy again. You can snooze the auto-stop once from the cluster page, with a reason."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[locked.owner.email],
            fail_silently=True,
        )
    return True


def _clear_warning(cluster: Cluster) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(idle_warned_at=None, updated_at=timezone.now())
    cluster.idle_warned_at = None


def warn_or_stop_idle_clusters(*, now: datetime | None = None, stop: StopCallable | None = None) -> IdleReport:
    """The beat task's service: warn the owners of idle running clusters, stop those still idle after the grace.
    Safe to run twice: the warning is stamped under a row lock and a stop re-checks the state."""
    now = now or timezone.now()
    stop = stop or _stop_with_provisioning
    report = IdleReport()
    for cluster in Cluster.objects.filter(state=ClusterState.RUNNING).select_related("team", "owner").order_by("pk"):
        if cluster.autostop_override_until and cluster.autostop_override_until > now:
            report.skipped[cluster.pk] = f"Admin override until {cluster.autostop_override_until.isoformat()}."
            continue
        if cluster.snoozed_until and cluster.snoozed_until > now:
            report.skipped[cluster.pk] = f"Snoozed until {cluster.snoozed_until.isoformat()}."
            continue
        assessment = idle_assessment(cluster=cluster, now=now)
        _remember(cluster, assessment, now)
        if not assessment.idle:
            if cluster.idle_warned_at is not None:
                _clear_warning(cluster)
            report.skipped[cluster.pk] = assessment.reason
        elif cluster.idle_warned_at is None:
            if _warn(cluster, assessment, now):
                report.warned.append(cluster.pk)
        elif now - cluster.idle_warned_at < STOP_GRACE:
            report.skipped[cluster.pk] = f"Warned at {cluster.idle_warned_at.isoformat()}; grace not over."
        else:
            _auto_stop(cluster, assessment, now, stop, report)
    return report


def _remember(cluster: Cluster, assessment: IdleAssessment, now: datetime) -> None:
    """Keep the check's findings on the cluster for its page (which polls every 10 s per viewer, and must not
    re-read an hour of every GPU's samples each time)."""
    streak = assessment.idle_since if assessment.idle else idle_streak_start(cluster=cluster, now=now)
    Cluster.objects.filter(pk=cluster.pk).update(
        idle_checked_at=now, idle_streak_since=streak, idle_status=assessment.reason[:300]
    )


def _auto_stop(
    cluster: Cluster, assessment: IdleAssessment, now: datetime, stop: StopCallable, report: IdleReport
) -> None:
    policy = effective_idle_policy(cluster=cluster)
    idle_for = _minutes(now - assessment.idle_since) if assessment.idle_since else _minutes(policy.window)
    reason = (
        f"Idle for {idle_for} minutes (all GPUs under {policy.threshold_pct:g}%, memory flat); stopped by auto-stop."
    )
    try:
        stop(cluster, reason)
    except ApplicationError as exc:  # e.g. someone stopped it meanwhile: the next pass sees the new state
        report.skipped[cluster.pk] = f"Stop failed: {exc.message}"
        return
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster.pk).update(idle_warned_at=None, updated_at=timezone.now())
        record(
            actor=None,
            team=cluster.team,
            verb="cluster.auto_stopped",
            target=cluster,
            data={"reason": reason, "idle_since": assessment.idle_since, "warned_at": cluster.idle_warned_at},
        )
    cluster.idle_warned_at = None
    report.stopped.append(cluster.pk)


@transaction.atomic
def snooze_idle_stop(*, actor: User, cluster: Cluster, minutes: int, reason: str) -> Cluster:
    """Hold off auto-stop once per cluster, for a bounded time, with a reason. Clears a pending warning, so when
    the snooze ends an idle cluster is warned again and gets the full grace before it stops."""
    locked = Cluster.objects.select_for_update().select_related("team").get(pk=cluster.pk)
    require(
        actor,
        "cluster.snooze",
        locked,
        message="Only the cluster's owner or a manager or admin of its team can snooze auto-stop.",
        error=SnoozeForbidden,
    )
    if locked.snooze_used:
        raise SnoozeUsed(f"Auto-stop of {locked} was already snoozed once; stop the cluster or make it busy.")
    limit = settings.MAX_SNOOZE_MINUTES
    if not 1 <= minutes <= limit:
        raise InvalidSnooze(f"Snooze for 1 to {limit} minutes, not {minutes}.")
    reason = reason.strip()
    if not reason:
        raise InvalidSnooze("Say why the cluster should stay up: a reason is required to snooze auto-stop.")
    if locked.state != ClusterState.RUNNING:
        raise InvalidSnooze(f"Cluster {locked} is {locked.state}; only a running cluster can be snoozed.")
    locked.snoozed_until = timezone.now() + timedelta(minutes=minutes)
    locked.snooze_reason = reason[:300]
    locked.snooze_used = True
    locked.idle_warned_at = None
    locked.save(update_fields=["snoozed_until", "snooze_reason", "snooze_used", "idle_warned_at", "updated_at"])
    record(
        actor=actor,
        team=locked.team,
        verb="cluster.idle_snoozed",
        target=locked,
        data={"until": locked.snoozed_until, "reason": reason},
    )
    return locked


@transaction.atomic
def override_autostop(*, actor: User, cluster: Cluster, until: datetime | None, reason: str) -> Cluster:
    """A platform admin's exception (a deadline, a demo): no idle auto-stop until `until` (at most 7 days ahead);
    `until=None` ends the override. The only way past the policy, and always audited."""
    require(
        actor,
        "cluster.override_autostop",
        message="Only a platform admin can override idle auto-stop.",
        error=AutostopOverrideForbidden,
    )
    reason = reason.strip()
    if not reason:
        raise InvalidAutostopOverride("A reason is required to override idle auto-stop.")
    now = timezone.now()
    if until is not None and not now < until <= now + MAX_AUTOSTOP_OVERRIDE:
        raise InvalidAutostopOverride(
            f"An auto-stop override must end in the future and within {MAX_AUTOSTOP_OVERRIDE.days} days."
        )
    locked = Cluster.objects.select_for_update().select_related("team").get(pk=cluster.pk)
    previous = locked.autostop_override_until
    locked.autostop_override_until = until
    locked.save(update_fields=["autostop_override_until", "updated_at"])
    record(
        actor=actor,
        team=locked.team,
        verb="cluster.autostop_override",
        target=locked,
        data={"until": until, "previous": previous, "reason": reason},
    )
    return locked


def idle_streak_start(*, cluster: Cluster, now: datetime) -> datetime | None:
    """When the current idle stretch of every GPU began, even if it is still shorter than the window (the page's
    countdown). None when a GPU is active now or nothing reported in the last sample gap."""
    since = now - effective_idle_policy(cluster=cluster).window * 2
    rows = GpuSample.objects.filter(node__cluster=cluster, sampled_at__gt=since, sampled_at__lte=now).values_list(
        "node_id", "gpu_index", "sampled_at", "utilization_pct", "memory_used_mib", "memory_total_mib", "process_count"
    )
    per_gpu: dict[tuple[int, int], list[_Row]] = defaultdict(list)
    for node_id, gpu_index, at, util, used, total, processes in rows.order_by("sampled_at"):
        per_gpu[(node_id, gpu_index)].append((at, util, used, total, processes))
    if not per_gpu:
        return None
    threshold = effective_idle_policy(cluster=cluster).threshold_pct
    starts = []
    for gpu_rows in per_gpu.values():
        if now - gpu_rows[-1][0] > MAX_SAMPLE_GAP:
            return None
        start, _ended_by = _idle_stretch(gpu_rows, threshold)
        if start is None:
            return None
        starts.append(start)
    return max(starts)
