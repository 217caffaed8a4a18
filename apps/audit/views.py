from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.accounts.selectors import is_team_overseer, teams_for
from apps.audit.errors import EvidenceExportDenied
from apps.audit.evidence import day_start, export_evidence, team_to_export
from apps.audit.filters import AuditEventFilterSet
from apps.audit.forms import EvidenceExportForm
from apps.audit.selectors import audit_events_for, exportable_teams_for, verbs_for
from apps.audit.targets import with_targets
from apps.core.errors import ApplicationError, add_to_form
from apps.core.htmx import htmx_partial
from apps.core.lists import list_page


def _without_page(request: HttpRequest) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def _require_overseer(request: HttpRequest) -> None:
    if not is_team_overseer(request.user):
        raise PermissionDenied("Only team managers and admins may read the audit log.")


def _list_context(request: HttpRequest, evidence_form: EvidenceExportForm | None = None) -> dict[str, Any]:
    filterset = AuditEventFilterSet(request.GET or None, queryset=audit_events_for(request.user))
    page = list_page(request, filterset.qs)
    if evidence_form is None and exportable_teams_for(request.user).exists():
        evidence_form = EvidenceExportForm(user=request.user)
    return {
        "filterset": filterset,
        "page": page,
        "events": with_targets(page),
        "teams": teams_for(request.user),
        "verbs": verbs_for(request.user),
        "querystring": _without_page(request),
        "evidence_form": evidence_form,
    }


@login_required
def audit_list_view(request: HttpRequest) -> HttpResponse:
    _require_overseer(request)
    template = "audit/partials/event_table.html" if htmx_partial(request) else "audit/event_list.html"
    return render(request, template, _list_context(request))


@login_required
@require_POST
def evidence_export_view(request: HttpRequest) -> HttpResponse | FileResponse:
    """The page's one-click export: the ZIP as a download, or the page again (422) saying what to fix."""
    try:
        team = team_to_export(actor=request.user, slug=request.POST.get("team", ""))  # authorization first
    except EvidenceExportDenied as error:
        raise PermissionDenied(error.message) from error
    form = EvidenceExportForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            bundle = export_evidence(
                actor=request.user,
                team=team,
                start=day_start(form.cleaned_data["start"]),
                end=day_start(form.cleaned_data["end"]),
                request=request,
            )
        except ApplicationError as error:
            add_to_form(form, error)
        else:
            response = FileResponse(
                bundle.file, as_attachment=True, filename=bundle.filename, content_type="application/zip"
            )
            response["Content-Length"] = str(bundle.size)
            return response
    _require_overseer(request)
    return render(request, "audit/event_list.html", _list_context(request, form), status=422)
