"""The cost pages (thin: authorize, parse, call a service or a selector, render)."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import Team
from apps.accounts.permissions import can, is_platform_admin, team_ids_for
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError, add_to_form
from apps.costs.forms import ReconciliationForm, SharedCostRuleForm, WasteForm
from apps.costs.models import SharedCostRule
from apps.costs.selectors import (
    idle_gpu_costs,
    idle_policy_suggestions,
    month_start,
    next_month,
    reconciliation,
    rightsizing_recommendations,
    shared_rules_for,
)
from apps.costs.services.shared_rules import create_shared_rule, delete_shared_rule, update_shared_rule

# --- Shared costs and reconciliation ---------------------------------------------------------------------------


def _require_rule_admin(request: HttpRequest) -> None:
    if not can(request.user, "costs.manage_shared_rules"):
        raise PermissionDenied("Only platform admins manage shared-cost rules.")


def _rules_page(request: HttpRequest, form: SharedCostRuleForm, status: int = 200) -> HttpResponse:
    context = {"rules": shared_rules_for(request.user), "form": form}
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
