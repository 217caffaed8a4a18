"""Paved's own metering: what its clusters and workspaces cost, hour by hour, from its own records and prices, so
showback works with no AWS bill at all (the `make run` demo) and can be reconciled against one.

Where the history comes from (never "the state now", which says nothing about last Tuesday):
- Clusters: the `cluster.<state>` audit events. Every state change goes through the one transition helper, which
  writes the event in the same transaction as the change, and audit rows are append-only (refused by the model
  and by a PostgreSQL trigger), so the sequence of events is the complete and unrewritable timeline of each
  cluster. `running_since`/`running_seconds` only hold the current run and a folded total: they cannot say which
  hours a cluster ran in.
- Workspaces: their runs' timestamps. A workspace is live from the moment its first apply run finished applied
  (its resources exist from then on) until its destroy run finished applied (or, for a workspace a platform admin
  force-deleted or one that is gone without a destroy, its last update). Runs are rows that are only stamped, never
  rewritten, so the same robustness holds.

How time is priced:
- compute: seconds in `running` × the cluster's recorded `hourly_price` (whole cluster, what it cost when it was
  requested), so a re-meter never re-prices the past with today's catalog;
- storage: seconds in `stopping`/`stopped` × node_count × METERING_EBS_GB_PER_NODE GB × the gp3 price per
  GB-month / 730 hours (the volumes of a stopped instance keep billing; AWS prices a month as 730 hours);
- workspaces: seconds live × the workspace's `estimated_hourly_cost`.

Each line is one resource, one hour and one kind (`cluster:<id>:<hour iso>:compute`); re-metering an hour deletes
that hour's metering lines and writes them again, then rebuilds the touched days' rollups: idempotent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q

from apps.audit.models import AuditEvent
from apps.clusters.models import Cluster, ClusterState
from apps.core.errors import ValidationFailed
from apps.costs.models import CostLineItem, CostSource
from apps.costs.money import STORED_PLACES
from apps.costs.services.rollups import days_between, rebuild_days
from apps.runs.models import GONE_STATUSES, Run, RunKind, RunState, Workspace, WorkspaceStatus

HOUR = timedelta(hours=1)
HOURS_PER_MONTH = Decimal(730)
STEP = Decimal(1).scaleb(-STORED_PLACES)
COMPUTE_STATES = frozenset({ClusterState.RUNNING})
STORAGE_STATES = frozenset({ClusterState.STOPPING, ClusterState.STOPPED})
CLUSTER_VERB_PREFIX = "cluster."
ENDED_WORKSPACE_STATUSES = frozenset({WorkspaceStatus.DESTROYED, *GONE_STATUSES})


class NotHourAligned(ValidationFailed):
    code = "not_hour_aligned"


@dataclass(frozen=True)
class MeteringResult:
    start: datetime
    end: datetime
    lines: int
    total: Decimal


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _seconds(delta: timedelta) -> Decimal:
    return Decimal(delta // timedelta(microseconds=1)) / Decimal(1_000_000)


def _hours_of(since: datetime, until: datetime, start: datetime, end: datetime) -> Iterator[tuple[datetime, Decimal]]:
    """(hour, seconds) for every hour of [start, end) that [since, until) overlaps."""
    lo, hi = max(since, start), min(until, end)
    hour = floor_hour(lo)
    while hour < hi:
        overlap = min(hi, hour + HOUR) - max(lo, hour)
        if overlap > timedelta(0):
            yield hour, _seconds(overlap)
        hour += HOUR


def cluster_spans(*, cluster_ids: Iterable[int], until: datetime) -> dict[int, list[tuple[str, datetime, datetime]]]:
    """Each cluster's (state, since, until) spans from its audit events up to `until`."""
    events = (
        AuditEvent.objects.filter(
            target_type=Cluster._meta.label_lower,
            target_id__in=[str(pk) for pk in cluster_ids],
            verb__startswith=CLUSTER_VERB_PREFIX,
            created_at__lt=until,
        )
        .order_by("created_at", "pk")
        .values_list("target_id", "verb", "created_at")
    )
    states = set(ClusterState.values)
    timeline: dict[int, list[tuple[str, datetime]]] = defaultdict(list)
    for target_id, verb, created_at in events:
        state = verb[len(CLUSTER_VERB_PREFIX) :]
        if state in states:
            timeline[int(target_id)].append((state, created_at))
    spans: dict[int, list[tuple[str, datetime, datetime]]] = {}
    for pk, changes in timeline.items():
        ends = [at for _, at in changes[1:]] + [until]
        spans[pk] = [(state, since, end) for (state, since), end in zip(changes, ends, strict=True)]
    return spans


def workspace_live_span(workspace: Workspace, runs: list[Run]) -> tuple[datetime, datetime | None] | None:
    """From the first applied apply run to the applied destroy after it (None: still live)."""
    applies = [r.finished_at for r in runs if r.kind == RunKind.APPLY and r.finished_at is not None]
    if not applies:
        return None
    since = min(applies)
    destroys = [
        r.finished_at for r in runs if r.kind == RunKind.DESTROY and r.finished_at is not None and r.finished_at > since
    ]
    if destroys:
        return since, min(destroys)
    if workspace.status in ENDED_WORKSPACE_STATUSES:
        return since, max(workspace.updated_at, since)
    return since, None


def _tags(**values: object) -> dict[str, str]:
    return {f"paved:{key}": str(value) for key, value in values.items() if value not in (None, "")}


def _line(*, line_id: str, hour: datetime, amount: Decimal, usage: Decimal, **fields: object) -> CostLineItem:
    cost = amount.quantize(STEP)
    return CostLineItem(
        source=CostSource.METERING,
        line_id=line_id,
        billing_period=hour.date().replace(day=1),
        usage_start=hour,
        usage_end=hour + HOUR,
        line_item_type="Usage",
        usage_amount=usage.quantize(STEP),
        unblended_cost=cost,
        net_cost=cost,
        **fields,
    )


def _cluster_lines(start: datetime, end: datetime, clock: datetime) -> list[CostLineItem]:
    clusters = {
        c.pk: c
        for c in Cluster.objects.select_related("team", "owner").exclude(
            state__in=(ClusterState.TERMINATED, ClusterState.FAILED), updated_at__lt=start
        )
    }
    gb_per_node = Decimal(settings.METERING_EBS_GB_PER_NODE)
    gb_month = Decimal(settings.METERING_EBS_PRICE_PER_GB_MONTH)
    seconds: dict[tuple[int, datetime, str], Decimal] = defaultdict(Decimal)
    for pk, spans in cluster_spans(cluster_ids=clusters, until=clock).items():
        for state, since, until in spans:
            kind = "compute" if state in COMPUTE_STATES else "storage" if state in STORAGE_STATES else None
            if kind is not None:
                for hour, secs in _hours_of(since, until, start, end):
                    seconds[(pk, hour, kind)] += secs
    lines = []
    for (pk, hour, kind), secs in sorted(seconds.items()):
        cluster = clusters[pk]
        hours = secs / 3600
        common = {
            "team_id": cluster.team_id,
            "cluster_id": pk,
            "user_id": cluster.owner_id,
            "instance_type": cluster.instance_type,
            "product_code": "AmazonEC2",
            "resource_id": f"cluster/{pk}",
            "tags": _tags(team=cluster.team.slug, cluster=pk, owner=cluster.owner.get_username()),
        }
        if kind == "compute":
            amount, usage = Decimal(cluster.hourly_price) * hours, hours
            extra = {"usage_type": f"BoxUsage:{cluster.instance_type}", "pricing_unit": "Hrs"}
        else:
            gb = gb_per_node * cluster.node_count
            amount, usage = gb * gb_month * hours / HOURS_PER_MONTH, gb * hours / HOURS_PER_MONTH
            extra = {"usage_type": "EBS:VolumeUsage.gp3", "pricing_unit": "GB-Mo"}
        line_id = f"cluster:{pk}:{hour.isoformat()}:{kind}"
        lines.append(_line(line_id=line_id, hour=hour, amount=amount, usage=usage, **common, **extra))
    return lines


def _workspace_lines(start: datetime, end: datetime, clock: datetime) -> list[CostLineItem]:
    workspaces = list(
        Workspace.objects.select_related("team", "created_by", "template_version__template")
        .filter(estimated_hourly_cost__gt=0)
        .exclude(Q(status__in=ENDED_WORKSPACE_STATUSES) & Q(updated_at__lt=start))
    )
    runs: dict[int, list[Run]] = defaultdict(list)
    for run in Run.objects.filter(
        workspace__in=workspaces, kind__in=(RunKind.APPLY, RunKind.DESTROY), state=RunState.APPLIED
    ).only("workspace_id", "kind", "finished_at"):
        runs[run.workspace_id].append(run)
    lines = []
    for workspace in workspaces:
        span = workspace_live_span(workspace, runs[workspace.pk])
        if span is None:
            continue
        version = workspace.template_version
        for hour, secs in _hours_of(span[0], min(span[1] or clock, clock), start, end):
            hours = secs / 3600
            lines.append(
                _line(
                    line_id=f"workspace:{workspace.pk}:{hour.isoformat()}:live",
                    hour=hour,
                    amount=Decimal(workspace.estimated_hourly_cost) * hours,
                    usage=hours,
                    currency=workspace.currency,
                    team_id=workspace.team_id,
                    workspace_id=workspace.pk,
                    template_id=version.template_id,
                    user_id=workspace.created_by_id,
                    product_code="PavedWorkspace",
                    usage_type=f"WorkspaceHours:{version.template.slug}",
                    pricing_unit="Hrs",
                    resource_id=f"workspace/{workspace.pk}",
                    tags=_tags(
                        team=workspace.team.slug,
                        workspace=workspace.name,
                        template=f"{version.template.slug}@{version.version}",
                        owner=workspace.created_by.get_username(),
                    ),
                )
            )
    return lines


def meter(*, start: datetime, end: datetime, now: datetime) -> MeteringResult:
    """Write the metering lines of every hour in [start, end) (hour-aligned) and rebuild those days' rollups.
    Time after `now` is not metered (it has not happened; the current hour is metered up to `now` and again by
    the next pass). Re-metering an hour replaces its lines."""
    if floor_hour(start) != start or floor_hour(end) != end:
        raise NotHourAligned("Metering works in whole hours: start and end must be on the hour (UTC).")
    end = min(end, floor_hour(now) + HOUR)
    if end <= start:
        return MeteringResult(start=start, end=start, lines=0, total=Decimal(0))
    with transaction.atomic():
        CostLineItem.objects.filter(source=CostSource.METERING, usage_start__gte=start, usage_start__lt=end).delete()
        clock = min(end, now)
        metered = _cluster_lines(start, end, clock) + _workspace_lines(start, end, clock)
        lines = [line for line in metered if line.net_cost]
        CostLineItem.objects.bulk_create(lines, batch_size=2000)
        rebuild_days(source=CostSource.METERING, days=days_between(start, end))
    return MeteringResult(start=start, end=end, lines=len(lines), total=sum((x.net_cost for x in lines), Decimal(0)))


def meter_recent(*, now: datetime) -> MeteringResult:
    """The hourly beat: catch up from the last metered hour (re-metering it, in case it was metered while still
    running) to the current hour, at most METERING_MAX_CATCHUP_HOURS back so a long outage stays a bounded pass."""
    current = floor_hour(now)
    earliest = current - timedelta(hours=settings.METERING_MAX_CATCHUP_HOURS)
    last = CostLineItem.objects.filter(source=CostSource.METERING).aggregate(last=Max("usage_start"))["last"]
    start = max(earliest, floor_hour(last) if last is not None else earliest)
    return meter(start=start, end=current + HOUR, now=now)
