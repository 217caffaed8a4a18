"""Costs pages. Views parse input, call one service or selector and render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.models import OVERSIGHT_ROLES, Team
from apps.accounts.permissions import can, is_platform_admin, team_ids_for
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError, add_to_form
from apps.costs import selectors
from apps.costs.forms import BudgetForm
from apps.costs.models import Budget, CostAlert
from apps.costs.services import budgets as budget_services

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
    rows = []
    for budget in selectors.budgets_for(request.user):
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
