"""Catalog pages: browse, template detail, launch (with inline validation and live estimates) and curation.

Views parse input, call one service or selector and render; htmx requests get only the partial they target.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.accounts.permissions import is_platform_admin
from apps.accounts.selectors import authenticated, default_team_for
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.catalog import selectors, services
from apps.catalog.backstage import BackstageImportError, import_backstage_template
from apps.catalog.forms import (
    EXAMPLE_SCHEMA,
    EXAMPLE_UI,
    BackstageImportForm,
    LaunchForm,
    SchemaPreviewForm,
    TemplateForm,
    VersionForm,
)
from apps.catalog.models import Template, TemplateKind, TemplateVersion
from apps.catalog.schema import InvalidParameters
from apps.catalog.schema_forms import ParametersForm, build_parameters_form
from apps.catalog.spec import VersionData, validate_version_data
from apps.core.errors import ApplicationError, add_to_form
from apps.core.htmx import htmx_partial
from apps.costs.selectors import template_typical_cost
from apps.costs.services.guardrails import BudgetCheck
from apps.runs.selectors import workspace_name_problem


def _template_or_404(request: HttpRequest, slug: str) -> Template:
    template = selectors.template_for(request.user, slug)
    if template is None:
        raise Http404("No such template in your catalog.")
    return template


def _version_or_404(request: HttpRequest, template: Template, version: str) -> TemplateVersion:
    found = selectors.version_for(request.user, template, version)
    if found is None:
        raise Http404("No such version.")
    return found


def _require_curator(request: HttpRequest, template: Template | None) -> None:
    if not selectors.can_curate(request.user, template):
        raise PermissionDenied("Only platform admins and admins of the owning team may curate templates.")


@login_required
def catalog_list_view(request: HttpRequest) -> HttpResponse:
    is_admin = selectors.is_catalog_admin(request.user)
    filters: dict[str, Any] = {
        "query": request.GET.get("q", "").strip()[:100],
        "kind": request.GET.get("kind", ""),
        "tag": request.GET.get("tag", ""),
        "sort": request.GET.get("sort", "popular"),
        "include_drafts": is_admin and request.GET.get("drafts") == "1",
    }
    templates = selectors.catalog_templates(request.user, **filters)
    context = {
        "templates": templates,
        "filters": filters,
        "kinds": TemplateKind.choices,
        "tags": selectors.all_tags(request.user),
        "is_catalog_admin": is_admin,
    }
    partial = "catalog/partials/template_grid.html" if htmx_partial(request) else "catalog/template_list.html"
    return render(request, partial, context)


def _estimate_context(version: TemplateVersion, params: dict[str, Any]) -> dict[str, Any]:
    return {"estimate": services.price_launch(version=version, parameters=params), "version": version}


@login_required
def template_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    versions = selectors.versions_for(request.user, template)
    latest = selectors.latest_published(template)
    # The template funnel's first step (dashboards' template_views); a GET changes nothing else, so no audit.
    services.record_template_view(
        template=template, team=default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))
    )
    context: dict[str, Any] = {
        "template": template,
        "versions": versions,
        "latest": latest,
        "can_curate": selectors.can_curate(request.user, template),
        "typical_cost": template_typical_cost(template=template),
    }
    if latest is not None:
        defaults = selectors.schema_defaults(latest)
        context.update(_estimate_context(latest, defaults))
        context["parameters"] = selectors.parameter_rows(latest)
    return render(request, "catalog/template_detail.html", context)


def _launch_version(request: HttpRequest, template: Template) -> TemplateVersion:
    wanted = request.GET.get("version") or request.POST.get("version")
    version = _version_or_404(request, template, wanted) if wanted else selectors.latest_published(template)
    if version is None:
        raise Http404("This template has no published version to launch.")
    return version


def _launch_forms(
    request: HttpRequest, template: Template, version: TemplateVersion, data: Any = None
) -> tuple[LaunchForm, ParametersForm]:
    teams = selectors.launch_teams(request.user, template)
    current = default_team_for(request.user, request.session.get(CURRENT_TEAM_SESSION_KEY))
    validate_url = reverse("catalog:launch-validate", args=[template.slug])
    meta = LaunchForm(
        data,
        teams=teams,
        version=version,
        initial={"team": current.slug if current else None},
        allow_override=is_platform_admin(request.user),
        validate_url=validate_url,
    )
    params = build_parameters_form(
        version.parameters_schema,
        version.ui_schema,
        data=data,
        validate_url=validate_url,
        workspace_name=str(data.get("name", "")).strip() if data is not None else None,
    )
    return meta, params


def _validate_launch(meta: LaunchForm, params: ParametersForm, version: TemplateVersion) -> bool:
    """Every field of a bound launch form at once: what the forms parse, the parameters' schema (in
    ParametersForm) and the name and TTL rules of the launch service (`launch_input_errors`, which
    `launch_template` applies to API launches too). True when the launch may be submitted."""
    meta_ok, params_ok = meta.is_valid(), params.is_valid()
    name = meta.cleaned_data.get("name")
    if name is not None:
        ttl = meta.cleaned_data.get("ttl_hours") if "ttl_hours" not in meta.errors else None
        for field, problems in services.launch_input_errors(version=version, name=name, ttl_hours=ttl).items():
            for problem in problems:
                meta.add_error(field, problem)
        team = meta.cleaned_data.get("team")
        if "name" not in meta.errors and team is not None and version.template.kind == TemplateKind.TERRAFORM:
            taken = workspace_name_problem(team_slug=team.slug, name=name)  # before submit too, as the user types
            if taken:
                meta.add_error("name", taken)
        meta_ok = not meta.errors
    return meta_ok and params_ok


def _estimate_panel(
    request: HttpRequest, meta: LaunchForm, params: ParametersForm, version: TemplateVersion
) -> dict[str, Any]:
    """The estimate of the values on screen: the defaults the unbound form shows, or the entered values once
    they are valid (none while a parameter is wrong, never the defaults behind the user's back), with the
    launch's budget verdict for the chosen team."""
    if params.is_bound:
        parameters = params.parameters if params.is_valid() else None
    else:
        parameters = selectors.schema_defaults(version)
    estimate = services.price_launch(version=version, parameters=parameters) if parameters is not None else None
    return {
        "estimate": estimate,
        "version": version,
        "budget_check": _budget_check(request, meta, version, parameters or {}, estimate),
    }


@login_required
def launch_view(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    version = _launch_version(request, template)
    meta, params = _launch_forms(request, template, version, request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if _validate_launch(meta, params, version):
            try:
                result = services.launch_template(
                    actor=authenticated(request.user),
                    team=meta.cleaned_data["team"],
                    version=version,
                    params=params.parameters,
                    name=meta.cleaned_data["name"],
                    reason=meta.cleaned_data["reason"],
                    ttl_hours=meta.cleaned_data.get("ttl_hours"),
                    request=request,
                    override_budget=bool(meta.cleaned_data.get("override_budget")),
                )
            except InvalidParameters as exc:
                for field, problems in exc.extra["errors"].items():
                    for problem in problems:
                        params.add_error(field if field in params.fields else None, problem)
            except ApplicationError as exc:
                add_to_form(meta, exc)
            else:
                for warning in result.warnings:
                    messages.warning(request, warning)
                if result.cluster is not None:
                    messages.success(request, f"Cluster {result.cluster.name} requested; it is being provisioned.")
                    return redirect("clusters:detail", cluster_id=result.cluster.pk)
                if result.training_job is not None:
                    messages.success(request, f"Training job #{result.training_job.pk} submitted.")
                    return redirect("training:detail", job_id=result.training_job.pk)
                if result.deployment is not None:
                    messages.success(request, f"Rollout of v{result.deployment.version.version} started.")
                    return redirect("deployments:detail", deployment_id=result.deployment.pk)
                messages.success(request, f"Workspace {result.workspace.name} launched; its first run is queued.")
                return redirect("runs:workspace-detail", workspace_id=result.workspace.pk)
        status = 422
    context = {
        "template": template,
        "version": version,
        "meta": meta,
        "params": params,
        **_estimate_panel(request, meta, params, version),
    }
    return render(request, "catalog/launch.html", context, status=status)


@require_POST
@login_required
def launch_validate_view(request: HttpRequest, slug: str) -> HttpResponse:
    """Inline validation of one field as the user types or leaves it (`_field`, of the parameters or, with
    `_form=meta`, of the name, team or TTL), by the same checks as a submit; the estimate is refreshed out of band."""
    template = _template_or_404(request, slug)
    version = _launch_version(request, template)
    meta, params = _launch_forms(request, template, version, request.POST)
    _validate_launch(meta, params, version)
    field = request.POST.get("_field", "")
    if request.POST.get("_form") == "meta":
        problems = [str(message) for message in meta.errors.get(field, [])] if field in meta.fields else []
    else:
        problems = params.field_errors(field)
    context = {"problems": problems, **_estimate_panel(request, meta, params, version)}
    return render(request, "catalog/partials/field_errors.html", context)


@require_POST
@login_required
def estimate_view(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    version = _launch_version(request, template)
    meta, params = _launch_forms(request, template, version, request.POST)
    return render(request, "catalog/partials/estimate.html", _estimate_panel(request, meta, params, version))


def _budget_check(
    request: HttpRequest, meta: LaunchForm, version: TemplateVersion, parameters: dict[str, Any], estimate: Any
) -> BudgetCheck | None:
    """The launch's budget verdict, shown before submit (the service checks again on launch)."""
    slug = meta.data.get("team", "") if meta.is_bound else meta.initial.get("team")
    team = meta.fields["team"].queryset.filter(slug=slug or "").first()  # type: ignore[attr-defined]
    if estimate is None or team is None:
        return None
    ttl = str(meta.data.get("ttl_hours", "")) if meta.is_bound else ""  # unbound: the version's default TTL
    hours = services.launch_hours(version=version, parameters=parameters, ttl_hours=int(ttl) if ttl.isdigit() else None)
    return services.budget_check_for(
        actor=authenticated(request.user), team=team, version=version, estimate=estimate, hours=hours
    )


# --- Curation ----------------------------------------------------------------------------------------------


@login_required
def template_create_view(request: HttpRequest) -> HttpResponse:
    if not selectors.is_catalog_admin(request.user):
        raise PermissionDenied("Only admins curate templates.")
    form = TemplateForm(request.POST or None)
    starting = {"version": "0.1.0", "parameters_schema": EXAMPLE_SCHEMA, "ui_schema": EXAMPLE_UI,
                "price_model": VersionData().price_model}  # fmt: skip
    version_form = VersionForm(request.POST or None, request.FILES or None, prefix="v", initial=starting)
    if request.method == "POST" and form.is_valid() and version_form.is_valid():
        try:
            draft = services.create_template(
                actor=authenticated(request.user),
                template=form.to_data(),
                version=version_form.to_data(),
                request=request,
            )
            _attach_upload(request, draft, version_form)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Draft {draft} created. Validate it, then publish.")
            return redirect("catalog:version-detail", slug=draft.template.slug, version=draft.version)
    status = 422 if request.method == "POST" else 200
    return render(request, "catalog/template_form.html", {"form": form, "version_form": version_form}, status=status)


def _attach_upload(request: HttpRequest, version: TemplateVersion, form: VersionForm) -> None:
    upload = form.cleaned_data.get("module_archive")
    if upload:
        services.attach_module_archive(
            actor=authenticated(request.user), version=version, name=upload.name, data=upload.read(), request=request
        )


@login_required
def backstage_import_view(request: HttpRequest) -> HttpResponse:
    if not selectors.is_catalog_admin(request.user):
        raise PermissionDenied("Only admins curate templates.")
    form = BackstageImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            imported = import_backstage_template(form.cleaned_data["content"])
            draft = services.create_template_from_backstage(
                actor=authenticated(request.user),
                imported=imported,
                owner_team=form.cleaned_data["owner_team"],
                request=request,
            )
        except (BackstageImportError, ApplicationError) as exc:
            form.add_error("content", exc.message)
        else:
            messages.success(request, f"Imported {draft} as a draft. Review what could not be carried over.")
            return redirect("catalog:version-detail", slug=draft.template.slug, version=draft.version)
    status = 422 if request.method == "POST" else 200
    return render(request, "catalog/backstage_import.html", {"form": form}, status=status)


@login_required
def version_detail_view(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    found = _version_or_404(request, template, version)
    can_curate = selectors.can_curate(request.user, template)
    context: dict[str, Any] = {"template": template, "version": found, "can_curate": can_curate}
    if can_curate:
        context["report"] = services.validate_version(version=found)
        context["previous"] = selectors.previous_version(found)
        context["diff"] = services.diff_versions(old=context["previous"], new=found)
    return render(request, "catalog/version_detail.html", context)


@login_required
def version_edit_view(request: HttpRequest, slug: str, version: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    found = _version_or_404(request, template, version)
    _require_curator(request, template)
    template_form = TemplateForm(request.POST or None, initial=TemplateForm.initial_for(template))
    template_form.fields["slug"].disabled = True
    form = VersionForm(
        request.POST or None,
        request.FILES or None,
        prefix="v",
        initial=VersionForm.initial_for(found),
        current_module=found.module_path,
    )
    if request.method == "POST" and template_form.is_valid() and form.is_valid():
        actor = authenticated(request.user)
        try:
            services.update_template(actor=actor, template=template, data=template_form.to_data(), request=request)
            found = services.update_draft(actor=actor, version=found, data=form.to_data(), request=request)
            _attach_upload(request, found, form)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Draft {found} saved.")
            return redirect("catalog:version-detail", slug=template.slug, version=found.version)
    status = 422 if request.method == "POST" else 200
    context = {"template": template, "version": found, "form": form, "template_form": template_form}
    return render(request, "catalog/version_form.html", context, status=status)


@require_POST
@login_required
def version_create_view(request: HttpRequest, slug: str) -> HttpResponse:
    template = _template_or_404(request, slug)
    _require_curator(request, template)
    try:
        draft = services.create_draft_version(actor=authenticated(request.user), template=template, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("catalog:detail", slug=template.slug)
    messages.success(request, f"Draft {draft} created from the newest version.")
    return redirect("catalog:version-edit", slug=template.slug, version=draft.version)


# What each lifecycle move does, for its confirmation step (the services say the same in their docstrings).
ACTION_EFFECTS = {
    "publish": "New launches of {template} will use version {number}. Workspaces already running keep their own "
    "version.",
    "deprecate": "Version {number} is hidden from new launches. Workspaces created from it keep working and keep "
    "showing it; you can re-publish it later.",
    "retire": "Version {number} can never be launched again, and cannot be re-published. Workspaces created from "
    "it keep running until they are destroyed.",
}


@login_required
def version_action_view(request: HttpRequest, slug: str, version: str, action: str) -> HttpResponse:
    """A lifecycle move in two steps: GET (or a POST without `confirmed`) shows what the move does, naming the
    version and the workspaces on it; the confirmation page's POST makes the move."""
    template = _template_or_404(request, slug)
    found = _version_or_404(request, template, version)
    _require_curator(request, template)
    move = services.LIFECYCLE_ACTIONS.get(action)
    if move is None:
        raise Http404("Unknown action.")
    if request.method != "POST" or request.POST.get("confirmed") != "1":
        context = {
            "template": template,
            "version": found,
            "action": action,
            "effect": ACTION_EFFECTS[action].format(template=template.name, number=found.version),
            "affected": selectors.workspaces_on_version(found),
            "report": services.validate_version(version=found) if action == "publish" else None,
        }
        return render(request, "catalog/version_confirm.html", context)
    try:
        moved = move(actor=authenticated(request.user), version=found, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{moved} is now {moved.get_lifecycle_display().lower()}.")
    return redirect("catalog:version-detail", slug=template.slug, version=found.version)


@require_POST
@login_required
def schema_preview_view(request: HttpRequest) -> HttpResponse:
    """The schema editor's live preview, posted (debounced) as the curator types: the launch form the JSON
    generates, rendered as the launch page renders it, and the template contract's findings
    (`validate_version_data`, the check publishing runs; the module is checked on publish), each with its JSON
    pointer, swapped in beside the JSON."""
    if not selectors.is_catalog_admin(request.user):
        raise PermissionDenied("Only admins curate templates.")
    form = SchemaPreviewForm(request.POST, prefix="v")
    context: dict[str, Any] = {"form": form, "findings": [], "params": None}
    if form.is_valid():
        data = form.to_data()
        kind = request.POST.get("kind") or TemplateKind.TERRAFORM
        report = validate_version_data(data, kind=kind, check_module=False)
        context["findings"] = [finding for finding in report.findings if finding.document]
        if not any(finding.error and finding.document == "parameters" for finding in report.findings):
            context["params"] = build_parameters_form(data.parameters_schema, data.ui_schema)
    return render(request, "catalog/partials/schema_preview.html", context)
