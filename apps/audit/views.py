from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.selectors import is_team_overseer, teams_for
from apps.audit.filters import AuditEventFilterSet
from apps.audit.selectors import audit_events_for, verbs_for
from apps.core.htmx import htmx_partial

PAGE_SIZE = 50


def _without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


@login_required
def audit_list_view(request: HttpRequest) -> HttpResponse:
    if not is_team_overseer(request.user):
        raise PermissionDenied("Only team managers and admins may read the audit log.")
    filterset = AuditEventFilterSet(request.GET or None, queryset=audit_events_for(request.user))
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "filterset": filterset,
        "page": page,
        "teams": teams_for(request.user),
        "verbs": verbs_for(request.user),
        "querystring": _without_page(request),
    }
    template = "audit/partials/event_table.html" if htmx_partial(request) else "audit/event_list.html"
    return render(request, template, context)
