"""The workspace's "Change variables" page: the launch form's parameters fieldset, generated from the workspace's
pinned version and prefilled with its current parameters; a valid submit queues a run with the edited values
(`services.change_workspace_variables`), a bad one re-renders with every problem (422)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated
from apps.catalog import services
from apps.catalog.schema import InvalidParameters
from apps.catalog.schema_forms import prefilled_parameters_form
from apps.core.errors import ApplicationError
from apps.runs.models import Workspace
from apps.runs.selectors import workspace_for


def _workspace_or_404(request: HttpRequest, workspace_id: int) -> Workspace:
    workspace = workspace_for(request.user, workspace_id)
    if workspace is None:
        raise Http404("No such workspace in your teams.")
    if not can(request.user, "workspace.operate", workspace):
        raise PermissionDenied("Only members of the workspace's team may change its variables.")
    return workspace


@login_required
def workspace_variables_view(request: HttpRequest, workspace_id: int) -> HttpResponse:
    workspace = _workspace_or_404(request, workspace_id)
    version = workspace.template_version
    data = request.POST if request.method == "POST" else None
    params = prefilled_parameters_form(
        version.parameters_schema,
        version.ui_schema,
        values=workspace.parameters,
        data=data,
        validate_url=reverse("catalog:launch-validate", args=[version.template.slug]),
    )
    status = 200
    problem = ""
    if data is not None:
        if params.is_valid():
            try:
                change = services.change_workspace_variables(
                    actor=authenticated(request.user),
                    workspace=workspace,
                    params=params.parameters,
                    reason=request.POST.get("reason", "")[:300],
                    request=request,
                )
            except InvalidParameters as exc:
                for field, problems in exc.extra["errors"].items():
                    for message in problems:
                        params.add_error(field if field in params.fields else None, message)
            except ApplicationError as exc:
                problem = exc.message
            else:
                for warning in change.warnings:
                    messages.warning(request, warning)
                messages.success(request, f"Run #{change.run.pk} queued with the new variables of {workspace.name}.")
                return redirect("runs:run-detail", run_id=change.run.pk)
        status = 422
    shown = params.parameters if params.is_bound and params.is_valid() else workspace.parameters
    context = {
        "workspace": workspace,
        "version": version,
        "params": params,
        "problem": problem,
        "estimate": services.price_launch(version=version, parameters=shown),
        "editable": not workspace.has_ended,
    }
    return render(request, "catalog/workspace_variables.html", context, status=status)
