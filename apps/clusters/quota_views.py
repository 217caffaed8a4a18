"""The platform admins' GPU quota page: every team's usage and limits, setting a quota (with its idle auto-stop
policy) and granting a time-boxed exception. Superusers only; every change is audited by the services."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated
from apps.clusters import selectors, services
from apps.clusters.forms import QuotaExceptionForm, TeamQuotaForm
from apps.core.errors import ApplicationError


def _require_superuser(request: HttpRequest) -> None:
    if not can(request.user, "quota.manage"):
        raise PermissionDenied("Only platform admins manage GPU quotas.")


def _rows() -> list[dict[str, Any]]:
    return [
        {
            "team": team,
            "quota": selectors.effective_quota(team),
            "in_use": selectors.team_gpu_usage(team),
            "idle": selectors.team_idle_policy(team),
            "exceptions": list(selectors.active_quota_exceptions(team)),
        }
        for team in Team.objects.order_by("slug")
    ]


def _page(
    request: HttpRequest, quota_form: TeamQuotaForm, exception_form: QuotaExceptionForm, status: int = 200
) -> HttpResponse:
    context = {"rows": _rows(), "quota_form": quota_form, "exception_form": exception_form}
    return render(request, "clusters/quotas.html", context, status=status)


def _quota_form_for(team: Team | None) -> TeamQuotaForm:
    """The quota form prefilled with `team`'s current values (no team: an empty form)."""
    if team is None:
        return TeamQuotaForm()
    initial = TeamQuotaForm.initial_for(team, selectors.team_quota(team), selectors.effective_quota(team))
    return TeamQuotaForm(initial=initial)


@login_required
def quota_list_view(request: HttpRequest) -> HttpResponse:
    """`?team=slug` (each row's Edit link) prefills the quota form with that team's current quota; without it,
    the first team's."""
    _require_superuser(request)
    teams = Team.objects.order_by("slug")
    team = teams.filter(slug=request.GET.get("team", "")).first() or teams.first()
    return _page(request, _quota_form_for(team), QuotaExceptionForm(initial={"team": team.slug if team else None}))


@require_POST
@login_required
def quota_set_view(request: HttpRequest) -> HttpResponse:
    _require_superuser(request)
    form = TeamQuotaForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.set_team_quota(
                actor=authenticated(request.user),
                team=data["team"],
                max_gpus=data["max_gpus"],
                max_cluster_hours=data["max_cluster_hours"],
                idle_window_minutes=data["idle_window_minutes"],
                idle_threshold_pct=data["idle_threshold_pct"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Quota of team {data['team'].slug} saved.")
            return redirect("clusters:quotas")
    return _page(request, form, QuotaExceptionForm(), status=422)


@require_POST
@login_required
def quota_exception_view(request: HttpRequest) -> HttpResponse:
    _require_superuser(request)
    form = QuotaExceptionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            exception = services.grant_quota_exception(
                actor=authenticated(request.user),
                team=data["team"],
                extra_gpus=data["extra_gpus"],
                reason=data["reason"],
                hours=data["hours"],
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                f"Team {data['team'].slug} may use {exception.extra_gpus} more GPUs until "
                f"{exception.expires_at:%Y-%m-%d %H:%M} UTC.",
            )
            return redirect("clusters:quotas")
    return _page(request, TeamQuotaForm(), form, status=422)
