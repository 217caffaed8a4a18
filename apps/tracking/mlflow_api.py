"""The MLflow tracking REST API, the subset the `mlflow` client calls to log runs (`/api/2.0/mlflow/...`:
experiments, runs, params, metrics, batches, tags, metric history), so training code with MLFLOW_TRACKING_URI
pointed at Paved logs unchanged. Bodies and errors are MLflow's (the client parses them), not RFC 7807; these
views stay out of Paved's OpenAPI document, which describes /api/v1.

Callers: a personal token (`Bearer pvd_…`, the user's teams) or a job's token (`Bearer pvj_…`, only its run).
Thin: rules live in `services.py`, reads in `selectors.py`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.urls import path
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.authentication import BearerTokenAuthentication
from apps.accounts.models import Team
from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated, teams_for
from apps.core.errors import ApplicationError
from apps.tracking import selectors, services
from apps.tracking.authentication import JobGrant, JobTokenAuthentication
from apps.tracking.errors import InvalidParameterValue, PermissionDenied, ResourceDoesNotExist, TrackingError
from apps.tracking.models import Lifecycle, TrackingExperiment, TrackingRun

DEFAULT_EXPERIMENT = "Default"
MAX_RESULTS = 1000

# -- JSON as MLflow writes it ------------------------------------------------------------------------------------


def _number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def experiment_json(experiment: TrackingExperiment) -> dict[str, Any]:
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment.artifact_location,
        "lifecycle_stage": experiment.lifecycle_stage,
        "creation_time": int(experiment.created_at.timestamp() * 1000),
        "last_update_time": int(experiment.updated_at.timestamp() * 1000),
        "tags": [{"key": key, "value": value} for key, value in experiment.tags.items()],
    }


def run_info_json(run: TrackingRun) -> dict[str, Any]:
    info = {
        "run_id": run.run_uuid,
        "run_uuid": run.run_uuid,
        "run_name": run.name,
        "experiment_id": str(run.experiment_id),
        "user_id": run.user_id,
        "status": run.status,
        "start_time": run.start_time,
        "artifact_uri": run.artifact_uri,
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = run.end_time
    return info


def run_json(run: TrackingRun) -> dict[str, Any]:
    return {
        "info": run_info_json(run),
        "data": {
            "metrics": [
                {"key": m.key, "value": _number(m.value), "timestamp": m.timestamp, "step": m.step}
                for m in selectors.latest_metric_points(run)
            ],
            "params": [{"key": k, "value": v} for k, v in run.params.order_by("key").values_list("key", "value")],
            "tags": [{"key": k, "value": v} for k, v in run.tags.order_by("key").values_list("key", "value")],
        },
        "inputs": {},
    }


# -- the view --------------------------------------------------------------------------------------------------

Handler = Callable[["MlflowView", Request, dict[str, Any]], dict[str, Any]]


class MlflowView(APIView):
    authentication_classes = [JobTokenAuthentication, BearerTokenAuthentication]
    permission_classes: list[Any] = []
    schema = None  # MLflow's API, not Paved's: kept out of /api/v1's OpenAPI document
    handler: Handler | None = None

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, TrackingError):
            return Response({"error_code": exc.error_code, "message": exc.message}, status=exc.status)
        if isinstance(exc, ApplicationError):
            code = "PERMISSION_DENIED" if exc.status == 403 else "INVALID_PARAMETER_VALUE"
            return Response({"error_code": code, "message": exc.message}, status=exc.status)
        if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
            return Response({"error_code": "UNAUTHENTICATED", "message": str(exc.detail)}, status=401)
        if isinstance(exc, exceptions.ParseError):
            return Response({"error_code": "MALFORMED_REQUEST", "message": str(exc.detail)}, status=400)
        return super().handle_exception(exc)

    def _dispatch(self, request: Request) -> Response:
        if not request.user or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Send a Paved API token: MLFLOW_TRACKING_TOKEN=pvd_….")
        data = request.query_params.dict() if request.method == "GET" else request.data
        if not isinstance(data, dict):
            raise InvalidParameterValue("The request body is a JSON object.")
        handler = self.handler
        assert handler is not None  # noqa: S101 - set by as_view()
        return Response(handler(self, request, data))

    def get(self, request: Request) -> Response:
        return self._dispatch(request)

    def post(self, request: Request) -> Response:
        return self._dispatch(request)

    # -- lookups, scoped to the caller ---------------------------------------------------------------------

    def grant(self, request: Request) -> JobGrant | None:
        return request.auth if isinstance(request.auth, JobGrant) else None

    def experiments(self, request: Request) -> QuerySet[TrackingExperiment]:
        grant = self.grant(request)
        if grant is not None:
            return TrackingExperiment.objects.filter(pk=grant.run.experiment_id)
        return selectors.experiments_for(request.user)

    def experiment(self, request: Request, experiment_id: Any) -> TrackingExperiment:
        if str(experiment_id) == "0" and self.grant(request) is None:
            return self.default_experiment(request)
        found = None
        if str(experiment_id).isdigit() and 0 < int(experiment_id) < 2**63:
            found = self.experiments(request).filter(pk=int(experiment_id)).first()
        if found is None:
            raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
        return found

    def run(self, request: Request, data: dict[str, Any], *, write: bool = False) -> TrackingRun:
        run_id = str(data.get("run_id") or data.get("run_uuid") or "")
        grant = self.grant(request)
        found = self.runs(request).filter(run_uuid=run_id).first() if 0 < len(run_id) <= 32 else None
        if found is None:
            raise ResourceDoesNotExist(f"Run with id={run_id} not found")
        if write and grant is None and not can(request.user, "tracking.log", found):
            raise PermissionDenied(f"Only members of team {found.team.slug} log to its runs.")
        return found

    def runs(self, request: Request) -> QuerySet[TrackingRun]:
        grant = self.grant(request)
        return selectors.runs_for(request.user) if grant is None else TrackingRun.objects.filter(pk=grant.run.pk)

    def team_for_name(self, request: Request, name: str) -> Team:
        """Which of the caller's teams an experiment goes to: `<team>/...` names it; a member of one team needs
        no prefix."""
        teams = list(teams_for(request.user).order_by("slug"))
        prefix = name.split("/", 1)[0] if "/" in name else ""
        for team in teams:
            if team.slug == prefix:
                return team
        if len(teams) == 1:
            return teams[0]
        raise InvalidParameterValue(
            f"You are in several teams ({', '.join(t.slug for t in teams)}): name the experiment '<team>/{name}'."
        )

    def default_experiment(self, request: Request) -> TrackingExperiment:
        team = self.team_for_name(request, DEFAULT_EXPERIMENT)
        found = TrackingExperiment.objects.filter(team=team, name=DEFAULT_EXPERIMENT).first()
        return found or services.create_experiment(actor=authenticated(request.user), team=team, name="Default")

    def no_job_token(self, request: Request, what: str) -> None:
        if self.grant(request) is not None:
            raise PermissionDenied(f"A job's tracking token logs to its own run only; it cannot {what}.")


# -- handlers (one per MLflow endpoint) -------------------------------------------------------------------------


def create_experiment(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    view.no_job_token(request, "create experiments")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue("Missing value for required parameter 'name'.")
    tags = {str(t.get("key")): str(t.get("value")) for t in data.get("tags") or [] if isinstance(t, dict)}
    experiment = services.create_experiment(
        actor=authenticated(request.user),
        team=view.team_for_name(request, name),
        name=name,
        artifact_location=str(data.get("artifact_location") or ""),
        tags=tags,
    )
    return {"experiment_id": str(experiment.pk)}


def get_experiment(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    return {"experiment": experiment_json(view.experiment(request, data.get("experiment_id")))}


def get_experiment_by_name(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    name = str(data.get("experiment_name") or "")
    found = view.experiments(request).filter(name=name).order_by("team__slug").first()
    if found is None and "/" in name:
        found = view.experiments(request).filter(name=name.split("/", 1)[1], team__slug=name.split("/", 1)[0]).first()
    if found is None:
        raise ResourceDoesNotExist(f"Experiment '{name}' does not exist.")
    return {"experiment": experiment_json(found)}


def search_experiments(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    found = view.experiments(request).filter(lifecycle_stage=Lifecycle.ACTIVE).order_by("pk")
    return _page(found, data, "experiments", experiment_json)


def create_run(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    view.no_job_token(request, "create runs (the job's run is MLFLOW_RUN_ID)")
    experiment = view.experiment(request, data.get("experiment_id") or "0")
    run = services.create_run(
        actor=authenticated(request.user),
        experiment=experiment,
        name=str(data.get("run_name") or ""),
        start_time=data.get("start_time"),
        tags=[t for t in data.get("tags") or [] if isinstance(t, dict)],
    )
    return {"run": run_json(run)}


def get_run(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    return {"run": run_json(view.run(request, data))}


def update_run(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    run = services.update_run(
        run=view.run(request, data, write=True),
        status=data.get("status"),
        end_time=data.get("end_time"),
        name=data.get("run_name"),
    )
    return {"run_info": run_info_json(run)}


def log_metric(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    services.log_batch(run=view.run(request, data, write=True), metrics=[data])
    return {}


def log_param(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    services.log_batch(run=view.run(request, data, write=True), params=[data])
    return {}


def set_tag(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    services.log_batch(run=view.run(request, data, write=True), tags=[data])
    return {}


def delete_tag(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    services.delete_tag(run=view.run(request, data, write=True), key=data.get("key"))
    return {}


def _list(data: dict[str, Any], name: str) -> list[Any]:
    value = data.get(name) or []
    if not isinstance(value, list):
        raise InvalidParameterValue(f"'{name}' is a list.")
    return value


def log_batch(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    services.log_batch(
        run=view.run(request, data, write=True),
        metrics=_list(data, "metrics"),
        params=_list(data, "params"),
        tags=_list(data, "tags"),
    )
    return {}


def log_inputs(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """Dataset inputs: accepted so `mlflow.log_input` does not fail; Paved keeps lineage on the job instead."""
    view.run(request, data, write=True)
    return {}


def search_runs(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    ids = [str(i) for i in _list(data, "experiment_ids")]
    experiments = [view.experiment(request, i) for i in ids]
    runs = view.runs(request).filter(experiment__in=experiments, lifecycle_stage=Lifecycle.ACTIVE)
    if str(data.get("filter") or "").strip():
        raise InvalidParameterValue("Paved's tracking endpoint searches runs by experiment only (no filter string).")
    return _page(runs.order_by("-start_time", "-pk"), data, "runs", run_json)


def _page(
    found: QuerySet[Any], data: dict[str, Any], name: str, render: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """One page of a search, MLflow style: `max_results` (at most MAX_RESULTS) and an opaque `page_token`."""
    token = str(data.get("page_token") or "0")
    limit = str(data.get("max_results") or MAX_RESULTS)
    if not token.isdigit() or not limit.isdigit() or int(limit) < 1:
        raise InvalidParameterValue("max_results is a positive integer and page_token one this endpoint gave.")
    offset, size = int(token), min(int(limit), MAX_RESULTS)
    page = list(found[offset : offset + size + 1])
    answer: dict[str, Any] = {name: [render(item) for item in page[:size]]}
    if len(page) > size:
        answer["next_page_token"] = str(offset + size)
    return answer


def get_metric_history(view: MlflowView, request: Request, data: dict[str, Any]) -> dict[str, Any]:
    run = view.run(request, data)
    key = str(data.get("metric_key") or "")
    points = run.metrics.filter(key=key).order_by("step", "timestamp", "id")
    return {
        "metrics": [{"key": p.key, "value": _number(p.value), "timestamp": p.timestamp, "step": p.step} for p in points]
    }


ENDPOINTS: dict[str, Handler] = {
    "experiments/create": create_experiment,
    "experiments/get": get_experiment,
    "experiments/get-by-name": get_experiment_by_name,
    "experiments/search": search_experiments,
    "runs/create": create_run,
    "runs/get": get_run,
    "runs/update": update_run,
    "runs/log-metric": log_metric,
    "runs/log-parameter": log_param,
    "runs/set-tag": set_tag,
    "runs/delete-tag": delete_tag,
    "runs/log-batch": log_batch,
    "runs/log-inputs": log_inputs,
    "runs/search": search_runs,
    "metrics/get-history": get_metric_history,
}

urlpatterns = [
    path(name, MlflowView.as_view(handler=handler), name=f"mlflow-{name.replace('/', '-')}")
    for name, handler in ENDPOINTS.items()
]
