"""Training job pages: the team's jobs, and one job with its state, why it waits, its timings and its live log;
job definitions (schedules) with their next runs and their firings. Submitting is the catalog's and the API's;
cancelling, running a definition now, suspending it and saving a job as a definition are buttons here."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError
from apps.core.htmx import htmx_partial
from apps.core.lists import list_page
from apps.core.query import harden
from apps.registry.models import Framework as ModelFramework
from apps.registry.selectors import model_names
from apps.tracking import selectors as tracking
from apps.training import selectors
from apps.training.filters import JobDefinitionPageFilterSet, TrainingJobPageFilterSet
from apps.training.models import ENDED_JOB_STATES, ConcurrencyPolicy, Framework, JobDefinition, JobState, TrainingJob
from apps.training.services import definitions
from apps.training.services.jobs import cancel_job
from apps.training.services.outputs import MODEL_FRAMEWORK, register_job_output


def _job_or_404(request: HttpRequest, job_id: int) -> TrainingJob:
    job = selectors.jobs_for(request.user).filter(pk=job_id).first()
    if job is None:
        raise Http404("No such training job in your teams.")
    return job


@login_required
def job_list_view(request: HttpRequest) -> HttpResponse:
    jobs = selectors.jobs_for(request.user).order_by("-submitted_at", "-pk")
    filterset = TrainingJobPageFilterSet(request.GET or None, queryset=jobs, request=request)
    harden(filterset)
    return render(request, "training/list.html", {"filterset": filterset, "page": list_page(request, filterset.qs)})


@login_required
def job_detail_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    first_line, lines = selectors.job_log_tail(job)
    ended = job.state in ENDED_JOB_STATES
    context = {
        "job": job,
        "first_line": first_line,
        "lines": lines,
        "can_cancel": not ended and can(request.user, "training.operate", job),
        "polling": not ended,
        "can_define": can(request.user, "training.schedule", job),
        "policies": ConcurrencyPolicy.choices,
        **_model_context(request, job),
        **_tracking_context(job),
    }
    template = "training/partials/job_live.html" if htmx_partial(request) else "training/detail.html"
    return render(request, template, context)


def _tracking_context(job: TrainingJob) -> dict[str, Any]:
    run = tracking.run_of_job(job)
    return {"tracking_run": run, "params": list(run.params.order_by("key").values_list("key", "value")) if run else []}


@login_required
def job_metrics_view(request: HttpRequest, job_id: int) -> JsonResponse:
    """The job's metric series for its live chart (polled while the job runs)."""
    return JsonResponse(selectors.job_metrics(_job_or_404(request, job_id)))


@login_required
def job_compare_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """The runs of the job's experiment side by side: parameters (differences highlighted), final metrics, and one
    metric overlaid across the runs."""
    job = _job_or_404(request, job_id)
    run = tracking.run_of_job(job)
    if run is None:
        raise Http404("This job has no tracking run yet: it has not started.")
    runs = list(tracking.comparable_runs(run, request.user))
    keys = tracking.metric_keys(run)
    wanted = request.GET.get("metric", "")
    metric = wanted if wanted in keys else (keys[0] if keys else "")
    context = {"job": job, "experiment": run.experiment, "metric": metric, **tracking.comparison(runs, metric)}
    return render(request, "training/compare.html", context)


def _model_context(request: HttpRequest, job: TrainingJob) -> dict[str, Any]:
    """The Model card: the versions the job became, and the register form once it succeeded."""
    can_register = (
        job.state == JobState.SUCCEEDED and bool(job.output_uri) and can(request.user, "model.register", job.team)
    )
    return {
        "versions": job.model_versions.select_related("model", "registered_by").order_by("pk"),
        "can_register": can_register,
        "team_models": model_names(job.team) if can_register else [],
        "model_frameworks": ModelFramework.choices,
        "default_framework": MODEL_FRAMEWORK.get(Framework(job.framework), ModelFramework.OTHER),
    }


@login_required
@require_POST
def job_register_model_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    try:
        version = register_job_output(
            actor=authenticated(request.user),
            job=job,
            model_name=request.POST.get("model", "").strip(),
            framework=request.POST.get("framework") or None,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Training job #{job.pk} registered as {version}.")
    return redirect("training:detail", job_id=job.pk)


@login_required
@require_POST
def job_cancel_view(request: HttpRequest, job_id: int) -> HttpResponse:
    job = _job_or_404(request, job_id)
    try:
        cancel_job(actor=authenticated(request.user), job=job, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Training job #{job.pk} cancelled.")
    return redirect("training:detail", job_id=job.pk)


@login_required
@require_POST
def job_define_view(request: HttpRequest, job_id: int) -> HttpResponse:
    """Save the job as a definition (on a schedule, or run by hand)."""
    job = _job_or_404(request, job_id)
    try:
        definition = definitions.define_from_job(
            actor=authenticated(request.user),
            job=job,
            name=request.POST.get("name", "").strip(),
            schedule=request.POST.get("schedule", "").strip(),
            concurrency_policy=request.POST.get("concurrency_policy", ConcurrencyPolicy.FORBID),
            register_model=request.POST.get("register_model", "").strip(),
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("training:detail", job_id=job.pk)
    messages.success(request, f"Saved as job definition {definition.name}.")
    return redirect("training:definition", definition_id=definition.pk)


# --- Job definitions -------------------------------------------------------------------------------------------


def _definition_or_404(request: HttpRequest, definition_id: int) -> JobDefinition:
    definition = selectors.definitions_for(request.user).filter(pk=definition_id).first()
    if definition is None:
        raise Http404("No such job definition in your teams.")
    return definition


@login_required
def definition_list_view(request: HttpRequest) -> HttpResponse:
    definitions = selectors.definitions_for(request.user).order_by("team", "name")
    filterset = JobDefinitionPageFilterSet(request.GET or None, queryset=definitions, request=request)
    harden(filterset)
    page = list_page(request, filterset.qs)
    rows = [(definition, selectors.last_fire(definition)) for definition in page]
    return render(request, "training/definitions.html", {"filterset": filterset, "page": page, "rows": rows})


@login_required
def definition_detail_view(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = _definition_or_404(request, definition_id)
    context = {
        "definition": definition,
        "upcoming": selectors.upcoming_runs(definition, count=5),
        "fires": selectors.recent_fires(definition),
        "can_operate": can(request.user, "training.schedule", definition),
    }
    return render(request, "training/definition.html", context)


@login_required
@require_POST
def definition_trigger_view(request: HttpRequest, definition_id: int) -> HttpResponse:
    definition = _definition_or_404(request, definition_id)
    try:
        fire = definitions.trigger_definition(actor=authenticated(request.user), definition=definition, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        (messages.success if fire.job else messages.warning)(request, f"{definition.name}: {fire.reason}.")
    return redirect("training:definition", definition_id=definition.pk)


@login_required
@require_POST
def definition_suspend_view(request: HttpRequest, definition_id: int) -> HttpResponse:
    """Suspend or resume the schedule (`suspended` = 1 or 0)."""
    definition = _definition_or_404(request, definition_id)
    suspended = request.POST.get("suspended") == "1"
    try:
        definitions.update_definition(
            actor=authenticated(request.user), definition=definition, changes={"suspended": suspended}, request=request
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{definition.name}: schedule {'suspended' if suspended else 'resumed'}.")
    return redirect("training:definition", definition_id=definition.pk)
