"""Cost pages: the explorer, a team's printable showback, and CSV exports of every table on them.

Views read the query through the API's ExplorerQuerySerializer (one set of rules for pages, exports and API),
call the explorer selectors and render; a team the user may not read is a 404 on pages, a 400 in the query.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.core.errors import InvalidQuery
from apps.costs import selectors
from apps.costs.api import ExplorerQuerySerializer, explore_for

# --- Explorer and showback ------------------------------------------------------------------------------------

CHART_SERIES = 10  # the largest groups get their own colour in the stacked chart; the rest are "Other"
EXPORT_TABLES = ("groups", "daily", "top-spenders", "estimates")


class _Echo:
    """csv.writer's file: hands each row straight back, so the export streams instead of building a string."""

    def write(self, value: str) -> str:
        return value


def _query(request: HttpRequest, team: Team | None = None) -> dict[str, Any]:
    data = request.GET.copy()
    if team is not None:
        data["team"] = team.slug
    query = ExplorerQuerySerializer(data=data)
    if not query.is_valid():
        raise InvalidQuery("Invalid query parameters.", extra={"errors": query.errors})
    return dict(query.validated_data)


def _chart(result: selectors.ExplorerResult) -> dict[str, Any]:
    """A stacked bar chart's config for Chart.js (rendered with json_script: the CSP allows no inline script)."""
    groups = [group for group in result.groups if group.total.currency == result.main_currency]
    shown, rest = groups[:CHART_SERIES], groups[CHART_SERIES:]
    datasets = [{"label": g.label, "data": [float(v) for v in g.daily]} for g in shown]
    if rest:
        other = [float(sum(values)) for values in zip(*(g.daily for g in rest), strict=True)]
        datasets.append({"label": "Other", "data": other})
    return {
        "type": "bar",
        "currency": result.main_currency,
        "labels": [day.isoformat() for day in result.days],
        "datasets": datasets,
    }


def _explorer_context(request: HttpRequest, query: dict[str, Any]) -> dict[str, Any]:
    team_ids, result = explore_for(request.user, query)
    now = timezone.now()
    flags = selectors.team_budget_flags(team_ids=team_ids, now=now) if query["group_by"] == "team" else {}
    rows = [
        {"group": group, "budget": flags.get(group.team_id or 0) if group.kind == "own" else None}
        for group in result.groups
    ]
    params = {"group_by": query["group_by"], "start": query["start"], "end": query["end"]}
    if query.get("team"):
        params["team"] = query["team"]
    return {
        "result": result,
        "rows": rows,
        "chart": _chart(result),
        "estimates": selectors.estimates_vs_actuals(team_ids=team_ids, start=query["start"], end=query["end"], now=now),
        "group_by_choices": [(key, key.replace("_", " ")) for key in selectors.GROUP_BY_FIELDS],
        "query": query,
        "last_day": query["end"] - timedelta(days=1),
        "exports": {
            table.replace("-", "_"): f"{reverse('costs:export', args=[table])}?{urlencode(params)}"
            for table in EXPORT_TABLES
        },
    }


def _bad_query(request: HttpRequest, error: InvalidQuery) -> HttpResponse:
    return render(request, "costs/bad_query.html", {"error": error}, status=400)


@login_required
def overview_view(request: HttpRequest) -> HttpResponse:
    try:
        context = _explorer_context(request, _query(request))
    except InvalidQuery as error:
        return _bad_query(request, error)
    context["teams"] = Team.objects.filter(pk__in=selectors.cost_team_ids(request.user)).order_by("slug")
    return render(request, "costs/explorer.html", context)


@login_required
def team_showback_view(request: HttpRequest, slug: str) -> HttpResponse:
    team = Team.objects.filter(slug=slug).first()
    if team is None or not can(request.user, "costs.read", team):
        raise Http404("No such team among yours.")
    try:
        query = _query(request, team)
        if "group_by" not in request.GET:
            query["group_by"] = "workspace"
        context = _explorer_context(request, query)
    except InvalidQuery as error:
        return _bad_query(request, error)
    context.update(
        team=team,
        budget=selectors.team_budget_flags(team_ids=[team.pk], now=timezone.now()).get(team.pk),
        by_service=selectors.explore(team_ids=[team.pk], start=query["start"], end=query["end"], group_by="service"),
    )
    return render(request, "costs/team_showback.html", context)


def _table(table: str, context: dict[str, Any]) -> Iterator[list[Any]]:
    result: selectors.ExplorerResult = context["result"]
    if table == "groups":
        yield [result.group_by, "kind", "currency", "total", "budget_spent_percent", "budget_forecast_percent"]
        for row in context["rows"]:
            group, budget = row["group"], row["budget"]
            spent = budget.status.spent_percent if budget else ""
            forecast = budget.status.forecast_percent if budget else ""
            yield [group.label, group.kind, group.total.currency, group.total.rounded(), spent, forecast]
    elif table == "daily":
        yield ["day", result.group_by, "currency", "amount"]
        for group in result.groups:
            for day, amount in zip(result.days, group.daily, strict=True):
                if amount:
                    yield [day.isoformat(), group.label, group.total.currency, amount]
    elif table == "top-spenders":
        yield ["user", "currency", "spent"]
        for user, spent in result.top_spenders:
            yield [user, spent.currency, spent.rounded()]
    else:
        yield ["kind", "name", "currency", "hourly", "hours", "estimate", "actual", "error", "error_percent"]
        for item in context["estimates"]:
            yield [
                item.kind, item.label, item.hourly.currency, item.hourly.amount, item.hours,
                item.estimate.rounded(), item.actual.rounded(), item.error.rounded(), item.error_percent,
            ]  # fmt: skip


def stream_csv(rows: Iterable[list[Any]], filename: str) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in rows), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
def export_view(request: HttpRequest, table: str) -> HttpResponse | StreamingHttpResponse:
    if table not in EXPORT_TABLES:
        raise Http404("No such table.")
    try:
        query = _query(request)
        context = _explorer_context(request, query)
    except InvalidQuery as error:
        return _bad_query(request, error)
    name = f"costs-{query.get('team') or 'all'}-{table}-by-{query['group_by']}-{query['start']}-{query['end']}.csv"
    return stream_csv(_table(table, context), name)
