"""GPU cluster pages: list, request form, detail (live telemetry refreshed by htmx) and the lifecycle actions.

Views parse input, call one service or selector and render; htmx requests get only the partial they target.
Another team's cluster is a 404 everywhere, through `selectors.cluster_for`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.models import Team
from apps.accounts.permissions import AnyUser, can
from apps.accounts.selectors import authenticated, default_team_for, team_for, teams_for
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.clusters import selectors, services
from apps.clusters.filters import ClusterFilterSet
from apps.clusters.forms import ClusterRequestForm, SnoozeForm
from apps.clusters.instance_catalog import InstanceType, load_catalog, price_for
from apps.clusters.models import ALLOWED_CLUSTER_TRANSITIONS, Cluster, ClusterState, GpuSample, PurchaseOption
from apps.clusters.services.idle import MAX_AUTOSTOP_OVERRIDE, STOP_GRACE, effective_idle_policy
from apps.clusters.services.limits import EXTENDABLE_STATES, extend_cluster
from apps.core.durations import format_duration
from apps.core.errors import ApplicationError, add_to_form
from apps.core.htmx import htmx_partial
from apps.core.lists import list_page
from apps.costs.selectors import cluster_cost

# The detail page polls while the cluster may still change on its own (a worker or the idle check moves it).
POLLING_STATES = frozenset(
    {
        ClusterState.REQUESTED,
        ClusterState.PROVISIONING,
        ClusterState.RUNNING,
        ClusterState.STOPPING,
        ClusterState.TERMINATING,
    }
)
SPARKLINE_SPAN = timedelta(hours=1)
SPARKLINE_WIDTH, SPARKLINE_HEIGHT = 120, 28
SPARKLINE_MAX_POINTS = 180
LIVE_COST_PLACES = Decimal("0.0001")


def _cluster_or_404(request: HttpRequest, cluster_id: int) -> Cluster:
    cluster = selectors.cluster_for(request.user, cluster_id)
    if cluster is None:
        raise Http404("No such cluster in your teams.")
    return cluster


def _utilization_at_a_glance(samples: Iterable[GpuSample]) -> dict[int, dict[str, Any]]:
    """cluster id -> average utilization of its GPUs' latest samples and how many GPUs reported."""
    by_cluster: dict[int, list[float]] = defaultdict(list)
    for sample in samples:
        by_cluster[sample.node.cluster_id].append(sample.utilization_pct)
    return {
        cluster_id: {"avg_pct": sum(values) / len(values), "gpus": len(values)}
        for cluster_id, values in by_cluster.items()
    }


@login_required
def cluster_list_view(request: HttpRequest) -> HttpResponse:
    show_all = request.GET.get("show") == "all" or request.GET.get("state") == ClusterState.TERMINATED
    clusters = selectors.clusters_for(request.user)
    if not show_all:
        clusters = clusters.exclude(state=ClusterState.TERMINATED)
    filterset = ClusterFilterSet(request.GET or None, queryset=clusters)
    page = list_page(request, filterset.qs)
    now = timezone.now()
    glance = _utilization_at_a_glance(selectors.latest_gpu_samples(cluster.pk for cluster in page))
    rows = [
        {"cluster": cluster, "cost": selectors.running_cost(cluster, now), "glance": glance.get(cluster.pk)}
        for cluster in page
    ]
    context = {
        "page": page,
        "rows": rows,
        "show_all": show_all,
        "filterset": filterset,
        "can_manage_quotas": can(request.user, "quota.manage"),
    }
    return render(request, "clusters/cluster_list.html", context)


# -- request ---------------------------------------------------------------------------------------------------


def _parse_count(raw: object) -> int:
    text = str(raw or "")
    return int(text) if text.isdigit() and len(text) < 4 else 1


def _request_summary(
    request: HttpRequest, values: Mapping[str, Any], default_team: Team | None, catalog: Mapping[str, InstanceType]
) -> dict[str, Any]:
    """The side panel of the request form: the chosen team's remaining GPUs and the hourly estimate."""
    team = team_for(request.user, str(values.get("team") or "")) or default_team
    instance = catalog.get(str(values.get("instance_type") or ""))
    node_count = _parse_count(values.get("node_count"))
    summary: dict[str, Any] = {"summary_team": team, "instance": instance, "node_count": node_count}
    if team is not None:
        summary["quota"] = selectors.effective_quota(team)
        summary["remaining_gpus"] = selectors.remaining_gpus(team)
        summary["gpus_in_use"] = selectors.team_gpu_usage(team)
    if instance is not None:
        summary["requested_gpus"] = instance.gpus * node_count
        try:
            unit = price_for(
                instance.type,
                str(values.get("region") or ""),
                str(values.get("purchase_option") or PurchaseOption.ON_DEMAND),
                catalog=catalog,
            )
        except ApplicationError as exc:
            summary["estimate_problem"] = exc.message
        else:
            summary["estimate_hourly"] = unit * node_count
    return summary


@login_required
def cluster_create_view(request: HttpRequest) -> HttpResponse:
    catalog = load_catalog()
    current = default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))
    defaults: dict[str, Any] = {
        "team": current.slug if current else "",
        "instance_type": next(iter(catalog), ""),
        "region": "us-east-1",
        "purchase_option": PurchaseOption.ON_DEMAND,
        "node_count": "1",
    }
    if request.method == "POST":
        values: Mapping[str, Any] = request.POST
    else:
        values = {**defaults, **request.GET.dict()}
    if request.method == "GET" and htmx_partial(request):
        summary = _request_summary(request, values, current, catalog)
        return render(request, "clusters/partials/request_summary.html", summary)
    form = ClusterRequestForm(
        request.POST if request.method == "POST" else None,
        teams=teams_for(request.user),
        catalog=dict(catalog),
        initial=values,
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                cluster = services.request_cluster(
                    actor=authenticated(request.user),
                    team=data["team"],
                    name=data["name"],
                    region=data["region"],
                    instance_type=data["instance_type"],
                    node_count=data["node_count"],
                    purchase_option=data["purchase_option"],
                    max_hours=data["max_hours"],
                )
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Cluster {cluster.name} requested; its nodes are being launched.")
                return redirect("clusters:detail", cluster_id=cluster.pk)
        status = 422
    context = {"form": form, **_request_summary(request, values, current, catalog)}
    return render(request, "clusters/cluster_form.html", context, status=status)


# -- detail ----------------------------------------------------------------------------------------------------


def _points(series: list[tuple[float, float]]) -> str:
    """SVG polyline points for (x in 0..1, percent) pairs, thinned to at most SPARKLINE_MAX_POINTS."""
    step = max(1, -(-len(series) // SPARKLINE_MAX_POINTS))
    thinned = series[::step]
    if series and thinned[-1] is not series[-1]:
        thinned.append(series[-1])
    return " ".join(
        f"{x * SPARKLINE_WIDTH:.1f},{SPARKLINE_HEIGHT - min(max(pct, 0.0), 100.0) / 100 * SPARKLINE_HEIGHT:.1f}"
        for x, pct in thinned
    )


def _sparklines(cluster: Cluster, now: datetime) -> list[dict[str, Any]]:
    """Per GPU, the last hour of utilization and memory use (per-minute averages) as SVG polyline points."""
    since = now - SPARKLINE_SPAN
    span = SPARKLINE_SPAN.total_seconds()
    lines = []
    for (instance_id, gpu_index), points in selectors.gpu_minutes(cluster, since).items():
        xs = [max(0.0, min(1.0, (point.minute - since).total_seconds() / span)) for point in points]
        utilization = [(x, point.utilization_pct) for x, point in zip(xs, points, strict=True)]
        memory = [(x, point.memory_used_pct) for x, point in zip(xs, points, strict=True)]
        lines.append(
            {
                "node": instance_id,
                "gpu": gpu_index,
                "utilization_points": _points(utilization),
                "memory_points": _points(memory),
                "utilization_last": utilization[-1][1],
                "memory_last": memory[-1][1],
            }
        )
    return lines


def _live_context(cluster: Cluster) -> dict[str, Any]:
    """Everything the 10 s poll refreshes: state, cost, nodes, GPUs, the idle countdown and the idle warning."""
    now = timezone.now()
    left = selectors.seconds_left(cluster, now)
    return {
        "cluster": cluster,
        "polling": cluster.state in POLLING_STATES,
        "uptime": format_duration(selectors.running_seconds(cluster, now)),
        "cost": selectors.running_cost(cluster, now, places=LIVE_COST_PLACES),
        "hours_left": None if left is None else format_duration(left),
        "stops_at": cluster.idle_warned_at + STOP_GRACE if cluster.idle_warned_at else None,
        "idle": _idle_countdown(cluster, now),
        "nodes": list(cluster.nodes.all()),
        "latest": selectors.latest_gpu_samples([cluster.pk]),
        "sparklines": _sparklines(cluster, now),
        "sparkline_width": SPARKLINE_WIDTH,
        "sparkline_height": SPARKLINE_HEIGHT,
    }


def _extend_room(cluster: Cluster) -> int:
    """Hours the cluster may still be extended by (0: not extendable now)."""
    if cluster.state not in EXTENDABLE_STATES:
        return 0
    return selectors.extend_room(cluster)


def _may_become(cluster: Cluster, *states: str) -> bool:
    return any(state in ALLOWED_CLUSTER_TRANSITIONS[ClusterState(cluster.state)] for state in states)


def _action_flags(user: AnyUser, cluster: Cluster) -> dict[str, Any]:
    """What the page offers, from the permission rules and the transition table (the template restates
    neither). The services check both again."""
    operate = can(user, "cluster.operate", cluster)
    extend_room = _extend_room(cluster) if can(user, "cluster.extend", cluster) else 0
    return {
        "can_stop": operate and _may_become(cluster, ClusterState.STOPPING),
        # provisioning is also a requested cluster's next state; "start" is from stopped only.
        "can_start": operate
        and cluster.state == ClusterState.STOPPED
        and _may_become(cluster, ClusterState.PROVISIONING),
        "can_terminate": operate and _may_become(cluster, ClusterState.TERMINATING, ClusterState.TERMINATED),
        "can_extend": extend_room > 0,
        "extend_room": extend_room,
        "can_override": can(user, "cluster.override_autostop", cluster) and cluster.state == ClusterState.RUNNING,
        "override_max_hours": int(MAX_AUTOSTOP_OVERRIDE.total_seconds() // 3600),
        "override_max_days": MAX_AUTOSTOP_OVERRIDE.days,
    }


def _idle_countdown(cluster: Cluster, now: datetime) -> dict[str, Any] | None:
    """For a running cluster not yet warned: what the last idle check (beat, every minute) found, counted on to
    now: how long it has been idle and when the warning comes if it stays so."""
    if cluster.state != ClusterState.RUNNING or cluster.idle_warned_at is not None:
        return None
    window = effective_idle_policy(cluster=cluster).window
    countdown: dict[str, Any] = {
        "checked_at": cluster.idle_checked_at,
        "window_minutes": int(window.total_seconds() // 60),
        "reason": cluster.idle_status,
    }
    if cluster.idle_checked_at is None or cluster.idle_streak_since is None:
        return {**countdown, "active": True}
    return {
        **countdown,
        "active": False,
        "idle_minutes": int((now - cluster.idle_streak_since).total_seconds() // 60),
        "warn_at": max(now, cluster.idle_streak_since + window),
    }


@login_required
def cluster_detail_view(request: HttpRequest, cluster_id: int) -> HttpResponse:
    cluster = _cluster_or_404(request, cluster_id)
    # The live refresh carries the state-dependent controls too (out of band): they change with the state.
    context = {**_live_context(cluster), **_action_flags(request.user, cluster)}
    if htmx_partial(request):
        return render(request, "clusters/partials/cluster_live.html", {**context, "oob": True})
    context.update(
        {
            "hourly_estimate": Decimal(cluster.hourly_price),
            "estimate_vs_actual": cluster_cost(cluster=cluster, now=timezone.now()),
        }
    )
    return render(request, "clusters/cluster_detail.html", context)


# -- actions ---------------------------------------------------------------------------------------------------


def _act(request: HttpRequest, actor: User, cluster: Cluster, action: str) -> None:
    if action == "stop":
        services.stop_cluster(actor=actor, cluster=cluster)
        messages.success(request, f"Cluster {cluster.name} stopped; its disks are kept and its GPUs released.")
    elif action == "start":
        services.start_cluster(actor=actor, cluster=cluster)
        messages.success(request, f"Cluster {cluster.name} is starting.")
    elif action == "terminate":
        services.request_termination(actor=actor, cluster=cluster, confirm_name=request.POST.get("confirm", ""))
        messages.success(request, f"Cluster {cluster.name} terminated.")
    elif action == "extend":
        raw = request.POST.get("hours", "")
        if not raw.isdigit():
            messages.error(request, "Give the extension in whole hours; nothing was extended.")
            return
        extended = extend_cluster(actor=actor, cluster=cluster, hours=int(raw), request=request)
        messages.success(request, f"Cluster {cluster.name} may now run for {extended.max_hours} hours in all.")
    elif action == "override":
        hours = request.POST.get("hours", "")
        if not hours.isdigit():
            messages.error(request, "Give the override in whole hours (0 ends it); nothing was changed.")
            return
        until = timezone.now() + timedelta(hours=int(hours)) if int(hours) else None
        services.override_autostop(actor=actor, cluster=cluster, until=until, reason=request.POST.get("reason", ""))
        messages.success(
            request, f"Idle auto-stop of {cluster.name} " + (f"overridden for {hours} h." if until else "restored.")
        )
    elif action == "snooze":
        form = SnoozeForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the snooze length in whole minutes and a reason; nothing was snoozed.")
            return
        snoozed = services.snooze_idle_stop(
            actor=actor, cluster=cluster, minutes=form.cleaned_data["minutes"], reason=form.cleaned_data["reason"]
        )
        until = timezone.localtime(snoozed.snoozed_until) if snoozed.snoozed_until else None
        messages.success(request, f"Idle auto-stop of {cluster.name} snoozed until {until:%H:%M}.")
    else:
        raise Http404("Unknown action.")


@require_POST
@login_required
def cluster_action_view(request: HttpRequest, cluster_id: int, action: str) -> HttpResponse:
    cluster = _cluster_or_404(request, cluster_id)
    try:
        _act(request, authenticated(request.user), cluster, action)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("clusters:detail", cluster_id=cluster.pk)
