"""Model registry pages: the list with a register form, and a model's page (versions with lineage and metrics,
aliases, production approvals, and the form to register its next version)."""

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
from apps.core.lists import list_page
from apps.registry import selectors, services
from apps.registry.filters import ModelPageFilterSet
from apps.registry.forms import AliasForm, ModelForm, VersionForm
from apps.registry.models import Model, VersionStatus


def _model_or_404(request: HttpRequest, model_id: int) -> Model:
    model = selectors.models_for(request.user).filter(pk=model_id).first()
    if model is None:
        raise Http404("No such model in your teams.")
    return model


@login_required
def model_list_view(request: HttpRequest) -> HttpResponse:
    teams = teams_for(request.user)
    current = default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))
    form = ModelForm(request.POST or None, teams=teams, initial={"team": current.slug if current else ""})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                model = services.register_model(
                    actor=authenticated(request.user),
                    team=data["team"],
                    name=data["name"],
                    description=data["description"],
                )
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Model {model.name} registered; register its first version next.")
                return redirect("registry:detail", model_id=model.pk)
        status = 422
    filterset = ModelPageFilterSet(request.GET or None, queryset=selectors.models_for(request.user), request=request)
    context = {"filterset": filterset, "page": list_page(request, filterset.qs), "form": form}
    return render(request, "registry/model_list.html", context, status=status)


def _detail_context(request: HttpRequest, model: Model) -> dict[str, Any]:
    versions = list(selectors.versions_for(request.user).filter(model=model).order_by("-version"))
    return {
        "model": model,
        "versions": versions,
        "aliases": selectors.aliases_of(model),
        "can_register": can(request.user, "model.register", model),
        "can_approve": can(request.user, "model.approve", model),
        "endpoints": model.endpoints.filter(torn_down_at=None).select_related("stable_version"),
        "version_form": VersionForm(),
        "alias_form": AliasForm(initial={"version": versions[0].version if versions else 1}),
        "archived": VersionStatus.ARCHIVED,
    }


@login_required
def model_detail_view(request: HttpRequest, model_id: int) -> HttpResponse:
    model = _model_or_404(request, model_id)
    context = _detail_context(request, model)
    status = 200
    if request.method == "POST":
        form = VersionForm(request.POST)
        if form.is_valid():
            try:
                version = services.register_version(actor=authenticated(request.user), model=model, **form.cleaned_data)
            except ApplicationError as exc:
                add_to_form(form, exc)
            else:
                messages.success(request, f"Registered {version}.")
                return redirect("registry:detail", model_id=model.pk)
        context["version_form"] = form
        status = 422
    return render(request, "registry/model_detail.html", context, status=status)


@login_required
@require_POST
def version_action_view(request: HttpRequest, model_id: int, number: int, action: str) -> HttpResponse:
    model = _model_or_404(request, model_id)
    version = selectors.versions_for(request.user).filter(model=model, version=number).first()
    if version is None or action not in {"approve", "archive"}:
        raise Http404("No such version of this model.")
    actor = authenticated(request.user)
    try:
        if action == "approve":
            services.approve_version(actor=actor, version=version)
            messages.success(request, f"{version} is approved for production.")
        else:
            services.archive_version(actor=actor, version=version)
            messages.success(request, f"{version} is archived.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("registry:detail", model_id=model.pk)


@login_required
@require_POST
def alias_view(request: HttpRequest, model_id: int) -> HttpResponse:
    model = _model_or_404(request, model_id)
    form = AliasForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give an alias name and a version number.")
        return redirect("registry:detail", model_id=model.pk)
    version = model.versions.filter(version=form.cleaned_data["version"]).first()
    if version is None:
        messages.error(request, f"{model.name} has no version {form.cleaned_data['version']}.")
        return redirect("registry:detail", model_id=model.pk)
    try:
        services.set_alias(
            actor=authenticated(request.user), model=model, name=form.cleaned_data["name"], version=version
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{model.name}@{form.cleaned_data['name']} now points at v{version.version}.")
    return redirect("registry:detail", model_id=model.pk)
