"""Cost pages: the explorer, a team's printable showback, and CSV exports of every table on them.

Views read the query through the API's ExplorerQuerySerializer (one set of rules for pages, exports and API),
call the explorer selectors and render; a team the user may not read is a 404 on pages, a 400 in the query.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import OVERSIGHT_ROLES, Team
from apps.accounts.permissions import can, is_platform_admin, team_ids_for
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError, InvalidQuery, add_to_form
from apps.core.lists import list_page
from apps.core.query import harden
from apps.costs import selectors
from apps.costs.api import ExplorerQuerySerializer, explore_for
from apps.costs.filters import BudgetPageFilterSet, SharedRulePageFilterSet
from apps.costs.forms import BudgetForm, ReconciliationForm, SharedCostRuleForm, WasteForm
from apps.costs.models import Budget, CostAlert, SharedCostRule
from apps.costs.selectors import (
    idle_gpu_costs,
    idle_policy_suggestions,
    month_start,
    next_month,
    reconciliation,
    rightsizing_recommendations,
    shared_rules_for,
)
from apps.costs.services import budgets as budget_services
from apps.costs.services.shared_rules import create_shared_rule, delete_shared_rule, update_shared_rule

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


# --- Shared costs and reconciliation ---------------------------------------------------------------------------


def _require_rule_admin(request: HttpRequest) -> None:
    if not can(request.user, "costs.manage_shared_rules"):
        raise PermissionDenied("Only platform admins manage shared-cost rules.")


def _rules_page(request: HttpRequest, form: SharedCostRuleForm, status: int = 200) -> HttpResponse:
    filterset = SharedRulePageFilterSet(request.GET or None, queryset=shared_rules_for(request.user))
    harden(filterset)
    context = {"filterset": filterset, "page": list_page(request, filterset.qs), "form": form}
    return render(request, "costs/shared_rules.html", context, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def shared_rules_view(request: HttpRequest) -> HttpResponse:
    _require_rule_admin(request)
    if request.method != "POST":
        return _rules_page(request, SharedCostRuleForm())
    form = SharedCostRuleForm(request.POST)
    if form.is_valid():
        data = dict(form.cleaned_data)
        try:
            rule = create_shared_rule(actor=authenticated(request.user), **data)
        except ApplicationError as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, f"Shared-cost rule {rule.name} saved; the days it claims were rebuilt.")
            return redirect("costs:shared-rules")
    return _rules_page(request, form, status=422)


@require_http_methods(["GET", "POST"])
@login_required
def shared_rule_edit_view(request: HttpRequest, rule_id: int) -> HttpResponse:
    _require_rule_admin(request)
    rule = get_object_or_404(shared_rules_for(request.user), pk=rule_id)
    form = SharedCostRuleForm(request.POST if request.method == "POST" else None, instance=rule)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.Meta.fields if name != "teams"}
        try:
            update_shared_rule(
                actor=authenticated(request.user), rule=rule, teams=form.cleaned_data["teams"], **changes
            )
        except ApplicationError as exc:
            add_to_form(form, exc)
        else:
            messages.success(request, f"Shared-cost rule {changes['name']} changed; affected days were rebuilt.")
            return redirect("costs:shared-rules")
    status = 422 if request.method == "POST" else 200
    return render(request, "costs/shared_rules_edit.html", {"rule": rule, "form": form}, status=status)


@require_POST
@login_required
def shared_rule_delete_view(request: HttpRequest, rule_id: int) -> HttpResponse:
    _require_rule_admin(request)
    rule: SharedCostRule = get_object_or_404(shared_rules_for(request.user), pk=rule_id)
    delete_shared_rule(actor=authenticated(request.user), rule=rule)
    messages.success(request, f"Shared-cost rule {rule.name} deleted; its days were rebuilt.")
    return redirect("costs:shared-rules")


def _visible_team_ids(request: HttpRequest) -> list[int] | None:
    """None for platform admins (every team and the unallocated bucket), else the caller's teams."""
    return None if is_platform_admin(request.user) else team_ids_for(request.user)


@login_required
def reconciliation_view(request: HttpRequest) -> HttpResponse:
    """CUR vs metering vs Cost Explorer per team and month: platform admins every team and the unallocated
    bucket, others their own teams."""
    form = ReconciliationForm(request.GET or None)
    valid = form.is_valid()
    months = (form.cleaned_data.get("months") if valid else None) or 3
    first = form.cleaned_data.get("start") if valid else None
    if first is None:
        first = month_start(timezone.now().astimezone(UTC).date())
        for _ in range(months - 1):
            first = month_start(first - timedelta(days=1))
    first = month_start(first)
    end = first
    for _ in range(months):
        end = next_month(end)
    rows = reconciliation(team_ids=_visible_team_ids(request), start=first, end=end)
    context = {"form": form, "rows": rows, "start": first, "end": end, "months": months}
    return render(request, "costs/reconciliation.html", context, status=400 if form.is_bound and not valid else 200)


# --- Waste ------------------------------------------------------------------------------------------------------


def _waste_team_ids(request: HttpRequest) -> list[int]:
    if is_platform_admin(request.user):
        return list(Team.objects.values_list("pk", flat=True))
    return team_ids_for(request.user)


@login_required
def waste_view(request: HttpRequest) -> HttpResponse:
    """Idle GPU cost, right-sizing and idle-policy suggestions for the caller's teams (every team for admins)."""
    form = WasteForm(request.GET or None)
    days = (form.cleaned_data.get("days") if form.is_valid() else None) or 7
    now = timezone.now()
    team_ids = _waste_team_ids(request)
    context = {
        "form": form,
        "days": days,
        "idle": idle_gpu_costs(team_ids=team_ids, start=now - timedelta(days=days), end=now),
        "rightsizing": rightsizing_recommendations(team_ids=team_ids, now=now),
        "policies": idle_policy_suggestions(team_ids=team_ids, now=now),
    }
    return render(request, "costs/waste.html", context)


# --- Budgets ---------------------------------------------------------------------------------------------------


def _managed_teams(request: HttpRequest) -> Any:
    teams = Team.objects.order_by("slug")
    return (
        teams
        if is_platform_admin(request.user)
        else teams.filter(pk__in=team_ids_for(request.user, roles=OVERSIGHT_ROLES))
    )


def _budget_or_404(request: HttpRequest, budget_id: int) -> Budget:
    budget = selectors.budgets_for(request.user).filter(pk=budget_id).first()
    if budget is None:
        raise Http404("No such budget in your teams.")
    return budget


def _form_fields(form: BudgetForm) -> dict[str, Any]:
    data = dict(form.cleaned_data)
    data.pop("team")
    data["webhook_url"] = data.get("webhook_url") or ""
    return data


@login_required
def budgets_view(request: HttpRequest) -> HttpResponse:
    """The user's teams' budgets with spend, forecast and the thresholds crossed; managers add one below."""
    now = timezone.now()
    teams = _managed_teams(request)
    form = BudgetForm(request.POST or None, teams=teams)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                budget = budget_services.create_budget(
                    actor=authenticated(request.user), team=form.cleaned_data["team"], **_form_fields(form)
                )
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Budget {budget.name} created.")
                return redirect("costs:budgets")
        status = 422
    budgets = selectors.budgets_for(request.user)
    filterset = BudgetPageFilterSet(request.GET or None, queryset=budgets, request=request)
    page = list_page(request, filterset.qs)
    rows = []
    for budget in page:
        budget_status = selectors.budget_status(budget=budget, now=now)
        rows.append(
            {
                "budget": budget,
                "status": budget_status,
                "can_manage": can(request.user, "budget.manage", budget),
                "crossed_actual": budget_status.crossed(budget_status.spent),
                "crossed_forecast": budget_status.crossed(budget_status.forecast),
                "bar": min(budget_status.spent_percent, 100),
                "forecast_bar": min(budget_status.forecast_percent, 100),
            }
        )
    context = {
        "filterset": filterset,
        "page": page,
        "rows": rows,
        "form": form if teams.exists() else None,
        "alerts": selectors.open_alerts_for(request.user),
    }
    return render(request, "costs/budgets.html", context, status=status)


@login_required
def budget_edit_view(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = _budget_or_404(request, budget_id)
    if not can(request.user, "budget.manage", budget):
        raise Http404("You cannot change this budget.")
    initial = {
        "team": budget.team.slug, "name": budget.name, "monthly_amount": budget.monthly_amount,
        "currency": budget.currency, "template": budget.template.slug if budget.template else None,
        "user": budget.user.username if budget.user else None,
        "thresholds": ", ".join(str(t) for t in budget.thresholds), "guardrail": budget.guardrail,
        "notify_emails": budget.notify_emails, "webhook_url": budget.webhook_url,
        "webhook_secret": budget.webhook_secret,
    }  # fmt: skip
    form = BudgetForm(request.POST or None, teams=Team.objects.filter(pk=budget.team_id), initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                budget_services.update_budget(actor=authenticated(request.user), budget=budget, **_form_fields(form))
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Budget {budget.name} saved.")
                return redirect("costs:budgets")
        status = 422
    return render(request, "costs/budgets_form.html", {"form": form, "budget": budget}, status=status)


@require_POST
@login_required
def budget_delete_view(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = _budget_or_404(request, budget_id)
    try:
        budget_services.delete_budget(actor=authenticated(request.user), budget=budget)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Budget {budget.name} deleted.")
    return redirect("costs:budgets")


@require_POST
@login_required
def alert_dismiss_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    alert = CostAlert.objects.filter(pk=alert_id, team_id__in=team_ids_for(request.user)).first()
    if alert is None:
        raise Http404("No such alert in your teams.")
    try:
        budget_services.dismiss_alert(actor=authenticated(request.user), alert=alert, now=timezone.now())
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("costs:budgets")
