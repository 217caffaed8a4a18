"""Deployment pages: endpoints (with a create form), an endpoint's page (what serves, the traffic split, its
rollout history, the deploy form, rollback), and a deployment's page (the timeline of steps and every gate's
measurements, refreshed by htmx while the rollout is live)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated, default_team_for, teams_for
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.core.errors import ApplicationError, add_to_form
from apps.core.htmx import htmx_partial
from apps.core.lists import list_page
from apps.deployments import selectors
from apps.deployments.filters import EndpointPageFilterSet
from apps.deployments.forms import DeployForm, EndpointForm, ExperimentForm
from apps.deployments.models import (
    ALLOWED_DEPLOYMENT_TRANSITIONS,
    Deployment,
    DeploymentState,
    Endpoint,
    Experiment,
)
from apps.deployments.services import endpoints as endpoint_services
from apps.deployments.services import experiments, rollouts
from apps.registry.models import VersionStatus
from apps.registry.selectors import models_for, versions_for

RECENT = 20
ACTIONS = {
    "approve": rollouts.approve,
    "pause": rollouts.pause,
    "resume": rollouts.resume,
    "promote": rollouts.promote,
    "rollback": rollouts.rollback,
    "abort": rollouts.abort,
}
# Which button each state offers (the transition table decides; the service re-checks).
ACTION_TARGETS = {
    "approve": DeploymentState.PROVISIONING,
    "pause": DeploymentState.PAUSED,
    "promote": DeploymentState.PROMOTING,
    "rollback": DeploymentState.ROLLING_BACK,
}


def _endpoint_or_404(request: HttpRequest, endpoint_id: int) -> Endpoint:
    endpoint = selectors.endpoints_for(request.user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise Http404("No such endpoint in your teams.")
    return endpoint


def _deployment_or_404(request: HttpRequest, deployment_id: int) -> Deployment:
    deployment = selectors.deployment_detail(request.user).filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404("No such deployment in your teams.")
    return deployment


@login_required
def deployment_list_view(request: HttpRequest) -> HttpResponse:
    current = default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))
    form = EndpointForm(
        request.POST or None,
        teams=teams_for(request.user),
        models=models_for(request.user),
        initial={"team": current.slug if current else ""},
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                endpoint = endpoint_services.create_endpoint(actor=authenticated(request.user), **form.cleaned_data)
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Endpoint {endpoint.name} created; deploy a version to it.")
                return redirect("deployments:endpoint", endpoint_id=endpoint.pk)
        status = 422
    live = selectors.endpoints_for(request.user).filter(torn_down_at=None)
    filterset = EndpointPageFilterSet(request.GET or None, queryset=live, request=request)
    deployments = selectors.deployments_for(request.user)
    if filterset.is_bound:  # the rollouts of the endpoints the filters keep
        deployments = deployments.filter(endpoint__in=filterset.qs)
    # `?state=awaiting_approval` (the home page's link): the rollouts in one state, whatever their endpoint.
    state = request.GET.get("state", "")
    rollout_state = DeploymentState(state) if state in DeploymentState.values else None
    if rollout_state is not None:
        deployments = selectors.deployments_for(request.user).filter(state=rollout_state)
    context = {
        "filterset": filterset,
        "rollout_state": rollout_state,
        "page": list_page(request, filterset.qs),
        "deployments": deployments[:RECENT],
        "form": form,
    }
    return render(request, "deployments/list.html", context, status=status)


@login_required
def endpoint_detail_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    versions = versions_for(request.user).filter(model=endpoint.model).exclude(status=VersionStatus.ARCHIVED)
    form = DeployForm(request.POST or None, versions=versions.order_by("-version"))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                deployment = rollouts.start_deployment(
                    actor=authenticated(request.user),
                    endpoint=endpoint,
                    version=data["version"],
                    strategy=data["strategy"],
                    steps=data["steps"],
                    analysis=data["analysis"],
                )
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Rollout of v{deployment.version.version} started.")
                return redirect("deployments:detail", deployment_id=deployment.pk)
        status = 422
    context: dict[str, Any] = {
        "endpoint": endpoint,
        "active": selectors.active_deployment(endpoint),
        "rollback": selectors.rollback_candidate(endpoint),
        "history": selectors.deployments_for(request.user).filter(endpoint=endpoint)[:RECENT],
        "form": form,
        "can_operate": can(request.user, "deployment.operate", endpoint),
        "experiments": selectors.experiments_for(request.user).filter(endpoint=endpoint)[:RECENT],
        "experiment_form": ExperimentForm(
            versions=versions.exclude(pk=endpoint.stable_version_id or 0).order_by("-version")
        ),
    }
    return render(request, "deployments/endpoint.html", context, status=status)


def _buttons(request: HttpRequest, deployment: Deployment) -> list[str]:
    if not can(request.user, "deployment.operate", deployment):
        return []
    allowed = ALLOWED_DEPLOYMENT_TRANSITIONS[DeploymentState(deployment.state)]
    buttons = [name for name, to in ACTION_TARGETS.items() if to in allowed]
    if "approve" in buttons and not can(request.user, "model.approve", deployment):
        buttons.remove("approve")
    if deployment.state == DeploymentState.PAUSED:
        buttons.append("resume")
    if deployment.active:
        buttons.append("abort")
    return buttons


@login_required
def deployment_detail_view(request: HttpRequest, deployment_id: int) -> HttpResponse:
    deployment = _deployment_or_404(request, deployment_id)
    context = {
        "deployment": deployment,
        "endpoint": deployment.endpoint,
        "events": list(deployment.events.all()),
        "measurements": list(deployment.measurements.all()),
        "buttons": _buttons(request, deployment),
        "polling": deployment.active,
    }
    if htmx_partial(request):
        return render(request, "deployments/partials/deployment_live.html", context)
    return render(request, "deployments/detail.html", context)


@login_required
@require_POST
def deployment_action_view(request: HttpRequest, deployment_id: int, action: str) -> HttpResponse:
    deployment = _deployment_or_404(request, deployment_id)
    service = ACTIONS.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        service(actor=authenticated(request.user), deployment=deployment)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("deployments:detail", deployment_id=deployment.pk)


@login_required
@require_POST
def endpoint_rollback_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    try:
        deployment = rollouts.rollback_endpoint(actor=authenticated(request.user), endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:endpoint", endpoint_id=endpoint.pk)
    messages.success(request, f"Rolling back to v{deployment.version.version}.")
    return redirect("deployments:detail", deployment_id=deployment.pk)


@login_required
@require_POST
def endpoint_teardown_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    try:
        endpoint_services.teardown_endpoint(actor=authenticated(request.user), endpoint=endpoint)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:endpoint", endpoint_id=endpoint.pk)
    messages.success(request, f"Endpoint {endpoint.name} torn down.")
    return redirect("deployments:list")


@login_required
@require_POST
def experiment_create_view(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    versions = versions_for(request.user).filter(model=endpoint.model).exclude(status=VersionStatus.ARCHIVED)
    form = ExperimentForm(request.POST, versions=versions)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("deployments:endpoint", endpoint_id=endpoint.pk)
    data = form.cleaned_data
    try:
        experiment = experiments.start_experiment(
            actor=authenticated(request.user),
            endpoint=endpoint,
            version_b=data["version_b"],
            weight_b=data["weight_b"],
            metric=data["metric"],
            duration_seconds=data["duration_hours"] * 3600,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("deployments:endpoint", endpoint_id=endpoint.pk)
    return redirect("deployments:experiment", experiment_id=experiment.pk)


def _experiment_or_404(request: HttpRequest, experiment_id: int) -> Experiment:
    experiment = selectors.experiments_for(request.user).filter(pk=experiment_id).first()
    if experiment is None:
        raise Http404("No such experiment in your teams.")
    return experiment


@login_required
def experiment_detail_view(request: HttpRequest, experiment_id: int) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    context = {
        "experiment": experiment,
        "arms": [
            ("A", experiment.version_a, experiment.result.get("a", {})),
            ("B", experiment.version_b, experiment.result.get("b", {})),
        ],
        "can_operate": can(request.user, "deployment.operate", experiment),
        "polling": experiment.active,
    }
    template = "deployments/partials/experiment_live.html" if htmx_partial(request) else "deployments/experiment.html"
    return render(request, template, context)


@login_required
@require_POST
def experiment_action_view(request: HttpRequest, experiment_id: int, action: str) -> HttpResponse:
    experiment = _experiment_or_404(request, experiment_id)
    service = {"promote": experiments.promote_winner, "stop": experiments.stop_experiment}.get(action)
    if service is None:
        raise Http404("No such action.")
    try:
        service(actor=authenticated(request.user), experiment=experiment)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("deployments:experiment", experiment_id=experiment.pk)
