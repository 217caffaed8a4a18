"""Reads about GPU clusters and quotas. Team scoping goes through `permissions.restrict`, never a view's own filter."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Avg, F, Max, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, is_platform_admin, restrict
from apps.clusters.models import Cluster, ClusterState, GpuSample, InstanceTypeLimit, QuotaException, TeamQuota

# Clusters that hold (or are about to hold) GPUs. Stopped, terminated and failed clusters free their quota.
GPU_HOLDING_STATES: frozenset[str] = frozenset(
    {ClusterState.REQUESTED, ClusterState.PROVISIONING, ClusterState.RUNNING, ClusterState.STOPPING}
)
CENT = Decimal("0.01")
# Between the idle warning e-mail and the stop: long enough to read the mail and snooze (10 minutes unless
# configured). Read once, when the worker or web process starts, like the rest of its settings.
STOP_GRACE = timedelta(minutes=max(0, settings.IDLE_STOP_GRACE_MINUTES))


@dataclass(frozen=True)
class Quota:
    max_gpus: int  # base quota plus every unexpired exception
    max_cluster_hours: int
    extra_gpus_until: datetime | None  # when the first active exception expires; None without exceptions
    extra_gpus: int = 0


def clusters_for(user: AnyUser) -> QuerySet[Cluster]:
    """Clusters of the user's teams; platform admins see every cluster (they override auto-stop, stop runaways)."""
    clusters = Cluster.objects.select_related("team", "owner")
    if is_platform_admin(user):
        return clusters
    return restrict(clusters, user)


def cluster_for(user: AnyUser, pk: int) -> Cluster | None:
    return clusters_for(user).filter(pk=pk).first()


def _holding(team: Team) -> QuerySet[Cluster]:
    return Cluster.objects.filter(team=team, state__in=GPU_HOLDING_STATES)


def team_gpu_usage(team: Team) -> int:
    total = _holding(team).aggregate(gpus=Sum(F("node_count") * F("gpus_per_node")))["gpus"]
    return int(total or 0)


def team_nodes_of_type(team: Team, instance_type: str) -> int:
    total = _holding(team).filter(instance_type=instance_type).aggregate(nodes=Sum("node_count"))["nodes"]
    return int(total or 0)


def instance_type_limit(team: Team, instance_type: str) -> int | None:
    return (
        InstanceTypeLimit.objects.filter(team=team, instance_type=instance_type)
        .values_list("max_nodes", flat=True)
        .first()
    )


def active_quota_exceptions(team: Team) -> QuerySet[QuotaException]:
    return QuotaException.objects.filter(team=team, expires_at__gt=timezone.now())


def team_quota(team: Team) -> TeamQuota | None:
    """The team's own quota row (None: it runs under the platform defaults)."""
    return TeamQuota.objects.filter(team=team).first()


def effective_quota(team: Team) -> Quota:
    base = TeamQuota.objects.filter(team=team).first()
    max_gpus = base.max_gpus if base else settings.DEFAULT_GPU_QUOTA
    max_hours = base.max_cluster_hours if base else settings.DEFAULT_MAX_CLUSTER_HOURS
    exceptions = list(active_quota_exceptions(team))
    extra = sum(exception.extra_gpus for exception in exceptions)
    until = min((exception.expires_at for exception in exceptions), default=None)
    return Quota(max_gpus=max_gpus + extra, max_cluster_hours=max_hours, extra_gpus_until=until, extra_gpus=extra)


def remaining_gpus(team: Team) -> int:
    return max(0, effective_quota(team).max_gpus - team_gpu_usage(team))


def running_seconds(cluster: Cluster, now: datetime | None = None) -> int:
    """Seconds the cluster has run, over all its runs (a stopped cluster keeps what it accumulated)."""
    seconds = cluster.running_seconds
    if cluster.running_since is not None:
        seconds += max(0, int(((now or timezone.now()) - cluster.running_since).total_seconds()))
    return seconds


def running_cost(cluster: Cluster, now: datetime | None = None, *, places: Decimal = CENT) -> Decimal:
    """What the cluster has cost so far at its recorded hourly price, in USD (to `places`: cents by default; the
    live page uses hundredths of a cent so a running cluster's cost visibly moves between polls)."""
    return (Decimal(cluster.hourly_price) * Decimal(running_seconds(cluster, now)) / Decimal(3600)).quantize(places)


def seconds_left(cluster: Cluster, now: datetime | None = None) -> int | None:
    """Running time left before `max_hours` terminates the cluster (None: no limit). Stopped time does not count."""
    if cluster.max_hours is None:
        return None
    return max(0, cluster.max_hours * 3600 - running_seconds(cluster, now))


@dataclass(frozen=True)
class GpuPoint:
    sampled_at: datetime
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    power_w: float | None
    temperature_c: float | None
    process_count: int


def gpu_series(cluster: Cluster, since: datetime) -> dict[tuple[str, int], list[GpuPoint]]:
    """(instance id, GPU index) -> the cluster's raw samples since `since`, oldest first."""
    rows = (
        GpuSample.objects.filter(node__cluster=cluster, sampled_at__gte=since)
        .order_by("sampled_at")
        .values_list("node__instance_id", "gpu_index", "sampled_at", "utilization_pct", "memory_used_mib",
                     "memory_total_mib", "power_w", "temperature_c", "process_count")
    )  # fmt: skip
    series: dict[tuple[str, int], list[GpuPoint]] = defaultdict(list)
    for instance_id, gpu_index, at, util, used, total, power, temperature, processes in rows:
        series[(instance_id, gpu_index)].append(GpuPoint(at, util, used, total, power, temperature, processes))
    return dict(sorted(series.items()))


MIN_IDLE_WINDOW_MINUTES = 5
MAX_IDLE_THRESHOLD_PCT = 50.0  # users may lower the bar for "idle", never raise it past this


@dataclass(frozen=True)
class TeamIdlePolicy:
    threshold_pct: float
    window_minutes: int  # the longest window the team's clusters may ask for (and their default)


def team_idle_policy(team: Team) -> TeamIdlePolicy:
    """The team's idle auto-stop policy (its quota row, else the platform default), held inside the admin bounds."""
    quota = TeamQuota.objects.filter(team=team).first()
    window = quota.idle_window_minutes if quota and quota.idle_window_minutes else settings.IDLE_WINDOW_MINUTES
    threshold = quota.idle_threshold_pct if quota and quota.idle_threshold_pct is not None else None
    if threshold is None:
        threshold = settings.IDLE_THRESHOLD_PCT
    return TeamIdlePolicy(
        threshold_pct=min(max(float(threshold), 0.0), MAX_IDLE_THRESHOLD_PCT),
        window_minutes=min(max(int(window), MIN_IDLE_WINDOW_MINUTES), settings.MAX_IDLE_WINDOW_MINUTES),
    )


# "Latest sample" of a GPU: its newest one within this long of its node's newest (a GPU silent longer is dropped).
LATEST_WINDOW = timedelta(minutes=2)


def latest_gpu_samples(cluster_ids: Iterable[int]) -> list[GpuSample]:
    """The newest sample of each GPU of these clusters, ordered by node and GPU. Portable (SQLite for `make run`,
    PostgreSQL): of the samples near each node's newest one, the database keeps only the one that is its GPU's
    newest (an index lookup per candidate), so one row a GPU reaches Python instead of every sample of the window."""
    gpu_newest = (
        GpuSample.objects.filter(node_id=OuterRef("node_id"), gpu_index=OuterRef("gpu_index"))
        .order_by("-sampled_at")
        .values("sampled_at")[:1]
    )
    recent = (
        GpuSample.objects.filter(
            node__cluster_id__in=list(cluster_ids),
            sampled_at__gte=F("node__last_sample_at") - LATEST_WINDOW,
            sampled_at=Subquery(gpu_newest),
        )
        .select_related("node")
        .order_by("node_id", "gpu_index", "-sampled_at")
    )
    newest: dict[tuple[int, int], GpuSample] = {}
    for sample in recent:
        newest.setdefault((sample.node_id, sample.gpu_index), sample)
    return list(newest.values())


@dataclass(frozen=True)
class MinutePoint:
    minute: datetime
    utilization_pct: float  # averages over the minute's samples
    memory_used_pct: float


def gpu_minutes(cluster: Cluster, since: datetime) -> dict[tuple[str, int], list[MinutePoint]]:
    """(instance id, GPU index) -> per-minute averages since `since`, oldest first: what a chart of the last hour
    needs (60 points a GPU), averaged by the database instead of sending every 10 s sample to the page."""
    rows = (
        GpuSample.objects.filter(node__cluster=cluster, sampled_at__gte=since)
        # In UTC: a minute starts at the same instant in any time zone, and a fixed zone spares the per-row lookup
        # of the current one when the rows are converted (a few ms a page, with hundreds of rows).
        .annotate(minute=TruncMinute("sampled_at", tzinfo=UTC))
        .values("node__instance_id", "gpu_index", "minute")
        .annotate(util=Avg("utilization_pct"), used=Avg("memory_used_mib"), total=Max("memory_total_mib"))
        .order_by("minute")
    )
    series: dict[tuple[str, int], list[MinutePoint]] = defaultdict(list)
    for row in rows:
        used_pct = row["used"] / row["total"] * 100 if row["total"] else 0.0
        series[(row["node__instance_id"], row["gpu_index"])].append(MinutePoint(row["minute"], row["util"], used_pct))
    return dict(sorted(series.items()))


def extend_room(cluster: Cluster) -> int:
    """Hours the cluster's max_hours may still grow by, up to its team's maximum per cluster (0: none)."""
    limit = effective_quota(cluster.team).max_cluster_hours
    return max(0, limit - (cluster.max_hours or limit))


def autostop_at(cluster: Cluster) -> datetime | None:
    """When idle auto-stop stops the cluster: the warning's time plus the grace (None: not warned)."""
    return cluster.idle_warned_at + STOP_GRACE if cluster.idle_warned_at is not None else None


def own_clusters(user: AnyUser, *, limit: int = 10) -> list[Cluster]:
    """The user's own clusters that are not terminated, newest first (their home page's "Your clusters")."""
    mine = clusters_for(user).filter(owner_id=user.pk)
    return list(mine.exclude(state=ClusterState.TERMINATED).order_by("-created_at", "-pk")[:limit])


@dataclass(frozen=True)
class ClusterDeadline:
    """A running cluster of the user's that stops or terminates by itself soon, and why."""

    cluster: Cluster
    at: datetime
    why: str


def own_cluster_deadlines(user: AnyUser, *, now: datetime, within: timedelta) -> list[ClusterDeadline]:
    """The user's running clusters that idle auto-stop stops (warned) or `max_hours` terminates within `within`,
    soonest first."""
    running = clusters_for(user).filter(owner_id=user.pk, state=ClusterState.RUNNING)
    deadlines: list[ClusterDeadline] = []
    for cluster in running.order_by("pk"):
        stops = autostop_at(cluster)
        if stops is not None and stops - now <= within:
            deadlines.append(ClusterDeadline(cluster, stops, "idle auto-stop"))
        left = seconds_left(cluster, now)
        if left is not None and timedelta(seconds=left) <= within:
            deadlines.append(ClusterDeadline(cluster, now + timedelta(seconds=left), "maximum hours reached"))
    return sorted(deadlines, key=lambda deadline: deadline.at)
