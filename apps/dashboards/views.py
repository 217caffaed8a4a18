"""Dashboard pages: the overview (every KPI on one screen with its target status, trend and sparkline), a page
per area, and the definitions page. Filters: a team (one the user sees) and a standard window or a date range."""

from __future__ import annotations

import csv
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.models import Team
from apps.accounts.permissions import is_platform_admin
from apps.accounts.selectors import memberships_for, pick_current_membership
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.dashboards.registry import Area, Period, all_kpis, target_of
from apps.dashboards.selectors import (
    WINDOWS,
    KpiRow,
    kpi_rows,
    scope_for,
    snapshot_age,
    team_breakdown,
    visible_teams,
)

DEFAULT_WINDOW = 30
ALL_MY_TEAMS = "all"
ONE_DAY = timedelta(days=1)


def _filters(request: HttpRequest) -> dict[str, Any]:
    """Team, window and optional range from the query string; a team the user cannot see is a 404."""
    teams = visible_teams(request.user)
    team: Team | None = None
    slug = request.GET.get("team", "")
    if slug and slug != ALL_MY_TEAMS:
        team = next((t for t in teams if t.slug == slug), None)
        if team is None:
            raise Http404("No such team among yours.")
    elif not slug and len(teams) > 1 and not is_platform_admin(request.user):
        # Several teams' KPIs together have no snapshot (a percentile does not add up), so a manager of several
        # teams opens on the current one; "all my teams" (team=all) is computed live.
        team = _current_team(request, teams)
    try:
        window = int(request.GET.get("days", DEFAULT_WINDOW))
    except ValueError:
        window = DEFAULT_WINDOW
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    period = _range(request.GET.get("start", ""), request.GET.get("end", ""))
    return {"teams": teams, "team": team, "window": window, "period": period, "windows": WINDOWS,
            "all_my_teams": ALL_MY_TEAMS}  # fmt: skip


def _current_team(request: HttpRequest, teams: list[Team]) -> Team:
    memberships = list(memberships_for(request.user))
    current = pick_current_membership(memberships, request.session.get(CURRENT_TEAM_SESSION_KEY))
    return next((t for t in teams if current is not None and t.pk == current.team_id), teams[0])


def _range(start: str, end: str) -> Period | None:
    """A custom [start, end] of whole days (UTC); anything unparsable or reversed falls back to the window."""
    try:
        first, last = datetime.fromisoformat(start).date(), datetime.fromisoformat(end).date()
    except ValueError:
        return None
    if last < first or (last - first).days > 731:
        return None
    utc = ZoneInfo("UTC")
    return Period(start=datetime.combine(first, time.min, utc), end=datetime.combine(last, time.min, utc) + ONE_DAY)


def _rows(request: HttpRequest, filters: dict[str, Any], area: Area | None) -> list[KpiRow]:
    scope = scope_for(request.user, filters["team"])
    return kpi_rows(scope=scope, window_days=filters["window"], period=filters["period"], area=area)


@login_required
def overview_view(request: HttpRequest) -> HttpResponse:
    filters = _filters(request)
    rows = _rows(request, filters, None)
    if request.GET.get("format") == "csv":
        return _csv(rows, "kpis.csv")
    return _page(request, filters, rows, None)


@login_required
def area_view(request: HttpRequest, area: str) -> HttpResponse:
    """One area's KPIs, and a table of them by team (the teams the user sees, or the one filtered to)."""
    try:
        chosen = Area(area)
    except ValueError as exc:
        raise Http404("No such dashboard.") from exc
    filters = _filters(request)
    rows = _rows(request, filters, chosen)
    teams = [filters["team"]] if filters["team"] else filters["teams"]
    breakdown = team_breakdown(kpis=[row.kpi for row in rows], teams=teams, window_days=filters["window"])
    if request.GET.get("format") == "csv":
        if request.GET.get("table") == "teams":
            return _teams_csv(breakdown, f"kpis-{chosen}-by-team.csv")
        if request.GET.get("table") == "splits":
            return _splits_csv(rows, f"kpis-{chosen}-by-split.csv")
        return _csv(rows, f"kpis-{chosen}.csv")
    return _page(request, filters, rows, chosen, breakdown=breakdown)


def _page(
    request: HttpRequest,
    filters: dict[str, Any],
    rows: list[KpiRow],
    area: Area | None,
    breakdown: list[tuple[Team, list[KpiRow]]] | None = None,
) -> HttpResponse:
    context = {
        **filters,
        "rows": rows,
        "areas": list(Area),
        "area": area,
        "computed_at": snapshot_age(filters["window"]),
        "breakdown": breakdown or [],
        "splits": [row for row in rows if row.breakdown] if area else [],
    }
    return render(request, "dashboards/overview.html", context)


@login_required
def definitions_view(request: HttpRequest) -> HttpResponse:
    kpis = [(kpi, target_of(kpi)) for kpi in all_kpis()]
    return render(request, "dashboards/definitions.html", {"kpis": kpis})


def _teams_csv(breakdown: list[tuple[Team, list[KpiRow]]], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(["team", "key", "value", "previous", "sample", "status", "no_data"])
    for team, rows in breakdown:
        for row in rows:
            writer.writerow([team.slug, row.kpi.key, row.value, row.previous, row.sample, row.status, row.no_data])
    return response


def _splits_csv(rows: list[KpiRow], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(["key", "split", "split_value", "value"])
    for row in rows:
        for split_value, value in row.breakdown.items():
            writer.writerow([row.kpi.key, row.kpi.split, split_value, value])
    return response


def _csv(rows: list[KpiRow], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(["key", "name", "area", "unit", "value", "previous", "sample", "status", "no_data"])
    for row in rows:
        writer.writerow([row.kpi.key, row.kpi.name, row.kpi.area, row.kpi.unit, row.value, row.previous, row.sample,
                         row.status, row.no_data])  # fmt: skip
    return response
